"""Concurrency across gunicorn workers: one copy of a blob pushed 8 times at once; a tag raced 20 times."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from helpers.layout import REF_NAME, build_image, digest_of
from helpers.registry_client import RegistryClient, describe
from helpers.server import Server, running_server

pytestmark = pytest.mark.integration

CLIENTS = 8
BLOB_SIZE = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("concurrency"), workers=4) as server:
        yield server


def test_same_blob_to_eight_repositories_is_stored_once(busy_server: Server) -> None:
    data = os.urandom(BLOB_SIZE)
    digest = digest_of(data)
    prefix = f"dedupe-{os.urandom(4).hex()}"
    barrier = threading.Barrier(CLIENTS)

    def push(i: int) -> requests.Response:
        client = busy_server.client()
        try:
            location = client.upload_location(f"{prefix}/r{i}")
            barrier.wait(30)
            return client.finish_upload(location, digest, data)
        finally:
            client.close()

    with ThreadPoolExecutor(CLIENTS) as pool:
        responses = list(pool.map(push, range(CLIENTS)))
    for resp in responses:
        assert resp.status_code == 201, describe(resp)
        assert resp.headers["Docker-Content-Digest"] == digest

    reader = busy_server.client()
    for i in range(CLIENTS):
        assert reader.get_blob(f"{prefix}/r{i}", digest).content == data

    if busy_server.flavor == "zotpy":
        hexpart = digest.split(":", 1)[1]
        paths = [busy_server.root / prefix / f"r{i}" / "blobs" / "sha256" / hexpart for i in range(CLIENTS)]
        inodes = {(p.stat().st_dev, p.stat().st_ino) for p in paths}
        assert len(inodes) == 1, f"{len(inodes)} copies on disk for one blob pushed {CLIENTS} times"
        assert paths[0].stat().st_size == BLOB_SIZE
        # No upload left behind in any repository.
        leftovers = [
            p for i in range(CLIENTS) for p in (busy_server.root / prefix / f"r{i}" / ".uploads").glob("*")
        ]
        assert leftovers == []


def test_two_workers_racing_one_tag(busy_server: Server) -> None:
    name = f"race-{os.urandom(4).hex()}"
    setup = busy_server.client()
    images = [build_image(n_layers=1, labels={"side": side}) for side in ("a", "b")]
    for image in images:
        setup.push_image(name, image)
    digests = {image.digest for image in images}
    verify = str(busy_server.tls[0]) if busy_server.tls else True

    def put(image_index: int, barrier: threading.Barrier) -> requests.Response:
        manifest = images[image_index].manifest
        barrier.wait(30)
        # A new connection per request, so the two PUTs land on any of the workers.
        return requests.put(
            f"{busy_server.url}/v2/{name}/manifests/race",
            data=manifest.data,
            headers={"Content-Type": manifest.media_type, "Connection": "close"},
            timeout=60,
            verify=verify,
        )

    winners = set()
    for round_ in range(20):
        barrier = threading.Barrier(2)
        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(put, (0, 1), (barrier, barrier)))
        for resp in results:
            assert resp.status_code == 201, f"round {round_}: {describe(resp)}"
        current = setup.head_manifest(name, "race").headers["Docker-Content-Digest"]
        assert current in digests
        winners.add(current)

        if busy_server.flavor == "zotpy":
            index = json.loads((busy_server.root / name / "index.json").read_text())
            tagged = [d for d in index["manifests"] if (d.get("annotations") or {}).get(REF_NAME) == "race"]
            assert len(tagged) == 1, f"round {round_}: {len(tagged)} entries for the tag: {tagged}"
            assert tagged[0]["digest"] == current

    # Whichever won, neither manifest was lost.
    for image in images:
        assert setup.get_manifest(name, image.digest).content == image.manifest.data
    assert winners <= digests


def test_parallel_uploads_to_one_repository(busy_server: Server, repo_name: str) -> None:
    """Different blobs pushed at once to the same repository, chunked, all land intact."""
    blobs = [os.urandom(1024 * 1024 + i) for i in range(CLIENTS)]

    def push(data: bytes) -> requests.Response:
        client: RegistryClient = busy_server.client()
        try:
            return client.push_blob_chunked(repo_name, data, chunk_size=256 * 1024)
        finally:
            client.close()

    with ThreadPoolExecutor(CLIENTS) as pool:
        for resp in pool.map(push, blobs):
            assert resp.status_code == 201, describe(resp)
    reader = busy_server.client()
    for data in blobs:
        assert reader.get_blob(repo_name, digest_of(data)).content == data
