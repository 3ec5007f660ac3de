"""Garbage collection of one store, one repository per step (zot's ``pkg/storage/gc``).

Per repository, under the same repository lock the API takes: tags dropped by the retention policy,
referrers whose subject is gone (``deleteReferrers``), untagged manifests no index in the repository
lists and no subject holds (``deleteUntagged``, zot's default) and entries whose manifest blob is gone
leave index.json; the metadata database follows through the injected ``on_delete`` hook, as for an API
delete. Then every blob no longer reachable from index.json and unchanged for ``gcDelay`` is deleted,
upload sessions idle for ``gcDelay`` go, and a repository left with nothing is removed.

A blob an in-progress push may still reference is safe: it is either younger than ``gcDelay`` or its
deletion is serialised with dedupe links and mounts by the blob lock (a fresh link counts as a change).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from zotpy.errors import NameUnknown
from zotpy.logs import audit
from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.storage.imagestore import ImageStore
from zotpy.storage.layout import tag_of
from zotpy.storage.repoview import RepoView
from zotpy.storage.retention import ManifestStats, policy_for, retained_tags, retained_untagged

log = logging.getLogger(__name__)

AUDIT_SUBJECT = "zotpy-gc"
_KNOWN_TYPES = mt.OCI_MANIFEST_TYPES | mt.DOCKER_MANIFEST_TYPES


class DeleteHook(Protocol):
    """Told of every manifest reference GC removes (``reference`` is a tag or the digest)."""

    def __call__(self, repo: str, digest: Digest, reference: str) -> None: ...


StatsSource = Callable[[str], Mapping[str, ManifestStats]]
"""repository → manifest digest → push/pull statistics (from the metadata database)."""


@dataclass
class GCReport:
    """What one repository's collection removed, or would remove on a dry run."""

    repo: str
    dry_run: bool = False
    tags: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)
    repo_removed: bool = False

    def __bool__(self) -> bool:
        return bool(self.tags or self.manifests or self.blobs or self.uploads or self.repo_removed)

    def lines(self) -> list[str]:
        """Human-readable lines, one per removal."""
        verb = "would remove" if self.dry_run else "removed"
        out = [f"{verb} tag {self.repo}:{tag}" for tag in self.tags]
        out += [f"{verb} manifest {self.repo}@{digest}" for digest in self.manifests]
        out += [f"{verb} blob {self.repo}@{digest}" for digest in self.blobs]
        out += [f"{verb} upload {self.repo}/{name}" for name in self.uploads]
        if self.repo_removed:
            out.append(f"{verb} repository {self.repo}")
        return out


@dataclass
class _Edit:
    """index.json entries being edited, and what was taken out of them."""

    entries: list[dict[str, Any]]
    removed: list[tuple[str, str, str]] = field(default_factory=list)  # (digest, reference, reason)

    def drop_tag(self, tag: str, reason: str) -> None:
        """Remove a tag; its manifest stays as an untagged entry unless another entry names it."""
        dropped = [e for e in self.entries if tag_of(e) == tag]
        self.entries = [e for e in self.entries if tag_of(e) != tag]
        for entry in dropped:
            if not any(e["digest"] == entry["digest"] for e in self.entries):
                untagged = {k: v for k, v in entry.items() if k != "annotations"}
                annotations = {k: v for k, v in (entry.get("annotations") or {}).items()
                               if k != mt.TAG_ANNOTATION}
                if annotations:
                    untagged["annotations"] = annotations
                self.entries.append(untagged)
            self.removed.append((entry["digest"], tag, reason))

    def drop_digest(self, digest: str, reason: str) -> None:
        self.entries = [e for e in self.entries if e["digest"] != digest]
        self.removed.append((digest, digest, reason))


