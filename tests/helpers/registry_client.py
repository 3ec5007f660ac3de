"""A small ``requests`` client for raw OCI Distribution API calls.

Methods return the ``requests.Response`` so tests assert status codes and headers themselves;
the ``push_*`` conveniences raise ``RegistryError`` (with the full response) when a step fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urljoin

import requests

from helpers.layout import OCI_INDEX, OCI_MANIFEST, Blob, Image, Index, digest_of

MANIFEST_ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
OCTET = "application/octet-stream"


def describe(resp: requests.Response) -> str:
    """One readable block with the request line, status, headers and the start of the body."""
    body = resp.content[:2000]
    headers = "\n".join(f"  {k}: {v}" for k, v in resp.headers.items())
    return f"{resp.request.method} {resp.request.url} -> {resp.status_code}\n{headers}\n  body: {body!r}"


class RegistryError(AssertionError):
    """A registry call answered something the caller did not expect."""

    def __init__(self, what: str, resp: requests.Response) -> None:
        super().__init__(f"{what}: {describe(resp)}")
        self.response = resp


def expect(resp: requests.Response, *statuses: int, what: str = "unexpected status") -> requests.Response:
    if resp.status_code not in statuses:
        raise RegistryError(f"{what} (wanted {statuses})", resp)
    return resp


def error_codes(resp: requests.Response) -> list[str]:
    """The OCI error codes of an ``{"errors": [...]}`` body (empty when there is none)."""
    try:
        return [e.get("code") for e in resp.json().get("errors", [])]
    except ValueError:
        return []


class RegistryClient:
    """Raw dist-spec calls against ``base_url`` (``http://host:port``)."""

    def __init__(self, base_url: str, *, verify: bool | str = True, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        # Passed per request: a session-level ``verify`` loses to REQUESTS_CA_BUNDLE from the environment.
        self.verify = verify
        self.timeout = timeout

    def close(self) -> None:
        self.session.close()

    def url(self, path_or_url: str) -> str:
        """Absolute URL; relative ``Location`` values resolve against the base URL, as clients do."""
        return urljoin(self.base_url + "/", path_or_url)

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("allow_redirects", False)
        kwargs.setdefault("verify", self.verify)
        return self.session.request(method, self.url(path_or_url), **kwargs)

    # -- base -------------------------------------------------------------------------------------
    def ping(self) -> requests.Response:
        return self.request("GET", "/v2/")

    # -- blobs ------------------------------------------------------------------------------------
    def head_blob(self, name: str, digest: str) -> requests.Response:
        return self.request("HEAD", f"/v2/{name}/blobs/{digest}")

    def get_blob(self, name: str, digest: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", f"/v2/{name}/blobs/{digest}", **kwargs)

    def delete_blob(self, name: str, digest: str) -> requests.Response:
        return self.request("DELETE", f"/v2/{name}/blobs/{digest}")

    def start_upload(self, name: str, **params: str) -> requests.Response:
        return self.request(
            "POST", f"/v2/{name}/blobs/uploads/", params=params or None, headers={"Content-Length": "0"}
        )

    def upload_location(self, name: str) -> str:
        """Open an upload session and return its (absolute) ``Location``."""
        resp = expect(self.start_upload(name), 202, what="start upload")
        return self.url(resp.headers["Location"])

    def patch_chunk(self, location: str, chunk: bytes, start: int) -> requests.Response:
        """One chunk of a chunked upload; ``Content-Range`` is ``<start>-<end>``, both inclusive."""
        headers = {
            "Content-Type": OCTET,
            "Content-Range": f"{start}-{start + len(chunk) - 1}",
            "Content-Length": str(len(chunk)),
        }
        return self.request("PATCH", location, data=chunk, headers=headers)

    def patch_stream(self, location: str, chunks: Iterable[bytes]) -> requests.Response:
        """A streamed PATCH: a generator body, so requests sends ``Transfer-Encoding: chunked``."""
        return self.request("PATCH", location, data=iter(chunks), headers={"Content-Type": OCTET})

    def upload_status(self, location: str) -> requests.Response:
        return self.request("GET", location)

    def cancel_upload(self, location: str) -> requests.Response:
        return self.request("DELETE", location)

    def finish_upload(
        self, location: str, digest: str, data: Any = b"", length: int | None = None
    ) -> requests.Response:
        """``PUT <location>?digest=`` with an optional last chunk (bytes, file object or iterator)."""
        headers = {"Content-Type": OCTET}
        if isinstance(data, bytes | bytearray):
            headers["Content-Length"] = str(len(data))
        elif length is not None:
            headers["Content-Length"] = str(length)
        return self.request("PUT", location, params={"digest": digest}, data=data, headers=headers)

    def push_blob_monolithic(self, name: str, data: bytes, digest: str | None = None) -> requests.Response:
        """A single ``POST ?digest=`` carrying the whole blob."""
        digest = digest or digest_of(data)
        headers = {"Content-Type": OCTET, "Content-Length": str(len(data))}
        return self.request(
            "POST", f"/v2/{name}/blobs/uploads/", params={"digest": digest}, data=data, headers=headers
        )

    def push_blob_post_put(self, name: str, data: bytes, digest: str | None = None) -> requests.Response:
        """``POST`` then ``PUT ?digest=`` with the whole body (what most clients do)."""
        return self.finish_upload(self.upload_location(name), digest or digest_of(data), data)

    def push_blob_chunked(
        self, name: str, data: bytes, digest: str | None = None, chunk_size: int = 1 << 20
    ) -> requests.Response:
        """``POST``, one ``PATCH`` per chunk with ``Content-Range``, then an empty ``PUT ?digest=``."""
        location = self.upload_location(name)
        for start in range(0, len(data), chunk_size):
            resp = expect(
                self.patch_chunk(location, data[start : start + chunk_size], start), 202, what="PATCH"
            )
            assert resp.headers.get("Range") == f"0-{start + len(data[start : start + chunk_size]) - 1}", (
                describe(resp)
            )
            location = self.url(resp.headers["Location"])
        return self.finish_upload(location, digest or digest_of(data))

    def push_blob_streamed(self, name: str, chunks: Iterable[bytes], digest: str) -> requests.Response:
        """``POST``, one streamed ``PATCH`` (``Transfer-Encoding: chunked``), then ``PUT ?digest=``."""
        location = self.upload_location(name)
        resp = expect(self.patch_stream(location, chunks), 202, what="streamed PATCH")
        return self.finish_upload(self.url(resp.headers["Location"]), digest)

    def mount_blob(self, name: str, digest: str, from_repo: str | None) -> requests.Response:
        params = {"mount": digest}
        if from_repo is not None:
            params["from"] = from_repo
        return self.start_upload(name, **params)

    def push_blob(self, name: str, blob: Blob | bytes) -> str:
        """Push one blob (``POST`` + ``PUT``) unless present; return its digest."""
        data = blob.data if isinstance(blob, Blob) else blob
        digest = blob.digest if isinstance(blob, Blob) else digest_of(data)
        if self.head_blob(name, digest).status_code == 200:
            return digest
        resp = expect(self.push_blob_post_put(name, data, digest), 201, what=f"push blob {digest}")
        assert resp.headers.get("Docker-Content-Digest", digest) == digest, describe(resp)
        return digest

    # -- manifests --------------------------------------------------------------------------------
    def put_manifest(
        self, name: str, reference: str, body: bytes, media_type: str, tags: Iterable[str] = ()
    ) -> requests.Response:
        params = [("tag", t) for t in tags] or None
        return self.request(
            "PUT",
            f"/v2/{name}/manifests/{reference}",
            data=body,
            params=params,
            headers={"Content-Type": media_type},
        )

    def get_manifest(self, name: str, reference: str, accept: str = MANIFEST_ACCEPT) -> requests.Response:
        return self.request("GET", f"/v2/{name}/manifests/{reference}", headers={"Accept": accept})

    def head_manifest(self, name: str, reference: str, accept: str = MANIFEST_ACCEPT) -> requests.Response:
        return self.request("HEAD", f"/v2/{name}/manifests/{reference}", headers={"Accept": accept})

    def delete_manifest(self, name: str, reference: str) -> requests.Response:
        return self.request("DELETE", f"/v2/{name}/manifests/{reference}")

    def push_manifest(self, name: str, manifest: Blob, reference: str | None = None) -> str:
        """PUT ``manifest`` by ``reference`` (default: its digest); check the returned digest; return it."""
        resp = expect(
            self.put_manifest(name, reference or manifest.digest, manifest.data, manifest.media_type),
            201,
            what=f"push manifest {reference or manifest.digest}",
        )
        got = resp.headers.get("Docker-Content-Digest")
        assert got == manifest.digest, f"Docker-Content-Digest {got} != {manifest.digest}\n{describe(resp)}"
        return manifest.digest

    def push_image(self, name: str, image: Image | Index, tag: str | None = None) -> str:
        """Push all blobs and child manifests of an image or index, then its manifest (by tag if given)."""
        if isinstance(image, Index):
            for child in image.images:
                self.push_image(name, child)
        else:
            for blob in image.blobs:
                self.push_blob(name, blob)
        return self.push_manifest(name, image.manifest, tag)

    # -- listings ---------------------------------------------------------------------------------
    def tags(self, name: str, n: int | None = None, last: str | None = None) -> requests.Response:
        params = {k: v for k, v in (("n", n), ("last", last)) if v is not None}
        return self.request("GET", f"/v2/{name}/tags/list", params=params or None)

    def catalog(self, n: int | None = None, last: str | None = None) -> requests.Response:
        params = {k: v for k, v in (("n", n), ("last", last)) if v is not None}
        return self.request("GET", "/v2/_catalog", params=params or None)

    def referrers(self, name: str, digest: str, artifact_type: str | None = None) -> requests.Response:
        params = {"artifactType": artifact_type} if artifact_type else None
        return self.request("GET", f"/v2/{name}/referrers/{digest}", params=params)

    def follow_pages(self, first: requests.Response, key: str) -> Iterator[list[str]]:
        """Yield ``first.json()[key]`` and every page reached through ``Link: <...>; rel="next"``."""
        resp = first
        while True:
            expect(resp, 200, what="listing page")
            yield resp.json().get(key) or []
            link = resp.links.get("next")
            if not link:
                return
            resp = self.request("GET", link["url"])


class SizedStream:
    """A file-like body of known length fed from an iterator of chunks.

    requests sends it with ``Content-Length`` (from ``__len__``) and reads it piecewise, so a
    large blob is streamed without ever being held in memory.
    """

    def __init__(self, chunks: Iterable[bytes], length: int) -> None:
        self._chunks = iter(chunks)
        self._buffer = b""
        self._length = length

    def __len__(self) -> int:
        return self._length

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def read_back_digest(
    resp: requests.Response, algorithm: str = "sha256", block: int = 1 << 20
) -> tuple[str, int]:
    """Hash a streamed response body as it is read; return (digest, length)."""
    h = hashlib.new(algorithm)
    n = 0
    for chunk in resp.iter_content(block):
        h.update(chunk)
        n += len(chunk)
    return f"{algorithm}:{h.hexdigest()}", n
