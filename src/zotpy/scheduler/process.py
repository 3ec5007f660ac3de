"""The scheduler process: one per storage root, low priority, gone when its parent goes.

Started by gunicorn's ``when_ready`` hook (see :mod:`zotpy.scheduler.supervise`) or on its own with
``zotpy scheduler CONFIG``. It takes an ``flock`` on ``<root>/_zotpy/scheduler.lock`` of every root of
the config; while another scheduler holds one, it stays idle and retries now and then.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import platform
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence
from types import FrameType

from zotpy import extensions
from zotpy.app import build_registry
from zotpy.config import Config, load
from zotpy.logs import configure_logging
from zotpy.meta import postgres
from zotpy.meta.advisory import HeldAdvisoryLock
from zotpy.meta.db import close_if_open
from zotpy.meta.hooks import MetaHooks
from zotpy.meta.store import MetaStore
from zotpy.meta.storeindex import StoreIndex
from zotpy.registry import Registry
from zotpy.scheduler.jobs import collect
from zotpy.scheduler.runner import Runner
from zotpy.storage.layout import PRIVATE_DIR

log = logging.getLogger(__name__)

PARENT_ENV = "ZOTPY_SCHEDULER_PARENT"
"""Set by the gunicorn hook to the master's pid: the scheduler exits once that process is gone."""

RETRY_ENV = "ZOTPY_SCHEDULER_LOCK_RETRY"
LOCK_RETRY = 30.0
"""Seconds between two attempts of an idle scheduler to take the storage roots' locks."""

LOCK_FILE = "scheduler.lock"
NICE_INCREMENT = 10
_PR_SET_PDEATHSIG = 1
_IOPRIO_WHO_PROCESS = 1
_IOPRIO_BEST_EFFORT_LOWEST = (2 << 13) | 7  # class best-effort, level 7: last among normal I/O
_IOPRIO_SET = {"x86_64": 251, "aarch64": 30, "i686": 289, "armv7l": 315}


class RootLocks:
    """Exclusive ``flock``s on the scheduler lock file of every storage root, taken all or none."""

    def __init__(self, roots: Sequence[str], cluster: HeldAdvisoryLock | None = None) -> None:
        self.paths = [os.path.join(root, PRIVATE_DIR, LOCK_FILE) for root in sorted(set(roots))]
        self._fds: list[int] = []
        self.cluster = cluster  # with PostgreSQL: one scheduler across every node sharing the database

    def try_acquire(self) -> bool:
        for path in self.paths:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(fd)
                if error.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                    raise
                self.release()
                return False
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fds.append(fd)
        if self.cluster is not None and not self.cluster.try_acquire():
            self.release()
            return False
        return True

    def release(self) -> None:
        for fd in self._fds:
            os.close(fd)  # closing the descriptor drops the flock
        self._fds = []
        if self.cluster is not None:
            self.cluster.release()


def _cluster_lock(config: Config) -> HeldAdvisoryLock | None:
    """The advisory lock nodes sharing a PostgreSQL ``cacheDriver`` take so one scheduler acts at a time."""
    cache = config.storage.cache_driver
    if cache is None or cache["name"] != postgres.NAME:
        return None
    return HeldAdvisoryLock(postgres.connector(cache), "zotpy", "scheduler")


def die_with_parent(parent: int | None) -> None:
    """Ask the kernel for SIGTERM when the parent dies (Linux), then check it did not die already."""
    if parent is None:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        log.warning("PR_SET_PDEATHSIG unavailable; relying on polling the parent")
    if os.getppid() != parent:
        raise SystemExit(0)


def lower_priority() -> None:
    """nice +10 and the lowest best-effort I/O priority, so requests always come first."""
    try:
        os.nice(NICE_INCREMENT)
    except OSError:
        log.warning("could not lower the CPU priority")
    number = _IOPRIO_SET.get(platform.machine())
    if number is not None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.syscall(number, _IOPRIO_WHO_PROCESS, 0, _IOPRIO_BEST_EFFORT_LOWEST) == 0:
            return
    ionice = shutil.which("ionice")
    if ionice is not None:
        subprocess.run([ionice, "-c", "2", "-n", "7", "-p", str(os.getpid())], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        log.warning("could not lower the I/O priority")


class Scheduler:
    """The background process for one config."""

    def __init__(self, config: Config, parent: int | None = None, lock_retry: float = LOCK_RETRY) -> None:
        self.config = config
        self.parent = parent
        self.lock_retry = lock_retry
        self.stopping = threading.Event()
        subs = config.storage.sub_paths.values()
        self.locks = RootLocks([config.storage.root_directory, *(s.root_directory for s in subs)],
                               _cluster_lock(config))

    def should_stop(self) -> bool:
        if self.parent is not None and os.getppid() != self.parent:
            self.stopping.set()
        return self.stopping.is_set()

    def stop(self, signum: int = 0, _frame: FrameType | None = None) -> None:
        self.stopping.set()

    def wait_for_locks(self) -> bool:
        """Take the roots' locks, idling while another scheduler holds one; False when told to stop."""
        announced = False
        while not self.should_stop():
            if self.locks.try_acquire():
                return True
            if not announced:
                log.info("another scheduler holds a storage root; staying idle",
                         extra={"locks": self.locks.paths})
                announced = True
            self._idle(self.lock_retry)
        return False

    def _idle(self, seconds: float) -> None:
        """Wait ``seconds``, waking every second to notice a stop request or the parent's death."""
        remaining = seconds
        while remaining > 0 and not self.should_stop():
            self.stopping.wait(min(remaining, 1.0))
            remaining -= 1.0

    def run(self) -> int:
        """Wait for the locks, then run the jobs until told to stop."""
        if not self.wait_for_locks():
            return 0
        try:
            registry, indexes, meta, hooks = build_registry_with_hooks(self.config)
            jobs = collect(self.config, registry, meta, hooks)
            log.info("scheduler started", extra={"pid": os.getpid(), "jobs": [job.name for job in jobs],
                                                 "locks": self.locks.paths})

            def close() -> None:
                for index in indexes:
                    close_if_open(index.db)

            Runner(jobs, should_stop=self.should_stop, after_run=close).run_forever()
            log.info("scheduler stopped", extra={"pid": os.getpid()})
            return 0
        finally:
            self.locks.release()


def build_registry_with_hooks(config: Config) -> tuple[Registry, list[StoreIndex], MetaStore | None,
                                                       MetaHooks | None]:
    """The registry as the workers build it, with the metadata hooks when an extension needs them."""
    registry, indexes = build_registry(config)
    if not extensions.needs_metadata(config):
        return registry, indexes, None, None
    meta = MetaStore(indexes[0].db)
    meta.ensure_schema()
    hooks = MetaHooks(meta)
    registry.add_hooks(hooks)
    return registry, indexes, meta, hooks


def main(config_path: str, parent: int | None = None) -> int:
    """Run the scheduler for the config at ``config_path`` until SIGTERM (or the parent's death)."""
    config = load(config_path)
    configure_logging(config.log)
    die_with_parent(parent)
    lower_priority()
    scheduler = Scheduler(config, parent, float(os.environ.get(RETRY_ENV) or LOCK_RETRY))
    signal.signal(signal.SIGTERM, scheduler.stop)
    signal.signal(signal.SIGINT, scheduler.stop)
    return scheduler.run()
