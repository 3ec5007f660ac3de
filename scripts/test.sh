#!/usr/bin/env bash
# Install what the tests need and run every check: ruff, mypy, import-linter, then pytest.
#
#   bash scripts/test.sh [PYTEST ARGS...]
#
# Debian packages the integration tests drive (skopeo, podman, buildah, umoci, nginx...) are installed
# with apt-get when missing (as root, or through sudo). Python dependencies go into .venv, made with
# Python 3.11 or newer when it does not exist. Every check runs even when an earlier one fails; the exit
# status is non-zero if any failed, including a pytest run that collected no tests (exit code 5).
# Environment: PYTHON (interpreter for a new .venv, default python3.11), VENV (default .venv).
set -euo pipefail

cd "$(dirname "$0")/.."

export PYTHONUNBUFFERED=1
export PYTHONDONTWRITEBYTECODE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_NO_INPUT=1
export DEBIAN_FRONTEND=noninteractive
# nginx lives in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

VENV=${VENV:-.venv}

# command each test needs -> Debian package providing it
declare -A DEBIAN_PACKAGES=(
    [skopeo]=skopeo
    [podman]=podman
    [buildah]=buildah
    [umoci]=umoci
    [nginx]=nginx
    [newuidmap]=uidmap
    [fuse-overlayfs]=fuse-overlayfs
    [crun]=crun
    [openssl]=openssl
    [pg_ctlcluster]=postgresql  # the server binaries live in /usr/lib/postgresql/<version>/bin
    [slapd]=slapd
    [ldapadd]=ldap-utils
)

step() { printf '\n==> %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo -E "$@"
    else
        echo "error: installing Debian packages needs root or sudo: $*" >&2
        return 1
    fi
}

install_debian_packages() {
    local missing=() command package
    for command in "${!DEBIAN_PACKAGES[@]}"; do
        package=${DEBIAN_PACKAGES[$command]}
        if ! command -v "$command" >/dev/null \
            || ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$package")
        fi
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "Debian packages present: ${DEBIAN_PACKAGES[*]}"
        return
    fi
    step "apt-get install ${missing[*]}"
    # Keep package scripts from starting services (nginx would take port 80); tests start their own.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
        as_root chmod 755 "$policy"
        added_policy=1
    fi
    local status=0
    as_root apt-get update -q || status=$?
    if [ $status -eq 0 ]; then
        as_root apt-get install -y -q --no-install-recommends "${missing[@]}" || status=$?
    fi
    if [ $added_policy -eq 1 ]; then
        as_root rm -f "$policy"
    fi
    return $status
}

python_for_venv() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null \
            && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    echo "error: Python 3.11 or newer is needed (set PYTHON=...)" >&2
    return 1
}

make_venv() {
    if ! "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        local python
        python=$(python_for_venv)
        step "creating $VENV with $python"
        rm -rf "$VENV"
        "$python" -m venv "$VENV"
    fi
    step "pip install -e '.[test,dev]'"
    "$VENV/bin/python" -m pip install -q -e '.[test,dev]'
}

install_debian_packages
make_venv

export PATH="$PWD/$VENV/bin:$PATH"
failed=()

step "ruff check src tests benchmarks deploy"
ruff check src tests benchmarks deploy || failed+=(ruff)

step "mypy"
mypy || failed+=(mypy)

step "lint-imports"
lint-imports --no-cache || failed+=(import-linter)

step "pytest -m 'not benchmark'"
pytest_status=0
python -m pytest -p no:cacheprovider -m "not benchmark" --durations=15 "$@" || pytest_status=$?
case $pytest_status in
    0) ;;
    5) echo "error: pytest collected no tests" >&2; failed+=(pytest) ;;
    *) failed+=(pytest) ;;
esac

# The core client suites once more with the registry on S3 (moto's server) and PostgreSQL. Deselected:
# the checks that read the local filesystem layout (hard-link inodes, sha512 blob files on disk).
step "pytest: core integration suites on S3 + PostgreSQL"
ZOTPY_TEST_STORAGE=s3 python -m pytest -p no:cacheprovider -m "not benchmark" \
    tests/integration/test_skopeo.py tests/integration/test_podman_buildah.py \
    tests/integration/test_oras.py tests/integration/test_uploads.py tests/integration/test_listing.py \
    tests/integration/test_delete.py tests/integration/test_concurrency.py \
    tests/integration/test_sha512.py tests/integration/test_compat_docker.py \
    --deselect tests/integration/test_uploads.py::test_cross_repository_mount \
    --deselect tests/integration/test_sha512.py::test_sha512_blob_upload_styles \
    --deselect tests/integration/test_sha512.py::test_sha512_manifest \
    || failed+=(pytest-s3)

if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
