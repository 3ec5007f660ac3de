"""The API tests' client: a small wrapper (`Registry`) over the Flask test client that
knows the OCI push flows, plus builders for manifests and small assertion helpers.

Every response that passes through the wrapper is checked for the invariants that
hold for all requests: no 5xx, no filesystem path of the test's temporary directory
in headers or body, and an OCI error envelope on every error under ``/v2/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"

SPEC_CODES = {
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID",
    "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED", "DENIED", "UNSUPPORTED",
    "TOOMANYREQUESTS",
}
CODE_RE = re.compile(r"^[A-Z_]+$")
LINK_RE = re.compile(r'^<([^>]+)>;\s*rel="?next"?$')

PUSH_STYLES = ("monolithic", "post_put", "chunked", "chunked_put_last", "streamed", "mount")


def digest_of(data: bytes, alg: str = "sha256") -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def path_of(location: str) -> str:
    """A Location header (absolute or relative) as path?query for the test client."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_query(location: str, **params: str) -> str:
    sep = "&" if "?" in location else "?"
    return location + sep + "&".join(f"{k}={v}" for k, v in params.items())


def descriptor(media_type: str, blob: bytes, alg: str = "sha256", **extra: Any) -> dict:
    return {"mediaType": media_type, "digest": digest_of(blob, alg), "size": len(blob), **extra}


def parse_link(header: str | None) -> tuple[str, dict[str, list[str]]] | None:
    if not header:
        return None
    m = LINK_RE.match(header.strip())
    assert m, f"malformed Link header {header!r}"
    target = m.group(1)
    return target, parse_qs(urlsplit(target).query, keep_blank_values=True)


class Image:
    """A pushed image: manifest bytes and digest, plus its config and layers."""

    def __init__(self, manifest: bytes, media_type: str, alg: str = "sha256",
                 blobs: Iterable[bytes] = ()) -> None:
        self.raw = manifest
        self.media_type = media_type
        self.digest = digest_of(manifest, alg)
        self.blobs = list(blobs)

    @property
    def doc(self) -> dict:
        return json.loads(self.raw)


