"""Manifest and index parsing that keeps the raw bytes.

The digest of a manifest is always of the bytes received; parsing only reads the
fields the registry needs (references, subject, artifact type, annotations).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zotpy.errors import ManifestInvalid, UnsupportedMediaType
from zotpy.oci import mediatypes as mt
from zotpy.oci.digest import Digest

MAX_MANIFEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor (the fields the registry uses)."""

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] | None = None
    artifact_type: str | None = None
    platform: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, value: Any, where: str) -> Descriptor:
        """Validate a descriptor object found at ``where`` in a manifest."""
        if not isinstance(value, dict):
            raise ManifestInvalid(f"{where}: descriptor must be an object")
        media_type = value.get("mediaType")
        size = value.get("size")
        digest = value.get("digest")
        if not isinstance(media_type, str) or not media_type:
            raise ManifestInvalid(f"{where}: mediaType must be a string")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ManifestInvalid(f"{where}: size must be a non-negative integer")
        if not isinstance(digest, str):
            raise ManifestInvalid(f"{where}: digest must be a string")
        try:
            parsed = Digest.parse(digest)
        except Exception as exc:
            raise ManifestInvalid(f"{where}: invalid digest") from exc
        urls = value.get("urls") or ()
        if not isinstance(urls, list | tuple) or not all(isinstance(u, str) for u in urls):
            raise ManifestInvalid(f"{where}: urls must be a list of strings")
        annotations = _annotations(value.get("annotations"), where)
        artifact_type = value.get("artifactType")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise ManifestInvalid(f"{where}: artifactType must be a string")
        platform = value.get("platform")
        if platform is not None and not isinstance(platform, dict):
            raise ManifestInvalid(f"{where}: platform must be an object")
        return cls(media_type, parsed, size, tuple(urls), annotations, artifact_type, platform)

    def to_json(self) -> dict[str, Any]:
        """The descriptor as an OCI JSON object."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = dict(self.platform)
        return out

    @property
    def is_foreign(self) -> bool:
        """A non-distributable layer that points elsewhere; the registry need not hold it."""
        return bool(self.urls) and self.media_type in mt.NON_DISTRIBUTABLE_LAYERS


@dataclass(frozen=True)
class Manifest:
    """A parsed image manifest or index together with its raw bytes."""

    raw: bytes
    media_type: str
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: Mapping[str, str] | None = None

    @property
    def is_index(self) -> bool:
        return self.media_type in mt.INDEX_TYPES

    def digest(self, algorithm: str = "sha256") -> Digest:
        """The digest of exactly the bytes received."""
        return Digest.of(self.raw, algorithm)

    @property
    def referrer_artifact_type(self) -> str | None:
        """The artifact type the referrers API reports: ``artifactType``, else the config's type."""
        if self.artifact_type:
            return self.artifact_type
        return self.config.media_type if self.config else None

    def blobs(self) -> tuple[Descriptor, ...]:
        """Blob descriptors the manifest needs in the repository (config and layers)."""
        return ((self.config,) if self.config else ()) + self.layers


def accepted_types(docker_compat: bool) -> frozenset[str]:
    """Manifest media types accepted on PUT."""
    return mt.OCI_MANIFEST_TYPES | (mt.DOCKER_MANIFEST_TYPES if docker_compat else frozenset())


def parse_manifest(raw: bytes, content_type: str | None, docker_compat: bool) -> Manifest:
    """Parse a pushed manifest; the Content-Type decides the kind and must agree with the body."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in accepted_types(docker_compat):
        raise UnsupportedMediaType("unsupported manifest media type", detail={"mediaType": media_type[:200]})
    return parse_stored(raw, media_type)


def parse_stored(raw: bytes, media_type: str) -> Manifest:
    """Parse manifest bytes of a known media type (also used for stored manifests)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ManifestInvalid("manifest is not valid JSON") from exc
    if not isinstance(body, dict):
        raise ManifestInvalid("manifest must be a JSON object")
    declared = body.get("mediaType")
    if declared is not None and declared != media_type:
        raise ManifestInvalid("mediaType in the body does not match the Content-Type",
                              detail={"mediaType": str(declared)[:200]})
    if media_type in mt.DOCKER_MANIFEST_TYPES and declared is None:
        raise ManifestInvalid("Docker manifests must state their mediaType")
    version = body.get("schemaVersion")
    if type(version) is not int or version != 2:
        raise ManifestInvalid("schemaVersion must be 2")
    if "layers" in body and "manifests" in body:
        raise ManifestInvalid("a manifest cannot have both layers and manifests")
    subject = Descriptor.from_json(body["subject"], "subject") if body.get("subject") is not None else None
    artifact_type = body.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid("artifactType must be a string")
    annotations = _annotations(body.get("annotations"), "annotations")
    if media_type in mt.INDEX_TYPES:
        if "layers" in body or "config" in body:
            raise ManifestInvalid("an index has no config or layers")
        return Manifest(raw, media_type, manifests=_descriptors(body.get("manifests"), "manifests"),
                        subject=subject, artifact_type=artifact_type, annotations=annotations)
    if "manifests" in body:
        raise ManifestInvalid("an image manifest has no manifests list")
    if "config" not in body:
        raise ManifestInvalid("config is required")
    config = Descriptor.from_json(body["config"], "config")
    layers = _descriptors(body.get("layers", []), "layers")
    return Manifest(raw, media_type, config=config, layers=layers, subject=subject,
                    artifact_type=artifact_type, annotations=annotations)


def _descriptors(value: Any, where: str) -> tuple[Descriptor, ...]:
    if not isinstance(value, list):
        raise ManifestInvalid(f"{where} must be a list")
    return tuple(Descriptor.from_json(item, f"{where}[{i}]") for i, item in enumerate(value))


def _annotations(value: Any, where: str) -> Mapping[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        raise ManifestInvalid(f"{where}: annotations must map strings to strings")
    return value


def tag_of(entry: Mapping[str, Any]) -> str | None:
    """The tag an OCI layout's index.json entry carries (its ``org.opencontainers.image.ref.name``)."""
    annotations = entry.get("annotations")
    if isinstance(annotations, dict):
        tag = annotations.get(mt.TAG_ANNOTATION)
        return tag if isinstance(tag, str) else None
    return None
