"""Push and pull through a real nginx configured with ``deploy/nginx.conf``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from helpers.clients import ContainerTools
from helpers.env import require_tool
from helpers.layout import OCILayout, build_image, digest_of, pattern_stream, stream_digest
from helpers.nginx import NginxProxy
from helpers.registry_client import RegistryClient, SizedStream, describe, expect, read_back_digest
from helpers.server import Server

pytestmark = pytest.mark.integration

BIG_BLOB = 200 * 1024 * 1024 + 17  # at least 200 MB, and not a multiple of any buffer size
BIG_SEED = 20


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, live_server: Server) -> Iterator[NginxProxy]:
    require_tool("nginx")
    nginx = NginxProxy(tmp_path_factory.mktemp("nginx"), live_server.hostport)
    nginx.start()
    try:
        yield nginx
    finally:
        nginx.stop()


@pytest.fixture
def via_proxy(request: pytest.FixtureRequest, proxy: NginxProxy) -> Iterator[RegistryClient]:
    client = RegistryClient(proxy.url, timeout=300)
    try:
        yield client
    finally:
        client.close()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            request.node.add_report_section("call", "nginx logs", proxy.logs())


def assert_points_at_proxy(client: RegistryClient, proxy: NginxProxy, location: str) -> str:
    """A ``Location`` must lead back through nginx (relative, or absolute with nginx's host:port)."""
    parsed = urlparse(location)
    if parsed.netloc:
        assert parsed.netloc == proxy.hostport, f"Location {location} bypasses nginx at {proxy.hostport}"
    return client.url(location)


def test_big_blob_push_and_pull_through_nginx(
    via_proxy: RegistryClient, proxy: NginxProxy, repo_name: str
) -> None:
    digest = stream_digest(pattern_stream(BIG_BLOB, BIG_SEED))
    started = time.monotonic()

    post = expect(via_proxy.start_upload(repo_name), 202)
    location = assert_points_at_proxy(via_proxy, proxy, post.headers["Location"])
    put = via_proxy.finish_upload(
        location, digest, SizedStream(pattern_stream(BIG_BLOB, BIG_SEED), BIG_BLOB), length=BIG_BLOB
    )
    assert put.status_code == 201, describe(put)
    assert put.headers["Docker-Content-Digest"] == digest
    assert_points_at_proxy(via_proxy, proxy, put.headers["Location"])

    head = expect(via_proxy.head_blob(repo_name, digest), 200)
    assert int(head.headers["Content-Length"]) == BIG_BLOB
    with via_proxy.get_blob(repo_name, digest, stream=True) as get:
        expect(get, 200)
        assert read_back_digest(get) == (digest, BIG_BLOB)
    tail = expect(via_proxy.get_blob(repo_name, digest, headers={"Range": f"bytes={BIG_BLOB - 10}-"}), 206)
    assert len(tail.content) == 10
    elapsed = time.monotonic() - started
    assert elapsed < 300, f"200 MB round trip through nginx took {elapsed:.0f}s"


def test_chunked_transfer_patch_through_nginx(
    via_proxy: RegistryClient, proxy: NginxProxy, repo_name: str
) -> None:
    size = 24 * 1024 * 1024 + 5
    digest = stream_digest(pattern_stream(size, 7, block=100_000))
    location = assert_points_at_proxy(
        via_proxy, proxy, expect(via_proxy.start_upload(repo_name), 202).headers["Location"]
    )

    patch = expect(via_proxy.patch_stream(location, pattern_stream(size, 7, block=100_000)), 202)
    assert patch.request.headers.get("Transfer-Encoding") == "chunked"
    assert patch.headers["Range"] == f"0-{size - 1}"
    location = assert_points_at_proxy(via_proxy, proxy, patch.headers["Location"])

    status = expect(via_proxy.upload_status(location), 204)
    assert status.headers["Range"] == f"0-{size - 1}"
    done = expect(via_proxy.finish_upload(location, digest), 201)
    assert_points_at_proxy(via_proxy, proxy, done.headers["Location"])
    with via_proxy.get_blob(repo_name, digest, stream=True) as get:
        assert read_back_digest(expect(get, 200)) == (digest, size)


def test_chunked_patches_and_manifest_through_nginx(
    via_proxy: RegistryClient, proxy: NginxProxy, repo_name: str
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 1)
    resp = expect(via_proxy.push_blob_chunked(repo_name, data, chunk_size=1024 * 1024), 201)
    assert_points_at_proxy(via_proxy, proxy, resp.headers["Location"])
    assert via_proxy.get_blob(repo_name, digest_of(data)).content == data

    image = build_image(n_layers=2)
    for blob in image.blobs:
        via_proxy.push_blob(repo_name, blob)
    put = expect(via_proxy.put_manifest(repo_name, "v1", image.manifest.data, image.manifest.media_type), 201)
    assert_points_at_proxy(via_proxy, proxy, put.headers["Location"])
    assert expect(via_proxy.get_manifest(repo_name, "v1"), 200).content == image.manifest.data


def test_skopeo_through_nginx(
    tmp_path: Path, tools: ContainerTools, proxy: NginxProxy, repo_name: str
) -> None:
    require_tool("skopeo")
    image = build_image(n_layers=2, layer_size=512 * 1024)
    source = OCILayout(tmp_path / "src").write({"v1": image})
    ref = f"docker://{proxy.hostport}/{repo_name}:v1"
    tools.skopeo_copy(f"oci:{source.path}:v1", ref)
    back = OCILayout(tmp_path / "back")
    tools.skopeo_copy(ref, f"oci:{back.path}:v1")
    assert back.tags()["v1"]["digest"] == image.digest
    for blob in image.blobs:
        assert back.read_blob(blob.digest) == blob.data
