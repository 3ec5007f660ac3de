"""Smoke test of benchmarks/background_bench.py: a tiny idle/busy run against a spawned zotpy.

Marked ``benchmark`` so the default run (``-m "not benchmark"``) leaves it out; run it with
``pytest -m benchmark tests/unit/test_background_bench_smoke.py``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.benchmark

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def background_bench() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH_DIR))
    try:
        import background_bench

        yield background_bench
    finally:
        sys.path.remove(str(BENCH_DIR))


def test_percentile(background_bench: ModuleType) -> None:
    assert background_bench.pct([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert background_bench.pct([float(i) for i in range(1, 101)], 99) == 99.0


def test_quick_run_measures_both_phases_without_errors(background_bench: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "background.json"
    args = ["--quick", "--repos", "20", "--seconds", "1.5", "--layer-size", "64k",
            "--tmpdir", str(tmp_path), "--json", str(out)]
    assert background_bench.main(args) == 0
    doc = json.loads(out.read_text())
    assert doc["idle"]["errors"] == doc["busy"]["errors"] == 0
    for phase in ("idle", "busy"):
        assert doc[phase]["manifest"]["count"] > 50 and doc[phase]["blob"]["count"] > 50
    (work,) = doc["background"]
    assert work["gc_steps"] > 0 and work["scrub_steps"] > 0 and work["failed_steps"] == 0
    assert doc["manifest_p99_ratio"] > 0
