"""Fixtures shared by every test suite: tool checks, free ports and live registries."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers.env import free_port, require_tool
from helpers.moto_s3 import MotoS3, moto_s3_server
from helpers.postgres import Postgres, postgres_server
from helpers.registry_client import RegistryClient
from helpers.server import Server, make_server

__all__ = ["free_port", "require_tool"]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def _attach_logs_on_failure(request: pytest.FixtureRequest, servers: list[Server]) -> None:
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for server in servers:
            request.node.add_report_section("call", f"{server.name} logs", server.logs())


def storage_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Server options for the storage under test: ``ZOTPY_TEST_STORAGE=s3`` puts every live registry on
    S3 (a fresh bucket of moto's server) with PostgreSQL (a fresh schema), to rerun the suites there."""
    if os.environ.get("ZOTPY_TEST_STORAGE", "local") != "s3":
        return {}
    moto, postgres = request.getfixturevalue("moto_s3"), request.getfixturevalue("postgres")
    return {"storage_extra": {"storageDriver": moto.driver_settings(moto.new_bucket(), "/zot"),
                              "cacheDriver": postgres.cache_driver()}}


@pytest.fixture(scope="session")
def live_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One registry with the default config (2 workers, dedupe on) for the whole session."""
    server = make_server(tmp_path_factory.mktemp("live-server"), **storage_options(request))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """moto's standalone S3 server for the whole session (tests take their own buckets)."""
    with moto_s3_server(tmp_path_factory.mktemp("moto-s3")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A private PostgreSQL cluster for the whole session (tests take their own schemas)."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def server_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start registries with options (``compat``, ``tls``, ``dedupe``, ``workers``, ``extensions``);
    stop them after."""
    started: list[Server] = []

    def start(**options: Any) -> Server:
        if "storage_extra" not in options:
            options.update(storage_options(request))
        server = make_server(tmp_path / f"server{len(started)}", **options)
        started.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        _attach_logs_on_failure(request, started)
        for server in started:
            server.stop()


@pytest.fixture
def registry(request: pytest.FixtureRequest, live_server: Server) -> Iterator[RegistryClient]:
    """A raw dist-spec client for the session's live server."""
    client = live_server.client()
    try:
        yield client
    finally:
        client.close()
        _attach_logs_on_failure(request, [live_server])


@pytest.fixture
def repo_name(request: pytest.FixtureRequest) -> str:
    """A repository name unique to this test (with a ``/``, as real names have)."""
    base = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"it/{base}-{uuid.uuid4().hex[:8]}"
