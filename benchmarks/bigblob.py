#!/usr/bin/env python3
"""Push and pull one very large blob (default 2 GiB) while sampling the server workers' RSS.

The blob is generated on the fly from a seeded stream, one chunk at a time, so neither side can
hold it whole; the point is to show that a server worker's memory does not grow with the blob
(issue 2: a worker stays under 150 MB while a 2 GB blob is pushed and pulled).

    python benchmarks/bigblob.py                    # spawns zotpy (2 workers) on a free port
    python benchmarks/bigblob.py --url http://127.0.0.1:5000 --pids <gunicorn master pid>
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BenchError,
    MiB,
    Registry,
    RssSampler,
    Server,
    human_size,
    parse_size,
    spawn_distribution,
    spawn_zotpy,
    status_kib,
    target_of,
    wait_ready,
    with_query,
)


class SeededStream:
    """``size`` bytes made of ``chunk``-sized pieces: a seeded random block whose first 8 bytes
    carry the piece number, so every piece differs and only one block ever sits in memory."""

    def __init__(self, size: int, chunk: int, seed: int) -> None:
        self.size = size
        self.chunk = chunk
        self.block = memoryview(random.Random(seed).randbytes(chunk))

    def chunks(self) -> Iterator[list[memoryview | bytes]]:
        """One list of byte pieces per chunk, in order."""
        for index, start in enumerate(range(0, self.size, self.chunk)):
            n = min(self.chunk, self.size - start)
            stamp = index.to_bytes(8, "big")[:n]
            yield [stamp, self.block[len(stamp) : n]]

    def digest(self) -> str:
        h = hashlib.sha256()
        for pieces in self.chunks():
            for piece in pieces:
                h.update(piece)
        return "sha256:" + h.hexdigest()


def push(reg: Registry, repo: str, stream: SeededStream, style: str) -> str:
    """Upload the stream in the given style; returns the digest the server confirmed."""
    octet = {"Content-Type": "application/octet-stream"}
    hasher = hashlib.sha256()

    def hashed(pieces: list[memoryview | bytes]) -> list[memoryview | bytes]:
        for piece in pieces:
            hasher.update(piece)
        return pieces

    if style == "monolithic":
        digest = stream.digest()
        body = (piece for pieces in stream.chunks() for piece in pieces)
        reg.push_monolithic(repo, body, stream.size, digest)
        return digest
    location = reg.start_upload(repo)
    if style == "chunked":
        start = 0
        for pieces in stream.chunks():
            n = sum(len(p) for p in pieces)
            headers = {**octet, "Content-Range": f"{start}-{start + n - 1}"}
            resp = reg.conn.request("PATCH", location, headers, hashed(pieces), n)
            reg.expect(resp, f"PATCH {start}-{start + n - 1}", 202)
            location = target_of(resp.header("location")) or location
            start += n
    elif style == "streamed":
        headers = {**octet, "Transfer-Encoding": "chunked"}
        body = (piece for pieces in stream.chunks() for piece in hashed(pieces))
        resp = reg.conn.request("PATCH", location, headers, body)
        reg.expect(resp, "PATCH (Transfer-Encoding: chunked)", 202)
        location = target_of(resp.header("location")) or location
    else:
        raise ValueError(f"unknown push style {style!r}")
    digest = "sha256:" + hasher.hexdigest()
    resp = reg.conn.request("PUT", with_query(location, digest=digest))
    reg.expect(resp, "PUT ?digest=", 201)
    return digest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="registry to test (default: spawn one)")
    p.add_argument("--pids", help="comma-separated server pids (gunicorn master: its workers are found)")
    p.add_argument("--sut", choices=["zotpy", "distribution"], default="zotpy", help="what to spawn")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers for a spawned zotpy")
    p.add_argument("--zotpy-config", help="JSON config template for a spawned zotpy")
    p.add_argument("--registry-bin", default="/usr/bin/docker-registry")
    p.add_argument("--tmpdir", help="where a spawned server keeps its root")
    p.add_argument("--keep", action="store_true", help="keep the spawned server's temp dir")
    p.add_argument("--size", default="2G", help="blob size (default 2G = 2 GiB)")
    p.add_argument("--chunk", default="64M", help="PATCH size and generator block (default 64M)")
    p.add_argument("--styles", default="chunked", help="comma list of chunked,monolithic,streamed")
    p.add_argument("--interval", type=float, default=0.2, help="RSS sampling period in seconds")
    p.add_argument("--limit-mb", type=float, default=150.0, help="pass mark for a worker's peak RSS (MB)")
    p.add_argument("--repo", default="bigblob")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--json", help="write the results here")
    cfg = p.parse_args(argv)
    size, chunk = parse_size(cfg.size), parse_size(cfg.chunk)

    if cfg.url:
        wait_ready(cfg.url.rstrip("/"), None, None, timeout=10)
        pids = [int(x) for x in cfg.pids.split(",")] if cfg.pids else []
        server = Server("sut", cfg.url.rstrip("/"), pids)
    elif cfg.sut == "zotpy":
        server = spawn_zotpy("bigblob", cfg.workers, cfg.tmpdir, cfg.zotpy_config)
    else:
        server = spawn_distribution("bigblob", cfg.registry_bin, cfg.tmpdir)
    if not server.pids:
        print("warning: no --pids, RSS cannot be sampled", file=sys.stderr)
    results: list[dict] = []
    failed = False
    try:
        reg = Registry(server.url)
        reg.mono_style = reg.probe_mono_style(f"bigblob-{time.time()}")
        for n, style in enumerate(cfg.styles.split(",")):
            stream = SeededStream(size, chunk, cfg.seed + n)
            for phase in ("push", "pull"):
                row: dict = {"style": style, "phase": phase, "size": size}
                print(f"{phase} {human_size(size)} ({style}) ...", file=sys.stderr, flush=True)
                t = time.perf_counter()
                try:
                    with RssSampler(server.pids, cfg.interval) as rss:
                        if phase == "push":
                            row["digest"] = push(reg, cfg.repo, stream, style)
                            digest = row["digest"]
                        else:
                            got = reg.pull_blob(cfg.repo, digest, verify=True)
                            if got != size:
                                raise BenchError(f"pulled {got} bytes, expected {size}")
                    row["seconds"] = time.perf_counter() - t
                    row["mibps"] = size / MiB / row["seconds"]
                except (BenchError, OSError) as exc:
                    row["error"] = str(exc)
                    failed = True
                row["peak_rss_mb"] = {str(pid): kib * 1024 / 1e6 for pid, kib in sorted(rss.peak_kib.items())}
                row["hwm_reset"] = rss.hwm_reset
                results.append(row)
                if "error" in row:
                    break
        reg.close()
        idle = {str(pid): status_kib(pid, "VmRSS") * 1024 / 1e6 for pid in server.pids}
    finally:
        server.stop(cfg.keep)

    print(
        f"{server.url} ({server.kind}), blob {human_size(size)}, chunk {human_size(chunk)}; "
        "RSS in MB (10^6 B)"
    )
    print(f"{'style':11} {'phase':5} {'seconds':>8} {'MiB/s':>8}  peak RSS per worker (MB)")
    worst = 0.0
    for row in results:
        peaks = row["peak_rss_mb"]
        worst = max([worst, *peaks.values()])
        shown = ", ".join(f"{pid}: {mb:.1f}" for pid, mb in peaks.items()) or "n/a (no pids)"
        if "error" in row:
            print(f"{row['style']:11} {row['phase']:5} FAILED: {row['error']}")
        else:
            print(f"{row['style']:11} {row['phase']:5} {row['seconds']:8.1f} {row['mibps']:8.0f}  {shown}")
    verdict = "n/a" if not server.pids else ("PASS" if worst < cfg.limit_mb and not failed else "FAIL")
    print(f"{verdict}: max worker RSS {worst:.1f} MB (limit {cfg.limit_mb:g} MB); master RSS at end {idle}")
    if cfg.json:
        Path(cfg.json).write_text(
            json.dumps(
                {
                    "url": server.url,
                    "kind": server.kind,
                    "results": results,
                    "max_rss_mb": worst,
                    "verdict": verdict,
                },
                indent=2,
            )
        )
    return 1 if verdict == "FAIL" else 0


if __name__ == "__main__":
    sys.exit(main())
