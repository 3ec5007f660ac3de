"""The application factory: the one place that wires config, stores, registry and routes."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from flask import Flask

from zotpy.api import build_blueprint, health, register_error_handlers
from zotpy.config.model import Config, StorageConfig
from zotpy.locks import LockSet
from zotpy.meta.db import DEFAULT_DB_NAME, close_if_open, open_database
from zotpy.meta.storeindex import StoreIndex
from zotpy.registry import Registry, StoreRouter
from zotpy.storage.drivers import build_driver
from zotpy.storage.imagestore import ImageStore
from zotpy.storage.layout import PRIVATE_DIR

log = logging.getLogger(__name__)


@dataclass
class _Built:
    store: ImageStore
    index: StoreIndex


def _build_store(settings: StorageConfig) -> _Built:
    """One image store with its driver, index database and locks under its root."""
    private = os.path.join(settings.root_directory, PRIVATE_DIR)
    os.makedirs(private, exist_ok=True)
    driver = build_driver(settings.root_directory, settings.storage_driver, commit=settings.commit)
    index = StoreIndex(open_database(os.path.join(private, DEFAULT_DB_NAME)))
    locks = LockSet(os.path.join(private, "locks"))
    return _Built(ImageStore(driver, index, locks, dedupe=settings.dedupe), index)


def build_registry(config: Config) -> tuple[Registry, list[StoreIndex]]:
    """The registry service over every configured store."""
    default = _build_store(config.storage)
    subs = {route: _build_store(settings) for route, settings in config.storage.sub_paths.items()}
    router = StoreRouter(default.store, {route: built.store for route, built in subs.items()})
    indexes = [default.index, *(built.index for built in subs.values())]
    return Registry(router, docker_compat=config.docker_compat), indexes


def prepare(config: Config) -> None:
    """One-time startup work, run once before workers serve: databases and the index of what is on disk."""
    registry, indexes = build_registry(config)
    for store in registry.stores.all():
        count = store.reconcile()
        log.info("storage reconciled", extra={"repositories": count})
    for index in indexes:
        close_if_open(index.db)


def create_app(config: Config) -> Flask:
    """The WSGI application for one configuration (no storage walk happens here)."""
    app = Flask("zotpy")
    app.config["ZOTPY"] = config
    registry, indexes = build_registry(config)
    app.extensions["zotpy.registry"] = registry
    app.register_blueprint(health)
    app.register_blueprint(build_blueprint(registry))
    register_error_handlers(app)

    @app.teardown_request
    def _close_connections(_exc: BaseException | None) -> None:
        # One connection per greenlet, never held between requests.
        for index in indexes:
            close_if_open(index.db)

    return app
