"""Build OCI images, indexes and artifacts in memory and write them as OCI image layouts.

Everything is small enough to hold in memory (test images); big blobs are streamed by ``bigblob``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

REF_NAME = "org.opencontainers.image.ref.name"
ALGORITHMS = ("sha256", "sha512")


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """``<algorithm>:<hex>`` of ``data``."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, no spaces), as a pushed manifest or config."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    """Content with its media type; the digest is of exactly ``data``."""

    media_type: str
    data: bytes
    algorithm: str = "sha256"
    annotations: Mapping[str, str] | None = None

    @property
    def digest(self) -> str:
        return digest_of(self.data, self.algorithm)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        desc: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            desc["annotations"] = dict(self.annotations)
        desc.update(extra)
        return desc

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass(frozen=True)
class Layer(Blob):
    """A filesystem layer; ``diff_id`` is the sha256 of the uncompressed tar."""

    diff_id: str = ""
    files: Mapping[str, bytes] = field(default_factory=dict)


def tar_bytes(files: Mapping[str, bytes]) -> bytes:
    """A reproducible tar archive (fixed mtime, owner and mode) of ``files`` (path → content)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(files):
            content = files[path]
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def make_layer(
    files: Mapping[str, bytes] | None = None,
    *,
    size: int = 4096,
    compressed: bool = True,
    algorithm: str = "sha256",
    media_type: str | None = None,
) -> Layer:
    """A tar layer holding ``files``, or one file of ``size`` random bytes; gzip-compressed by default."""
    if files is None:
        files = {f"data/{os.urandom(6).hex()}.bin": os.urandom(size)}
    raw = tar_bytes(files)
    data = gzip.compress(raw, mtime=0) if compressed else raw
    if media_type is None:
        media_type = OCI_LAYER_GZIP if compressed else OCI_LAYER_TAR
    return Layer(
        media_type=media_type,
        data=data,
        algorithm=algorithm,
        diff_id=digest_of(raw, "sha256"),
        files=dict(files),
    )


@dataclass(frozen=True)
class Image:
    """An image or artifact manifest with its config and layers."""

    manifest: Blob
    config: Blob
    layers: tuple[Blob, ...]
    platform: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return (self.config, *self.layers)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        desc = self.manifest.descriptor()
        if self.platform:
            desc["platform"] = dict(self.platform)
        artifact_type = self.manifest.json().get("artifactType")
        if artifact_type:
            desc["artifactType"] = artifact_type
        desc.update(extra)
        return desc


@dataclass(frozen=True)
class Index:
    """An image index (or Docker manifest list) over several images."""

    index: Blob
    images: tuple[Image, ...]

    @property
    def digest(self) -> str:
        return self.index.digest

    @property
    def manifest(self) -> Blob:
        return self.index

    @property
    def blobs(self) -> tuple[Blob, ...]:
        return tuple(b for image in self.images for b in (*image.blobs, image.manifest))

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return self.index.descriptor(**extra)


def build_image(
    layers: Iterable[Blob] | None = None,
    *,
    n_layers: int = 2,
    layer_size: int = 4096,
    algorithm: str = "sha256",
    architecture: str = "amd64",
    os_name: str = "linux",
    variant: str | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    subject: Mapping[str, Any] | None = None,
    artifact_type: str | None = None,
    docker: bool = False,
    compressed: bool = True,
) -> Image:
    """A runnable-looking image: tar layers, an image config with diff_ids and history, a manifest.

    ``docker=True`` builds a Docker v2 schema 2 image instead of an OCI one.
    """
    if layers is None:
        layer_type = DOCKER_LAYER_GZIP if docker else None
        layers = [
            make_layer(
                size=layer_size, compressed=compressed or docker, algorithm=algorithm, media_type=layer_type
            )
            for _ in range(n_layers)
        ]
    layers = tuple(layers)
    diff_ids = [getattr(layer, "diff_id", "") or layer.digest for layer in layers]
    config_doc: dict[str, Any] = {
        "architecture": architecture,
        "os": os_name,
        "created": "2024-01-01T00:00:00Z",
        "config": {"Labels": dict(labels or {}), "Env": ["PATH=/usr/bin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": f"zotpy tests layer {i}"}
            for i in range(len(layers))
        ],
    }
    if variant:
        config_doc["variant"] = variant
    config = Blob(DOCKER_CONFIG if docker else OCI_CONFIG, canonical_json(config_doc), algorithm)
    manifest_doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    if artifact_type:
        manifest_doc["artifactType"] = artifact_type
    if subject:
        manifest_doc["subject"] = dict(subject)
    if annotations:
        manifest_doc["annotations"] = dict(annotations)
    platform = {"architecture": architecture, "os": os_name}
    if variant:
        platform["variant"] = variant
    manifest = Blob(manifest_doc["mediaType"], canonical_json(manifest_doc), algorithm)
    return Image(manifest=manifest, config=config, layers=layers, platform=platform)


def build_artifact(
    files: Mapping[str, bytes],
    *,
    artifact_type: str,
    subject: Image | Mapping[str, Any] | None = None,
    annotations: Mapping[str, str] | None = None,
    algorithm: str = "sha256",
) -> Image:
    """An OCI artifact manifest: the empty config, one blob per file (titled), optional subject."""
    config = Blob(OCI_EMPTY, EMPTY_JSON, algorithm)
    layers = tuple(
        Blob("application/octet-stream", content, algorithm, {"org.opencontainers.image.title": name})
        for name, content in files.items()
    )
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config.descriptor(),
        "layers": [layer.descriptor() for layer in layers],
    }
    if subject is not None:
        doc["subject"] = subject.manifest.descriptor() if isinstance(subject, Image) else dict(subject)
    if annotations:
        doc["annotations"] = dict(annotations)
    return Image(manifest=Blob(OCI_MANIFEST, canonical_json(doc), algorithm), config=config, layers=layers)


DEFAULT_PLATFORMS: tuple[tuple[str, str | None], ...] = (("amd64", None), ("arm64", "v8"), ("arm", "v7"))


def build_index(
    images: Iterable[Image] | None = None,
    *,
    platforms: Iterable[tuple[str, str | None]] = DEFAULT_PLATFORMS,
    algorithm: str = "sha256",
    annotations: Mapping[str, str] | None = None,
    docker: bool = False,
) -> Index:
    """A multi-platform index (Docker manifest list with ``docker=True``) over one image per platform."""
    if images is None:
        images = [
            build_image(architecture=arch, variant=variant, algorithm=algorithm, docker=docker, n_layers=1)
            for arch, variant in platforms
        ]
    images = tuple(images)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST if docker else OCI_INDEX,
        "manifests": [image.descriptor() for image in images],
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return Index(index=Blob(doc["mediaType"], canonical_json(doc), algorithm), images=images)


class OCILayout:
    """An OCI image layout directory: ``oci-layout``, ``index.json`` and ``blobs/<alg>/<hex>``."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def write_blob(self, blob: Blob) -> Path:
        alg, hexpart = blob.digest.split(":", 1)
        target = self.path / "blobs" / alg / hexpart
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(blob.data)
        return target

    def write(self, entries: Mapping[str, Image | Index]) -> OCILayout:
        """Write every blob of ``entries`` (tag → image or index) and an ``index.json`` tagging them."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        descriptors = []
        for tag, item in entries.items():
            for blob in item.blobs:
                self.write_blob(blob)
            self.write_blob(item.manifest)
            descriptors.append(item.descriptor(annotations={REF_NAME: tag}))
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
        (self.path / "index.json").write_text(json.dumps(index, indent=2))
        return self

    def index(self) -> dict[str, Any]:
        return json.loads((self.path / "index.json").read_text())

    def tags(self) -> dict[str, dict[str, Any]]:
        """Tag → descriptor, from ``index.json``."""
        return {
            d["annotations"][REF_NAME]: d
            for d in self.index()["manifests"]
            if REF_NAME in (d.get("annotations") or {})
        }

    def blob_path(self, digest: str) -> Path:
        alg, hexpart = digest.split(":", 1)
        return self.path / "blobs" / alg / hexpart

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def blob_digests(self) -> set[str]:
        """Every ``<alg>:<hex>`` stored under ``blobs/``."""
        found = set()
        for alg_dir in (self.path / "blobs").iterdir():
            for entry in alg_dir.iterdir():
                found.add(f"{alg_dir.name}:{entry.name}")
        return found


def pattern_stream(size: int, seed: int = 0, block: int = 1 << 20) -> Iterable[bytes]:
    """``size`` pseudo-random bytes in blocks, reproducible from ``seed``, never held whole in memory."""
    base = hashlib.sha512(f"zotpy-{seed}".encode()).digest() * (block // 64 + 1)
    sent, counter = 0, 0
    while sent < size:
        stamp = counter.to_bytes(8, "big")
        chunk = (stamp + base)[: min(block, size - sent)]
        yield chunk
        sent += len(chunk)
        counter += 1


def stream_digest(chunks: Iterable[bytes], algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    for chunk in chunks:
        h.update(chunk)
    return f"{algorithm}:{h.hexdigest()}"
