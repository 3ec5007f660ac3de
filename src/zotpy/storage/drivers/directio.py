"""Large writes that bypass the page cache (``O_DIRECT``), for the local driver.

A pushed layer is written once and often not read again soon; through the page cache every byte is
copied into a freshly allocated page, which costs more than the device write on a machine whose
free memory is cold (a VM that hands idle memory back to its host: ~400 MB/s against ~2 GB/s for
direct writes here), and the layers pulls are served from get evicted to make room. So a stream
that fills one buffer goes to the device directly, as object stores such as MinIO do: the bytes are
copied into page-aligned buffers that are reused, and each full buffer is written from gevent's
threadpool while the next one fills. Shorter streams (manifests, index.json, configs) and the
unaligned head and tail of a stream take the ordinary buffered path, as does a filesystem that
refuses ``O_DIRECT`` (tmpfs, some network filesystems).
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import threading
from collections.abc import Callable, Iterable

from zotpy.offload import start_off_loop

ALIGN = 4096
"""Offset, length and memory alignment used for direct writes (covers 512- and 4096-byte devices)."""

BUFFER_SIZE = 1024 * 1024
"""One direct write; as fast as larger ones on the devices measured, and small in RSS."""

POOL_LIMIT = 16
"""Idle buffers a process keeps (two per upload in progress are in use)."""

_O_DIRECT = getattr(os, "O_DIRECT", 0)


class _BufferPool:
    """Page-aligned buffers, reused so that their pages stay resident and warm."""

    def __init__(self) -> None:
        self._idle: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return mmap.mmap(-1, BUFFER_SIZE)

    def give(self, buffer: mmap.mmap) -> None:
        with self._lock:
            if len(self._idle) < POOL_LIMIT:
                self._idle.append(buffer)
                return
        buffer.close()


_POOL = _BufferPool()


def write_stream(fd: int, chunks: Iterable[bytes], offset: int, *, direct: bool) -> int:
    """Write ``chunks`` into ``fd`` (opened for writing, without ``O_DIRECT``) from ``offset``;
    returns the number of bytes written. With ``direct`` false every byte is buffered."""
    if not direct or not _O_DIRECT:
        written = 0
        for chunk in chunks:
            _pwrite_all(fd, memoryview(chunk), offset + written)
            written += len(chunk)
        return written
    sink = _DirectSink(fd, offset)
    try:
        for chunk in chunks:
            sink.feed(chunk)
        sink.finish()
    finally:
        sink.release()
    return sink.position - offset


class _DirectSink:
    """Fills aligned buffers and writes each full one directly while the next one fills."""

    def __init__(self, fd: int, offset: int) -> None:
        self.fd = fd
        self.position = offset  # file offset of the first byte in the current buffer
        self.buffer = _POOL.take()
        self.spare: mmap.mmap | None = None
        self.fill = 0
        self.direct: bool | None = None  # undecided until the first buffer is full
        self.pending: Callable[[], None] | None = None

    def feed(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            n = min(len(view), BUFFER_SIZE - self.fill)
            self.buffer[self.fill:self.fill + n] = view[:n]
            self.fill += n
            view = view[n:]
            if self.fill == BUFFER_SIZE:
                self._flush_full()

    def _flush_full(self) -> None:
        head = -self.position % ALIGN
        if head:
            # An append to an unaligned size: the bytes up to the next boundary go through the cache.
            self._wait()
            _pwrite_all(self.fd, memoryview(self.buffer)[:head], self.position)
            self.buffer.move(0, head, self.fill - head)
            self.fill -= head
            self.position += head
            return
        if self.direct is None:
            self.direct = _set_direct(self.fd, True)
        if not self.direct:
            _pwrite_all(self.fd, memoryview(self.buffer)[:self.fill], self.position)
            self.position += self.fill
            self.fill = 0
            return
        self._wait()
        full, self.buffer = self.buffer, self.spare or _POOL.take()
        self.spare = full
        self.pending = start_off_loop(_pwrite_direct, self.fd, full, self.position)
        self.position += BUFFER_SIZE
        self.fill = 0

    def finish(self) -> None:
        """Write what the last buffer holds: its aligned part directly, the tail through the cache."""
        self._wait()
        aligned = self.fill - self.fill % ALIGN if self.direct else 0
        if aligned:
            _pwrite_direct(self.fd, self.buffer, self.position, aligned)
        if self.direct:
            _set_direct(self.fd, False)
        if self.fill > aligned:
            _pwrite_all(self.fd, memoryview(self.buffer)[aligned:self.fill], self.position + aligned)
        self.position += self.fill
        self.fill = 0

    def _wait(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending()

    def release(self) -> None:
        """Return the buffers once no write uses them (also after a failed stream)."""
        try:
            self._wait()
        except OSError:
            pass  # the stream already failed; the caller removes or truncates what was written
        finally:
            _POOL.give(self.buffer)
            if self.spare is not None:
                _POOL.give(self.spare)


def _set_direct(fd: int, on: bool) -> bool:
    """Switch ``O_DIRECT`` on the descriptor; False when the filesystem refuses it."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | _O_DIRECT) if on else (flags & ~_O_DIRECT))
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.ENOTSUP):
            return False
        raise
    return True


def _pwrite_direct(fd: int, buffer: mmap.mmap, position: int, length: int = BUFFER_SIZE) -> None:
    """A direct write; a filesystem that accepted the flag but refuses the write gets it buffered."""
    view = memoryview(buffer)[:length]
    try:
        _pwrite_all(fd, view, position)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        _set_direct(fd, False)
        _pwrite_all(fd, view, position)


def _pwrite_all(fd: int, view: memoryview, position: int) -> None:
    while view:
        written = os.pwrite(fd, view, position)
        view = view[written:]
        position += written
