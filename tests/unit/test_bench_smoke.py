"""Smoke tests of benchmarks/: tiny runs of bench.py and bigblob.py against spawned servers.

Marked ``benchmark`` so the default run (``-m "not benchmark"``) leaves them out; run them with
``pytest -m benchmark tests/unit/test_bench_smoke.py``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.benchmark

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def modules() -> Iterator[dict[str, ModuleType]]:
    sys.path.insert(0, str(BENCH_DIR))
    try:
        import bench
        import bigblob
        import harness

        yield {"bench": bench, "bigblob": bigblob, "harness": harness}
    finally:
        sys.path.remove(str(BENCH_DIR))


def test_blob_pieces_cover_the_blob_without_copies(modules: dict[str, ModuleType]) -> None:
    harness = modules["harness"]
    blob = harness.BlobFactory(3000, seed=1).make("x")
    whole = b"".join(bytes(p) for p in blob.pieces(piece=1000))
    assert len(whole) == blob.size == 3000
    assert "sha256:" + hashlib.sha256(whole).hexdigest() == blob.digest
    assert b"".join(bytes(p) for p in blob.pieces(2900, 2990, piece=7)) == whole[2900:2990]


def test_percentile_and_sizes(modules: dict[str, ModuleType]) -> None:
    bench, harness = modules["bench"], modules["harness"]
    assert bench.pct([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert bench.pct([float(i) for i in range(1, 101)], 99) == 99.0
    assert harness.parse_size("64M") == 64 << 20
    assert harness.parse_size("2GiB") == 2 << 30


def test_quick_run_has_no_errors(modules: dict[str, ModuleType], tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = [
        "--quick",
        "--blob-sizes",
        "1M",
        "--chunk-size",
        "256k",
        "--tags",
        "120",
        "--repos",
        "20",
        "--manifest-gets",
        "160",
        "--manifest-puts",
        "32",
        "--tmpdir",
        str(tmp_path),
        "--json",
        str(out),
    ]
    if not shutil.which("docker-registry"):
        args.append("--no-reference")
    assert modules["bench"].main(args) == 0
    doc = json.loads(out.read_text())
    errors = [
        (wl, side, r["error"])
        for wl, sides in doc["rounds"].items()
        for side, runs in sides.items()
        for r in runs
        if "error" in r
    ]
    assert not errors
    growth = next(r for r in doc["medians"] if r["metric"] == "disk_growth_x")
    assert growth["zotpy"] < 2  # one copy plus metadata, never one copy per repository


def test_bigblob_keeps_worker_memory_flat(modules: dict[str, ModuleType], tmp_path: Path) -> None:
    out = tmp_path / "bigblob.json"
    args = [
        "--size",
        "96M",
        "--chunk",
        "16M",
        "--styles",
        "chunked,streamed",
        "--tmpdir",
        str(tmp_path),
        "--json",
        str(out),
    ]
    assert modules["bigblob"].main(args) == 0
    assert json.loads(out.read_text())["verdict"] == "PASS"
