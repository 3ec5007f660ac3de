"""Runs jobs on a private ``schedule.Scheduler``: every step wrapped, timed and paced.

An exception in a step (or in a job's ``steps()``) is logged with its traceback and the job goes on;
nothing a job does stops the loop. Each job run ends with one JSON log line (name, steps, failures,
seconds). A short pause between steps bounds the I/O a job can put on the disks the workers serve from.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import schedule

from zotpy.jobs import Job

log = logging.getLogger(__name__)

STEP_PAUSE = 0.01
"""Seconds between two steps of a job."""

IDLE_WAKE = 0.5
"""Longest sleep of the loop, so a stop request or a dead parent is noticed quickly."""


@dataclass(frozen=True)
class JobRun:
    """The outcome of one run of a job."""

    name: str
    steps: int
    failed: int
    seconds: float
    interrupted: bool = False


class Runner:
    """Owns the schedule of a set of jobs; ``should_stop`` is polled between steps and while idle."""

    def __init__(self, jobs: Sequence[Job], *, should_stop: Callable[[], bool] = lambda: False,
                 step_pause: float = STEP_PAUSE, after_run: Callable[[], None] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.jobs = list(jobs)
        self.should_stop = should_stop
        self.step_pause = step_pause
        self.after_run = after_run
        self.sleep = sleep
        self.runs: list[JobRun] = []
        self._schedule = schedule.Scheduler()
        for job in self.jobs:
            if job.interval > 0:
                # schedule's hints say int, but it takes fractional seconds (tests use them).
                self._schedule.every(job.interval).seconds.do(self.run_job, job)  # type: ignore[arg-type]

    def run_job(self, job: Job) -> JobRun:
        """Run every step of ``job`` once; never raises."""
        started = time.monotonic()
        count = failed = 0
        interrupted = False
        try:
            for step in job.steps():
                if self.should_stop():
                    interrupted = True
                    break
                count += 1
                if not self._run_step(job, step):
                    failed += 1
                if self.step_pause > 0:
                    self.sleep(self.step_pause)
        except Exception:
            failed += 1
            log.exception("job failed to list its steps", extra={"job": job.name})
        finally:
            if self.after_run is not None:
                try:
                    self.after_run()
                except Exception:
                    log.exception("cleanup after a job failed", extra={"job": job.name})
        run = JobRun(job.name, count, failed, round(time.monotonic() - started, 6), interrupted)
        self.runs.append(run)
        del self.runs[:-100]
        log.info("job finished", extra={"job": run.name, "steps": run.steps, "failed": run.failed,
                                        "seconds": run.seconds, "interrupted": run.interrupted})
        return run

    def _run_step(self, job: Job, step: Callable[[], None]) -> bool:
        started = time.monotonic()
        try:
            step()
        except Exception:
            log.exception("job step failed", extra={"job": job.name,
                                                    "seconds": round(time.monotonic() - started, 6)})
            return False
        return True

    def run_forever(self) -> None:
        """Run one-shot jobs now, then periodic ones when due, until ``should_stop()``."""
        for job in self.jobs:
            if job.interval <= 0 and not self.should_stop():
                self.run_job(job)
        while not self.should_stop():
            self._schedule.run_pending()
            idle = self._schedule.idle_seconds
            self.sleep(IDLE_WAKE if idle is None else min(max(idle, 0.0), IDLE_WAKE))
