"""The oras Python SDK: artifacts with a custom type and config, referrers with a subject."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.env import missing
from helpers.layout import OCI_INDEX, Blob, build_artifact
from helpers.registry_client import RegistryClient, expect
from helpers.server import Server

pytestmark = pytest.mark.integration

try:
    import oras.client as oras_client
    from oras.oci import Subject
except ImportError:
    missing("the oras Python SDK is not installed")

CONFIG_TYPE = "application/vnd.zotpy.test.config.v1+json"
SIGNATURE_TYPE = "application/vnd.zotpy.test.signature.v1"
SBOM_TYPE = "application/vnd.zotpy.test.sbom.v1+json"


@pytest.fixture
def oras_sdk(live_server: Server) -> oras_client.OrasClient:
    return oras_client.OrasClient(hostname=live_server.hostport, insecure=True)


def push_files(
    sdk: oras_client.OrasClient, target: str, workdir: Path, files: dict[str, bytes], **kwargs: object
) -> str:
    """Push ``files`` (written under ``workdir``) with the SDK; return the registry's manifest digest."""
    workdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in files.items():
        (workdir / name).write_bytes(content)
        paths.append(str(workdir / name))
    resp = sdk.push(target=target, files=paths, disable_path_validation=True, quiet=True, **kwargs)
    assert resp.status_code == 201, resp.text
    return resp.headers["Docker-Content-Digest"]


def test_artifact_push_pull_and_referrers(
    tmp_path: Path,
    oras_sdk: oras_client.OrasClient,
    live_server: Server,
    registry: RegistryClient,
    repo_name: str,
) -> None:
    files = {"model.bin": bytes(range(256)) * 64, "notes.txt": b"artifact notes\n"}
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"kind": "zotpy-test"}))
    target = f"{live_server.hostport}/{repo_name}:artifact"
    digest = push_files(
        oras_sdk,
        target,
        tmp_path / "push",
        files,
        manifest_config=f"{config}:{CONFIG_TYPE}",
        manifest_annotations={"org.example.kind": "model"},
    )

    manifest_resp = expect(registry.get_manifest(repo_name, "artifact"), 200)
    assert manifest_resp.headers["Docker-Content-Digest"] == digest
    manifest = manifest_resp.json()
    assert manifest["config"]["mediaType"] == CONFIG_TYPE
    assert manifest["annotations"]["org.example.kind"] == "model"
    assert (
        expect(registry.get_blob(repo_name, manifest["config"]["digest"]), 200).content == config.read_bytes()
    )

    pulled = oras_sdk.pull(target=target, outdir=str(tmp_path / "pull"))
    assert sorted(Path(p).name for p in pulled) == sorted(files)
    for path in pulled:
        assert Path(path).read_bytes() == files[Path(path).name]

    # A referrer pushed by the SDK with a subject (artifactType falls back to the config media type).
    subject = Subject(mediaType=manifest["mediaType"], digest=digest, size=len(manifest_resp.content))
    sig_config = tmp_path / "sig-config.json"
    sig_config.write_text("{}")
    sig_digest = push_files(
        oras_sdk,
        f"{live_server.hostport}/{repo_name}:sig",
        tmp_path / "sig",
        {"signature.sig": b"not really signed"},
        manifest_config=f"{sig_config}:{SIGNATURE_TYPE}",
        subject=subject,
    )

    # A second referrer with an explicit artifactType, PUT by digest through the raw API.
    sbom = build_artifact(
        {"sbom.json": b'{"packages": []}'},
        artifact_type=SBOM_TYPE,
        subject={"mediaType": manifest["mediaType"], "digest": digest, "size": len(manifest_resp.content)},
        annotations={"org.example.sbom": "yes"},
    )
    for blob in sbom.blobs:
        registry.push_blob(repo_name, blob)
    put = expect(
        registry.put_manifest(repo_name, sbom.digest, sbom.manifest.data, sbom.manifest.media_type), 201
    )
    assert put.headers.get("OCI-Subject") == digest

    refs = expect(registry.referrers(repo_name, digest), 200)
    assert refs.headers["Content-Type"].startswith(OCI_INDEX)
    listed = {d["digest"]: d for d in refs.json()["manifests"]}
    assert set(listed) == {sig_digest, sbom.digest}
    assert listed[sig_digest]["artifactType"] == SIGNATURE_TYPE
    assert listed[sbom.digest]["artifactType"] == SBOM_TYPE
    assert listed[sbom.digest]["annotations"] == {"org.example.sbom": "yes"}
    assert listed[sbom.digest]["size"] == sbom.manifest.size
    assert "OCI-Filters-Applied" not in refs.headers

    filtered = expect(registry.referrers(repo_name, digest, artifact_type=SBOM_TYPE), 200)
    assert [d["digest"] for d in filtered.json()["manifests"]] == [sbom.digest]
    assert filtered.headers.get("OCI-Filters-Applied") == "artifactType"

    none = expect(registry.referrers(repo_name, sbom.digest), 200)
    assert none.json()["manifests"] == []


def test_referrer_pushed_before_its_subject(registry: RegistryClient, repo_name: str) -> None:
    """The spec lets a referrer arrive before its subject; it is listed once the subject is asked about."""
    subject_blob = Blob("application/vnd.oci.image.manifest.v1+json", b"{}")  # only its digest is used
    missing_digest = subject_blob.digest
    ref = build_artifact(
        {"x": b"x"},
        artifact_type=SIGNATURE_TYPE,
        subject={"mediaType": subject_blob.media_type, "digest": missing_digest, "size": 2},
    )
    for blob in ref.blobs:
        registry.push_blob(repo_name, blob)
    put = expect(
        registry.put_manifest(repo_name, ref.digest, ref.manifest.data, ref.manifest.media_type), 201
    )
    assert put.headers.get("OCI-Subject") == missing_digest
    listed = expect(registry.referrers(repo_name, missing_digest), 200).json()["manifests"]
    assert [d["digest"] for d in listed] == [ref.digest]
