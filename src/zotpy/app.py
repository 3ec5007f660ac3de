"""The application factory: the one place that wires config, stores, registry and routes."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request

from zotpy import __version__, extensions
from zotpy.api import build_blueprint, health, register_error_handlers
from zotpy.config.model import Config, StorageConfig
from zotpy.locks import LockSet
from zotpy.logs import audit
from zotpy.meta.db import DEFAULT_DB_NAME, close_if_open, open_database
from zotpy.meta.hooks import MetaHooks
from zotpy.meta.rebuild import rebuild
from zotpy.meta.store import MetaStore
from zotpy.meta.storeindex import StoreIndex
from zotpy.oci.digest import Digest
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


class _StoreSource:
    """One store as the metadata rebuild reads it (``zotpy.meta.rebuild.StorageSource``)."""

    def __init__(self, store: ImageStore, router: StoreRouter) -> None:
        self.store = store
        self.router = router

    def repositories(self) -> list[str]:
        # A repository belongs to the store its name routes to; others on this root are unreachable.
        return [name for name in self.store.scan() if self.router.for_repo(name) is self.store]

    def fingerprint(self, repo: str) -> str | None:
        identity = self.store.index_identity(repo)
        return None if identity is None else ",".join(str(part) for part in identity)

    def index_entries(self, repo: str) -> list[dict[str, Any]]:
        return self.store.view(repo).entries

    def read_blob(self, repo: str, digest: Digest) -> bytes:
        return self.store.read_blob(repo, digest)


def _rebuild_stamp(config: Config) -> str:
    """Changes when the code or the stores change, forcing a full metadata walk."""
    stores = [("", config.storage.root_directory)]
    stores += sorted((route, s.root_directory) for route, s in config.storage.sub_paths.items())
    return f"zotpy={__version__}|stores={stores!r}"


def prepare(config: Config) -> None:
    """One-time startup work, run once before workers serve: databases and the index of what is on disk."""
    registry, indexes = build_registry(config)
    for store in registry.stores.all():
        count = store.reconcile()
        log.info("storage reconciled", extra={"repositories": count})
    if extensions.needs_metadata(config):
        meta = MetaStore(indexes[0].db)
        meta.ensure_schema()
        sources = [_StoreSource(store, registry.stores) for store in registry.stores.all()]
        report = rebuild(meta, sources, _rebuild_stamp(config))
        log.info("metadata rebuilt", extra={"repositories": report.repositories, "parsed": report.parsed,
                                            "removed": report.removed, "images": report.images,
                                            "seconds": round(report.seconds, 3)})
    for index in indexes:
        close_if_open(index.db)


def create_app(config: Config) -> Flask:
    """The WSGI application for one configuration (no storage walk happens here)."""
    app = Flask("zotpy")
    app.config["ZOTPY"] = config
    registry, indexes = build_registry(config)
    app.extensions["zotpy.registry"] = registry
    meta: MetaStore | None = None
    hooks: MetaHooks | None = None
    if extensions.needs_metadata(config):
        # Only what reads metadata pays for it: without such an extension no hook runs per request.
        meta = MetaStore(indexes[0].db)
        meta.ensure_schema()
        hooks = MetaHooks(meta)
        registry.add_hooks(hooks)
    enabled = tuple(module.NAME for module in extensions.enabled(config))
    app.register_blueprint(health)
    app.register_blueprint(build_blueprint(registry, extensions.discover_endpoints(config)))
    extensions.init_app(app, extensions.ExtensionContext(config, registry, meta, hooks, enabled=enabled))
    register_error_handlers(app)

    if config.log.audit:
        app.after_request(_audit_change)

    @app.teardown_request
    def _close_connections(_exc: BaseException | None) -> None:
        # One connection per greenlet, never held between requests.
        for index in indexes:
            close_if_open(index.db)

    return app


_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _audit_change(response: Response) -> Response:
    """One audit line per successful change (zot logs the same: subject, action, object, status)."""
    if request.method in _CHANGES and response.status_code in (200, 201, 202, 204):
        audit(request.environ.get("zotpy.user"), request.method, request.full_path.rstrip("?"),
              response.status_code)
    return response
