"""The scrub and dedupe-maintenance jobs: checks and repairs of what is stored, as scheduler jobs.

Built here rather than in ``zotpy.extensions.scrub``: a job is a scheduler object and an extension may
not import the scheduler (nor storage) under the layer contracts; the extension module only says
whether scrub runs and how often.
"""

from __future__ import annotations

from zotpy.config.model import Config
from zotpy.extensions import scrub as scrub_extension
from zotpy.jobs import Job
from zotpy.registry import Registry
from zotpy.storage.dedupe_maintenance import DedupePass
from zotpy.storage.placeholder_restore import RestorePass
from zotpy.storage.scrub import ScrubPass, Throttle

SCRUB_PAUSE = 0.005
"""Seconds of rest after each blob a scheduled scrub re-hashes."""

SCRUB_BYTES_PER_SECOND = 256 * 1024 * 1024
"""Ceiling on a scheduled scrub's reads, so the disks keep serving pulls first."""


def scheduled_throttle() -> Throttle:
    return Throttle(pause=SCRUB_PAUSE, bytes_per_second=SCRUB_BYTES_PER_SECOND)


def integrity_jobs(config: Config, registry: Registry) -> list[Job]:
    """Scrub every ``extensions.scrub.interval`` when enabled; the dedupe pass once at start when any
    store has dedupe on (it links copies made while dedupe was off, and finds nothing otherwise); the
    restore pass once at start when a store without hard links (S3) has dedupe off (it fills the
    placeholders dedupe left)."""
    stores = registry.stores.all()
    jobs = []
    dedupe = DedupePass(stores, scheduled_throttle)
    if dedupe.stores:
        jobs.append(Job("dedupe", 0, dedupe.steps))
    restore = RestorePass(stores)
    if restore.stores:
        jobs.append(Job("restore", 0, restore.steps))
    if scrub_extension.is_enabled(config):
        scrub = ScrubPass(stores, registry.stores.for_repo, scheduled_throttle)
        jobs.append(Job("scrub", scrub_extension.interval(config), scrub.steps))
    return jobs
