"""What the metadata database records of a manifest: parsed once per digest, from bytes.

Pure functions over :class:`zotpy.oci.manifest.Manifest` and a blob reader; no database here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest
from zotpy.oci.manifest import Manifest

__all__ = [
    "COSIGN_ARTIFACT_TYPE",
    "NOTATION_ARTIFACT_TYPE",
    "BlobReader",
    "ImageRecord",
    "extract",
    "is_referrers_tag",
    "parse_time",
    "signature_for",
    "signature_of",
]

BlobReader = Callable[[Digest], bytes]

COSIGN_ARTIFACT_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
NOTATION_ARTIFACT_TYPE = "application/vnd.cncf.notary.signature"
CONFIG_TYPES = frozenset({mt.OCI_CONFIG, mt.DOCKER_CONFIG})
MAX_CONFIG_BYTES = 4 * 1024 * 1024
VENDOR = "org.opencontainers.image.vendor"

_COSIGN_TAG = re.compile(r"^sha256-([a-f0-9]{64})\.sig$")
_REFERRERS_TAG = re.compile(r"^sha256-[a-f0-9]{64}$")
_FRACTION = re.compile(r"\.(\d+)")


@dataclass
class ImageRecord:
    """One row of ``meta_image`` plus its layer and child links."""

    digest: str
    media_type: str
    size: int
    config_digest: str | None = None
    config_media_type: str | None = None
    artifact_type: str | None = None
    subject: str | None = None
    os: str | None = None
    arch: str | None = None
    variant: str | None = None
    created: float | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    layers: list[tuple[str, int]] = field(default_factory=list)
    children: list[dict[str, Any]] = field(default_factory=list)
    config_size: int = 0

    @property
    def vendor(self) -> str | None:
        """org.opencontainers.image.vendor from the annotations, else the config labels."""
        return self.annotations.get(VENDOR) or self.labels.get(VENDOR) or None

    @property
    def total_size(self) -> int:
        """Manifest, config and layers (an index's is the sum of its children's, set once they are known)."""
        return self.size + self.config_size + sum(size for _, size in self.layers)

    def row(self) -> dict[str, Any]:
        return {
            "digest": self.digest, "media_type": self.media_type, "size": self.size,
            "total_size": self.total_size, "config_digest": self.config_digest,
            "config_media_type": self.config_media_type, "config_size": self.config_size,
            "artifact_type": self.artifact_type,
            "subject": self.subject, "os": self.os, "arch": self.arch, "variant": self.variant,
            "created": self.created, "vendor": self.vendor, "annotations": _dump(self.annotations),
            "labels": _dump(self.labels),
            "history": _dump(self.history), "layers": _dump(self.layers),
            "first_layer": self.layers[0][0] if self.layers else None,
            "children": _dump(self.children),
        }


def _dump(value: Any) -> str | None:
    return json.dumps(value, separators=(",", ":")) if value else None


def parse_time(value: Any) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp (nanoseconds allowed), or None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.year <= 1:
        return None  # Go's zero time: unknown
    return moment.timestamp()


def is_referrers_tag(tag: str | None) -> bool:
    """The referrers tag schema's fallback tags (``sha256-<hex>``) are not images."""
    return tag is not None and bool(_REFERRERS_TAG.match(tag))


def signature_of(manifest: Manifest, tag: str | None) -> tuple[str, str] | None:
    """``(tool, signed digest)`` when the manifest is a cosign or notation signature, else None."""
    subject = str(manifest.subject.digest) if manifest.subject else None
    return signature_for(manifest.is_index, manifest.referrer_artifact_type, subject, tag)


def signature_for(is_index: bool, artifact_type: str | None, subject: str | None,
                  tag: str | None) -> tuple[str, str] | None:
    """zot's rule: a notation or cosign artifact with a subject, or a ``sha256-<hex>.sig`` tag."""
    if is_index:
        return None
    if subject is not None:
        if artifact_type == NOTATION_ARTIFACT_TYPE:
            return "notation", subject
        if artifact_type == COSIGN_ARTIFACT_TYPE:
            return "cosign", subject
    match = _COSIGN_TAG.match(tag or "")
    if match:
        return "cosign", f"sha256:{match.group(1)}"
    return None


def extract(digest: str, manifest: Manifest, read_blob: BlobReader) -> ImageRecord:
    """The record of one manifest or index; image configs are read through ``read_blob``."""
    record = ImageRecord(
        digest=digest,
        media_type=manifest.media_type,
        size=len(manifest.raw),
        artifact_type=manifest.artifact_type,
        subject=str(manifest.subject.digest) if manifest.subject else None,
        annotations=dict(manifest.annotations or {}),
    )
    if manifest.is_index:
        record.children = [_child(d.to_json()) for d in manifest.manifests]
        return record
    config = manifest.config
    if config is not None:
        record.config_digest = str(config.digest)
        record.config_media_type = config.media_type
        record.config_size = config.size
        if config.media_type in CONFIG_TYPES and config.size <= MAX_CONFIG_BYTES:
            _read_config(record, read_blob(config.digest))
    record.layers = [(str(layer.digest), layer.size) for layer in manifest.layers]
    return record


def _child(descriptor: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"digest": descriptor["digest"], "mediaType": descriptor.get("mediaType")}
    platform = descriptor.get("platform")
    if isinstance(platform, dict):
        out["platform"] = {k: platform.get(k) for k in ("os", "architecture", "variant") if platform.get(k)}
    return out


def _read_config(record: ImageRecord, raw: bytes) -> None:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return
    if not isinstance(body, dict):
        return
    record.os = _text(body.get("os"))
    record.arch = _text(body.get("architecture"))
    record.variant = _text(body.get("variant"))
    record.created = parse_time(body.get("created"))
    inner = body.get("config")
    if isinstance(inner, dict) and isinstance(inner.get("Labels"), dict):
        labels = inner["Labels"].items()
        record.labels = {k: v for k, v in labels if isinstance(k, str) and isinstance(v, str)}
    history = body.get("history")
    if isinstance(history, list):
        record.history = [_history(entry) for entry in history if isinstance(entry, dict)]
    if record.created is None and record.history:
        times = [h["created"] for h in record.history if h.get("created") is not None]
        record.created = max(times) if times else None


def _history(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "created": parse_time(entry.get("created")),
        "created_by": _text(entry.get("created_by")),
        "author": _text(entry.get("author")),
        "comment": _text(entry.get("comment")),
        "empty_layer": bool(entry.get("empty_layer", False)),
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
