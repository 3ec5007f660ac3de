"""Push and pull throughput of zotpy on S3 relative to local storage.

Spawns, one after the other, zotpy on a local root, on S3 (moto's standalone server, as in the tests)
with its index in PostgreSQL, and on S3 with ``redirectBlobURL`` (pulls fetched from the bucket), then
pushes (monolithic and chunked) and pulls the same unique blobs through each and prints MB/s and the
ratio to local.  moto is an in-memory Python server on the same 2 cores, so the S3 figures measure
zotpy's S3 path plus moto, a floor rather than what AWS would give.

    python benchmarks/s3_bench.py            # 8 blobs of 32 MiB, chunks of 8 MiB
    python benchmarks/s3_bench.py --quick    # 3 blobs of 8 MiB (a smoke run)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from harness import BlobFactory, MiB, Registry, Server, spawn_zotpy

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from helpers.moto_s3 import moto_s3_server  # noqa: E402
from helpers.postgres import postgres_server  # noqa: E402


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run_workloads(server: Server, label: str, factory: BlobFactory, count: int,
                  chunk: int) -> dict[str, float]:
    """MB/s for a monolithic push, a chunked push and a pull of ``count`` unique blobs."""
    registry = Registry(server.url)
    total = factory.size * count / MiB
    mono = [factory.make(f"{label}-mono-{i}") for i in range(count)]
    chunked = [factory.make(f"{label}-chunked-{i}") for i in range(count)]
    try:
        push = timed(lambda: [registry.push_monolithic("bench/s3", b.pieces(), b.size, b.digest)
                              for b in mono])
        push_chunked = timed(lambda: [registry.push_chunked("bench/s3", b, chunk) for b in chunked])
        pull = timed(lambda: [registry.pull_blob("bench/s3", b.digest, verify=True) for b in mono])
    finally:
        registry.close()
    return {"push_mbps": total / push, "push_chunked_mbps": total / push_chunked, "pull_mbps": total / pull}


@contextmanager
def spawned(name: str, template: dict[str, Any], workdir: str) -> Iterator[Server]:
    path = Path(workdir, f"{name}.json")
    path.write_text(json.dumps(template))
    server = spawn_zotpy(name, 2, workdir, str(path))
    try:
        yield server
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 blobs of 8 MiB")
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--size-mib", type=int, default=32)
    parser.add_argument("--chunk-mib", type=int, default=8)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    count, size = (3, 8) if args.quick else (args.count, args.size_mib)
    factory = BlobFactory(size * MiB, seed=7)
    chunk = args.chunk_mib * MiB
    results: dict[str, dict[str, float]] = {}
    with ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="s3-bench-"))
        moto = stack.enter_context(moto_s3_server(Path(workdir, "moto")))
        postgres = stack.enter_context(postgres_server())
        log = {"level": "error"}
        configs: dict[str, dict[str, Any]] = {"local": {"storage": {"gc": False}, "log": log}}
        for name, redirect in (("s3", False), ("s3-redirect", True)):
            storage = {"gc": False, "redirectBlobURL": redirect,
                       "storageDriver": moto.driver_settings(moto.new_bucket(), "/zot"),
                       "cacheDriver": postgres.cache_driver()}
            configs[name] = {"storage": storage, "log": log}
        for name, template in configs.items():
            with spawned(name, template, workdir) as server:
                results[name] = run_workloads(server, name, factory, count, chunk)
    base = results["local"]
    print(f"{count} blobs of {size} MiB, chunks of {args.chunk_mib} MiB, 2 gevent workers")
    print(f"{'store':<12} {'push MB/s':>10} {'chunked MB/s':>13} {'pull MB/s':>10}   ratio to local")
    for name, figures in results.items():
        keys = ("push_mbps", "push_chunked_mbps", "pull_mbps")
        ratios = " / ".join(f"{figures[k] / base[k]:.2f}" for k in keys)
        print(f"{name:<12} {figures['push_mbps']:>10.1f} {figures['push_chunked_mbps']:>13.1f} "
              f"{figures['pull_mbps']:>10.1f}   {ratios}")
    if args.json:
        report = {"count": count, "size_mib": size, "chunk_mib": args.chunk_mib, "results": results}
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
