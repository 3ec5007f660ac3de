"""The S3 driver (boto3): one key per file under a ``rootdirectory`` prefix, as zot lays a bucket out.

S3 has no directories, no rename and no append, so this driver supplies them:

* Directories are key prefixes; ``make_dirs`` leaves an empty ``<dir>/`` marker so an empty
  directory (a new repository's ``blobs/``) still lists.
* ``write_atomic`` streams: up to one part is buffered, a larger stream becomes a multipart upload
  (aborted if the stream fails), so a reader sees the old object or the whole new one.
* ``append`` (upload sessions) keeps its progress in the bucket, so any worker on any node can take
  the next PATCH: the file's own key holds the unsent tail (< one part) as its body and, in
  metadata, the id of an S3 multipart upload targeting that same key, the logical size and the
  number of parts committed.  Full parts go to the multipart upload; S3's ``ListParts`` keeps their
  ETags.  A PATCH that fails midway never updates the record, so it leaves no trace.  Reading such a
  file first *seals* it: the tail is sent as the last part and the upload completed in place.
* ``move`` is a server-side copy (multipart copy above ``multipartcopythresholdsize``) and a delete;
  ``link`` is the copy alone (S3 has no hard links, so ``hard_links`` is False and the image store
  deduplicates with placeholder objects instead of calling it).
* ``local_path`` is None (nothing to sendfile); ``presigned_url`` serves ``redirectBlobURL``.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from zotpy.storage.drivers.base import FileInfo, PathNotFound, PathOutsideRoot, StorageError, StorageFull
from zotpy.storage.drivers.s3_settings import MIN_PART_SIZE, S3Settings, make_client, parse_settings

CHUNK_SIZE = 1024 * 1024
DELETE_BATCH = 1000  # DeleteObjects takes at most 1,000 keys

META_UPLOAD = "zotpy-upload"  # the multipart upload collecting an appended file's full parts
META_SIZE = "zotpy-size"  # the appended file's logical size
META_PARTS = "zotpy-parts"  # parts committed to that upload (later part numbers are leftovers)

_MISSING = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchUpload"})
_FULL = frozenset({"QuotaExceeded", "EntityTooLarge", "ServiceQuotaExceeded"})


@dataclass
class _Appending:
    """An upload session's progress as recorded on its key."""

    upload_id: str | None
    size: int
    parts: int