class Registry:
    """A thin client for the registry under test; checks global invariants on every response."""

    def __init__(self, app, root: Path, forbidden: list[str]) -> None:
        self.app = app
        self.client = app.test_client()
        self.root = root
        self.forbidden = forbidden
        self._counter = 0

    # -- raw HTTP -----------------------------------------------------------------
    def request(self, method: str, path: str, *, data: bytes | None = None,
                headers: dict[str, str] | None = None, check: bool = True, **kw: Any):
        resp = self.client.open(path, method=method, data=data, headers=headers or {}, **kw)
        if check:
            self.check_invariants(method, path, resp)
        return resp

    def check_invariants(self, method: str, path: str, resp) -> None:
        body = resp.get_data()
        assert resp.status_code < 500, (
            f"{method} {path} -> {resp.status_code} {body[:500]!r}")
        for secret in self.forbidden:
            assert secret.encode() not in body, f"{method} {path} leaks {secret!r} in body"
            for name, value in resp.headers.items():
                assert secret not in value, f"{method} {path} leaks {secret!r} in {name}"
        if path.startswith("/v2/") and resp.status_code >= 400 and method != "HEAD":
            assert b"<html" not in body.lower(), f"{method} {path} answered HTML"
            doc = json.loads(body)
            assert isinstance(doc, dict) and isinstance(doc.get("errors"), list), doc
            assert doc["errors"], doc
            for err in doc["errors"]:
                assert CODE_RE.match(err.get("code", "")), err
                assert isinstance(err.get("message", ""), str), err

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    def put(self, path, **kw):
        return self.request("PUT", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def patch(self, path, **kw):
        return self.request("PATCH", path, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # -- blobs ---------------------------------------------------------------------
    def start_upload(self, repo: str) -> str:
        resp = self.post(f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
        assert resp.status_code == 202, resp.get_data()
        assert resp.headers.get("Location"), resp.headers
        return path_of(resp.headers["Location"])

    def patch_chunk(self, location: str, chunk: bytes, start: int | None):
        headers = {"Content-Type": "application/octet-stream"}
        if start is not None:
            headers["Content-Range"] = f"{start}-{start + len(chunk) - 1}"
        return self.patch(location, data=chunk, headers=headers)

    def push_blob(self, repo: str, data: bytes, style: str = "monolithic",
                  alg: str = "sha256", chunk_size: int = 7, source: str | None = None):
        """Push `data` with one of PUSH_STYLES; return the final (201) response."""
        dig = digest_of(data, alg)
        octet = {"Content-Type": "application/octet-stream"}
        if style == "monolithic":
            resp = self.post(f"/v2/{repo}/blobs/uploads/?digest={dig}", data=data, headers=octet)
        elif style == "post_put":
            loc = self.start_upload(repo)
            resp = self.put(with_query(loc, digest=dig), data=data, headers=octet)
        elif style in ("chunked", "chunked_put_last"):
            loc = self.start_upload(repo)
            chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] or [b""]
            last = chunks.pop() if style == "chunked_put_last" else None
            offset = 0
            for chunk in chunks:
                if not chunk:
                    continue
                r = self.patch_chunk(loc, chunk, offset)
                assert r.status_code == 202, r.get_data()
                offset += len(chunk)
                assert r.headers.get("Range") == f"0-{offset - 1}", r.headers
                loc = path_of(r.headers["Location"])
            if last:
                resp = self.put(with_query(loc, digest=dig), data=last, headers={
                    **octet, "Content-Range": f"{offset}-{offset + len(last) - 1}"})
            else:
                resp = self.put(with_query(loc, digest=dig), data=b"", headers=octet)
        elif style == "streamed":
            loc = self.start_upload(repo)
            r = self.patch(loc, data=data, headers=octet)
            assert r.status_code == 202, r.get_data()
            loc = path_of(r.headers["Location"])
            resp = self.put(with_query(loc, digest=dig), data=b"", headers=octet)
        elif style == "mount":
            source = source or f"{repo}-mountsrc"
            first = self.push_blob(source, data, "monolithic", alg)
            assert first.status_code == 201
            resp = self.post(f"/v2/{repo}/blobs/uploads/?mount={dig}&from={source}")
        else:
            raise ValueError(style)
        assert resp.status_code == 201, (style, resp.status_code, resp.get_data())
        return resp

    def blob(self, repo: str, data: bytes, alg: str = "sha256") -> dict:
        """Push `data` monolithically (if not there) and return an OCI layer descriptor."""
        self.push_blob(repo, data, "monolithic", alg)
        return descriptor(OCI_LAYER, data, alg)

    # -- manifests -----------------------------------------------------------------
    def put_manifest(self, repo: str, ref: str, raw: bytes, media_type: str | None = OCI_MANIFEST,
                     query: str = ""):
        headers = {"Content-Type": media_type} if media_type else {}
        return self.put(f"/v2/{repo}/manifests/{ref}{query}", data=raw, headers=headers)

    def unique(self, prefix: str = "x") -> bytes:
        self._counter += 1
        return f"{prefix}-{self._counter}-{os.urandom(8).hex()}".encode()

    def image_manifest(self, repo: str, *, layers: int = 2, alg: str = "sha256",
                       push_blobs: bool = True, **fields: Any) -> Image:
        """Build (and push the blobs of) an OCI image manifest; the manifest itself is not pushed."""
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": []},
                             "nonce": self.unique("cfg").decode()}).encode()
        layer_blobs = [self.unique("layer") * 3 for _ in range(layers)]
        if push_blobs:
            for b in [config, *layer_blobs]:
                self.push_blob(repo, b, "monolithic", alg)
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor(OCI_CONFIG, config, alg),
            "layers": [descriptor(OCI_LAYER, b, alg) for b in layer_blobs],
            **fields,
        }
        # indented on purpose: the registry must keep the exact bytes
        raw = json.dumps(doc, indent=3).encode()
        return Image(raw, OCI_MANIFEST, alg, [config, *layer_blobs])

    def push_image(self, repo: str, tag: str | None = None, *, alg: str = "sha256",
                   by_digest: bool = False, **kw: Any) -> Image:
        img = self.image_manifest(repo, alg=alg, **kw)
        ref = img.digest if (by_digest or tag is None) else tag
        resp = self.put_manifest(repo, ref, img.raw)
        assert resp.status_code == 201, resp.get_data()
        if tag is not None and by_digest:
            resp = self.put_manifest(repo, tag, img.raw)
            assert resp.status_code == 201, resp.get_data()
        return img

    def artifact_manifest(self, repo: str, artifact_type: str | None = "application/vnd.example.sbom.v1",
                          subject: Image | None = None, annotations: dict | None = None,
                          config_media_type: str = OCI_EMPTY, layers: int = 1) -> Image:
        self.push_blob(repo, b"{}")
        config_data = b"{}"
        if config_media_type != OCI_EMPTY:
            config_data = json.dumps({"nonce": self.unique().decode()}).encode()
            self.push_blob(repo, config_data)
        layer_blobs = [self.unique("art") for _ in range(layers)]
        for b in layer_blobs:
            self.push_blob(repo, b)
        doc: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
        if artifact_type:
            doc["artifactType"] = artifact_type
        doc["config"] = descriptor(config_media_type, config_data)
        doc["layers"] = [descriptor("application/vnd.example.data", b) for b in layer_blobs]
        if subject is not None:
            doc["subject"] = {"mediaType": subject.media_type, "digest": subject.digest,
                              "size": len(subject.raw)}
        if annotations:
            doc["annotations"] = annotations
        return Image(canonical(doc), OCI_MANIFEST, blobs=[config_data, *layer_blobs])

    def index_manifest(self, children: list[Image], **fields: Any) -> Image:
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": c.media_type, "digest": c.digest, "size": len(c.raw),
                 "platform": {"architecture": f"arch{i}", "os": "linux"}}
                for i, c in enumerate(children)
            ],
            **fields,
        }
        return Image(json.dumps(doc, indent=1).encode(), OCI_INDEX)

    # -- listings --------------------------------------------------------------------
    def tags(self, repo: str, query: str = "") -> list[str]:
        resp = self.get(f"/v2/{repo}/tags/list{query}")
        assert resp.status_code == 200, resp.get_data()
        return resp.get_json().get("tags") or []

    def catalog(self) -> list[str]:
        resp = self.get("/v2/_catalog")
        assert resp.status_code == 200, resp.get_data()
        return resp.get_json().get("repositories") or []

    def follow_pages(self, first: str) -> tuple[list[str], list[Any]]:
        """GET `first` and every Link rel=next after it; return the items and the pages."""
        items: list[str] = []
        pages = []
        url: str | None = first
        key = "repositories" if "/_catalog" in first else "tags"
        for _ in range(1000):
            if url is None:
                break
            resp = self.get(url)
            assert resp.status_code == 200, resp.get_data()
            page = resp.get_json().get(key) or []
            pages.append(page)
            items.extend(page)
            link = parse_link(resp.headers.get("Link"))
            url = path_of(link[0]) if link else None
        return items, pages


def error_codes(resp) -> list[str]:
    return [e["code"] for e in json.loads(resp.get_data())["errors"]]


def assert_error(resp, status: int | tuple[int, ...], *codes: str) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert resp.status_code in statuses, (resp.status_code, resp.get_data())
    if codes:
        got = error_codes(resp)
        assert set(got) & set(codes), f"expected one of {codes}, got {got}"


def blob_files(repo_dir: Path) -> list[Path]:
    blobs = repo_dir / "blobs"
    return sorted(p for p in blobs.rglob("*") if p.is_file()) if blobs.exists() else []
