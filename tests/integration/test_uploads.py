"""Blob uploads over real HTTP: monolithic, chunked, streamed, resumed after a restart, mounted."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from helpers.layout import digest_of
from helpers.registry_client import RegistryClient, describe, error_codes, expect
from helpers.server import Server

pytestmark = pytest.mark.integration


def assert_blob(registry: RegistryClient, name: str, data: bytes) -> None:
    digest = digest_of(data)
    head = expect(registry.head_blob(name, digest), 200)
    assert int(head.headers["Content-Length"]) == len(data)
    assert head.headers["Docker-Content-Digest"] == digest
    get = expect(registry.get_blob(name, digest), 200)
    assert get.content == data


def test_monolithic_post(registry: RegistryClient, repo_name: str) -> None:
    data = os.urandom(70_000)
    resp = expect(registry.push_blob_monolithic(repo_name, data), 201)
    assert resp.headers["Docker-Content-Digest"] == digest_of(data)
    assert registry.url(resp.headers["Location"]).endswith(f"/v2/{repo_name}/blobs/{digest_of(data)}")
    assert_blob(registry, repo_name, data)


def test_post_then_put_with_whole_body(registry: RegistryClient, repo_name: str) -> None:
    data = os.urandom(300_000)
    resp = expect(registry.push_blob_post_put(repo_name, data), 201)
    assert resp.headers["Docker-Content-Digest"] == digest_of(data)
    assert_blob(registry, repo_name, data)


def test_chunked_upload_with_several_patches(registry: RegistryClient, repo_name: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    location = registry.upload_location(repo_name)
    chunk = 1024 * 1024
    for start in range(0, len(data), chunk):
        part = data[start : start + chunk]
        resp = expect(registry.patch_chunk(location, part, start), 202)
        assert resp.headers["Range"] == f"0-{start + len(part) - 1}"
        location = registry.url(resp.headers["Location"])
        status = registry.upload_status(location)
        assert status.status_code == 204, describe(status)
        assert status.headers["Range"] == f"0-{start + len(part) - 1}"
    done = expect(registry.finish_upload(location, digest_of(data)), 201)
    assert done.headers["Docker-Content-Digest"] == digest_of(data)
    assert registry.url(done.headers["Location"]).endswith(f"/v2/{repo_name}/blobs/{digest_of(data)}")
    assert_blob(registry, repo_name, data)
    # The session is gone once committed.
    assert registry.upload_status(location).status_code == 404


def test_last_chunk_on_put(registry: RegistryClient, repo_name: str) -> None:
    data = os.urandom(200_000)
    location = registry.upload_location(repo_name)
    resp = expect(registry.patch_chunk(location, data[:150_000], 0), 202)
    resp = expect(
        registry.finish_upload(registry.url(resp.headers["Location"]), digest_of(data), data[150_000:]), 201
    )
    assert_blob(registry, repo_name, data)


def test_out_of_order_chunk_is_refused_with_current_range(registry: RegistryClient, repo_name: str) -> None:
    data = os.urandom(3000)
    location = registry.upload_location(repo_name)
    location = registry.url(expect(registry.patch_chunk(location, data[:1000], 0), 202).headers["Location"])
    skipped = registry.patch_chunk(location, data[2000:], 2000)
    assert skipped.status_code == 416, describe(skipped)
    status = expect(registry.upload_status(location), 204)
    assert status.headers["Range"] == "0-999"
    location = registry.url(
        expect(registry.patch_chunk(location, data[1000:], 1000), 202).headers["Location"]
    )
    expect(registry.finish_upload(location, digest_of(data)), 201)
    assert_blob(registry, repo_name, data)


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_streamed_patch_with_transfer_encoding_chunked(registry: RegistryClient, repo_name: str) -> None:
    data = os.urandom(5 * 1024 * 1024 + 7)
    location = registry.upload_location(repo_name)
    resp = expect(registry.patch_stream(location, pieces(data, 65_537)), 202)
    assert resp.request.headers.get("Transfer-Encoding") == "chunked"
    assert "Content-Length" not in resp.request.headers
    assert resp.headers["Range"] == f"0-{len(data) - 1}"
    expect(registry.finish_upload(registry.url(resp.headers["Location"]), digest_of(data)), 201)
    assert_blob(registry, repo_name, data)


def test_digest_mismatch_is_refused(registry: RegistryClient, repo_name: str) -> None:
    data = os.urandom(1000)
    wrong = digest_of(b"something else")
    resp = registry.push_blob_post_put(repo_name, data, wrong)
    assert resp.status_code == 400, describe(resp)
    assert "DIGEST_INVALID" in error_codes(resp)
    assert registry.head_blob(repo_name, wrong).status_code == 404
    assert registry.head_blob(repo_name, digest_of(data)).status_code == 404


def test_cancelled_upload_is_gone(registry: RegistryClient, repo_name: str) -> None:
    location = registry.upload_location(repo_name)
    location = registry.url(expect(registry.patch_chunk(location, b"abc", 0), 202).headers["Location"])
    expect(registry.cancel_upload(location), 204)
    gone = registry.upload_status(location)
    assert gone.status_code == 404 and "BLOB_UPLOAD_UNKNOWN" in error_codes(gone), describe(gone)


def test_range_reads(registry: RegistryClient, repo_name: str) -> None:
    data = os.urandom(10_000)
    expect(registry.push_blob_post_put(repo_name, data), 201)
    part = expect(registry.get_blob(repo_name, digest_of(data), headers={"Range": "bytes=100-199"}), 206)
    assert part.content == data[100:200]
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    bad = registry.get_blob(repo_name, digest_of(data), headers={"Range": "bytes=20000-30000"})
    assert bad.status_code == 416, describe(bad)
    assert bad.headers.get("Content-Range") == f"bytes */{len(data)}"


def test_resume_interrupted_chunked_upload_after_restart(
    server_factory: Callable[..., Server], repo_name: str
) -> None:
    server = server_factory()
    registry = server.client()
    data = os.urandom(2 * 1024 * 1024 + 11)
    half = len(data) // 2
    location = registry.upload_location(repo_name)
    location = registry.url(expect(registry.patch_chunk(location, data[:half], 0), 202).headers["Location"])

    server.restart()

    status = registry.upload_status(location)
    assert status.status_code == 204, describe(status)
    assert status.headers["Range"] == f"0-{half - 1}"
    resumed = registry.url(status.headers.get("Location", location))
    resp = expect(registry.patch_chunk(resumed, data[half:], half), 202)
    assert resp.headers["Range"] == f"0-{len(data) - 1}"
    expect(registry.finish_upload(registry.url(resp.headers["Location"]), digest_of(data)), 201)
    assert_blob(registry, repo_name, data)


def test_cross_repository_mount(live_server: Server, registry: RegistryClient, repo_name: str) -> None:
    data = os.urandom(50_000)
    digest = digest_of(data)
    source = f"{repo_name}/source"
    expect(registry.push_blob_post_put(source, data), 201)

    mounted = registry.mount_blob(f"{repo_name}/target", digest, source)
    assert mounted.status_code == 201, describe(mounted)
    assert mounted.headers["Docker-Content-Digest"] == digest
    assert registry.url(mounted.headers["Location"]).endswith(f"/v2/{repo_name}/target/blobs/{digest}")
    assert_blob(registry, f"{repo_name}/target", data)

    # Mounting what the source does not have falls back to a new upload session, which works.
    other = os.urandom(1000)
    fallback = registry.mount_blob(f"{repo_name}/target2", digest_of(other), source)
    assert fallback.status_code == 202, describe(fallback)
    location = registry.url(fallback.headers["Location"])
    assert "/blobs/uploads/" in location
    expect(registry.finish_upload(location, digest_of(other), other), 201)
    assert_blob(registry, f"{repo_name}/target2", other)

    # A mounted blob is the same file as its source when dedupe is on (zot links, never copies).
    if live_server.flavor == "zotpy":
        alg, hexpart = digest.split(":")
        a = live_server.root / source / "blobs" / alg / hexpart
        b = live_server.root / f"{repo_name}/target" / "blobs" / alg / hexpart
        assert a.stat().st_ino == b.stat().st_ino
