"""Live registries for integration tests: zotpy under gunicorn, or CNCF Distribution as a reference.

``LiveServer`` writes a zot-style config under its work directory, starts
``python -m gunicorn -c deploy/gunicorn.py`` with ``ZOTPY_CONFIG`` pointing at it, polls ``GET /v2/``
until it answers 200, and stops with SIGTERM (SIGKILL to the process group only after a timeout).
Setting ``ZOTPY_TEST_REGISTRY=distribution`` makes the fixtures start Debian's ``docker-registry``
instead, to check the tests themselves against a known-good registry.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3

from helpers.env import free_port, missing
from helpers.registry_client import RegistryClient

REPO_ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONFIG = REPO_ROOT / "deploy" / "gunicorn.py"
APP_MODULE = REPO_ROOT / "src" / "zotpy" / "app.py"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 20.0


def registry_flavor() -> str:
    """``zotpy`` (default) or ``distribution`` (from ``ZOTPY_TEST_REGISTRY``)."""
    return os.environ.get("ZOTPY_TEST_REGISTRY", "zotpy")


def zot_config(
    root: Path,
    port: int,
    *,
    address: str = "127.0.0.1",
    dedupe: bool = True,
    compat: Sequence[str] = (),
    tls: tuple[Path, Path] | None = None,
    log_level: str = "info",
    extensions: Mapping[str, Any] | None = None,
    http_extra: Mapping[str, Any] | None = None,
    storage_extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A zot-format config document for a registry on ``address:port`` storing under ``root``.

    ``extensions`` is copied as the config's ``extensions`` section (zot's keys, e.g.
    ``{"search": {"enable": True}}``); without it the section is left out.  ``http_extra`` is merged
    into the ``http`` section (``auth``, ``accessControl``, ``realm``...), ``storage_extra`` into ``storage``
    (``storageDriver``, ``cacheDriver``, ``redirectBlobURL``...).
    """
    http: dict[str, Any] = {"address": address, "port": str(port)}
    if http_extra:
        http.update(json.loads(json.dumps(http_extra)))
    if compat:
        http["compat"] = list(compat)
    if tls:
        http["tls"] = {"cert": str(tls[0]), "key": str(tls[1])}
    doc: dict[str, Any] = {
        "distSpecVersion": "1.1.1",
        "storage": {"rootDirectory": str(root), "dedupe": dedupe,
                    **json.loads(json.dumps(storage_extra or {}))},
        "http": http,
        "log": {"level": log_level},
    }
    if extensions is not None:
        doc["extensions"] = json.loads(json.dumps(extensions))
    return doc


class ServerError(RuntimeError):
    pass