class S3Driver:
    """Stores bytes as objects of one bucket under a key prefix; every path is checked to stay inside."""

    hard_links = False

    def __init__(self, settings: S3Settings, client: Any | None = None) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        self.part_size = settings.part_size
        self.client = client if client is not None else make_client(settings)

    @classmethod
    def from_config(cls, raw: Any) -> S3Driver:
        return cls(parse_settings(raw))

    # -- paths -------------------------------------------------------------------------------

    def _rel(self, path: str) -> str:
        if "\x00" in path or path.startswith("/"):
            raise PathOutsideRoot("invalid path")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise PathOutsideRoot("invalid path")
        return "/".join(parts)

    def _key(self, rel: str) -> str:
        if not rel:
            return self.prefix
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def _dir_prefix(self, rel: str) -> str:
        key = self._key(rel)
        return f"{key}/" if key else ""

    def local_path(self, path: str) -> str | None:
        self._rel(path)
        return None

    def presigned_url(self, path: str) -> str | None:
        """A time-limited GET URL for ``path`` (``redirectBlobURL``)."""
        key = self._key(self._rel(path))
        with _translated():
            url: str = self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key},
                ExpiresIn=self.settings.presign_seconds)
        return url

    # -- looking ------------------------------------------------------------------------------

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            with _translated():
                head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=key)
                return head
        except PathNotFound:
            return None

    def _has_children(self, rel: str) -> bool:
        if not rel and not self.prefix:
            return True
        with _translated():
            page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self._dir_prefix(rel), MaxKeys=1)
        return bool(page.get("KeyCount"))

    def stat(self, path: str) -> FileInfo:
        rel = self._rel(path)
        if not rel:
            return FileInfo(0, 0.0, True)
        head = self._head(self._key(rel))
        if head is None:
            if self._has_children(rel):
                return FileInfo(0, 0.0, True)
            raise PathNotFound(rel.rpartition("/")[2])
        appending = _appending(head)
        size = appending.size if appending else int(head["ContentLength"])
        mtime = head["LastModified"].timestamp()
        etag = int(hashlib.sha1(str(head.get("ETag")).encode()).hexdigest()[:15], 16)
        return FileInfo(size, mtime, False, (size, int(mtime * 1e9), etag))

    def exists(self, path: str) -> bool:
        rel = self._rel(path)
        return not rel or self._head(self._key(rel)) is not None or self._has_children(rel)

    def is_dir(self, path: str) -> bool:
        rel = self._rel(path)
        return not rel or self._has_children(rel)

    def list_dir(self, path: str) -> list[str]:
        rel = self._rel(path)
        prefix = self._dir_prefix(rel)
        names: set[str] = set()
        found = not rel
        with _translated():
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/")
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    names.add(common["Prefix"][len(prefix):].rstrip("/"))
                    found = True
                for item in page.get("Contents", []):
                    found = True
                    if item["Key"] != prefix:  # the directory's own marker
                        names.add(item["Key"][len(prefix):])
        if not found:
            raise PathNotFound(rel.rpartition("/")[2])
        return sorted(names)

    # -- reading ------------------------------------------------------------------------------

    def read_bytes(self, path: str) -> bytes:
        with self.open_read(path) as f:
            return f.read()

    def open_read(self, path: str, offset: int = 0) -> BinaryIO:
        """A streaming reader from ``offset`` (a ranged GET); an appended file is sealed first."""
        key = self._key(self._rel(path))
        for _ in range(2):
            response = self._get(key, offset)
            if response is None:
                return io.BytesIO(b"")
            appending = _appending(response)
            if appending is None or appending.upload_id is None:
                body: BinaryIO = response["Body"]
                return body
            response["Body"].close()
            self._seal(key, appending)
        raise StorageError("object changed while it was being read")

    def _get(self, key: str, offset: int) -> dict[str, Any] | None:
        """GetObject from ``offset``; None when the offset is at or past the end."""
        extra = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with _translated():
                response: dict[str, Any] = self.client.get_object(Bucket=self.bucket, Key=key, **extra)
                return response
        except StorageError as exc:
            if "InvalidRange" in str(exc):
                return None
            raise

    def iter_chunks(self, path: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        with self.open_read(path) as f:
            while chunk := _read_full(f, chunk_size):
                yield chunk

    # -- writing ------------------------------------------------------------------------------

    def _put(self, key: str, body: bytes, metadata: dict[str, str] | None = None) -> None:
        with _translated():
            self.client.put_object(Bucket=self.bucket, Key=key, Body=body, Metadata=metadata or {},
                                   **self._object_args())

    def _object_args(self) -> dict[str, str]:
        args: dict[str, str] = {}
        if self.settings.storage_class:
            args["StorageClass"] = self.settings.storage_class
        if self.settings.encrypt:
            args["ServerSideEncryption"] = "aws:kms" if self.settings.key_id else "AES256"
            if self.settings.key_id:
                args["SSEKMSKeyId"] = self.settings.key_id
        return args

    def make_dirs(self, path: str) -> None:
        rel = self._rel(path)
        if rel:
            self._put(self._dir_prefix(rel), b"")

    def write_atomic(self, path: str, chunks: Iterable[bytes]) -> int:
        """One PutObject for a small stream, else a multipart upload holding one part in memory."""
        key = self._key(self._rel(path))
        buffer = bytearray()
        upload: _Multipart | None = None
        size = 0
        try:
            for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                if len(buffer) >= self.part_size:
                    if upload is None:
                        upload = self._start_multipart(key)
                    upload.send(bytes(buffer))
                    buffer.clear()
            if upload is None:
                self._put(key, bytes(buffer))
            else:
                if buffer:
                    upload.send(bytes(buffer))
                upload.complete(upload.parts)
        except BaseException:
            if upload is not None:
                upload.abort()
            raise
        return size

    def create(self, path: str) -> None:
        key = self._key(self._rel(path))
        if self._head(key) is not None:
            raise StorageError("file exists")
        self._put(key, b"")

    def append(self, path: str, chunks: Iterable[bytes]) -> int:
        """Append to a file, keeping the progress on its key (see the module docstring)."""
        key = self._key(self._rel(path))
        head = self._head(key)
        if head is None:
            raise PathNotFound(path.rpartition("/")[2])
        state = _appending(head) or _Appending(None, int(head["ContentLength"]), 0)
        upload: _Multipart | None = None
        started_here = False
        if state.upload_id is not None:
            upload = _Multipart(self, key, state.upload_id, [])
        # A large sealed file is not re-read: its bytes become the first parts by server-side copy.
        copy_existing = state.upload_id is None and state.size >= self.part_size
        buffer = bytearray() if copy_existing else bytearray(self._tail(key))
        added = 0
        try:
            for chunk in chunks:
                buffer += chunk
                added += len(chunk)
                if len(buffer) >= self.part_size:
                    if upload is None:
                        upload, started_here = self._start_appending(key, state, copy_existing), True
                    upload.send(bytes(buffer), number=state.parts + len(upload.parts) + 1)
                    buffer.clear()
            if not added:
                return state.size
            if upload is None and copy_existing:
                upload, started_here = self._start_appending(key, state, copy_existing), True
            new_size = state.size + added
            if upload is None:
                self._put(key, bytes(buffer))
            else:
                self._put(key, bytes(buffer), {META_UPLOAD: upload.upload_id, META_SIZE: str(new_size),
                                               META_PARTS: str(state.parts + len(upload.parts))})
        except BaseException:
            if started_here and upload is not None:
                upload.abort()
            raise
        return new_size

    def _tail(self, key: str) -> bytes:
        response = self._get(key, 0)
        if response is None:
            return b""
        with response["Body"] as body:
            data: bytes = body.read()
        return data

    def _start_appending(self, key: str, state: _Appending, copy_existing: bool) -> _Multipart:
        """A multipart upload on ``key``; with ``copy_existing`` its first parts copy the current bytes."""
        upload = self._start_multipart(key)
        if copy_existing:
            upload.copy_ranges(key, state.size, self.settings.copy_chunk)
            state.parts = len(upload.parts)
            upload.parts = []
        return upload

    def _seal(self, key: str, state: _Appending) -> None:
        """Complete an appended file's multipart upload in place: afterwards it is a plain object."""
        assert state.upload_id is not None
        tail = self._tail(key)
        upload = _Multipart(self, key, state.upload_id, [])
        count = state.parts
        if tail:
            count += 1
            upload.send(tail, number=count)
        with _translated():
            pages = self.client.get_paginator("list_parts").paginate(
                Bucket=self.bucket, Key=key, UploadId=state.upload_id)
            etags = {p["PartNumber"]: p["ETag"] for page in pages for p in page.get("Parts", [])}
        missing = [n for n in range(1, count + 1) if n not in etags]
        if missing:
            raise StorageError(f"upload parts {missing[:5]} are missing")
        upload.complete([{"PartNumber": n, "ETag": etags[n]} for n in range(1, count + 1)])

    def _start_multipart(self, key: str) -> _Multipart:
        with _translated():
            response = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **self._object_args())
        return _Multipart(self, key, response["UploadId"], [])

    # -- moving and removing ------------------------------------------------------------------

    def _sealed_size(self, key: str, name: str) -> int:
        """The size of the plain object at ``key``, sealing an appended one first."""
        head = self._head(key)
        if head is None:
            raise PathNotFound(name)
        appending = _appending(head)
        if appending is not None and appending.upload_id is not None:
            self._seal(key, appending)
            return appending.size
        return int(head["ContentLength"])

    def _copy(self, src_key: str, dst_key: str, size: int) -> None:
        if size <= self.settings.copy_threshold:
            with _translated():
                self.client.copy_object(Bucket=self.bucket, Key=dst_key, MetadataDirective="REPLACE",
                                        CopySource={"Bucket": self.bucket, "Key": src_key},
                                        **self._object_args())
            return
        upload = self._start_multipart(dst_key)
        try:
            upload.copy_ranges(src_key, size, self.settings.copy_chunk)
            upload.complete(upload.parts)
        except BaseException:
            upload.abort()
            raise

    def move(self, src: str, dst: str) -> None:
        """Server-side copy, then delete the source (S3 cannot rename)."""
        src_key, dst_key = self._key(self._rel(src)), self._key(self._rel(dst))
        size = self._sealed_size(src_key, src)
        if src_key == dst_key:
            return
        self._copy(src_key, dst_key, size)
        with _translated():
            self.client.delete_object(Bucket=self.bucket, Key=src_key)

    def link(self, src: str, dst: str) -> bool:
        """S3 has no hard links: a server-side copy, independent of the source afterwards."""
        src_key, dst_key = self._key(self._rel(src)), self._key(self._rel(dst))
        size = self._sealed_size(src_key, src)
        if src_key != dst_key:
            self._copy(src_key, dst_key, size)
        return True

    def delete(self, path: str) -> None:
        rel = self._rel(path)
        key = self._key(rel)
        head = self._head(key)
        if head is None:
            raise PathNotFound(rel.rpartition("/")[2])
        appending = _appending(head)
        with _translated():
            self.client.delete_object(Bucket=self.bucket, Key=key)
        if appending is not None and appending.upload_id is not None:
            _Multipart(self, key, appending.upload_id, []).abort()

    def delete_tree(self, path: str) -> None:
        rel = self._rel(path)
        if not rel:
            raise PathOutsideRoot("refusing to delete the root")
        prefix = self._dir_prefix(rel)
        deleted = 0
        with _translated():
            listing = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in listing:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                for start in range(0, len(keys), DELETE_BATCH):
                    self.client.delete_objects(Bucket=self.bucket,
                                               Delete={"Objects": keys[start:start + DELETE_BATCH],
                                                       "Quiet": True})
                deleted += len(keys)
            uploads = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix)
            for page in uploads:
                for item in page.get("Uploads", []):
                    _Multipart(self, item["Key"], item["UploadId"], []).abort()
        if not deleted:
            raise PathNotFound(rel.rpartition("/")[2])


