"""Shared plumbing for the zotpy benchmarks: a lean HTTP/1.1 client, registry protocol helpers,
server spawning (zotpy under gunicorn, CNCF Distribution) and /proc based CPU, RSS and disk probes.

Standard library only, so the load generator stays cheap: http.client parses every response header
through the email package, which costs more client CPU per small request than a registry spends
answering a manifest GET. The client here parses just what a registry returns.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1 << 20
REPO_ROOT = Path(__file__).resolve().parent.parent
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
MANIFEST_ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
READ_CHUNK = MiB
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A registry answered something the workload did not expect."""

    def __init__(self, what: str, status: int | None = None, body: bytes = b"") -> None:
        detail = f"{what}: HTTP {status}" if status is not None else what
        if body:
            detail += " " + body[:400].decode("utf-8", "replace").strip()
        super().__init__(detail)
        self.status = status


def parse_size(text: str) -> int:
    """'64M', '2G', '512k' or a plain byte count -> bytes (binary multiples)."""
    text = text.strip().upper().removesuffix("B").removesuffix("I")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def human_size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return f"{n}B"


# --------------------------------------------------------------------------- HTTP client


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    length: int = 0  # body bytes received (also when the body was discarded)
    digest: str = ""  # sha256 of the body when the caller asked for it

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


Body = bytes | memoryview | Iterable[bytes | memoryview] | None


