"""The scrub, dedupe and restore jobs the scheduler collects, and the scrub extension's switches."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.moto_s3 import MotoS3
from zotpy.app import build_registry
from zotpy.config import Config, load_mapping
from zotpy.extensions import KNOWN, discover_endpoints
from zotpy.extensions import scrub as scrub_extension
from zotpy.meta.db import close_if_open
from zotpy.registry import Registry
from zotpy.scheduler.integrity import integrity_jobs
from zotpy.scheduler.jobs import collect


def config(tmp_path: Path, *, dedupe: bool = True, driver: dict[str, Any] | None = None,
           **extensions: Any) -> Config:
    doc: dict[str, Any] = {"storage": {"rootDirectory": str(tmp_path / "root"), "dedupe": dedupe}}
    if driver is not None:
        doc["storage"]["storageDriver"] = driver
    if extensions:
        doc["extensions"] = extensions
    return load_mapping(doc)


@pytest.fixture
def registry_for(tmp_path: Path) -> Iterator[Any]:
    opened: list[Any] = []

    def build(cfg: Config) -> Registry:
        registry, indexes = build_registry(cfg)
        opened.extend(indexes)
        return registry

    yield build
    for index in opened:
        close_if_open(index.db)


def named(jobs: list[Any]) -> dict[str, float]:
    return {job.name: job.interval for job in jobs}


def test_scrub_follows_its_section(tmp_path: Path, registry_for: Any) -> None:
    on = config(tmp_path, scrub={})
    assert scrub_extension.is_enabled(on)
    assert named(integrity_jobs(on, registry_for(on))) == {"dedupe": 0, "scrub": 24 * 3600}
    off = config(tmp_path, scrub={"enable": False})
    assert not scrub_extension.is_enabled(off)
    assert named(integrity_jobs(off, registry_for(off))) == {"dedupe": 0}
    absent = config(tmp_path)
    assert not scrub_extension.is_enabled(absent)


def test_restore_runs_on_a_store_without_hard_links_and_dedupe_off(tmp_path: Path, registry_for: Any,
                                                                    moto_s3: MotoS3) -> None:
    s3 = moto_s3.driver_settings(moto_s3.new_bucket())
    off = config(tmp_path, dedupe=False, driver=s3)
    assert named(integrity_jobs(off, registry_for(off))) == {"restore": 0}
    on = config(tmp_path, driver=s3)
    assert named(integrity_jobs(on, registry_for(on))) == {"dedupe": 0}
    local_off = config(tmp_path, dedupe=False)
    assert named(integrity_jobs(local_off, registry_for(local_off))) == {}  # hard links need no restore


def test_interval_has_zots_minimum(tmp_path: Path) -> None:
    assert scrub_extension.interval(config(tmp_path, scrub={"interval": "3h"})) == 3 * 3600
    short = config(tmp_path, scrub={"interval": "10m"})
    assert scrub_extension.interval(short) == 2 * 3600
    assert any("extensions.scrub.interval" in w and "minimum" in w for w in short.warnings)
    assert not any("no effect" in w for w in short.warnings)


def test_no_dedupe_job_without_dedupe(tmp_path: Path, registry_for: Any) -> None:
    cfg = config(tmp_path, dedupe=False)
    assert integrity_jobs(cfg, registry_for(cfg)) == []


def test_the_scheduler_collects_them(tmp_path: Path, registry_for: Any) -> None:
    cfg = config(tmp_path, scrub={"interval": "2h"})
    names = named(collect(cfg, registry_for(cfg)))
    assert names["scrub"] == 2 * 3600 and names["dedupe"] == 0


def test_scrub_is_a_known_extension_without_endpoints(tmp_path: Path) -> None:
    assert scrub_extension in KNOWN
    assert scrub_extension.endpoints(config(tmp_path, scrub={})) == []
    assert discover_endpoints(config(tmp_path, scrub={})) == []
    assert scrub_extension.NEEDS_METADATA is False


def test_server_listening_probe(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        doc = {"storage": {"rootDirectory": str(tmp_path)}, "http": {"address": "0.0.0.0", "port": str(port)}}
        assert scrub_extension.server_listening(load_mapping(doc)) == f"127.0.0.1:{port}"
    assert scrub_extension.server_listening(load_mapping(doc)) is None
