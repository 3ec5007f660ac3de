"""``zotpy scrub CONFIG`` on a root pushed through a live gunicorn: names corrupted and missing blobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers.env import free_port
from helpers.layout import build_image
from helpers.server import REPO_ROOT, LiveServer, Server, require_zotpy

pytestmark = pytest.mark.integration


def run_scrub(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT / "src"), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "zotpy.cli", "scrub", str(config), *extra],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def blob_file(root: Path, repo: str, digest: str) -> Path:
    algorithm, encoded = digest.split(":", 1)
    return root / repo / "blobs" / algorithm / encoded


def wait_for_scheduler(root: Path, timeout: float = 20.0) -> None:
    """Until the server's scheduler has taken the root (it writes its pid once it holds the lock)."""
    lock = root / "_zotpy" / "scheduler.lock"
    deadline = time.monotonic() + timeout
    while not (lock.exists() and lock.read_text().strip()):
        assert time.monotonic() < deadline, "the server's scheduler never took the storage root"
        time.sleep(0.05)


def table_rows(stdout: str) -> dict[str, list[str]]:
    """TAG/DIGEST -> the row's cells (split on runs of two or more spaces)."""
    lines = stdout.strip().splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG/DIGEST", "STATUS", "AFFECTED", "BLOB", "ERROR"], stdout
    rows = {}
    for line in lines[1:]:
        cells = [cell for cell in line.split("  ") if cell.strip()]
        rows[cells[1].strip()] = [cell.strip() for cell in cells]
    return rows


def test_scrub_names_corrupted_and_missing_blobs(server_factory: Callable[..., Server]) -> None:
    server = server_factory(workers=1)
    require_zotpy(server, "zotpy scrub")
    assert isinstance(server, LiveServer)
    client = server.client()
    sound, corrupted, missing = (build_image(n_layers=2, layer_size=64 * 1024) for _ in range(3))
    client.push_image("scrub/sound", sound, "v1")
    client.push_image("scrub/damaged", corrupted, "corrupted")
    client.push_image("scrub/damaged", missing, "missing")

    bad_layer = corrupted.layers[1].digest
    path = blob_file(server.root, "scrub/damaged", bad_layer)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped bit in the middle: same size, different content
    path.write_bytes(bytes(data))
    gone = missing.config.digest
    blob_file(server.root, "scrub/damaged", gone).unlink()

    refused = run_scrub(server.config_path)
    assert refused.returncode == 2, refused
    assert "server is listening" in refused.stderr and "--force" in refused.stderr

    # The same root under another address: the server's scheduler still holds the root.
    wait_for_scheduler(server.root)
    elsewhere = json.loads(server.config_path.read_text())
    elsewhere["http"]["port"] = str(free_port())
    other_config = server.workdir / "elsewhere.json"
    other_config.write_text(json.dumps(elsewhere))
    held = run_scrub(other_config)
    assert held.returncode == 2, held
    assert "scheduler holds the storage root" in held.stderr

    forced = run_scrub(server.config_path, "--force")
    assert forced.returncode == 1, forced
    assert table_rows(forced.stdout)["corrupted"][3] == bad_layer

    server.stop()
    result = run_scrub(server.config_path)
    assert result.returncode == 1, result
    rows = table_rows(result.stdout)
    assert rows["v1"] == ["scrub/sound", "v1", "ok"]
    assert rows["corrupted"] == ["scrub/damaged", "corrupted", "affected", bad_layer,
                                 "content does not match the digest"]
    assert rows["missing"] == ["scrub/damaged", "missing", "affected", gone, "blob missing"]
    assert bad_layer in result.stdout and gone in result.stdout


def test_scrub_of_a_sound_root_exits_zero(server_factory: Callable[..., Server]) -> None:
    server = server_factory(workers=1)
    require_zotpy(server, "zotpy scrub")
    assert isinstance(server, LiveServer)
    server.client().push_image("fine", build_image(n_layers=1), "latest")
    server.stop()
    result = run_scrub(server.config_path)
    assert result.returncode == 0, result
    assert table_rows(result.stdout)["latest"] == ["fine", "latest", "ok"]
