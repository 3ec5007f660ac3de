"""gunicorn hooks that start the scheduler process when the server is ready and stop it on exit.

The scheduler is a fresh interpreter (``python -m zotpy.scheduler CONFIG``) spawned by the master, so
it shares nothing with gevent's patched modules; it exits by itself if the master dies (see
:mod:`zotpy.scheduler.process`). Set ``ZOTPY_SCHEDULER=external`` (or ``off``) when the scheduler runs
as its own service (``zotpy scheduler CONFIG``, ``deploy/zotpy-scheduler.service``): the hooks then
start none.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from zotpy.config import Config
from zotpy.scheduler.process import PARENT_ENV

log = logging.getLogger(__name__)

MODE_ENV = "ZOTPY_SCHEDULER"
NOT_STARTED = frozenset({"external", "off", "0", "false", "no"})
STOP_TIMEOUT = 10.0
"""Seconds the scheduler gets to finish its step after SIGTERM before it is killed."""


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the gunicorn master should start a scheduler (``ZOTPY_SCHEDULER`` not external/off)."""
    return environ.get(MODE_ENV, "").strip().lower() not in NOT_STARTED


def spawn(config_path: str) -> int:
    """Start ``python -m zotpy.scheduler config_path`` as a child of this process; return its pid."""
    env = dict(os.environ)
    env[PARENT_ENV] = str(os.getpid())
    argv = [sys.executable, "-m", "zotpy.scheduler", config_path]
    # posix_spawn: no Python code runs in the child before exec, whatever gevent has patched here.
    return os.posix_spawn(sys.executable, argv, env)


def stop(pid: int, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the scheduler, wait for it (gunicorn may reap it first), SIGKILL after ``timeout``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _reaped(pid):
            return
        time.sleep(0.05)
    log.warning("scheduler did not stop in time; killing it", extra={"pid": pid})
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while not _reaped(pid) and time.monotonic() < deadline + timeout:
        time.sleep(0.05)


def _reaped(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # already reaped (gunicorn's SIGCHLD handler waits for any child)
    except OSError as error:
        return error.errno == errno.ECHILD
    return done == pid


def gunicorn_hooks(config: Config, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """``when_ready`` and ``on_exit`` settings for gunicorn; none when the scheduler runs elsewhere."""
    if not enabled(environ):
        return {}
    if config.source is None:
        log.warning("config has no file path; the scheduler cannot be started by the hooks")
        return {}
    source = os.path.abspath(config.source)
    state: dict[str, int] = {}

    def when_ready(_server: Any) -> None:
        try:
            state["pid"] = spawn(source)
        except OSError:
            log.exception("could not start the scheduler process")
            return
        log.info("scheduler process started", extra={"pid": state["pid"]})

    def on_exit(_server: Any) -> None:
        pid = state.pop("pid", None)
        if pid is not None:
            stop(pid)

    hooks: dict[str, Callable[[Any], None]] = {"when_ready": when_ready, "on_exit": on_exit}
    return hooks
