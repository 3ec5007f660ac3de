"""JSON-lines logging: record shape, levels, audit log, gunicorn's access line."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn.config import Config as GunicornConfig

from zotpy.config import LogConfig
from zotpy.logs import (
    AUDIT_LOGGER,
    GunicornLogger,
    JsonFormatter,
    _timestamp,
    access_fields,
    audit,
    configure_logging,
    python_level,
)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Undo what configure_logging and the gunicorn logger change on process-wide loggers."""
    names = ["", "zotpy", AUDIT_LOGGER, "gunicorn.error", "gunicorn.access", "somelib"]
    saved = {
        name: (list(logger.handlers), logger.level, logger.propagate)
        for name in names
        for logger in [logging.getLogger(name)]
    }
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("trace", logging.DEBUG),
        ("debug", logging.DEBUG),
        ("INFO", logging.INFO),
        ("warn", logging.WARNING),
        ("warning", logging.WARNING),
        ("error", logging.ERROR),
        ("fatal", logging.CRITICAL),
        ("panic", logging.CRITICAL),
    ],
)
def test_zot_level_names(name: str, level: int) -> None:
    assert python_level(name) == level


def test_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="verbose"):
        python_level("verbose")


def test_formatter_writes_one_json_line_with_extra_fields() -> None:
    record = logging.LogRecord("zotpy.registry", logging.WARNING, __file__, 1, "pushed %s", ("a\nb",), None)
    record.repository = "library/alpine"
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "warning"
    assert entry["logger"] == "zotpy.registry"
    assert entry["message"] == "pushed a\nb"
    assert entry["repository"] == "library/alpine"
    assert entry["time"].endswith("Z") and "T" in entry["time"]
    assert isinstance(entry["pid"], int)


def test_formatter_includes_the_exception() -> None:
    try:
        raise KeyError("boom")
    except KeyError:
        record = logging.LogRecord("zotpy", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert "KeyError: 'boom'" in entry["exception"]


def test_formatter_stringifies_unserialisable_values() -> None:
    record = logging.LogRecord("zotpy", logging.INFO, __file__, 1, "path", (), None)
    record.where = Path("/srv/data")
    assert json.loads(JsonFormatter().format(record))["where"] == "/srv/data"


def test_configure_logging_writes_json_to_the_output_file(tmp_path: Path) -> None:
    output = tmp_path / "zotpy.log"
    configure_logging(LogConfig(level="info", output=str(output)))
    logging.getLogger("zotpy.test").info("hello", extra={"answer": 42})
    logging.getLogger("zotpy.test").debug("hidden")
    [entry] = lines(output)
    assert entry["message"] == "hello" and entry["answer"] == 42 and entry["level"] == "info"


def test_debug_is_for_zotpy_and_trace_for_everyone(tmp_path: Path) -> None:
    output = tmp_path / "zotpy.log"
    configure_logging(LogConfig(level="debug", output=str(output)))
    logging.getLogger("zotpy.test").debug("ours")
    logging.getLogger("somelib").debug("theirs")
    assert [entry["message"] for entry in lines(output)] == ["ours"]

    configure_logging(LogConfig(level="trace", output=str(output)))
    logging.getLogger("somelib").debug("theirs now")
    assert [entry["message"] for entry in lines(output)] == ["ours", "theirs now"]


def test_configure_logging_twice_does_not_duplicate_lines(tmp_path: Path) -> None:
    output = tmp_path / "zotpy.log"
    configure_logging(LogConfig(level="info", output=str(output)))
    configure_logging(LogConfig(level="info", output=str(output)))
    logging.getLogger("zotpy").info("once")
    assert len(lines(output)) == 1


def test_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogConfig(level="info"))
    logging.getLogger("zotpy").warning("to stdout")
    out, err = capsys.readouterr()
    assert json.loads(out)["message"] == "to stdout"
    assert err == ""


def test_audit_log_goes_to_its_own_file(tmp_path: Path) -> None:
    output, audit_file = tmp_path / "zotpy.log", tmp_path / "audit.log"
    configure_logging(LogConfig(level="info", output=str(output), audit=str(audit_file)))
    audit("alice", "PUT", "/v2/demo/manifests/1.0", 201)
    [entry] = lines(audit_file)
    assert entry["subject"] == "alice"
    assert entry["action"] == "PUT"
    assert entry["object"] == "/v2/demo/manifests/1.0"
    assert entry["status"] == 201
    assert output.read_text() == ""


def test_audit_is_silent_without_an_audit_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "zotpy.log"
    configure_logging(LogConfig(level="info", output=str(output)))
    audit(None, "DELETE", "/v2/demo/blobs/sha256:00", 202)
    assert output.read_text() == ""
    assert capsys.readouterr() == ("", "")


def environ(**extra: Any) -> dict[str, Any]:
    base = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": "/v2/demo/tags/list?n=10",
        "PATH_INFO": "/v2/demo/tags/list",
        "QUERY_STRING": "n=10",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_USER_AGENT": "skopeo/1.13",
    }
    base.update(extra)
    return base


