"""Run skopeo, podman and buildah isolated from the host's configuration and image store.

Each ``ContainerTools`` owns a work directory holding its own ``policy.json`` (insecureAcceptAnything),
``registries.conf`` (no search registries, so nothing is ever pulled from the network by a short name),
``storage.conf`` (driver ``vfs`` — overlay needs kernel support a sandbox may lack — with a private
graphroot/runroot) and ``containers.conf`` (no events journal, cgroupfs). Nothing runs a container:
images come from OCI layouts or ``buildah from scratch`` + ``copy`` + ``commit``.
Every subprocess has a timeout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from helpers.env import require_tool

DEFAULT_TIMEOUT = 180.0


class ToolError(AssertionError):
    def __init__(self, argv: Sequence[str], proc: subprocess.CompletedProcess[str]) -> None:
        super().__init__(
            f"{' '.join(argv)} exited {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}"
            f"\n--- stderr ---\n{proc.stderr[-4000:]}"
        )
        self.proc = proc


class ContainerTools:
    """Isolated configuration for the containers/image tools, under ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.policy = self.workdir / "policy.json"
        self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        self.registries_conf = self.workdir / "registries.conf"
        self.registries_conf.write_text('unqualified-search-registries = []\nshort-name-mode = "disabled"\n')
        self.graphroot = self.workdir / "storage"
        # podman refuses a runroot longer than 50 characters, and pytest's tmp paths are longer.
        self.runroot = Path(
            tempfile.mkdtemp(prefix="zotpy-run-", dir="/tmp" if os.path.isdir("/tmp") else None)
        )
        self.tmpdir = self.workdir / "tmp"
        for d in (self.graphroot, self.tmpdir):
            d.mkdir(exist_ok=True)
        self.storage_conf = self.workdir / "storage.conf"
        self.storage_conf.write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{self.graphroot}"\nrunroot = "{self.runroot}"\n'
        )
        self.containers_conf = self.workdir / "containers.conf"
        self.containers_conf.write_text(
            f'[engine]\nevents_logger = "none"\ncgroup_manager = "cgroupfs"\ntmp_dir = "{self.tmpdir}"\n'
        )
        self.auth_file = self.workdir / "auth.json"
        self.auth_file.write_text("{}")

    def close(self) -> None:
        """Remove the short-path runroot kept outside the work directory."""
        shutil.rmtree(self.runroot, ignore_errors=True)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            CONTAINERS_STORAGE_CONF=str(self.storage_conf),
            CONTAINERS_REGISTRIES_CONF=str(self.registries_conf),
            CONTAINERS_CONF=str(self.containers_conf),
            REGISTRY_AUTH_FILE=str(self.auth_file),
            TMPDIR=str(self.tmpdir),
            BUILDAH_ISOLATION="chroot",
        )
        return env

    def run(
        self, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(argv),
            env=self.environment(),
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise ToolError(argv, proc)
        return proc

    def _storage_flags(self) -> list[str]:
        return ["--root", str(self.graphroot), "--runroot", str(self.runroot), "--storage-driver", "vfs"]

    # -- skopeo ----------------------------------------------------------------------------------
    def skopeo(self, *args: str, timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return self.run([require_tool("skopeo"), "--policy", str(self.policy), *args], timeout=timeout)

    def skopeo_copy(
        self,
        src: str,
        dest: str,
        *extra: str,
        src_tls_verify: bool = False,
        dest_tls_verify: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """``skopeo copy``; TLS flags are passed only for the ``docker://`` sides that accept them."""
        flags = []
        if src.startswith("docker://"):
            flags.append(f"--src-tls-verify={str(src_tls_verify).lower()}")
        if dest.startswith("docker://"):
            flags.append(f"--dest-tls-verify={str(dest_tls_verify).lower()}")
        return self.skopeo("copy", *flags, *extra, src, dest, timeout=timeout)

    def skopeo_inspect_raw(self, ref: str, tls_verify: bool = False) -> bytes:
        """The exact manifest bytes ``skopeo inspect --raw`` gets for ``ref`` (``docker://...``)."""
        proc = subprocess.run(
            [require_tool("skopeo"), "inspect", "--raw", f"--tls-verify={str(tls_verify).lower()}", ref],
            env=self.environment(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=DEFAULT_TIMEOUT,
        )
        if proc.returncode != 0:
            raise AssertionError(f"skopeo inspect --raw {ref} failed: {proc.stderr.decode(errors='replace')}")
        return proc.stdout

    # -- podman ----------------------------------------------------------------------------------
    def podman(self, *args: str, timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess[str]:
        argv = [
            require_tool("podman"),
            *self._storage_flags(),
            "--events-backend",
            "none",
            "--cgroup-manager",
            "cgroupfs",
            "--tmpdir",
            str(self.tmpdir),
            *args,
        ]
        return self.run(argv, timeout=timeout)

    def podman_push(self, image: str, dest: str, digestfile: Path | None = None, *extra: str) -> None:
        flags = ["--tls-verify=false", "--signature-policy", str(self.policy)]
        if digestfile is not None:
            flags += ["--digestfile", str(digestfile)]
        self.podman("push", *flags, *extra, image, dest)

    def podman_pull(self, ref: str) -> str:
        """Pull ``ref`` without TLS verification; return the image id podman prints."""
        proc = self.podman("pull", "--tls-verify=false", "--signature-policy", str(self.policy), ref)
        return proc.stdout.strip().splitlines()[-1]

    def podman_image_id(self, ref: str) -> str:
        return self.podman("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()

    def load_layout(self, layout: Path, tag: str, name: str) -> None:
        """Put an OCI layout's image ``tag`` into this containers storage as ``name``."""
        self.skopeo_copy(
            f"oci:{layout}:{tag}", f"containers-storage:[vfs@{self.graphroot}+{self.runroot}]{name}"
        )

    # -- buildah ---------------------------------------------------------------------------------
    def buildah(self, *args: str, timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess[str]:
        return self.run([require_tool("buildah"), *self._storage_flags(), *args], timeout=timeout)
