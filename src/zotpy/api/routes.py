"""The `/v2/` blueprint: thin routes over :class:`zotpy.registry.Registry`.

Repository names contain slashes, so one rule takes the path after `/v2/` and a small
table of patterns picks the route; a known pattern with a wrong method is 405.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO
from urllib.parse import urlencode

from flask import Blueprint, Response, json, request
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.wsgi import wrap_file

from zotpy.api import headers as h
from zotpy.api.cors import add_cors_headers, preflight
from zotpy.api.parsing import (
    body_chunks,
    byte_range,
    chunk_start,
    has_body,
    pagination,
    read_manifest_body,
    single_arg,
)
from zotpy.errors import Invalid, RangeInvalid, UnsupportedMediaType
from zotpy.oci import mediatypes as mt
from zotpy.registry import Registry

Handler = Callable[..., Response]
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
MAY_READ = "zotpy.may_read"
"""WSGI environ key: the caller's read check, set by access control when it is on (else absent)."""
DISCOVER_EXTENSION = {
    "name": "_zot",
    "url": "https://github.com/project-zot/zot/blob/main/pkg/extensions/_zot.md",
    "description": "zot registry extensions",
}


def build_blueprint(registry: Registry, extension_endpoints: Sequence[str] = (),
                    allow_origin: str | None = None) -> Blueprint:
    """The distribution-spec routes bound to one registry service.

    ``extension_endpoints`` are the paths of the enabled extensions, listed by the discover route;
    ``allow_origin`` is ``http.allowOrigin`` (see :mod:`zotpy.api.cors`).
    """
    discovered = {"extensions": [{**DISCOVER_EXTENSION, "endpoints": list(extension_endpoints)}]}
    bp = Blueprint("v2", __name__)
    routes = _Routes(registry)
    table: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
        (re.compile(r"^(?P<name>.+?)/manifests/(?P<reference>[^/]+)$"),
         {"GET": routes.get_manifest, "HEAD": routes.head_manifest, "PUT": routes.put_manifest,
          "DELETE": routes.delete_manifest}),
        (re.compile(r"^(?P<name>.+?)/blobs/uploads/?$"), {"POST": routes.start_upload}),
        (re.compile(r"^(?P<name>.+?)/blobs/uploads/(?P<session>[^/]+)$"),
         {"GET": routes.upload_status, "PATCH": routes.patch_upload, "PUT": routes.finish_upload,
          "DELETE": routes.cancel_upload}),
        (re.compile(r"^(?P<name>.+?)/blobs/(?P<digest>[^/]+)$"),
         {"GET": routes.get_blob, "HEAD": routes.head_blob, "DELETE": routes.delete_blob}),
        (re.compile(r"^(?P<name>.+?)/tags/list$"), {"GET": routes.tags}),
        (re.compile(r"^(?P<name>.+?)/referrers/(?P<digest>[^/]+)$"), {"GET": routes.referrers}),
    ]

    @bp.after_request
    def _cors(response: Response) -> Response:
        return add_cors_headers(response, allow_origin)

    @bp.route("/v2", methods=["GET", "HEAD", "OPTIONS"], strict_slashes=False)
    @bp.route("/v2/", methods=["GET", "HEAD", "OPTIONS"])
    def version() -> Response:
        if request.method == "OPTIONS":
            return preflight(["GET", "HEAD"])
        return _json({})

    @bp.route("/v2/_catalog", methods=["GET", "OPTIONS"])
    def catalog() -> Response:
        if request.method == "OPTIONS":
            return preflight(["GET"])
        n, last = pagination()
        names, more = registry.catalog(n, last, request.environ.get(MAY_READ))
        response = _json({"repositories": names})
        if more and names:
            response.headers["Link"] = _next_link("/v2/_catalog", n, names[-1])
        return response

    @bp.route("/v2/_oci/ext/discover", methods=["GET", "OPTIONS"])
    def discover() -> Response:
        if request.method == "OPTIONS":
            return preflight(["GET"])
        return _json(discovered)

    @bp.route("/v2/<path:rest>", methods=ALL_METHODS)
    def dispatch(rest: str) -> Response:
        for pattern, handlers in table:
            match = pattern.match(rest)
            if match is None:
                continue
            if request.method == "OPTIONS":
                return preflight(handlers)
            handler = handlers.get(request.method)
            if handler is None:
                raise MethodNotAllowed(valid_methods=list(handlers))
            return handler(**match.groupdict())
        raise NotFound()

    return bp