@dataclass
class _Multipart:
    """One S3 multipart upload being written."""

    driver: S3Driver
    key: str
    upload_id: str
    parts: list[dict[str, Any]]

    def send(self, body: bytes, number: int | None = None) -> None:
        number = number if number is not None else len(self.parts) + 1
        with _translated():
            response = self.driver.client.upload_part(Bucket=self.driver.bucket, Key=self.key,
                                                      UploadId=self.upload_id, PartNumber=number, Body=body)
        self.parts.append({"PartNumber": number, "ETag": response["ETag"]})

    def copy_ranges(self, src_key: str, size: int, chunk: int) -> None:
        """Copy ``src_key`` in as parts of at least ``chunk`` bytes each (S3 needs ≥ 5 MiB but the last)."""
        count = max(1, size // max(chunk, MIN_PART_SIZE))
        step = -(-size // count)
        for start in range(0, size, step):
            end = min(start + step, size) - 1
            with _translated():
                response = self.driver.client.upload_part_copy(
                    Bucket=self.driver.bucket, Key=self.key, UploadId=self.upload_id,
                    PartNumber=len(self.parts) + 1, CopySourceRange=f"bytes={start}-{end}",
                    CopySource={"Bucket": self.driver.bucket, "Key": src_key})
            self.parts.append({"PartNumber": len(self.parts) + 1, "ETag": response["CopyPartResult"]["ETag"]})

    def complete(self, parts: list[dict[str, Any]]) -> None:
        with _translated():
            self.driver.client.complete_multipart_upload(
                Bucket=self.driver.bucket, Key=self.key, UploadId=self.upload_id,
                MultipartUpload={"Parts": parts})

    def abort(self) -> None:
        try:
            with _translated():
                self.driver.client.abort_multipart_upload(Bucket=self.driver.bucket, Key=self.key,
                                                          UploadId=self.upload_id)
        except StorageError:
            pass  # already gone; a bucket lifecycle rule reaps any that stay


def _appending(response: dict[str, Any]) -> _Appending | None:
    """The append record in an object's metadata, if it carries one."""
    metadata = response.get("Metadata") or {}
    if META_UPLOAD not in metadata:
        return None
    try:
        return _Appending(metadata[META_UPLOAD], int(metadata[META_SIZE]), int(metadata[META_PARTS]))
    except (KeyError, ValueError):
        raise StorageError("unreadable upload record") from None


def _read_full(f: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at the end of the stream."""
    data = f.read(size)
    while data and len(data) < size:
        more = f.read(size - len(data))
        if not more:
            break
        data += more
    return data


@contextmanager
def _translated() -> Iterator[None]:
    """Turn boto errors into the drivers' vocabulary."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in _MISSING:
            raise PathNotFound(str(error.get("Key", "")).rpartition("/")[2]) from exc
        if code in _FULL:
            raise StorageFull("the bucket refuses more data") from exc
        raise StorageError(f"s3: {code}: {error.get('Message', '')}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"s3: {exc}") from exc
