"""JSON-lines logging: the application log, the audit log and gunicorn's access log.

Every record is one JSON object on one line: ``time``, ``level``, ``logger``, ``message``, then the
record's extra fields. zot's level names map to Python's: ``trace`` also lets third-party libraries
(gunicorn, peewee, boto) log at debug level, ``debug`` does so for zotpy's own loggers only.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from gunicorn import glogging

from zotpy.config.model import LogConfig

AUDIT_LOGGER = "zotpy.audit"

LEVELS: Mapping[str, int] = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}

# Attributes every LogRecord has; anything else on a record came in through ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def python_level(name: str) -> int:
    """The Python logging level for a zot level name (case-insensitive)."""
    try:
        return LEVELS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r}; expected one of {', '.join(LEVELS)}") from None


def library_level(name: str) -> int:
    """The level for third-party loggers: their debug output only with ``trace``."""
    return logging.DEBUG if name.lower() == "trace" else max(python_level(name), logging.INFO)


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return _ENCODER.encode(entry)


_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)
_SECOND: list[Any] = [None, ""]  # the last whole second formatted, and its text


def _timestamp(created: float) -> str:
    """``created`` as UTC ISO 8601 with milliseconds (``2026-01-05T10:00:00.123Z``)."""
    second = int(created)
    micro = round((created - second) * 1_000_000)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    if _SECOND[0] != second:
        _SECOND[1] = datetime.fromtimestamp(second, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _SECOND[0] = second
    return f"{_SECOND[1]}.{micro // 1000:03d}Z"


def _handler(output: str | None) -> logging.Handler:
    """A JSON handler writing to stdout or appending to ``output``.

    A file is reopened when it is moved away, so logrotate needs no signal.
    """
    handler: logging.Handler
    if output in (None, "", "-", "/dev/stdout"):
        handler = logging.StreamHandler(sys.stdout)
    elif output == "/dev/stderr":
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.handlers.WatchedFileHandler(output, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    return handler


def _install(logger: logging.Logger, handler: logging.Handler) -> None:
    """Replace the handlers an earlier call installed on ``logger`` with ``handler``."""
    for old in list(logger.handlers):
        if getattr(old, "_zotpy", False):
            logger.removeHandler(old)
            old.close()
    handler._zotpy = True  # type: ignore[attr-defined]
    logger.addHandler(handler)


def configure_logging(log: LogConfig) -> None:
    """Send every log record as JSON lines to ``log.output`` (stdout when unset); safe to call again."""
    _install(logging.getLogger(), _handler(log.output))
    logging.getLogger().setLevel(library_level(log.level))
    logging.getLogger("zotpy").setLevel(python_level(log.level))

    audit_log = logging.getLogger(AUDIT_LOGGER)
    audit_log.propagate = False
    audit_log.setLevel(logging.INFO)
    _install(audit_log, _handler(log.audit) if log.audit else logging.NullHandler())


def audit(subject: str | None, action: str, obj: str, status: int) -> None:
    """Record who changed what in the audit log (a no-op unless ``log.audit`` is set)."""
    fields = {"subject": subject or "", "action": action, "object": obj, "status": status}
    logging.getLogger(AUDIT_LOGGER).info("%s %s", action, obj, extra=fields)


def access_fields(
    environ: Mapping[str, Any], status: int | None, sent: int | None, duration: timedelta
) -> dict[str, Any]:
    """The fields of one access-log line for a finished request."""
    path = environ.get("RAW_URI") or environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING")
    if query and "?" not in path:
        path = f"{path}?{query}"
    # Werkzeug's ProxyFix rewrites REMOTE_ADDR in place and keeps the peer's address here.
    original = environ.get("werkzeug.proxy_fix.orig") or {}
    fields: dict[str, Any] = {
        "method": environ.get("REQUEST_METHOD", ""),
        "path": path,
        "status": status,
        "bytes": sent or 0,
        "duration_ms": round(duration.total_seconds() * 1000, 3),
        "client": original.get("REMOTE_ADDR") or environ.get("REMOTE_ADDR", ""),
    }
    forwarded_for = environ.get("HTTP_X_FORWARDED_FOR")
    if forwarded_for:
        fields["forwarded_for"] = forwarded_for
    user = environ.get("zotpy.user")
    if user:
        fields["user"] = str(user)
    fields["user_agent"] = environ.get("HTTP_USER_AGENT", "")
    return fields


def _status_code(resp: Any) -> int | None:
    code = getattr(resp, "status_code", None)
    if isinstance(code, int):
        return code
    first = str(getattr(resp, "status", "") or "").split(None, 1)[:1]
    return int(first[0]) if first and first[0].isdigit() else None


class GunicornLogger(glogging.Logger):
    """gunicorn's logger writing JSON lines to stdout (or its log files), one access line per request."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        formatter = JsonFormatter()
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if not getattr(handler, "_gunicorn", False):
                    continue
                handler.setFormatter(formatter)
                if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
                    handler.setStream(sys.stdout)

    def access(self, resp: Any, req: Any, environ: Mapping[str, Any], request_time: timedelta) -> None:
        if not self.access_log_enabled:
            return
        fields = access_fields(environ, _status_code(resp), getattr(resp, "sent", None), request_time)
        try:
            if not self._write_access_line(fields):
                self.access_log.info("%s %s %s", fields["method"], fields["path"], fields["status"],
                                     extra=fields)
        except Exception:
            self.error_log.exception("could not write the access log line")

    def _write_access_line(self, fields: dict[str, Any]) -> bool:
        """Write the line the JSON formatter would, straight to the access log's stream handlers.

        One line per request through ``Logger.info`` (a LogRecord, caller lookup, filters, the
        formatter walking the record) cost an eighth of a worker's CPU on manifest GETs. False when
        the handlers are not the stream and file handlers set up here, so logging does it instead.
        """
        access_log = self.access_log
        handlers = access_log.handlers
        if not handlers or not access_log.isEnabledFor(logging.INFO) or not all(
                isinstance(h, logging.StreamHandler) and isinstance(h.formatter, JsonFormatter)
                and not h.filters and getattr(h, "stream", None) is not None for h in handlers):
            return False
        entry: dict[str, Any] = {
            "time": _timestamp(time.time()),
            "level": "info",
            "logger": access_log.name,
            "message": f"{fields['method']} {fields['path']} {fields['status']}",
            "pid": os.getpid(),
            **fields,
        }
        line = _ENCODER.encode(entry)
        for handler in handlers:
            if handler.level > logging.INFO:
                continue
            stream_handler: Any = handler
            handler.acquire()
            try:
                if isinstance(handler, logging.handlers.WatchedFileHandler):
                    handler.reopenIfNeeded()
                stream_handler.stream.write(line + stream_handler.terminator)
                handler.flush()
            finally:
                handler.release()
        return True
