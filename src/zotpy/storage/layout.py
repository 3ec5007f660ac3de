"""Paths and documents of the OCI Image Layout, one layout per repository (as zot writes it)."""

from __future__ import annotations

import json
from typing import Any

from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.oci.manifest import tag_of

__all__ = ["tag_of"]  # re-exported: the store reads tags through layout

INDEX_FILE = "index.json"
LAYOUT_FILE = "oci-layout"
BLOBS_DIR = "blobs"
UPLOADS_DIR = ".uploads"
# zotpy's own files live here; a leading underscore can never be a repository name.
PRIVATE_DIR = "_zotpy"

LAYOUT_DOCUMENT = json.dumps({"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}).encode()
EMPTY_INDEX = b'{"schemaVersion":2,"manifests":[]}'  # bytes: immutable, as written


def blob_path(repo: str, digest: Digest) -> str:
    return f"{repo}/{BLOBS_DIR}/{digest.algorithm}/{digest.hex}"


def upload_path(repo: str, session_id: str) -> str:
    return f"{repo}/{UPLOADS_DIR}/{session_id}"


def index_path(repo: str) -> str:
    return f"{repo}/{INDEX_FILE}"


def layout_path(repo: str) -> str:
    return f"{repo}/{LAYOUT_FILE}"


def encode_index(index: dict[str, Any]) -> bytes:
    """index.json bytes; compact like zot's writer."""
    return json.dumps(index, separators=(",", ":")).encode()


def encode_entry(entry: dict[str, Any]) -> bytes:
    """One descriptor as ``encode_index`` writes it inside the manifests list."""
    return json.dumps(entry, separators=(",", ":")).encode()


# How every index.json zotpy writes begins: the manifests list comes first and last.
COMPACT_INDEX_PREFIX = b'{"schemaVersion":2,"manifests":['



def decode_index(raw: bytes) -> dict[str, Any]:
    """Parse index.json, tolerating a missing manifests list."""
    doc = json.loads(raw)
    if not isinstance(doc, dict):
        raise ValueError("index.json is not an object")
    manifests = doc.get("manifests")
    if manifests is None:
        doc["manifests"] = []
    elif not isinstance(manifests, list):
        raise ValueError("index.json manifests is not a list")
    return doc
