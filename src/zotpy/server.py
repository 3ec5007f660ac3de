"""Serving zotpy with gunicorn and gevent workers.

:func:`gunicorn_settings` turns a :class:`~zotpy.config.Config` into gunicorn settings and hooks;
``deploy/gunicorn.py`` exposes them to ``gunicorn -c``, and ``zotpy serve`` runs the same settings
through :class:`ZotpyApplication`. One-time startup work (:func:`zotpy.app.prepare`) runs in the
master's ``on_starting`` hook, before any worker forks.

Environment: ``ZOTPY_CONFIG`` (config path, default ``conf/config.json`` under the current directory),
``ZOTPY_WORKERS`` (default twice the usable cores, at least 2), ``ZOTPY_WORKER_CONNECTIONS``
(default 1000), ``ZOTPY_GRACEFUL_TIMEOUT`` (seconds, default 30).
"""

from __future__ import annotations

import gc
import logging
import os
import ssl
import sys
from collections.abc import Callable, Mapping
from typing import Any

import gevent
import gevent.socket
from gunicorn.app.base import BaseApplication
from gunicorn.workers import ggevent

from zotpy import __version__, wire
from zotpy.app import create_app, prepare
from zotpy.config import Config, check_runnable, load, sanitized
from zotpy.errors import ConfigError
from zotpy.logs import GunicornLogger, configure_logging, library_level
from zotpy.scheduler.supervise import gunicorn_hooks as scheduler_hooks

CONFIG_ENV = "ZOTPY_CONFIG"
DEFAULT_CONFIG = "conf/config.json"
WSGI_APP = "zotpy.wsgi:app"

DEFAULT_WORKER_CONNECTIONS = 1000
DEFAULT_GRACEFUL_TIMEOUT = 30
WORKER_TIMEOUT = 120
KEEPALIVE = 75
# gunicorn's largest request line: long repository names plus digest queries must fit.
MAX_REQUEST_LINE = 8190

log = logging.getLogger(__name__)


