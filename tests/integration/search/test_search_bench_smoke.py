"""Smoke run of ``benchmarks/search_bench.py --quick``: populate, rebuild, restart, query latency.

Marked ``benchmark`` (and ``integration``: it spawns gunicorn), so the default run leaves it out:
``pytest -m benchmark tests/integration/search/test_search_bench_smoke.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.benchmark, pytest.mark.integration]

SCRIPT = Path(__file__).resolve().parents[3] / "benchmarks" / "search_bench.py"


def test_quick_search_benchmark(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--repos", "20", "--requests", "10", "--clients", "2",
         "--tmpdir", str(tmp_path), "--json", str(report_path)],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["manifests"] == 200
    assert report["restart_one_repo_changed_sees_change"] is True
    for key in ("startup_rebuild_s", "restart_unchanged_s", "restart_one_repo_changed_s"):
        assert 0 < report[key] < 60, (key, report[key])
    assert set(report["latency"]) == {"GlobalSearch repo", "GlobalSearch fuzzy", "GlobalSearch repo:tag",
                                      "ImageList repo", "ImageList all, page"}
    for stats in report["latency"].values():
        assert stats["requests"] == 10 and stats["p50_ms"] <= stats["p99_ms"], stats
