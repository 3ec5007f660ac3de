"""The audit log: one JSON line per successful change when ``log.audit`` is set."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from zotpy.app import create_app, prepare
from zotpy.config.model import Config, GlobalStorageConfig, LogConfig
from zotpy.logs import AUDIT_LOGGER, configure_logging


def test_successful_changes_are_audited_and_reads_are_not(tmp_path: Path) -> None:
    audit_file = tmp_path / "audit.log"
    config = Config(storage=GlobalStorageConfig(root_directory=str(tmp_path / "root")),
                    log=LogConfig(level="info", output=str(tmp_path / "zotpy.log"), audit=str(audit_file)))
    configure_logging(config.log)
    try:
        prepare(config)
        client = create_app(config).test_client()
        data = b"audited blob"
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert client.post(f"/v2/team/app/blobs/uploads/?digest={digest}", data=data).status_code == 201
        assert client.get(f"/v2/team/app/blobs/{digest}").status_code == 200
        assert client.post("/v2/team/app/blobs/uploads/?digest=sha256:" + "0" * 64,
                           data=b"x").status_code == 400
        for handler in logging.getLogger(AUDIT_LOGGER).handlers:
            handler.flush()
        lines = [json.loads(line) for line in audit_file.read_text().splitlines()]
    finally:
        configure_logging(LogConfig(level="info"))
    assert [(line["action"], line["object"], line["status"]) for line in lines] == [
        ("POST", f"/v2/team/app/blobs/uploads/?digest={digest}", 201)]
