"""The audit log names the user who made each change."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from helpers.auth_policy import USERS, push
from helpers.htpasswd import basic, write_htpasswd
from zotpy.app import create_app, prepare
from zotpy.config import LogConfig, load_mapping
from zotpy.logs import AUDIT_LOGGER, configure_logging


def test_audit_lines_carry_the_user(tmp_path: Path) -> None:
    audit_file = tmp_path / "audit.log"
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"eve": USERS["eve"]})
    config = load_mapping({
        "storage": {"rootDirectory": str(tmp_path / "root")},
        "http": {"auth": {"htpasswd": {"path": str(htpasswd)}}},
        "log": {"level": "info", "output": str(tmp_path / "zotpy.log"), "audit": str(audit_file)},
    })
    configure_logging(config.log)
    try:
        prepare(config)
        client = create_app(config).test_client()

        def send(method: str, path: str, **kwargs: object) -> object:
            headers = {**basic("eve", USERS["eve"]), **kwargs.pop("headers", {})}  # type: ignore[dict-item]
            return client.open(path, method=method, headers=headers, **kwargs)

        assert push(send, "team/app", "v1").status_code == 201
        assert client.delete("/v2/team/app/manifests/v1").status_code == 401
        for handler in logging.getLogger(AUDIT_LOGGER).handlers:
            handler.flush()
        lines = [json.loads(line) for line in audit_file.read_text().splitlines()]
    finally:
        configure_logging(LogConfig(level="info"))
    assert [(line["subject"], line["action"], line["status"]) for line in lines] == [
        ("eve", "POST", 201), ("eve", "POST", 201), ("eve", "PUT", 201)]