class Connection:
    """One keep-alive HTTP/1.1 connection to a registry; not thread safe, use one per thread."""

    def __init__(self, base_url: str, timeout: float = 600.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme != "http":
            raise ValueError(f"only http:// URLs are supported, got {base_url!r}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.host_header = parts.netloc
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._buf = bytearray()
        self._scratch = bytearray(READ_CHUNK)

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = None
        self._buf.clear()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self._buf.clear()
        return sock

    def _usable_socket(self) -> tuple[socket.socket, bool]:
        """The open socket (reused=True) unless the peer closed it while idle (keep-alive timeout)."""
        sock = self.sock
        if sock is not None:
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable and not self._buf:
                return sock, True
            self.close()
        return self._connect(), False

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str] | None = None,
        body: Body = None,
        length: int | None = None,
        discard: bool = False,
        hash_body: bool = False,
    ) -> Response:
        """Send one request and read the whole response.

        ``body`` is bytes or an iterable of bytes-like pieces (sent as they come, never joined);
        ``length`` is required for an iterable unless ``headers`` asks for chunked transfer.
        With ``discard`` the response body is read in 1 MiB pieces and dropped (``length`` counts it).
        """
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}"]
        chunked = False
        if headers:
            lines.extend(f"{k}: {v}" for k, v in headers.items())
            chunked = headers.get("Transfer-Encoding", "").lower() == "chunked"
        single = isinstance(body, bytes | bytearray | memoryview)
        if single:
            length = len(body)  # type: ignore[arg-type]
        if body is None:
            if method in ("POST", "PUT", "PATCH"):
                lines.append("Content-Length: 0")
        elif not chunked:
            if length is None:
                raise ValueError("an iterable body needs its length")
            lines.append(f"Content-Length: {length}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        for attempt in (0, 1):
            sock, reused = self._usable_socket()
            try:
                if single and len(body) <= 64 * 1024:  # type: ignore[arg-type]
                    sock.sendall(head + bytes(body))  # type: ignore[arg-type]
                else:
                    sock.sendall(head)
                    if single:
                        sock.sendall(body)  # type: ignore[arg-type]
                    elif body is not None:
                        self._send_pieces(sock, body, chunked)  # type: ignore[arg-type]
                return self._read_response(method, discard, hash_body)
            except (ConnectionResetError, BrokenPipeError, _PeerClosed) as exc:
                self.close()
                # A reused connection may have been closed by the server just as we sent: retry once,
                # but only when the body can be sent again.
                if attempt == 0 and reused and (body is None or single):
                    continue
                raise BenchError(f"{method} {target}: connection lost ({exc!r})") from exc
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")

    @staticmethod
    def _send_pieces(sock: socket.socket, pieces: Iterable[bytes | memoryview], chunked: bool) -> None:
        for piece in pieces:
            if chunked:
                if len(piece):
                    sock.sendall(b"%x\r\n" % len(piece))
                    sock.sendall(piece)
                    sock.sendall(b"\r\n")
            else:
                sock.sendall(piece)
        if chunked:
            sock.sendall(b"0\r\n\r\n")

    def _fill(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(256 * 1024)
        if not data:
            raise _PeerClosed("connection closed by peer")
        self._buf += data

    def _read_line(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buf[:end])
                del self._buf[: end + 2]
                return line
            self._fill()

    def _read_response(self, method: str, discard: bool, hash_body: bool) -> Response:
        while True:
            while (end := self._buf.find(b"\r\n\r\n")) < 0:
                self._fill()
            head = bytes(self._buf[:end]).decode("latin-1")
            del self._buf[: end + 4]
            status_line, _, rest = head.partition("\r\n")
            status = int(status_line.split(" ", 2)[1])
            headers: dict[str, str] = {}
            for line in rest.split("\r\n"):
                name, _, value = line.partition(":")
                key = name.strip().lower()
                value = value.strip()
                headers[key] = f"{headers[key]}, {value}" if key in headers else value
            if status != 100:
                break
        resp = Response(status, headers)
        hasher = hashlib.sha256() if hash_body else None
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            pass
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self._read_line().split(b";")[0], 16)
                if size == 0:
                    while self._read_line():  # trailers
                        pass
                    break
                self._read_exact(size, parts, hasher, discard, resp)
                self._read_line()
            resp.body = b"".join(parts)
        elif "content-length" in headers:
            parts = []
            self._read_exact(int(headers["content-length"]), parts, hasher, discard, resp)
            resp.body = b"".join(parts)
        else:  # body delimited by close
            parts = []
            with contextlib.suppress(_PeerClosed):
                while True:
                    self._fill()
                    parts.append(bytes(self._buf))
                    resp.length += len(self._buf)
                    self._buf.clear()
            resp.body = b"".join(parts)
            self.close()
        if hasher is not None:
            resp.digest = "sha256:" + hasher.hexdigest()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return resp

    def _read_exact(
        self, n: int, parts: list[bytes], hasher: hashlib._Hash | None, discard: bool, resp: Response
    ) -> None:
        take = min(n, len(self._buf))
        if take:
            chunk = bytes(self._buf[:take])
            del self._buf[:take]
            if hasher is not None:
                hasher.update(chunk)
            if not discard:
                parts.append(chunk)
            n -= take
            resp.length += take
        if n == 0:
            return
        assert self.sock is not None
        if discard:
            view = memoryview(self._scratch)
            while n:
                got = self.sock.recv_into(view, min(n, READ_CHUNK))
                if not got:
                    raise _PeerClosed("connection closed inside a body")
                if hasher is not None:
                    hasher.update(view[:got])
                n -= got
                resp.length += got
            return
        out = bytearray(n)
        view = memoryview(out)
        pos = 0
        while pos < n:
            got = self.sock.recv_into(view[pos:], min(n - pos, READ_CHUNK))
            if not got:
                raise _PeerClosed("connection closed inside a body")
            pos += got
        if hasher is not None:
            hasher.update(out)
        parts.append(bytes(out))
        resp.length += n


class _PeerClosed(Exception):
    pass


def target_of(location: str) -> str:
    """Path and query of a Location header, absolute or relative."""
    parts = urllib.parse.urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_query(target: str, **params: str) -> str:
    sep = "&" if "?" in target else "?"
    return target + sep + urllib.parse.urlencode(params)


# --------------------------------------------------------------------------- blobs and manifests


class BlobData:
    """A blob for the client side: a shared body plus a unique 32-byte tail, digest precomputed.

    Sharing the body keeps one copy of the bytes in the client however many distinct blobs a run
    pushes; the tail makes every blob's digest unique so no server can skip work it already did.
    """

    TAIL = 32

    def __init__(self, shared: memoryview, shared_hash: hashlib._Hash, tail: bytes) -> None:
        assert len(tail) == self.TAIL
        self.shared = shared
        self.tail = tail
        self.size = len(shared) + self.TAIL
        h = shared_hash.copy()
        h.update(tail)
        self.digest = "sha256:" + h.hexdigest()

    def pieces(self, start: int = 0, end: int | None = None, piece: int = 8 * MiB) -> Iterator[memoryview]:
        """Views over bytes [start, end) of the blob, at most ``piece`` bytes each (no copies)."""
        end = self.size if end is None else end
        cut = len(self.shared)
        pos = start
        while pos < end:
            if pos < cut:
                stop = min(end, cut, pos + piece)
                yield self.shared[pos:stop]
            else:
                stop = end
                yield memoryview(self.tail)[pos - cut : end - cut]
            pos = stop


class BlobFactory:
    """Makes unique blobs of one size from one seeded random body."""

    def __init__(self, size: int, seed: int) -> None:
        if size <= BlobData.TAIL:
            raise ValueError("blob size must exceed 32 bytes")
        import random

        self.size = size
        self._shared = memoryview(random.Random(seed).randbytes(size - BlobData.TAIL))
        self._hash = hashlib.sha256(self._shared)

    def make(self, label: str) -> BlobData:
        return BlobData(self._shared, self._hash, hashlib.sha256(label.encode()).digest())


def small_blob(label: str, size: int = 1024) -> tuple[bytes, str]:
    data = (hashlib.sha512(label.encode()).digest() * (size // 64 + 1))[:size]
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class ImageParts:
    """A config and a layer blob that the benchmark's manifests reference."""

    config: bytes
    config_digest: str
    layer: bytes
    layer_digest: str

    @classmethod
    def make(cls, label: str) -> ImageParts:
        layer, layer_digest = small_blob(f"layer-{label}", 2048)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
                "config": {"Labels": {"bench": label}},
            },
            sort_keys=True,
        ).encode()
        return cls(config, "sha256:" + hashlib.sha256(config).hexdigest(), layer, layer_digest)

    def manifest(self, unique: str) -> bytes:
        """An OCI image manifest over the parts; ``unique`` goes into an annotation."""
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.config_digest, "size": len(self.config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": self.layer_digest, "size": len(self.layer)}],
            "annotations": {
                "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
                "org.opencontainers.image.description": "zotpy benchmark image",
                "bench.unique": unique,
            },
        }
        return json.dumps(doc, separators=(",", ":")).encode()


class Registry:
    """Registry protocol steps over one Connection."""

    def __init__(self, base_url: str, mono_style: str = "post") -> None:
        self.base_url = base_url
        self.conn = Connection(base_url)
        self.mono_style = mono_style  # "post": single POST ?digest=; "post-put": POST then PUT with body

    def close(self) -> None:
        self.conn.close()

    def expect(self, resp: Response, what: str, *ok: int) -> Response:
        if resp.status not in ok:
            raise BenchError(what, resp.status, resp.body)
        return resp

    def start_upload(self, repo: str) -> str:
        resp = self.conn.request("POST", f"/v2/{repo}/blobs/uploads/")
        self.expect(resp, f"POST /v2/{repo}/blobs/uploads/", 202)
        return target_of(resp.header("location"))

    def push_monolithic(self, repo: str, data: Body, length: int, digest: str) -> None:
        octet = {"Content-Type": "application/octet-stream"}
        if self.mono_style == "post":
            target = with_query(f"/v2/{repo}/blobs/uploads/", digest=digest)
            resp = self.conn.request("POST", target, octet, data, length)
            self.expect(resp, f"POST {target}", 201)
            return
        location = self.start_upload(repo)
        resp = self.conn.request("PUT", with_query(location, digest=digest), octet, data, length)
        self.expect(resp, f"PUT {repo} upload ?digest=", 201)

    def push_chunked(self, repo: str, blob: BlobData, chunk: int) -> None:
        location = self.start_upload(repo)
        for start in range(0, blob.size, chunk):
            end = min(blob.size, start + chunk)
            headers = {"Content-Type": "application/octet-stream", "Content-Range": f"{start}-{end - 1}"}
            resp = self.conn.request("PATCH", location, headers, blob.pieces(start, end), end - start)
            self.expect(resp, f"PATCH {repo} upload {start}-{end - 1}", 202)
            location = target_of(resp.header("location")) or location
        resp = self.conn.request("PUT", with_query(location, digest=blob.digest))
        self.expect(resp, f"PUT {repo} upload ?digest= (chunked close)", 201)

    def push_small(self, repo: str, data: bytes, digest: str) -> None:
        self.push_monolithic(repo, data, len(data), digest)

    def mount(self, repo: str, source: str, digest: str) -> None:
        target = with_query(f"/v2/{repo}/blobs/uploads/", mount=digest, **{"from": source})
        resp = self.conn.request("POST", target)
        if resp.status == 201:
            return
        if resp.status == 202:  # mount refused: cancel the session the server opened instead
            self.conn.request("DELETE", target_of(resp.header("location")))
        raise BenchError(f"POST {target} (mount)", resp.status, resp.body)

    def pull_blob(self, repo: str, digest: str, verify: bool = False) -> int:
        target = f"/v2/{repo}/blobs/{digest}"
        resp = self.conn.request("GET", target, discard=True, hash_body=verify)
        if resp.status in (301, 302, 303, 307, 308):  # storage redirect: fetch from there
            where = resp.header("location")
            other = Connection(where)
            try:
                resp = other.request("GET", target_of(where), discard=True, hash_body=verify)
            finally:
                other.close()
        self.expect(resp, f"GET {target}", 200)
        if verify and resp.digest != digest:
            raise BenchError(f"GET {target}: body digest {resp.digest}")
        return resp.length

    def put_manifest(self, repo: str, ref: str, body: bytes) -> None:
        resp = self.conn.request("PUT", f"/v2/{repo}/manifests/{ref}", {"Content-Type": OCI_MANIFEST}, body)
        self.expect(resp, f"PUT /v2/{repo}/manifests/{ref}", 201)

    def get_manifest(self, repo: str, ref: str) -> bytes:
        resp = self.conn.request("GET", f"/v2/{repo}/manifests/{ref}", {"Accept": MANIFEST_ACCEPT})
        return self.expect(resp, f"GET /v2/{repo}/manifests/{ref}", 200).body

    def get_json(self, target: str) -> tuple[dict, str]:
        """GET a JSON document; returns it with the next page's target from the Link header, if any."""
        resp = self.conn.request("GET", target)
        self.expect(resp, f"GET {target}", 200)
        link = resp.header("link")
        nxt = ""
        if link:
            nxt = target_of(link.split(";")[0].strip().strip("<>"))
        return json.loads(resp.body), nxt

    def list_all(self, target: str, key: str) -> tuple[list[str], int]:
        """Follow Link pages from ``target``; returns every entry and the number of requests made."""
        entries: list[str] = []
        requests = 0
        while target:
            doc, target = self.get_json(target)
            requests += 1
            entries.extend(doc.get(key) or [])
            if requests > 100_000:
                raise BenchError(f"{key}: pagination does not end")
        return entries, requests

    def probe_mono_style(self, label: str) -> str:
        """'post' when the registry takes a blob in one POST ?digest=, else 'post-put'."""
        data, digest = small_blob(f"probe-{label}", 64)
        target = with_query("/v2/bench-probe/blobs/uploads/", digest=digest)
        resp = self.conn.request("POST", target, {"Content-Type": "application/octet-stream"}, data)
        if resp.status == 201:
            return "post"
        if resp.status == 202:
            self.conn.request("DELETE", target_of(resp.header("location")))
            return "post-put"
        raise BenchError(f"POST {target}", resp.status, resp.body)


# --------------------------------------------------------------------------- /proc probes


def children_of(pid: int) -> list[int]:
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            kids.extend(int(x) for x in (task / "children").read_text().split())
    return kids


def process_tree(roots: Iterable[int]) -> list[int]:
    seen: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen or not Path(f"/proc/{pid}").exists():
            continue
        seen.append(pid)
        todo.extend(children_of(pid))
    return seen


def cpu_seconds(roots: Iterable[int]) -> float:
    """utime+stime of every live process in the trees, plus the time of children they reaped.

    Reaped children (a recycled gunicorn worker) are counted through their parent's cutime/cstime,
    live ones through their own utime/stime, so each process counts once.
    """
    ticks = 0
    for pid in process_tree(roots):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            # fields[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17
            ticks += sum(int(f) for f in fields[11:15])
    return ticks / CLK_TCK


def worker_pids(roots: Iterable[int]) -> list[int]:
    """The serving processes: the children of each root (gunicorn workers), or the root itself."""
    out: list[int] = []
    for root in roots:
        tree = process_tree([root])
        out.extend(tree[1:] if len(tree) > 1 else tree)
    return out


def status_kib(pid: int, field_name: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def reset_peak_rss(pids: Iterable[int]) -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs 5); False when not permitted."""
    ok = True
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok


class RssSampler:
    """Samples VmRSS of the worker processes every ``interval`` seconds and keeps each one's peak.

    VmHWM (reset at start when permitted) is folded in at stop, so spikes between samples count too.
    """

    def __init__(self, roots: list[int], interval: float = 0.2) -> None:
        self.roots = roots
        self.interval = interval
        self.peak_kib: dict[int, int] = {}
        self.hwm_reset = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self.hwm_reset = reset_peak_rss(worker_pids(self.roots))
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample("VmHWM" if self.hwm_reset else "VmRSS")

    def _sample(self, field_name: str = "VmRSS") -> None:
        for pid in worker_pids(self.roots):
            kib = status_kib(pid, field_name)
            if kib > self.peak_kib.get(pid, 0):
                self.peak_kib[pid] = kib

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    @property
    def max_mb(self) -> float:
        return max(self.peak_kib.values(), default=0) * 1024 / 1e6


def disk_usage(root: str | os.PathLike[str]) -> int:
    """Bytes allocated under ``root``: st_blocks*512 of each distinct inode (hard links count once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(dirpath, name))
                key = (st.st_dev, st.st_ino)
                if key not in seen:
                    seen.add(key)
                    total += st.st_blocks * 512
    return total


def write_scratch(directory: str, nbytes: int) -> float:
    """Write ``nbytes`` to a scratch file in ``directory`` and delete it; returns the CPU seconds spent.

    Deleting it leaves that much page cache freed and already backed by the host, which the next
    writes reuse (see recycle_page_cache).
    """
    block = bytes(MiB)
    path = os.path.join(directory, f".bench-scratch-{os.getpid()}")
    c0 = time.process_time()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(max(1, nbytes // MiB)):
            os.write(fd, block)
    finally:
        os.close(fd)
        os.unlink(path)
    return time.process_time() - c0


def page_cache_probe(directory: str, nbytes: int = 256 * MiB) -> tuple[float, float]:
    """CPU ms per 64 MiB of newly written page cache: first on memory left idle, then on memory just
    freed. On a VM that reports free pages to its host (virtio-balloon free page reporting) the first
    touch of memory idle for more than ~2 s costs about ten times more."""
    time.sleep(3)  # let memory freed by the servers' start-up go idle (reported after ~2 s)
    cold = write_scratch(directory, nbytes)
    warm = write_scratch(directory, nbytes)
    scale = 1e3 * 64 * MiB / nbytes
    return cold * scale, warm * scale


def recycle_page_cache(directory: str, nbytes: int) -> float:
    """Free ``nbytes`` of host-backed memory right before a workload writes that much; returns the
    CPU seconds the scratch write took (high when the memory it used was cold)."""
    return write_scratch(directory, nbytes)


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(
    url: str, proc: subprocess.Popen[bytes] | None, log: Path | None, timeout: float = 60.0
) -> None:
    """Poll GET /v2/ until it answers (200 or 401)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"server for {url} exited with {proc.returncode}:\n{tail}")
        conn = Connection(url, timeout=2)
        try:
            if conn.request("GET", "/v2/").status in (200, 401):
                return
        except (OSError, BenchError) as exc:
            last = repr(exc)
        finally:
            conn.close()
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer GET /v2/ within {timeout:.0f}s ({last})")


@dataclass
class Server:
    """A registry under test: where it answers, which processes serve it, where it stores."""

    name: str
    url: str
    pids: list[int] = field(default_factory=list)
    root: str | None = None
    kind: str = "external"
    proc: subprocess.Popen[bytes] | None = None
    workdir: str | None = None
    log: Path | None = None

    def stop(self, keep: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.workdir and not keep:
            shutil.rmtree(self.workdir, ignore_errors=True)


def spawn_zotpy(name: str, workers: int, tmpdir: str | None, config_template: str | None) -> Server:
    workdir = tempfile.mkdtemp(prefix=f"bench-{name}-", dir=tmpdir)
    port = free_port()
    root = os.path.join(workdir, "root")
    config: dict = {}
    if config_template:
        config = json.loads(Path(config_template).read_text())
    config.setdefault("distSpecVersion", "1.1.1")
    storage = config.setdefault("storage", {})
    storage["rootDirectory"] = root
    storage.setdefault("gc", False)
    http = config.setdefault("http", {})
    http.update({"address": "127.0.0.1", "port": str(port)})
    config.setdefault("log", {"level": "error"})
    cfg_path = Path(workdir, "config.json")
    cfg_path.write_text(json.dumps(config, indent=2))
    env = dict(os.environ)
    env["ZOTPY_CONFIG"] = str(cfg_path)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), env.get("PYTHONPATH")]))
    env["ZOTPY_WORKERS"] = env["WEB_CONCURRENCY"] = str(workers)
    log = Path(workdir, "server.log")
    cmd = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.py", "--workers", str(workers)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, f"http://127.0.0.1:{port}", [proc.pid], root, "zotpy", proc, workdir, log)
    try:
        wait_ready(server.url, proc, log)
    except BaseException:
        server.stop(keep=True)
        raise
    return server


DISTRIBUTION_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
catalog:
  maxentries: 1000000
"""


def spawn_distribution(name: str, binary: str, tmpdir: str | None) -> Server:
    workdir = tempfile.mkdtemp(prefix=f"bench-{name}-", dir=tmpdir)
    port = free_port()
    root = os.path.join(workdir, "root")
    os.makedirs(root)
    cfg_path = Path(workdir, "config.yml")
    cfg_path.write_text(DISTRIBUTION_CONFIG.format(root=root, port=port))
    log = Path(workdir, "server.log")
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary, "serve", str(cfg_path)], stdout=out, stderr=subprocess.STDOUT)
    server = Server(name, f"http://127.0.0.1:{port}", [proc.pid], root, "distribution", proc, workdir, log)
    try:
        wait_ready(server.url, proc, log)
    except BaseException:
        server.stop(keep=True)
        raise
    return server
