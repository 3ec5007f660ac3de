"""Every job the scheduler runs for a config: GC per store, plus the jobs extensions and features add.

:func:`collect` is the one list; a feature adds its jobs here with one line (scrub and dedupe do), and
an enabled extension module may offer ``jobs(ctx) -> list[Job]``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

from zotpy import extensions
from zotpy.config.model import Config, StorageConfig
from zotpy.jobs import Job, Step
from zotpy.meta.hooks import MetaHooks
from zotpy.meta.store import MetaStore
from zotpy.oci.digest import Digest
from zotpy.registry import Registry
from zotpy.scheduler.integrity import integrity_jobs
from zotpy.storage.gc import GarbageCollector
from zotpy.storage.imagestore import ImageStore
from zotpy.storage.retention import ManifestStats

log = logging.getLogger(__name__)


def collect(config: Config, registry: Registry, meta: MetaStore | None = None,
            hooks: MetaHooks | None = None) -> list[Job]:
    """The jobs for ``config`` over ``registry``'s stores."""
    jobs = gc_jobs(config, registry, meta) + integrity_jobs(config, registry)
    ctx = extensions.ExtensionContext(config, registry, meta, hooks,
                                      enabled=tuple(m.NAME for m in extensions.enabled(config)))
    for module in extensions.enabled(config):
        offer = getattr(module, "jobs", None)
        if offer is not None:
            jobs.extend(offer(ctx))
    return jobs


def stores(config: Config, registry: Registry) -> list[tuple[str, StorageConfig, ImageStore]]:
    """(label, settings, store) of the default store and every sub-path store."""
    out: list[tuple[str, StorageConfig, ImageStore]] = [("/", config.storage, registry.stores.default)]
    for route, settings in config.storage.sub_paths.items():
        out.append((f"/{route}", settings, registry.stores.sub_paths[route]))
    return out


def collectors(config: Config, registry: Registry, meta: MetaStore | None = None, *,
               dry_run: bool = False) -> list[tuple[str, StorageConfig, GarbageCollector]]:
    """A garbage collector per store (with or without ``gc`` on: ``zotpy gc`` runs them all)."""
    stats = MetaStats(meta) if meta is not None else None

    def on_delete(repo: str, digest: Digest, reference: str) -> None:
        for hooks in registry.hooks:
            hooks.on_delete(repo, digest, reference)

    def owner(store: ImageStore, name: str) -> bool:
        return registry.stores.for_repo(name) is store

    def forget(repo: str) -> None:
        repo_id = meta.repo_id(repo, create=False) if meta is not None else None
        if meta is not None and repo_id is not None:
            meta.delete_repos([repo_id])

    out = []
    for label, settings, store in stores(config, registry):
        collector = GarbageCollector(
            store, delay=settings.gc_delay, retention=settings.retention, on_delete=on_delete,
            stats=stats, owns=functools.partial(owner, store), dry_run=dry_run, on_repo_removed=forget)
        out.append((label, settings, collector))
    return out


def gc_jobs(config: Config, registry: Registry, meta: MetaStore | None = None) -> list[Job]:
    """One periodic GC job per store with ``gc`` on, every ``gcInterval``."""
    jobs = []
    for label, settings, collector in collectors(config, registry, meta):
        if settings.gc and settings.gc_interval > 0:
            steps = functools.partial(_gc_steps, collector, settings.gc_time_window, label)
            jobs.append(Job(f"gc {label}", settings.gc_interval, steps))
    return jobs


def _gc_steps(collector: GarbageCollector, window: str | None, label: str) -> Iterator[Step]:
    if window is not None and not in_time_window(window, datetime.now(UTC)):
        log.info("gc sweep not started: outside gcTimeWindow", extra={"store": label, "window": window})
        return iter(())
    return collector.steps()


def in_time_window(window: str, now: datetime) -> bool:
    """Whether ``now`` (UTC) falls in ``HH:MM-HH:MM``; the window may wrap midnight."""
    start_text, end_text = window.split("-")
    start = int(start_text[:2]) * 60 + int(start_text[3:])
    end = int(end_text[:2]) * 60 + int(end_text[3:])
    minute = now.hour * 60 + now.minute
    return start <= minute < end if start < end else minute >= start or minute < end


class MetaStats:
    """Push and pull statistics of a repository's manifests, read from the metadata database."""

    def __init__(self, meta: MetaStore) -> None:
        self.meta = meta

    def __call__(self, repo: str) -> Mapping[str, ManifestStats]:
        repo_id = self.meta.repo_id(repo, create=False)
        if repo_id is None:
            return {}
        rows = self.meta.stats([repo_id])
        return {digest: ManifestStats(pushed, last_pull, downloads)
                for (_, digest), (pushed, _by, downloads, last_pull) in rows.items()}
