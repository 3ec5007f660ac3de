"""Pushed blobs bypass the page cache through a live gunicorn (gevent threadpool writes), unless
``ZOTPY_DIRECT_WRITES=off``; either way every byte lands and pulls back whole."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from helpers.layout import digest_of
from helpers.pagecache import PAGE, resident_pages
from helpers.registry_client import RegistryClient, expect
from helpers.server import running_server

pytestmark = pytest.mark.integration

SIZE = 6 * 1024 * 1024 + 777  # six direct buffers and an unaligned tail


def blob_file(root: Path, repo: str, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":")
    return root / repo / "blobs" / algorithm / hexdigest


def push_both_ways(client: RegistryClient) -> list[tuple[str, str, bytes]]:
    """A monolithic push and a chunked one with unaligned PATCH sizes; (repo, digest, data) each."""
    mono, chunked = os.urandom(SIZE), os.urandom(SIZE)
    expect(client.push_blob_monolithic("direct/mono", mono), 201)
    location = client.upload_location("direct/chunked")
    cuts = [0, 1_500_001, 1_500_001 + 3 * 1024 * 1024, SIZE]  # PATCHes of a buffer or more
    for start, end in zip(cuts, cuts[1:], strict=False):
        resp = expect(client.patch_chunk(location, chunked[start:end], start), 202)
        location = client.url(resp.headers["Location"])
    expect(client.finish_upload(location, digest_of(chunked)), 201)
    return [("direct/mono", digest_of(mono), mono), ("direct/chunked", digest_of(chunked), chunked)]


def assert_pulls_whole(client: RegistryClient, repo: str, digest: str, data: bytes) -> None:
    got = expect(client.get_blob(repo, digest), 200).content
    assert len(got) == len(data) and hashlib.sha256(got).hexdigest() == digest.split(":")[1]


def test_pushed_layers_skip_the_page_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZOTPY_DIRECT_WRITES", raising=False)
    with running_server(tmp_path / "on") as server:
        client = server.client()
        for repo, digest, data in push_both_ways(client):
            path = blob_file(server.root, repo, digest)
            assert path.stat().st_size == len(data)
            # The chunked upload's first PATCH ends unaligned: its head and each tail go buffered.
            assert resident_pages(path) <= 4, f"{repo}: {resident_pages(path)} pages cached"
            assert_pulls_whole(client, repo, digest, data)


def test_direct_writes_off_keeps_them_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOTPY_DIRECT_WRITES", "off")
    with running_server(tmp_path / "off") as server:
        client = server.client()
        for repo, digest, data in push_both_ways(client):
            path = blob_file(server.root, repo, digest)
            assert resident_pages(path) == (len(data) + PAGE - 1) // PAGE
            assert_pulls_whole(client, repo, digest, data)
