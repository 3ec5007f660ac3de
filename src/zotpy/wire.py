"""gunicorn's HTTP layer tuned for a registry's traffic, installed in each gevent worker.

Large blobs: request bodies read straight from the socket, responses sent with the kernel's
``sendfile`` and a send buffer sized for peers on this host. Small answers (manifests, tags, JSON
errors): the status line, headers and body in one ``send``, and the ``Date`` header formatted once a
second. Each patch keeps gunicorn's behaviour for everything it does not speed up.
"""

from __future__ import annotations

import io
import ipaddress
import os
import socket
import time
from typing import Any

import gevent
import gevent.socket
from gunicorn import util
from gunicorn.http import wsgi
from gunicorn.http.body import Body, LengthReader
from gunicorn.http.unreader import SocketUnreader


def install() -> None:
    """Install every patch of this module (idempotent)."""
    install_zero_copy_sendfile()
    install_lean_body_reads()
    install_single_send_responses()
    install_cached_http_date()


COALESCE_MAX = 64 * 1024
"""Bodies up to this size, written whole in one piece, leave in the same ``send`` as the headers."""


class _HeldBytes:
    """Stands in for the socket while gunicorn writes the headers, keeping what it sends."""

    def __init__(self) -> None:
        self.data = b""

    def sendall(self, data: bytes) -> None:
        self.data += data


def install_single_send_responses() -> None:
    """Send the headers and a small whole body with one ``send``.

    gunicorn writes the status line and headers, then the body, with a ``send`` each: two system calls
    and two segments for every manifest, tag list or error. Only a body of known length written in
    one piece is joined; streamed, chunked and bodiless (HEAD, 204, 304) answers keep gunicorn's way.
    """
    if getattr(wsgi.Response.write, "zotpy_single_send", False):
        return
    original = wsgi.Response.write

    def write(self: wsgi.Response, arg: bytes) -> None:
        if (self.headers_sent or not isinstance(arg, bytes) or self.chunked or self._omits_body
                or self.response_length != len(arg) or len(arg) > COALESCE_MAX):
            original(self, arg)
            return
        sock, held = self.sock, _HeldBytes()
        self.sock = held
        try:
            self.send_headers()
        finally:
            self.sock = sock
        self.sent += len(arg)
        util.write(sock, held.data + arg)

    write.zotpy_single_send = True  # type: ignore[attr-defined]
    wsgi.Response.write = write


def install_cached_http_date() -> None:
    """Format the ``Date`` header once a second instead of once per response."""
    if getattr(util.http_date, "zotpy_cached", False):
        return
    original = util.http_date
    cache: list[Any] = [None, ""]

    def http_date(timestamp: float | None = None) -> str:
        if timestamp is not None:
            return str(original(timestamp))
        second = int(time.time())
        if cache[0] != second:
            cache[1] = original(second)
            cache[0] = second
        return str(cache[1])

    http_date.zotpy_cached = True  # type: ignore[attr-defined]
    util.http_date = http_date


LEAN_READ_MIN = 64 * 1024
"""Body reads at least this large, with nothing buffered, take the lean path."""

LEAN_RECV_MAX = 1024 * 1024
"""Largest single ``recv`` of the lean path."""


def install_lean_body_reads() -> None:
    """Read large pieces of a request body of known length straight from the socket.

    gunicorn passes every received chunk through two ``BytesIO`` buffers (the body's and the
    socket reader's), each written, read back whole and sliced: several extra copies of every
    pushed byte, close to a third of a worker's CPU in a 64 MiB push. A read of a large piece takes
    what the socket reader already holds, asks the socket for at most what the body still holds and
    joins the pieces once; other reads (chunked bodies, small reads) keep gunicorn's way.
    """
    if getattr(Body.read, "zotpy_lean", False):
        return
    original = Body.read

    def read(self: Body, size: int | None = None) -> bytes:
        reader = self.reader
        if not (isinstance(size, int) and size >= LEAN_READ_MIN and isinstance(reader, LengthReader)
                and isinstance(reader.unreader, SocketUnreader) and not self.buf.tell()):
            return bytes(original(self, size))
        unreader = reader.unreader
        wanted = min(size, reader.length)
        pieces: list[bytes] = []
        unreader.buf.seek(0, os.SEEK_END)
        if unreader.buf.tell():  # read ahead with the headers: it comes first
            buffered = unreader.buf.getvalue()
            unreader.buf = io.BytesIO()
            if len(buffered) > wanted:
                unreader.buf.write(buffered[wanted:])
                buffered = buffered[:wanted]
            pieces.append(buffered)
        held = sum(map(len, pieces))
        while held < wanted:
            piece = unreader.sock.recv(min(wanted - held, LEAN_RECV_MAX))
            if not piece:
                break
            pieces.append(piece)
            held += len(piece)
        reader.length -= held
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    read.zotpy_lean = True  # type: ignore[attr-defined]
    Body.read = read


LOCAL_PEER_SNDBUF = 256 * 1024
"""Send buffer for blob bodies to a peer on this host (a local nginx, a local client)."""


def install_zero_copy_sendfile() -> None:
    """Make gevent sockets send files with ``os.sendfile``.

    gunicorn serves ``wsgi.file_wrapper`` bodies through ``socket.sendfile``, which gevent implements
    by reading and sending 8 KiB at a time in Python; blob pulls then cost a copy through user space
    per 8 KiB. This keeps the kernel's zero-copy path and waits cooperatively when the socket is full.
    """
    gevent_socket = gevent.socket.socket
    if getattr(gevent_socket.sendfile, "zotpy_zero_copy", False):
        return
    fallback = gevent_socket.sendfile

    def sendfile(sock: Any, file: Any, offset: int = 0, count: int | None = None) -> int:
        try:
            in_fd = file.fileno()
        except (AttributeError, OSError, ValueError):
            return fallback(sock, file, offset, count)
        out_fd = sock.fileno()
        _fit_send_buffer_to_peer(sock)
        if count is None:
            count = os.fstat(in_fd).st_size - offset
        sent_total = 0
        while sent_total < count:
            try:
                sent = os.sendfile(out_fd, in_fd, offset + sent_total, min(count - sent_total, 1 << 30))
            except BlockingIOError:
                gevent.socket.wait_write(out_fd, timeout=sock.gettimeout())
                continue
            if sent == 0:
                break
            sent_total += sent
        file.seek(offset + sent_total)
        return sent_total

    sendfile.zotpy_zero_copy = True  # type: ignore[attr-defined]
    gevent_socket.sendfile = sendfile


def _fit_send_buffer_to_peer(sock: Any) -> None:
    """Keep the send buffer small towards a peer on this host.

    Over loopback the bytes in flight are the receiver's queue: with the buffer grown to megabytes by
    autotuning, each copy misses the CPU caches, and a local peer (nginx in front, as deploy/ sets it
    up) reads about half as fast as with 256 KiB (benchmarks/bench.py pull: ~3,900 vs ~1,900 MiB/s on
    2 cores). Remote peers keep the kernel's autotuning, which a long round trip needs.
    """
    try:
        address = ipaddress.ip_address(sock.getpeername()[0].split("%", 1)[0])
        mapped = getattr(address, "ipv4_mapped", None)
        if (mapped or address).is_loopback:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, LOCAL_PEER_SNDBUF)
    except (OSError, ValueError, TypeError, IndexError):
        pass  # a unix socket or a closed connection: leave the buffer as it is