class GarbageCollector:
    """Collects the repositories of one store; ``steps()`` yields one callable per repository."""

    def __init__(self, store: ImageStore, *, delay: float, retention: Mapping[str, Any] | None = None,
                 on_delete: DeleteHook | None = None, stats: StatsSource | None = None,
                 owns: Callable[[str], bool] | None = None, dry_run: bool = False,
                 on_repo_removed: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.delay = delay
        self.retention = retention
        self.on_delete = on_delete
        self.on_repo_removed = on_repo_removed
        self.stats = stats
        self.owns = owns
        self.dry_run = dry_run
        # retention.dryRun, as zot: manifest decisions are only logged; unreachable blobs still go.
        self.decisions_only = dry_run or bool(retention and retention.get("dryRun"))
        self.retention_delay = float(retention.get("delay", delay)) if retention else delay
        self.clock = clock

    def repositories(self) -> list[str]:
        """The repositories on this store's disk that route to it."""
        return sorted(name for name in self.store.scan() if self.owns is None or self.owns(name))

    def steps(self, report: Callable[[GCReport], None] | None = None) -> Iterator[Callable[[], None]]:
        """One step per repository; each passes its report to ``report``."""
        for repo in self.repositories():
            yield functools.partial(self._step, repo, report)

    def _step(self, repo: str, report: Callable[[GCReport], None] | None) -> None:
        result = self.collect(repo)
        if report is not None:
            report(result)

    def run(self) -> list[GCReport]:
        """Collect every repository once; the reports of those where something went."""
        return [r for r in (self.collect(repo) for repo in self.repositories()) if r]

    def collect(self, repo: str) -> GCReport:
        """Collect one repository."""
        now = self.clock()
        report = GCReport(repo, dry_run=self.dry_run)
        policy = policy_for(self.retention, repo)
        wants_stats = policy.keep_tags is not None or policy.keep_untagged is not None
        # Read statistics before taking the lock: no database work while pushes wait.
        stats = self.stats(repo) if self.stats is not None and wants_stats else {}
        self._sweep_uploads(repo, now, report)
        with self.store.repo_lock(repo):
            try:
                doc = self.store.read_index(repo)
            except NameUnknown:
                return report
            except ValueError:
                log.error("unreadable index.json; repository skipped", extra={"repository": repo})
                return report
            listed = [e for e in doc["manifests"] if isinstance(e, dict) and isinstance(e.get("digest"), str)]
            edit = _Edit(list(listed))
            times = self.store.blob_times(repo)
            if policy.keep_tags is not None:
                tags = {tag: e["digest"] for e in edit.entries if (tag := tag_of(e)) is not None}
                for tag in sorted(set(tags) - retained_tags(policy, tags, stats, now)):
                    edit.drop_tag(tag, "retention")
            keep_untagged = retained_untagged(policy, _untagged(edit.entries), stats, now) if stats else set()
            while self._drop_manifests(repo, edit, policy.delete_referrers, policy.delete_untagged,
                                       keep_untagged, times, now):
                pass
            for entry in list(edit.entries):
                if entry["digest"] not in times:
                    edit.drop_digest(entry["digest"], "missing")
            if edit.removed:
                self._record(repo, doc, edit, report)
            remaining = listed if self.decisions_only and not self.dry_run else edit.entries
            self._sweep_blobs(repo, self.store.view_of(repo, remaining), times, now, report)
            if not remaining and not self.dry_run:
                report.repo_removed = self.store.remove_empty_repository(repo, now - self.delay)
                if report.repo_removed:
                    self._forget(repo)
        if report:
            log.info("gc", extra={"repository": repo, "dryRun": report.dry_run, "tags": len(report.tags),
                                  "manifests": len(report.manifests), "blobs": len(report.blobs),
                                  "uploads": len(report.uploads), "repositoryRemoved": report.repo_removed})
        return report

    def _drop_manifests(self, repo: str, edit: _Edit, referrers: bool, untagged: bool, keep: set[str],
                        times: Mapping[str, float], now: float) -> bool:
        """One pass of deleteReferrers and deleteUntagged; True when something went (zot loops)."""
        view = self.store.view_of(repo, edit.entries)
        present = set(view.top_level) | set(view.children)
        old_before = now - self.retention_delay
        tagged = {e["digest"] for e in edit.entries if tag_of(e) is not None}
        changed = False
        for digest in list(view.top_level):
            manifest = view.manifest(digest)
            if manifest is None or times.get(digest, now) >= old_before:
                continue
            subject = manifest.subject
            if subject is not None:
                # A referrer: only deleteReferrers takes it, once its subject has gone.
                if referrers and str(subject.digest) not in present:
                    edit.drop_digest(digest, "deleteReferrers")
                    changed = True
                continue
            if (untagged and digest not in tagged and digest not in view.children and digest not in keep
                    and manifest.media_type in _KNOWN_TYPES):
                edit.drop_digest(digest, "deleteUntagged")
                changed = True
        return changed

    def _record(self, repo: str, doc: dict[str, Any], edit: _Edit, report: GCReport) -> None:
        """Write the edited index.json, then tell the metadata database and the audit log."""
        if self.decisions_only:
            for digest, reference, reason in edit.removed:
                log.info("gc would delete", extra={"repository": repo, "reference": reference,
                                                   "digest": digest, "reason": reason, "dryRun": True})
            if not self.dry_run:
                return  # retention.dryRun: the decisions are logged, not reported as removals
        for digest, reference, _ in edit.removed:
            (report.manifests if reference == digest else report.tags).append(reference)
        if self.dry_run:
            return
        doc["manifests"] = edit.entries
        self.store.write_index(repo, doc)
        for digest, reference, reason in edit.removed:
            audit(f"{AUDIT_SUBJECT}:{reason}", "DELETE", f"/v2/{repo}/manifests/{reference}", 202)
            if self.on_delete is None:
                continue
            try:
                self.on_delete(repo, Digest.parse(digest), reference)
            except Exception:
                # Storage is the truth and the metadata database is rebuilt from it; keep collecting.
                log.exception("metadata not updated for a collected manifest",
                              extra={"repository": repo, "reference": reference})

    def _forget(self, repo: str) -> None:
        """Tell the metadata database a repository is gone."""
        if self.on_repo_removed is None:
            return
        try:
            self.on_repo_removed(repo)
        except Exception:
            log.exception("metadata not updated for a removed repository", extra={"repository": repo})

    def _sweep_blobs(self, repo: str, view: RepoView, times: Mapping[str, float], now: float,
                     report: GCReport) -> None:
        """Delete blobs index.json no longer reaches that have not changed for ``gcDelay``."""
        unreadable = [d for d in (*view.top_level, *view.children) if d in times and view.manifest(d) is None]
        if unreadable:
            # Fail closed: what an unreadable manifest references is unknown.
            log.error("unreadable manifest; blobs of the repository kept",
                      extra={"repository": repo, "digests": unreadable[:10]})
            return
        reachable = set(view.top_level) | set(view.children) | view.referenced_blobs
        changed_before = now - self.delay
        for digest, changed in sorted(times.items()):
            if digest in reachable or changed >= changed_before:
                continue
            if self.dry_run or self.store.remove_unreferenced_blob(repo, digest, changed_before):
                report.blobs.append(digest)

    def _sweep_uploads(self, repo: str, now: float, report: GCReport) -> None:
        changed_before = now - self.delay
        for name, changed in sorted(self.store.upload_times(repo).items()):
            if changed >= changed_before:
                continue
            if self.dry_run or self.store.remove_stale_upload(repo, name, changed_before):
                report.uploads.append(name)


def _untagged(entries: Iterable[dict[str, Any]]) -> list[str]:
    listed = list(entries)
    tagged = {e["digest"] for e in listed if tag_of(e) is not None}
    return sorted({e["digest"] for e in listed if e["digest"] not in tagged})
