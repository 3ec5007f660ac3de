"""GC racing pushes: many images pushed concurrently while GC keeps deleting on other repositories.

The default store collects every second with a 3 s grace; churn repositories in it keep pushing and
deleting images that share a base layer with the pushed ones (dedupe links race the deletion of the
churned copies). A sub-path store collects with a 10 ms grace while churn runs there too. Afterwards
every pushed image pulls back whole.
"""

from __future__ import annotations

import hashlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers.gc_server import StorageConfiguredServer
from helpers.layout import Image, build_image, make_layer
from helpers.registry_client import RegistryClient, expect
from helpers.server import registry_flavor

pytestmark = pytest.mark.skipif(registry_flavor() != "zotpy", reason="zotpy's scheduler")

IMAGES = 48
PUSHERS = 8


def churn(client: RegistryClient, prefix: str, base: Image, stop: threading.Event, errors: list[str]) -> int:
    """Push and delete images sharing ``base``'s layer until stopped; returns how many went round."""
    rounds = 0
    while not stop.is_set():
        repo = f"{prefix}/c{rounds % 4}"
        image = build_image([base.layers[0], make_layer(size=512)])
        try:
            client.push_image(repo, image, "t")
            expect(client.delete_manifest(repo, image.digest), 202)
        except AssertionError as exc:  # churn against a concurrently collected repository may be refused
            errors.append(str(exc)[:300])
        rounds += 1
    return rounds


def test_pushes_survive_concurrent_gc(tmp_path: Path) -> None:
    server = StorageConfiguredServer(tmp_path / "race", workers=2, storage={
        "gc": True, "gcDelay": "3s", "gcInterval": "1s",
        "subPaths": {"/scratch": {"rootDirectory": str(tmp_path / "scratch"), "gc": True,
                                  "gcDelay": "10ms", "gcInterval": "1s"}},
    })
    server.start()
    try:
        client = server.client()
        base = build_image([make_layer(size=8192)])
        images = [build_image([base.layers[0], make_layer(size=1024), make_layer(size=1024)])
                  for _ in range(IMAGES)]
        stop = threading.Event()
        churn_errors: list[str] = []
        with ThreadPoolExecutor(PUSHERS + 2) as pool:
            churners = [pool.submit(churn, server.client(), prefix, base, stop, churn_errors)
                        for prefix in ("churn", "scratch")]
            time.sleep(1.5)  # churn under way and GC collecting before the pushes start

            def push(i: int) -> str:
                own = server.client()
                return own.push_image(f"race/r{i % 12}", images[i], f"v{i}")

            pushed = list(pool.map(push, range(IMAGES)))
            time.sleep(1.5)  # GC passes over the freshly pushed repositories too
            stop.set()
            rounds = [f.result() for f in churners]
        assert pushed == [image.digest for image in images]
        assert all(r > 3 for r in rounds), rounds
        for i, image in enumerate(images):
            repo = f"race/r{i % 12}"
            resp = expect(client.get_manifest(repo, f"v{i}"), 200, what=f"pull {repo}:v{i}")
            assert resp.content == image.manifest.data
            for blob in image.blobs:
                data = expect(client.get_blob(repo, blob.digest), 200, what=f"blob {blob.digest}").content
                assert "sha256:" + hashlib.sha256(data).hexdigest() == blob.digest
        collected = [r for r in server.log_records() if r.get("message") == "gc" and r.get("blobs", 0) > 0]
        assert collected, "GC removed nothing while the pushes ran"
        assert not [r for r in server.log_records() if r.get("message") == "job step failed"]
        print(churn_errors)
        print(f"churn rounds {rounds}, GC passes that removed blobs: {len(collected)}, "
              f"refused churn requests: {len(churn_errors)}")
    finally:
        server.stop()
