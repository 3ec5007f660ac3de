"""The job runner: wrapped, timed, paced steps; a failing step or job never stops the loop."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from zotpy.jobs import Job, Step
from zotpy.scheduler.runner import Runner


def steps_of(*actions: Step) -> Iterator[Step]:
    yield from actions


def test_a_failing_step_is_logged_and_the_job_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    done: list[str] = []

    def boom() -> None:
        raise RuntimeError("disk on fire")

    job = Job("mixed", 60, lambda: steps_of(lambda: done.append("a"), boom, lambda: done.append("c")))
    with caplog.at_level(logging.INFO, logger="zotpy.scheduler"):
        run = Runner([job], step_pause=0).run_job(job)
    assert done == ["a", "c"]
    assert (run.steps, run.failed) == (3, 1)
    failure = next(r for r in caplog.records if r.getMessage() == "job step failed")
    assert failure.exc_info is not None and "disk on fire" in str(failure.exc_info[1])
    finished = next(r for r in caplog.records if r.getMessage() == "job finished")
    assert finished.job == "mixed" and finished.failed == 1  # type: ignore[attr-defined]


def test_a_job_whose_listing_fails_is_counted_not_raised() -> None:
    def broken() -> Iterator[Step]:
        raise OSError("cannot list")

    run = Runner([], step_pause=0).run_job(Job("broken", 1, broken))
    assert run.failed == 1 and run.steps == 0


def test_stop_is_checked_between_steps_and_cleanup_runs() -> None:
    done: list[int] = []
    closed: list[bool] = []
    job = Job("long", 1, lambda: steps_of(*(lambda i=i: done.append(i) for i in range(10))))
    runner = Runner([job], step_pause=0, should_stop=lambda: len(done) >= 3,
                    after_run=lambda: closed.append(True))
    run = runner.run_job(job)
    assert done == [0, 1, 2] and run.interrupted and closed == [True]


def test_steps_are_paced() -> None:
    pauses: list[float] = []
    job = Job("paced", 1, lambda: steps_of(lambda: None, lambda: None))
    Runner([job], step_pause=0.25, sleep=pauses.append).run_job(job)
    assert pauses == [0.25, 0.25]


def test_run_forever_runs_one_shot_jobs_then_periodic_ones_until_stopped() -> None:
    calls: list[str] = []
    once = Job("once", 0, lambda: steps_of(lambda: calls.append("once")))

    def failing() -> None:
        calls.append("periodic")
        raise ValueError("every time")

    periodic = Job("periodic", 0.05, lambda: steps_of(failing))
    runner = Runner([once, periodic], step_pause=0, should_stop=lambda: calls.count("periodic") >= 3)
    runner.run_forever()
    assert calls[0] == "once" and calls.count("once") == 1 and calls.count("periodic") == 3
    assert [r.name for r in runner.runs] == ["once", "periodic", "periodic", "periodic"]


def test_job_run_lines_are_json(capsys: pytest.CaptureFixture[str]) -> None:
    from zotpy.config.model import LogConfig
    from zotpy.logs import configure_logging

    configure_logging(LogConfig(level="info"))
    try:
        Runner([], step_pause=0).run_job(Job("one", 1, lambda: steps_of(lambda: None)))
        line = next(line for line in capsys.readouterr().out.splitlines() if "job finished" in line)
        record = json.loads(line)
        assert record["job"] == "one" and record["steps"] == 1 and record["failed"] == 0
        assert isinstance(record["seconds"], float)
    finally:
        logging.getLogger().handlers.clear()
