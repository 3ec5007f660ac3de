"""The gunicorn hooks: a scheduler unless the environment says it runs elsewhere."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zotpy.config.loader import load_mapping
from zotpy.scheduler.supervise import enabled, gunicorn_hooks, stop


@pytest.mark.parametrize(("value", "starts"), [
    (None, True), ("", True), ("hooks", True), ("external", False), ("OFF", False), ("0", False),
])
def test_mode_from_the_environment(value: str | None, starts: bool) -> None:
    environ = {} if value is None else {"ZOTPY_SCHEDULER": value}
    assert enabled(environ) is starts


def test_hooks_only_when_started_here_and_the_config_has_a_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"storage": {"rootDirectory": "%s"}}' % (tmp_path / "root"))
    from zotpy.config import load

    config = load(str(path))
    assert set(gunicorn_hooks(config, {})) == {"when_ready", "on_exit"}
    assert gunicorn_hooks(config, {"ZOTPY_SCHEDULER": "external"}) == {}
    in_memory = load_mapping({"storage": {"rootDirectory": str(tmp_path / "root")}})
    assert gunicorn_hooks(in_memory, {}) == {}


def test_stop_kills_a_child_that_ignores_sigterm() -> None:
    child = subprocess.Popen([sys.executable, "-c",
                              "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                              "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdout.readline() == b"ready\n"
    started = time.monotonic()
    stop(child.pid, timeout=0.5)
    assert time.monotonic() - started < 5
    with pytest.raises(ChildProcessError):
        os.waitpid(child.pid, os.WNOHANG)  # reaped by stop()
    child.returncode = -signal.SIGKILL  # keep Popen from waiting on a reaped pid


def test_gunicorn_settings_carry_the_hooks(tmp_path: Path) -> None:
    """``deploy/gunicorn.py`` and ``zotpy serve`` both take their settings from here."""
    from zotpy.config import load
    from zotpy.server import gunicorn_settings

    path = tmp_path / "config.json"
    path.write_text('{"storage": {"rootDirectory": "%s"}}' % (tmp_path / "root"))
    settings = gunicorn_settings(load(str(path)), {})
    assert callable(settings["when_ready"]) and callable(settings["on_exit"])
    assert "when_ready" not in gunicorn_settings(load(str(path)), {"ZOTPY_SCHEDULER": "external"})
