"""The application factory: the one place that wires config, stores, registry and routes."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import peewee
from flask import Flask, Response, request

from zotpy import __version__, auth, extensions
from zotpy.api import build_blueprint, health, register_error_handlers
from zotpy.config.model import Config, StorageConfig
from zotpy.locks import LockSet
from zotpy.logs import audit
from zotpy.meta import postgres
from zotpy.meta.advisory import AdvisoryLockSet, HeldAdvisoryLock
from zotpy.meta.db import DEFAULT_DB_NAME, close_if_open, open_database, release_all
from zotpy.meta.hooks import MetaHooks
from zotpy.meta.rebuild import rebuild
from zotpy.meta.store import MetaStore
from zotpy.meta.storeindex import StoreIndex
from zotpy.oci.digest import Digest
from zotpy.registry import Registry, StoreRouter
from zotpy.storage.drivers import build_driver
from zotpy.storage.imagestore import ImageStore
from zotpy.storage.interfaces import Locks
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
    index = StoreIndex(_open_index_database(settings, private))
    locks = _store_locks(settings, private)
    store = ImageStore(driver, index, locks, dedupe=settings.dedupe,
                       redirect_blobs=settings.redirect_blob_url)
    return _Built(store, index)


def _open_index_database(settings: StorageConfig, private: str) -> peewee.Database:
    """PostgreSQL when the store's ``cacheDriver`` names it, else the embedded SQLite file under its root."""
    cache = settings.cache_driver
    if cache is not None and cache["name"] == postgres.NAME:
        return postgres.open_postgres(cache)
    return open_database(os.path.join(private, DEFAULT_DB_NAME))


def _store_locks(settings: StorageConfig, private: str) -> Locks:
    """Advisory locks in PostgreSQL when the store's ``cacheDriver`` names it (every node sharing the
    bucket and database honours them), else lock files under its root (the processes of one node)."""
    cache = settings.cache_driver
    if cache is not None and cache["name"] == postgres.NAME:
        where = settings.storage_driver or {"root": os.path.realpath(settings.root_directory)}
        namespace = f"{where.get('bucket', '')}/{where.get('rootdirectory', '')}/{where.get('root', '')}"
        return AdvisoryLockSet(postgres.connector(cache), namespace)
    return LockSet(os.path.join(private, "locks"))


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
    """One-time startup work, run once before workers serve: databases and the index of what is on disk.

    Nodes sharing a PostgreSQL database take turns (an advisory lock), so two starting together never
    rebuild the same tables at once.
    """
    cache = config.storage.cache_driver
    turn = None
    if cache is not None and cache["name"] == postgres.NAME:
        turn = HeldAdvisoryLock(postgres.connector(cache), "zotpy", "startup")
        turn.acquire()
    try:
        _prepare(config)
    finally:
        if turn is not None:
            turn.release()


def _prepare(config: Config) -> None:
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
        release_all(index.db)  # nothing pooled may outlive this process's fork into workers


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
    app.register_blueprint(build_blueprint(registry, extensions.discover_endpoints(config),
                                           config.http.allow_origin))
    guard = auth.init_app(app, config, registry, indexes[0].db, meta)
    access = extensions.Access() if guard is None else \
        extensions.Access(guard.current_identity, guard.can_read, guard.can_delete)
    extensions.init_app(app, extensions.ExtensionContext(config, registry, meta, hooks, access=access,
                                                         enabled=enabled))
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
