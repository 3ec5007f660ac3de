"""The ``storageDriver`` keys of the s3 driver (Distribution's s3-aws names, as zot reads them).

Keys arrive lower-cased (the config loader does that, as zot's does).  Credentials come from
``accesskey``/``secretkey``/``sessiontoken`` when given, else from boto3's standard chain
(environment, shared config and credentials files, instance or container roles).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zotpy.errors import ConfigError

MIN_PART_SIZE = 5 * 1024 * 1024
"""S3's smallest part of a multipart upload (every part but the last)."""

MAX_COPY_SIZE = 5 * 1024 * 1024 * 1024
"""The largest object (and the largest part) one CopyObject / UploadPartCopy can copy."""

DEFAULT_PART_SIZE = 10 * 1024 * 1024  # Distribution's ``chunksize`` default
DEFAULT_COPY_CHUNK = 1024 * 1024 * 1024
DEFAULT_PRESIGN_SECONDS = 20 * 60  # Distribution redirects with URLs valid for 20 minutes

KEY_PATH = "storage.storageDriver"
_KNOWN = frozenset({
    "name", "bucket", "region", "regionendpoint", "rootdirectory", "forcepathstyle", "secure", "skipverify",
    "accesskey", "secretkey", "sessiontoken", "chunksize", "multipartcopythresholdsize",
    "multipartcopychunksize", "storageclass", "encrypt", "keyid", "v4auth", "presignexpiry",
})


@dataclass(frozen=True)
class S3Settings:
    """Validated s3 driver settings."""

    bucket: str
    prefix: str
    region: str | None = None
    endpoint: str | None = None
    force_path_style: bool = False
    secure: bool = True
    skip_verify: bool = False
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    part_size: int = DEFAULT_PART_SIZE
    copy_threshold: int = MAX_COPY_SIZE
    copy_chunk: int = DEFAULT_COPY_CHUNK
    storage_class: str | None = None
    encrypt: bool = False
    key_id: str | None = None
    presign_seconds: int = DEFAULT_PRESIGN_SECONDS

    def __repr__(self) -> str:  # secrets never reach logs
        return f"S3Settings(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint={self.endpoint!r})"


def parse_settings(raw: Mapping[str, Any], key_path: str = KEY_PATH) -> S3Settings:
    """Validate a ``storageDriver`` mapping naming ``s3``; ConfigError names the offending key."""
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise ConfigError(f"{key_path}.{unknown[0]}: unknown key for the s3 driver")
    bucket = raw.get("bucket")
    if not isinstance(bucket, str) or not bucket:
        raise ConfigError(f"{key_path}.bucket: required (the S3 bucket holding the store)")
    endpoint = _text(raw, "regionendpoint", key_path)
    secure = _flag(raw, "secure", True, key_path)
    if endpoint and "://" not in endpoint:
        endpoint = ("https://" if secure else "http://") + endpoint
    access, secret = _text(raw, "accesskey", key_path), _text(raw, "secretkey", key_path)
    if bool(access) != bool(secret):
        raise ConfigError(f"{key_path}.{'secretkey' if access else 'accesskey'}: "
                          "accesskey and secretkey go together")
    part_size = _size(raw, "chunksize", DEFAULT_PART_SIZE, MIN_PART_SIZE, key_path)
    copy_chunk = _size(raw, "multipartcopychunksize", DEFAULT_COPY_CHUNK, MIN_PART_SIZE, key_path)
    if copy_chunk > MAX_COPY_SIZE // 2:
        raise ConfigError(f"{key_path}.multipartcopychunksize: at most {MAX_COPY_SIZE // 2} bytes")
    return S3Settings(
        bucket=bucket,
        prefix=str(raw.get("rootdirectory") or "").strip("/"),
        region=_text(raw, "region", key_path),
        endpoint=endpoint,
        force_path_style=_flag(raw, "forcepathstyle", bool(endpoint), key_path),
        secure=secure,
        skip_verify=_flag(raw, "skipverify", False, key_path),
        access_key=access,
        secret_key=secret,
        session_token=_text(raw, "sessiontoken", key_path),
        part_size=part_size,
        copy_threshold=_size(raw, "multipartcopythresholdsize", MAX_COPY_SIZE, MIN_PART_SIZE, key_path,
                             maximum=MAX_COPY_SIZE),
        copy_chunk=copy_chunk,
        storage_class=_text(raw, "storageclass", key_path),
        encrypt=_flag(raw, "encrypt", False, key_path),
        key_id=_text(raw, "keyid", key_path),
        presign_seconds=_size(raw, "presignexpiry", DEFAULT_PRESIGN_SECONDS, 1, key_path,
                              maximum=7 * 24 * 3600),
    )


def make_client(settings: S3Settings) -> Any:
    """A boto3 S3 client for ``settings`` (shared by the greenlets of one process)."""
    import boto3
    from botocore.config import Config as BotoConfig

    config = BotoConfig(
        s3={"addressing_style": "path" if settings.force_path_style else "auto"},
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=64,
        signature_version="s3v4",
    )
    session = boto3.session.Session(
        aws_access_key_id=settings.access_key,
        aws_secret_access_key=settings.secret_key,
        aws_session_token=settings.session_token,
        region_name=settings.region,
    )
    return session.client("s3", endpoint_url=settings.endpoint, use_ssl=settings.secure,
                          verify=not settings.skip_verify, config=config)


def _text(raw: Mapping[str, Any], key: str, key_path: str) -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{key_path}.{key}: expected a string")
    return value


def _flag(raw: Mapping[str, Any], key: str, default: bool, key_path: str) -> bool:
    value = raw.get(key, default)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, bool):
        raise ConfigError(f"{key_path}.{key}: expected true or false")
    return value


def _size(raw: Mapping[str, Any], key: str, default: int, minimum: int, key_path: str, *,
          maximum: int | None = None) -> int:
    value = raw.get(key, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key_path}.{key}: expected a whole number") from None
    if isinstance(value, bool) or number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{key_path}.{key}: must be {bound}")
    return number
