"""The local filesystem driver: atomic writes by temp file + rename, hard links for dedupe."""

from __future__ import annotations

import errno
import os
import shutil
import stat
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from zotpy.storage.drivers.base import FileInfo, PathNotFound, PathOutsideRoot, StorageError, StorageFull
from zotpy.storage.drivers.directio import write_stream

CHUNK_SIZE = 1024 * 1024
TEMP_PREFIX = ".tmp-"


class LocalDriver:
    """Stores bytes under ``root``; every path is checked to stay inside it."""

    hard_links = True

    def __init__(self, root: str, *, commit: bool = False, direct_writes: bool = True) -> None:
        self.root = os.path.realpath(root)
        self.commit = commit
        self.direct_writes = direct_writes  # large streams bypass the page cache (directio.py)
        self._confined: set[str] = set()
        os.makedirs(self.root, exist_ok=True)

    def _abs(self, path: str) -> str:
        if "\x00" in path or path.startswith("/"):
            raise PathOutsideRoot("invalid path")
        parts = [p for p in path.split("/") if p not in ("", ".")]
        if ".." in parts:
            raise PathOutsideRoot("invalid path")
        if not parts:
            return self.root
        full = self.root + "/" + "/".join(parts)
        # Symlinks inside the root could still point out, the last component included; refuse any that
        # do. Directories are resolved once per process (a full realpath costs a syscall per component),
        # the last component with one lstat per call.
        parent = full.rpartition("/")[0]
        if parent not in self._confined:
            self._check_inside(parent)
            if len(self._confined) > 100_000:
                self._confined.clear()
            self._confined.add(parent)
        try:
            is_link = stat.S_ISLNK(os.lstat(full).st_mode)
        except OSError:
            is_link = False  # nothing there yet: the caller creates it or reports it missing
        if is_link:
            self._check_inside(full)
        return full

    def _check_inside(self, path: str) -> None:
        resolved = os.path.realpath(path)
        if resolved != self.root and not resolved.startswith(self.root + os.sep):
            raise PathOutsideRoot("invalid path")

    def local_path(self, path: str) -> str | None:
        """The absolute filesystem path (only local drivers have one)."""
        return self._abs(path)

    def presigned_url(self, path: str) -> str | None:
        """None: a local file has no URL of its own, so blob GETs stream it."""
        self._abs(path)
        return None

    def stat(self, path: str) -> FileInfo:
        with _translated():
            st = os.stat(self._abs(path))
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        return FileInfo(st.st_size, st.st_mtime, stat.S_ISDIR(st.st_mode), identity, st.st_ctime,
                        (st.st_dev, st.st_ino))

    def exists(self, path: str) -> bool:
        return os.path.exists(self._abs(path))

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(self._abs(path))

    def read_bytes(self, path: str) -> bytes:
        with _translated(), open(self._abs(path), "rb") as f:
            return f.read()

    def open_read(self, path: str, offset: int = 0) -> BinaryIO:
        with _translated():
            f = open(self._abs(path), "rb")  # noqa: SIM115 - the caller streams and closes it
        if offset:
            f.seek(offset)
        return f

    def iter_chunks(self, path: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        with self.open_read(path) as f:
            while chunk := f.read(chunk_size):
                yield chunk

    def make_dirs(self, path: str) -> None:
        with _translated():
            os.makedirs(self._abs(path), exist_ok=True)

    def write_atomic(self, path: str, chunks: Iterable[bytes]) -> int:
        """Write to a temp file beside ``path`` and rename it over; returns the size written."""
        target = self._abs(path)
        directory = os.path.dirname(target)
        tmp = os.path.join(directory, f"{TEMP_PREFIX}{uuid.uuid4().hex}")
        with _translated():
            os.makedirs(directory, exist_ok=True)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
                try:
                    size = write_stream(fd, chunks, 0, direct=self.direct_writes)
                    if self.commit:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, target)
            except BaseException:
                _remove_quietly(tmp)
                raise
            if self.commit:
                _fsync_dir(directory)
        return size

    def create(self, path: str) -> None:
        target = self._abs(path)
        with _translated():
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "xb"):
                pass

    def append(self, path: str, chunks: Iterable[bytes]) -> int:
        """Append to an existing file; returns its new size."""
        with _translated():
            fd = os.open(self._abs(path), os.O_WRONLY | os.O_CLOEXEC)
            try:
                start = os.fstat(fd).st_size
                try:
                    written = write_stream(fd, chunks, start, direct=self.direct_writes)
                except BaseException:
                    # A chunk that did not arrive whole leaves no trace: the client resumes from `start`.
                    os.ftruncate(fd, start)
                    raise
                if self.commit:
                    os.fsync(fd)
                return start + written
            finally:
                os.close(fd)

    def move(self, src: str, dst: str) -> None:
        source, target = self._abs(src), self._abs(dst)
        with _translated():
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(source, target)
            if self.commit:
                _fsync_dir(os.path.dirname(target))

    def link(self, src: str, dst: str) -> bool:
        """Hard-link ``src`` at ``dst`` atomically; False when the filesystem cannot link."""
        source, target = self._abs(src), self._abs(dst)
        directory = os.path.dirname(target)
        tmp = os.path.join(directory, f"{TEMP_PREFIX}{uuid.uuid4().hex}")
        with _translated():
            os.makedirs(directory, exist_ok=True)
            try:
                os.link(source, tmp)
            except OSError as exc:
                if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    return False
                raise
            try:
                os.replace(tmp, target)
            except BaseException:
                _remove_quietly(tmp)
                raise
        return True

    def delete(self, path: str) -> None:
        with _translated():
            os.unlink(self._abs(path))

    def delete_tree(self, path: str) -> None:
        target = self._abs(path)
        if target == self.root:
            raise PathOutsideRoot("refusing to delete the root")
        with _translated():
            shutil.rmtree(target)

    def list_dir(self, path: str) -> list[str]:
        with _translated():
            return sorted(os.listdir(self._abs(path)))


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


@contextmanager
def _translated() -> Iterator[None]:
    """Turn OS errors into the drivers' vocabulary."""
    try:
        yield
    except FileNotFoundError as exc:
        raise PathNotFound(os.path.basename(exc.filename or "")) from exc
    except NotADirectoryError as exc:
        raise PathNotFound("not a directory") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull("no space left on the storage device") from exc
        raise StorageError(exc.strerror or "storage error") from exc
