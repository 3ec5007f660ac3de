"""Rendering of every failure as the spec's ``{"errors": [...]}`` body."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json, request
from werkzeug.exceptions import ClientDisconnected, HTTPException

from zotpy.api.headers import API_VERSION, API_VERSION_VALUE
from zotpy.errors import ERROR_TABLE, PathOutsideRoot, RegistryError, StorageError, StorageFull

log = logging.getLogger(__name__)

# Routing and protocol failures Flask raises itself, in the spec's words.
_HTTP_CODES = {404: "NAME_UNKNOWN", 405: "UNSUPPORTED", 411: "SIZE_INVALID", 413: "SIZE_INVALID",
               414: "UNSUPPORTED", 415: "UNSUPPORTED"}


def oci_error(code: str, message: str, status: int, detail: Any = None,
              headers: dict[str, str] | None = None) -> Response:
    """The error envelope with its status and headers."""
    entry: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    response = Response(json.dumps({"errors": [entry]}), status=status, mimetype="application/json")
    response.headers[API_VERSION] = API_VERSION_VALUE
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def render_registry_error(exc: RegistryError) -> Response:
    return oci_error(exc.code, exc.message, exc.http_status, exc.detail, exc.headers)


def render_http_exception(exc: HTTPException) -> Response | HTTPException:
    """Routing 404/405 and other protocol errors under /v2/ become OCI errors."""
    if not request.path.startswith("/v2"):
        return exc
    status = exc.code or 500
    if isinstance(exc, ClientDisconnected):
        return oci_error("BLOB_UPLOAD_INVALID", "the request body ended early", 400)
    code = _HTTP_CODES.get(status, "UNSUPPORTED")
    message = "unknown route" if status == 404 else (exc.description or ERROR_TABLE[code][1])
    valid_methods = getattr(exc, "valid_methods", None)
    headers = {"Allow": ", ".join(valid_methods)} if valid_methods else None
    return oci_error(code, message, status, headers=headers)


def render_storage_error(exc: StorageError) -> Response:
    """Backend failures: logged with their cause, answered without any path."""
    if isinstance(exc, PathOutsideRoot):
        return oci_error("NAME_INVALID", "invalid repository name", 400)
    log.error("storage error", exc_info=exc)
    if isinstance(exc, StorageFull):
        return oci_error("UNKNOWN", "storage is full", 507)
    return oci_error("UNKNOWN", "storage error", 500)


def render_unexpected(exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return oci_error("UNKNOWN", "internal server error", 500)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(RegistryError, render_registry_error)
    app.register_error_handler(HTTPException, render_http_exception)
    app.register_error_handler(StorageError, render_storage_error)
    app.register_error_handler(Exception, render_unexpected)