class _Process:
    """A server subprocess in its own process group, its output going to files under ``logdir``."""

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.root = self.workdir / "root"
        self.root.mkdir(exist_ok=True)
        self.address = "127.0.0.1"
        self.port = free_port(self.address)
        self.tls: tuple[Path, Path] | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.protected = False  # True when the config asks for authentication

    # -- to be provided by subclasses -----------------------------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    def write_config(self) -> None:
        raise NotImplementedError

    # -- common ---------------------------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.address}:{self.port}"

    @property
    def hostport(self) -> str:
        return f"{self.address}:{self.port}"

    def client(self, **kwargs: Any) -> RegistryClient:
        kwargs.setdefault("verify", str(self.tls[0]) if self.tls else True)
        return RegistryClient(self.url, **kwargs)

    def _log_paths(self) -> tuple[Path, Path]:
        return self.workdir / f"{self.name}.stdout.log", self.workdir / f"{self.name}.stderr.log"

    def logs(self, limit: int = 6000) -> str:
        """The tail of the server's stdout and stderr, for failure messages."""
        parts = []
        for path in self._log_paths():
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {path.name} (last {limit} chars) ---\n{text[-limit:]}")
        return "\n".join(parts)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        for attempt in range(3):
            self.write_config()
            out, err = self._log_paths()
            with out.open("ab") as stdout, err.open("ab") as stderr:
                self.proc = subprocess.Popen(
                    self.command(),
                    cwd=REPO_ROOT,
                    env=self.environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                )
            self.starts += 1
            try:
                self._wait_ready(timeout)
                return
            except ServerError:
                in_use = "address already in use" in self.logs().lower()
                self.stop()
                if not in_use or attempt == 2:
                    raise
                self.port = free_port(self.address)  # lost a race for the port: take another

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with {self.proc.returncode} before serving\n{self.logs()}"
                )
            try:
                with warnings.catch_warnings():  # readiness only: the certificate is checked by the tests
                    warnings.simplefilter("ignore", urllib3.exceptions.InsecureRequestWarning)
                    resp = requests.get(f"{self.url}/v2/", timeout=2, verify=False)
                # 401: the registry is up and asks anonymous callers to log in.
                if resp.status_code == 200 or (resp.status_code == 401 and self.protected):
                    return
                last = f"GET /v2/ -> {resp.status_code} {resp.text[:200]!r}"
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise ServerError(f"{self.name} not ready on {self.url} after {timeout}s ({last})\n{self.logs()}")

    def terminate(self) -> None:
        """Send SIGTERM without waiting (``stop`` then waits and reaps)."""
        if self.running():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` for the server to exit; its exit code, or None if still running."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM the server and wait; SIGKILL its process group only after ``timeout``."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(10)
        return proc.returncode

    def restart(self, timeout: float = START_TIMEOUT) -> None:
        self.stop()
        self.start(timeout)

    def __enter__(self) -> _Process:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LiveServer(_Process):
    """zotpy under gunicorn with a zot-format config."""

    name = "zotpy"
    flavor = "zotpy"

    def __init__(
        self,
        workdir: Path,
        *,
        workers: int = 2,
        dedupe: bool = True,
        compat: Sequence[str] = (),
        tls: tuple[Path, Path] | None = None,
        log_level: str = "info",
        extra_env: dict[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
        http_extra: Mapping[str, Any] | None = None,
        storage_extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(workdir)
        self.storage_extra = dict(storage_extra or {})
        self.http_extra = dict(http_extra or {})
        self.protected = bool(self.http_extra.get("auth"))
        self.workers = workers
        self.dedupe = dedupe
        self.compat = tuple(compat)
        self.tls = tls
        self.log_level = log_level
        self.extra_env = dict(extra_env or {})
        self.extensions = extensions
        self.config_path = self.workdir / "config.json"

    def write_config(self) -> None:
        doc = zot_config(
            self.root,
            self.port,
            address=self.address,
            dedupe=self.dedupe,
            compat=self.compat,
            tls=self.tls,
            log_level=self.log_level,
            extensions=self.extensions,
            http_extra=self.http_extra,
            storage_extra=self.storage_extra,
        )
        self.config_path.write_text(json.dumps(doc, indent=2))

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG)]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env["ZOTPY_CONFIG"] = str(self.config_path)
        env["ZOTPY_WORKERS"] = str(self.workers)
        src = str(REPO_ROOT / "src")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        env.update(self.extra_env)
        return env


class DistributionServer(_Process):
    """CNCF Distribution (Debian's ``docker-registry``), used as a reference to validate the tests."""

    name = "distribution"
    flavor = "distribution"

    def __init__(self, workdir: Path, *, tls: tuple[Path, Path] | None = None, **_: Any) -> None:
        super().__init__(workdir)
        self.tls = tls
        self.config_path = self.workdir / "distribution.yml"

    def write_config(self) -> None:
        http: dict[str, Any] = {"addr": self.hostport}
        if self.tls:
            http["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        doc = {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(self.root)}, "delete": {"enabled": True}},
            "http": http,
        }
        self.config_path.write_text(json.dumps(doc))  # JSON is YAML

    def command(self) -> list[str]:
        return ["docker-registry", "serve", str(self.config_path)]


Server = LiveServer | DistributionServer


def zotpy_available() -> bool:
    return GUNICORN_CONFIG.exists() and APP_MODULE.exists()


def make_server(workdir: Path, **options: Any) -> Server:
    """A not-yet-started server of the selected flavor; skips (fails under CI) when it cannot run."""
    if registry_flavor() == "distribution":
        return DistributionServer(workdir, **options)
    if not zotpy_available():
        missing(
            f"zotpy server not present ({GUNICORN_CONFIG.relative_to(REPO_ROOT)} or src/zotpy/app.py missing)"
        )
    return LiveServer(workdir, **options)


@contextmanager
def running_server(workdir: Path, **options: Any) -> Iterator[Server]:
    """A started server of the selected flavor, stopped (SIGTERM) on exit, also after a failure."""
    server = make_server(workdir, **options)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def require_zotpy(server: Server, what: str) -> None:
    """Skip a zot-specific check (on-disk layout, zot's status codes) when the reference registry runs."""
    if server.flavor != "zotpy":
        pytest.skip(f"{what} is zot/zotpy behaviour; not checked against {server.flavor}")
