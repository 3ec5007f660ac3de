"""GC end to end: a live gunicorn whose scheduler (started by the hooks) collects what was untagged."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers.gc_server import StorageConfiguredServer
from helpers.layout import build_image, make_layer
from helpers.registry_client import expect
from helpers.server import registry_flavor

pytestmark = pytest.mark.skipif(registry_flavor() != "zotpy", reason="zotpy's scheduler and on-disk layout")


def blob_file(root: Path, repo: str, digest: str) -> Path:
    algorithm, encoded = digest.split(":")
    return root / repo / "blobs" / algorithm / encoded


@pytest.fixture
def gc_server(tmp_path: Path) -> Iterator[StorageConfiguredServer]:
    storage = {"gc": True, "gcDelay": "1s", "gcInterval": "2s"}
    server = StorageConfiguredServer(tmp_path / "gc", storage=storage)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_untagged_image_blobs_go_shared_stay(gc_server: StorageConfiguredServer) -> None:
    client = gc_server.client()
    shared = make_layer(size=2048)
    kept = build_image([shared, make_layer(size=2048)])
    dropped = build_image([shared, make_layer(size=2048), make_layer(size=1024)])
    client.push_image("apps/web", kept, "v1")
    client.push_image("apps/web", dropped, "v2")
    expect(client.delete_manifest("apps/web", "v2"), 202, what="untag v2")

    only_dropped = {dropped.digest, dropped.config.digest, *(b.digest for b in dropped.layers)} - {
        kept.digest, kept.config.digest, *(b.digest for b in kept.layers)}
    assert len(only_dropped) == 4
    root = gc_server.root
    started = time.monotonic()
    wait_until(lambda: not any(blob_file(root, "apps/web", d).exists() for d in only_dropped), 15,
               "every blob only the untagged image used is gone")
    elapsed = time.monotonic() - started
    for blob in (kept.config, *kept.layers):
        assert blob_file(root, "apps/web", blob.digest).exists(), blob.digest
    # The remaining image pulls whole; the untagged one is gone.
    resp = expect(client.get_manifest("apps/web", "v1"), 200)
    assert resp.content == kept.manifest.data
    for blob in kept.blobs:
        assert expect(client.get_blob("apps/web", blob.digest), 200).content == blob.data
    assert client.get_manifest("apps/web", dropped.digest).status_code == 404
    print(f"untagged blobs collected {elapsed:.1f}s after the untag")


    def gc_runs() -> list[dict]:
        records = gc_server.log_records()
        return [r for r in records if r.get("message") == "job finished" and r["job"] == "gc /"]

    # The blobs go during a run; its "job finished" line follows when the run's last step is done.
    wait_until(lambda: bool(gc_runs()), 15, "a GC run is logged as finished")
    assert all(r["failed"] == 0 for r in gc_runs())


def test_emptied_repository_leaves_the_catalog(gc_server: StorageConfiguredServer) -> None:
    client = gc_server.client()
    image = build_image(n_layers=1)
    client.push_image("tmp/once", image, "latest")
    client.push_image("stays", build_image(n_layers=1), "latest")
    expect(client.delete_manifest("tmp/once", image.digest), 202)
    wait_until(lambda: "tmp/once" not in client.catalog().json()["repositories"], 15,
               "the emptied repository leaves the catalog")
    assert not (gc_server.root / "tmp" / "once").exists()
    assert client.catalog().json()["repositories"] == ["stays"]
    assert expect(client.get_manifest("stays", "latest"), 200)