def config_path(environ: Mapping[str, str] = os.environ) -> str:
    """The config file named by ``ZOTPY_CONFIG``, absolute (relative paths start at the current dir)."""
    return os.path.abspath(environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_runnable(path: str) -> Config:
    """Load ``path`` and refuse what this release cannot serve; raises ConfigError."""
    config = load(path)
    check_runnable(config)
    return config


def settings_or_exit(path: str, environ: Mapping[str, str] = os.environ) -> tuple[Config, dict[str, Any]]:
    """The config at ``path`` and its gunicorn settings; exits with the message (no traceback) when bad."""
    try:
        config = load_runnable(path)
        return config, gunicorn_settings(config, environ)
    except ConfigError as exc:
        sys.exit(f"error: {exc}")


def bind_address(address: str, port: int) -> str:
    """``host:port`` for gunicorn's ``bind``, with an IPv6 address in brackets."""
    host = address or "0.0.0.0"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def default_workers() -> int:
    """Twice the cores this process may run on, at least 2."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(2, 2 * cores)


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"environment variable {name} must be a positive integer, got {raw!r}")
    return value


def ssl_context(conf: Any, default_ssl_context_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """gunicorn's ``ssl_context`` hook: its default context, refusing anything older than TLS 1.2."""
    context = default_ssl_context_factory()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class GeventWorker(ggevent.GeventWorker):
    """gunicorn's gevent worker, except that once told to stop it also closes the keep-alive connections
    idling between requests: shutdown then waits only for requests in flight, not for every idle client
    (nginx's upstream pool among them) to time out, as Go's ``http.Server.Shutdown`` does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keepalive_waits: dict[Any, gevent.Timeout] = {}

    def init_process(self) -> None:
        wire.install()
        super().init_process()

    def load_wsgi(self) -> None:
        super().load_wsgi()
        # Everything alive now (modules, the app) lives as long as the worker: keep it out of the
        # cyclic collector, whose full passes over it otherwise stall every request of the worker.
        gc.freeze()

    def timeout_ctx(self) -> gevent.Timeout:
        # gunicorn wraps each wait for a connection's next request in this silent Timeout.
        timeout = super().timeout_ctx()
        self._keepalive_waits[gevent.getcurrent()] = timeout
        return timeout

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        try:
            super().handle(listener, client, addr)
        finally:
            self._keepalive_waits.pop(gevent.getcurrent(), None)

    def notify(self) -> None:
        super().notify()
        if not self.alive and self._keepalive_waits:
            loop = gevent.get_hub().loop
            for connection, timeout in list(self._keepalive_waits.items()):
                loop.run_callback(_expire_keepalive, connection, timeout)


def _expire_keepalive(connection: Any, timeout: gevent.Timeout) -> None:
    """Run by the hub: end a connection's wait for its next request now, as if keep-alive had expired."""
    if timeout.pending and not connection.dead:
        timeout.close()
        connection.throw(timeout)


def quiet_handshake_errors(worker: Any) -> None:
    """``post_worker_init`` hook under TLS: a client failing the handshake (a scanner, TLS 1.1) is not
    an error of ours, so gevent's hub must not print its traceback."""
    hub = gevent.get_hub()
    hub.NOT_ERROR = (*hub.NOT_ERROR, ssl.SSLError, ConnectionError)


def gunicorn_settings(config: Config, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """gunicorn settings (names as in gunicorn's config file) for serving ``config``."""
    output = config.log.output or "-"
    settings: dict[str, Any] = {
        "bind": [bind_address(config.http.address, config.http.port)],
        "worker_class": f"{__name__}.GeventWorker",
        "workers": _positive_int(environ, "ZOTPY_WORKERS", default_workers()),
        "worker_connections": _positive_int(environ, "ZOTPY_WORKER_CONNECTIONS", DEFAULT_WORKER_CONNECTIONS),
        "graceful_timeout": _positive_int(environ, "ZOTPY_GRACEFUL_TIMEOUT", DEFAULT_GRACEFUL_TIMEOUT),
        "timeout": WORKER_TIMEOUT,
        "keepalive": KEEPALIVE,
        "preload_app": False,
        "limit_request_line": MAX_REQUEST_LINE,
        "proc_name": "zotpy",
        # gunicorn's control socket defaults to one path per user: several servers would share it.
        "control_socket_disable": True,
        "logger_class": GunicornLogger,
        "loglevel": logging.getLevelName(library_level(config.log.level)).lower(),
        "errorlog": output,
        "accesslog": output,
        "on_starting": _on_starting(config),
        **scheduler_hooks(config, environ),
    }
    if config.http.tls is not None:
        settings.update(
            certfile=config.http.tls.cert,
            keyfile=config.http.tls.key,
            ssl_context=ssl_context,
            post_worker_init=quiet_handshake_errors,
        )
    return settings


def start(config: Config) -> None:
    """One-time work in the master before workers fork: logging, warnings, the sanitised config, prepare."""
    configure_logging(config.log)
    for warning in config.warnings:
        log.warning(warning)
    log.info("zotpy %s starting", __version__, extra={"config": sanitized(config)})
    prepare(config)


def _on_starting(config: Config) -> Callable[[Any], None]:
    def on_starting(server: Any) -> None:
        try:
            start(config)
        except (ConfigError, OSError) as exc:
            # An operator's mistake (bad config, unwritable storage root): one log line and a one-line
            # error, since gunicorn prints a RuntimeError as "Error: ..." and exits 1.
            log.error("startup failed: %s", exc, exc_info=not isinstance(exc, ConfigError))
            raise RuntimeError(f"startup failed: {exc}") from None

    return on_starting


class ZotpyApplication(BaseApplication):
    """gunicorn embedded in ``zotpy serve``: the settings above, the app from :func:`create_app`."""

    def __init__(self, config: Config, settings: Mapping[str, Any]) -> None:
        self.config = config
        self.settings = dict(settings)
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.settings.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        return create_app(self.config)


def serve(path: str) -> None:
    """Run the registry configured by ``path`` until gunicorn stops (SIGTERM: graceful)."""
    config, settings = settings_or_exit(path)
    ZotpyApplication(config, settings).run()