def test_access_fields() -> None:
    fields = access_fields(environ(), 200, 123, timedelta(milliseconds=12, microseconds=345))
    assert fields == {
        "method": "GET",
        "path": "/v2/demo/tags/list?n=10",
        "status": 200,
        "bytes": 123,
        "duration_ms": 12.345,
        "client": "127.0.0.1",
        "user_agent": "skopeo/1.13",
    }


def test_access_fields_without_raw_uri_rebuild_the_query() -> None:
    env = environ()
    del env["RAW_URI"]
    assert access_fields(env, 200, None, timedelta())["path"] == "/v2/demo/tags/list?n=10"


def test_access_fields_show_the_user_and_forwarded_for_but_keep_the_peer() -> None:
    env = environ(
        REMOTE_ADDR="203.0.113.9",  # as rewritten by Werkzeug's ProxyFix
        HTTP_X_FORWARDED_FOR="203.0.113.9, 10.0.0.2",
        **{"werkzeug.proxy_fix.orig": {"REMOTE_ADDR": "127.0.0.1"}, "zotpy.user": "alice"},
    )
    fields = access_fields(env, 201, 0, timedelta())
    assert fields["client"] == "127.0.0.1"
    assert fields["forwarded_for"] == "203.0.113.9, 10.0.0.2"
    assert fields["user"] == "alice"


def gunicorn_logger(accesslog: str, errorlog: str) -> GunicornLogger:
    cfg = GunicornConfig()
    cfg.set("accesslog", accesslog)
    cfg.set("errorlog", errorlog)
    return GunicornLogger(cfg)


def test_gunicorn_access_line(tmp_path: Path) -> None:
    access, errors = tmp_path / "access.log", tmp_path / "error.log"
    logger = gunicorn_logger(str(access), str(errors))
    response = SimpleNamespace(status="404 NOT FOUND", status_code=404, sent=117, headers=[])
    env = environ(REQUEST_METHOD="HEAD", RAW_URI="/v2/demo/manifests/latest", QUERY_STRING="")
    env["zotpy.user"] = "bob"
    logger.access(response, SimpleNamespace(headers=[]), env, timedelta(microseconds=1500))
    [entry] = lines(access)
    assert entry["logger"] == "gunicorn.access"
    assert entry["message"] == "HEAD /v2/demo/manifests/latest 404"
    assert (entry["method"], entry["path"], entry["status"], entry["bytes"]) == (
        "HEAD",
        "/v2/demo/manifests/latest",
        404,
        117,
    )
    assert entry["duration_ms"] == 1.5
    assert entry["user"] == "bob"
    assert entry["client"] == "127.0.0.1"


def test_gunicorn_status_from_the_status_line(tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    logger = gunicorn_logger(str(access), str(tmp_path / "error.log"))
    response = SimpleNamespace(status="202 Accepted", sent=None, headers=[])
    logger.access(response, SimpleNamespace(headers=[]), environ(), timedelta())
    assert lines(access)[0]["status"] == 202


def test_gunicorn_error_log_is_json_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    logger = gunicorn_logger("-", "-")
    logger.info("Booting worker with pid: %s", 42)
    out, err = capsys.readouterr()
    entry = json.loads(out)
    assert entry["logger"] == "gunicorn.error"
    assert entry["message"] == "Booting worker with pid: 42"
    assert err == ""


def test_access_line_written_directly_equals_the_formatters(tmp_path: Path) -> None:
    """The direct write and the logging path (taken when a handler has a filter) give the same line."""
    access = tmp_path / "access.log"
    logger = gunicorn_logger(str(access), str(tmp_path / "error.log"))
    response = SimpleNamespace(status="200 OK", status_code=200, sent=5, headers=[])
    env = environ(REQUEST_METHOD="GET", RAW_URI="/v2/démo/tags/list", QUERY_STRING="")
    env["zotpy.user"] = "zoë"

    def not_through_logging(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the direct path went through Logger.info")

    logger.access_log.info = not_through_logging  # type: ignore[method-assign]
    logger.access(response, SimpleNamespace(headers=[]), env, timedelta(milliseconds=2))
    del logger.access_log.info
    for handler in logger.access_log.handlers:
        handler.addFilter(lambda record: True)
    logger.access(response, SimpleNamespace(headers=[]), env, timedelta(milliseconds=2))
    direct, logged = lines(access)
    assert list(direct) == list(logged)  # same keys in the same order
    direct.pop("time"), logged.pop("time")
    assert direct == logged
    assert direct["path"] == "/v2/démo/tags/list" and direct["user"] == "zoë"
    assert "\\u" not in access.read_text(encoding="utf-8")  # UTF-8 as written, like the formatter
    for handler in logger.access_log.handlers:
        handler.close()


@pytest.mark.parametrize("created", [0.0, 1767607200.1234, 1767607200.9999996, 1767607259.9995,
                                     1767607200.000499, 1700000000.5])
def test_timestamp_is_iso_utc_with_milliseconds(created: float) -> None:
    expected = datetime.fromtimestamp(created, tz=UTC).isoformat(timespec="milliseconds")
    assert _timestamp(created) == expected.replace("+00:00", "Z")
