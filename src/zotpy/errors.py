"""The OCI error table and the domain exceptions that name their codes.

Each exception carries its OCI ``code``, HTTP ``status`` and optional ``detail``;
``zotpy.api`` renders them once as ``{"errors": [...]}``.
"""

from __future__ import annotations

from typing import Any

# code -> (HTTP status, spec message)
ERROR_TABLE: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (404, "manifest references a manifest or blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown to registry"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (415, "the operation is unsupported"),
    "TOOMANYREQUESTS": (429, "too many requests"),
    "UNAVAILABLE": (503, "authentication service unavailable"),
}


class RegistryError(Exception):
    """An error a client caused or may see, rendered as an OCI error body."""

    code = "UNSUPPORTED"
    status: int | None = None  # None: the table's status for ``code``

    def __init__(self, message: str | None = None, detail: Any = None, *,
                 status: int | None = None, headers: dict[str, str] | None = None) -> None:
        default_status, default_message = ERROR_TABLE[self.code]
        self.message = message or default_message
        self.detail = detail
        self.http_status = status or self.status or default_status
        self.headers = headers or {}
        super().__init__(self.message)


class BlobUnknown(RegistryError):
    code = "BLOB_UNKNOWN"


class BlobUploadInvalid(RegistryError):
    code = "BLOB_UPLOAD_INVALID"


class BlobUploadUnknown(RegistryError):
    code = "BLOB_UPLOAD_UNKNOWN"


class DigestInvalid(RegistryError):
    code = "DIGEST_INVALID"


class ManifestBlobUnknown(RegistryError):
    """A manifest PUT naming a blob the repository lacks: 400, as zot and Distribution answer."""

    code = "MANIFEST_BLOB_UNKNOWN"
    status = 400


class ManifestInvalid(RegistryError):
    code = "MANIFEST_INVALID"


class ManifestUnknown(RegistryError):
    code = "MANIFEST_UNKNOWN"


class NameInvalid(RegistryError):
    code = "NAME_INVALID"


class NameUnknown(RegistryError):
    code = "NAME_UNKNOWN"


class SizeInvalid(RegistryError):
    code = "SIZE_INVALID"


class Unauthorized(RegistryError):
    code = "UNAUTHORIZED"


class Denied(RegistryError):
    code = "DENIED"


class Unauthenticated(RegistryError):
    """Credentials were given but are wrong, expired or malformed (401 UNAUTHORIZED)."""

    code = "UNAUTHORIZED"


class AuthUnavailable(RegistryError):
    """An authentication backend (LDAP directory, token service) cannot be reached (503)."""

    code = "UNAVAILABLE"


class Unsupported(RegistryError):
    code = "UNSUPPORTED"


class TooManyRequests(RegistryError):
    code = "TOOMANYREQUESTS"


class ManifestTooLarge(RegistryError):
    """A manifest body over the 4 MiB limit (413)."""

    code = "SIZE_INVALID"
    status = 413


class RangeInvalid(RegistryError):
    """A chunk that does not continue the upload, or an unsatisfiable read (416)."""

    code = "BLOB_UPLOAD_INVALID"
    status = 416


class UnsupportedMediaType(RegistryError):
    """A Content-Type the registry does not accept for this route (415)."""

    code = "UNSUPPORTED"
    status = 415


class BlobInUse(RegistryError):
    """A blob still referenced by a manifest cannot be deleted (405 DENIED, as zot)."""

    code = "DENIED"
    status = 405


class Invalid(RegistryError):
    """A malformed query parameter or request (400 UNSUPPORTED unless stated)."""

    code = "UNSUPPORTED"
    status = 400


class ConfigError(Exception):
    """A configuration problem; the message names the key path."""


class StorageError(Exception):
    """A storage backend failure, in the drivers' one vocabulary."""


class PathNotFound(StorageError):
    """The path does not exist."""


class PathOutsideRoot(StorageError):
    """The path would leave the store's root."""


class StorageFull(StorageError):
    """The backend has no space (or quota) left."""