class _Routes:
    """One method per route: parse HTTP, call the registry once, build the response."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    # -- manifests -----------------------------------------------------------------------

    def get_manifest(self, name: str, reference: str) -> Response:
        stored = self.registry.get_manifest(name, reference)
        response = Response(stored.raw, mimetype=stored.media_type)
        response.headers[h.CONTENT_DIGEST] = str(stored.digest)
        return response

    def head_manifest(self, name: str, reference: str) -> Response:
        stored = self.registry.get_manifest(name, reference, pull=False)
        response = Response(b"", mimetype=stored.media_type)
        response.headers["Content-Length"] = str(len(stored.raw))
        response.headers[h.CONTENT_DIGEST] = str(stored.digest)
        return response

    def put_manifest(self, name: str, reference: str) -> Response:
        raw = read_manifest_body()
        pushed = self.registry.put_manifest(name, reference, raw, request.headers.get("Content-Type"),
                                            request.args.getlist("tag"))
        response = _empty(201)
        response.headers["Location"] = f"/v2/{name}/manifests/{pushed.digest}"
        response.headers[h.CONTENT_DIGEST] = str(pushed.digest)
        if pushed.subject is not None:
            response.headers[h.OCI_SUBJECT] = str(pushed.subject)
        if ":" in reference:
            for tag in pushed.tags:
                response.headers.add(h.OCI_TAG, tag)
        return response

    def delete_manifest(self, name: str, reference: str) -> Response:
        self.registry.delete_manifest(name, reference)
        return _empty(202)

    # -- blobs ---------------------------------------------------------------------------

    def head_blob(self, name: str, digest: str) -> Response:
        parsed, size = self.registry.blob_size(name, digest)
        response = _empty(200, mt.OCTET_STREAM)
        response.headers["Content-Length"] = str(size)
        response.headers["Accept-Ranges"] = "bytes"
        response.headers[h.CONTENT_DIGEST] = str(parsed)
        return response

    def get_blob(self, name: str, digest: str) -> Response:
        parsed, size = self.registry.blob_size(name, digest)
        location = self.registry.blob_redirect(name, parsed)
        if location is not None:
            response = _empty(307)
            response.headers["Location"] = location
            response.headers[h.CONTENT_DIGEST] = str(parsed)
            return response
        wanted = byte_range(size)
        start, end = wanted if wanted else (0, size - 1)
        length = end - start + 1 if size else 0
        handle = self.registry.open_blob(name, parsed, start)
        if end == size - 1:
            body = wrap_file(request.environ, handle, h.CHUNK_SIZE)  # sendfile through gunicorn
        else:
            body = _limited(handle, length)
        response = Response(body, status=206 if wanted else 200, mimetype=mt.OCTET_STREAM,
                            direct_passthrough=True)
        response.headers["Content-Length"] = str(length)
        response.headers["Accept-Ranges"] = "bytes"
        response.headers[h.CONTENT_DIGEST] = str(parsed)
        if wanted:
            response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return response

    def delete_blob(self, name: str, digest: str) -> Response:
        self.registry.delete_blob(name, digest)
        return _empty(202)

    # -- uploads -------------------------------------------------------------------------

    def start_upload(self, name: str) -> Response:
        digest = single_arg("digest")
        mount, from_repo = single_arg("mount"), single_arg("from")
        if digest is not None:
            content_type = request.headers.get("Content-Type", mt.OCTET_STREAM)
            if has_body() and not content_type.startswith(mt.OCTET_STREAM):
                raise UnsupportedMediaType("blob uploads must be application/octet-stream")
            stored = self.registry.upload_monolithic(name, digest, body_chunks())
            return _blob_created(name, str(stored))
        if from_repo is not None and mount is None:
            raise Invalid("from requires mount", status=405)
        started = self.registry.start_upload(name, mount, from_repo, request.environ.get(MAY_READ))
        if started.digest is not None:
            return _blob_created(name, str(started.digest))
        assert started.session_id is not None
        return _upload_accepted(name, started.session_id, 0)

    def upload_status(self, name: str, session: str) -> Response:
        size = self.registry.upload_size(name, session)
        return _upload_accepted(name, session, size, status=204)

    def patch_upload(self, name: str, session: str) -> Response:
        try:
            size = self.registry.upload_chunk(name, session, body_chunks(), chunk_start())
        except RangeInvalid as exc:
            exc.headers.setdefault("Location", _upload_location(name, session))
            if "Range" not in exc.headers:
                current = self.registry.upload_size(name, session)
                exc.headers["Range"] = _range_value(current)
            raise
        return _upload_accepted(name, session, size)

    def finish_upload(self, name: str, session: str) -> Response:
        chunks = body_chunks() if has_body() else None
        start = chunk_start() if chunks is not None else None
        digest = self.registry.finish_upload(name, session, single_arg("digest"), chunks, start)
        return _blob_created(name, str(digest))

    def cancel_upload(self, name: str, session: str) -> Response:
        self.registry.cancel_upload(name, session)
        return _empty(204)

    # -- listings ------------------------------------------------------------------------

    def tags(self, name: str) -> Response:
        n, last = pagination()
        tags, more = self.registry.tags(name, n, last)
        response = _json({"name": name, "tags": tags})
        if more and tags:
            response.headers["Link"] = _next_link(f"/v2/{name}/tags/list", n, tags[-1])
        return response

    def referrers(self, name: str, digest: str) -> Response:
        wanted = request.args.getlist("artifactType")
        found = self.registry.referrers(name, digest, wanted)
        response = _json({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": found},
                         mimetype=mt.OCI_INDEX)
        if wanted:
            response.headers[h.OCI_FILTERS_APPLIED] = "artifactType"
        return response


def _json(doc: object, status: int = 200, mimetype: str = "application/json") -> Response:
    response = Response(json.dumps(doc), status=status, mimetype=mimetype)
    response.headers[h.API_VERSION] = h.API_VERSION_VALUE
    return response


def _empty(status: int, mimetype: str | None = None) -> Response:
    response = Response(b"", status=status, mimetype=mimetype)
    if mimetype is None:
        del response.headers["Content-Type"]
    response.headers["Content-Length"] = "0"
    return response


def _blob_created(name: str, digest: str) -> Response:
    response = _empty(201)
    response.headers["Location"] = f"/v2/{name}/blobs/{digest}"
    response.headers[h.CONTENT_DIGEST] = digest
    return response


def _upload_location(name: str, session: str) -> str:
    return f"/v2/{name}/blobs/uploads/{session}"


def _range_value(size: int) -> str:
    return f"0-{size - 1}" if size > 0 else "0-0"


def _upload_accepted(name: str, session: str, size: int, status: int = 202) -> Response:
    response = _empty(status)
    response.headers["Location"] = _upload_location(name, session)
    response.headers["Range"] = _range_value(size)
    response.headers[h.UPLOAD_UUID] = session
    response.headers[h.BLOB_UPLOAD_UUID] = session
    return response


def _next_link(path: str, n: int | None, last: str) -> str:
    return f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'


def _limited(handle: BinaryIO, length: int) -> Iterator[bytes]:
    """Exactly ``length`` bytes of an open file, for bounded ranges."""
    try:
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(h.CHUNK_SIZE, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()
