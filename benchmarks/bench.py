#!/usr/bin/env python3
"""Side-by-side throughput and latency benchmark for zotpy and a reference registry.

Runs the workloads of issue 2, section 7 against the system under test (``--url``) and, interleaved
round by round, against a reference (``--reference``, e.g. CNCF Distribution); with neither URL
it spawns both itself (zotpy under gunicorn, Distribution from the Debian ``docker-registry``
package). Prints medians over rounds, ratios and server CPU per operation. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    CLK_TCK,
    BenchError,
    BlobData,
    BlobFactory,
    ImageParts,
    MiB,
    Registry,
    RssSampler,
    Server,
    cpu_seconds,
    disk_usage,
    human_size,
    page_cache_probe,
    parse_size,
    pct,
    recycle_page_cache,
    spawn_distribution,
    spawn_zotpy,
    wait_ready,
)

HIGHER, LOWER, INFO = "higher", "lower", "info"
T = TypeVar("T")

# Profiles: the full run and --quick (smoke). Explicit flags override either.
FULL = {
    "rounds": 3,
    "blob_sizes": "64M",
    "blob_count": 4,
    "chunk_size": "8M",
    "clients": 16,
    "manifest_gets": 16000,
    "manifest_puts": 3200,
    "tags": 2000,
    "repos": 1000,
    "page_size": 100,
    "list_requests": 100,
    "whole_requests": 20,
    "concurrent_pushes": 8,
    "mix_clients": 4,
    "mix_ops": 40,
}
QUICK = {
    "rounds": 1,
    "blob_sizes": "4M",
    "blob_count": 2,
    "chunk_size": "1M",
    "clients": 16,
    "manifest_gets": 640,
    "manifest_puts": 320,
    "tags": 250,
    "repos": 120,
    "page_size": 100,
    "list_requests": 10,
    "whole_requests": 5,
    "concurrent_pushes": 8,
    "mix_clients": 4,
    "mix_ops": 10,
}


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    better: str


@dataclass
class Workload:
    key: str
    title: str
    run: Callable[[Side, int], dict[str, float]]
    metrics: list[Metric]
    op: str  # what one operation is, for CPU per op
    sample_rss: bool = False
    writes: int = 0  # bytes of new blobs the workload stores, for --warm-page-cache
    prepare: Callable[[Side, int], None] | None = None  # untimed work before each run (not in CPU)


@dataclass
class Side:
    """One registry in the comparison, with the fixtures the workloads need."""

    label: str
    server: Server
    cfg: argparse.Namespace
    run_id: str
    mono_style: str = "post"
    parts: ImageParts | None = None
    factories: dict[int, BlobFactory] = field(default_factory=dict)
    pull_pool: dict[int, list[BlobData]] = field(default_factory=dict)
    fresh: dict[int, list[BlobData]] = field(default_factory=dict)  # just pushed, for first_pull
    mget_refs: list[tuple[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def registry(self) -> Registry:
        return Registry(self.server.url, self.mono_style)

    def cpu(self) -> float | None:
        return cpu_seconds(self.server.pids) if self.server.pids else None

    def unique(self, *parts: object) -> str:
        return "-".join(str(p) for p in (self.run_id, self.label, *parts))


# --------------------------------------------------------------------------- helpers


def machine_busy_seconds() -> float:
    """CPU seconds all processors spent busy since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_parallel(n: int, work: Callable[[int, Registry], None], side: Side) -> tuple[float, float]:
    """Run ``work(i, registry)`` on ``n`` threads, each with its own connection, started together.

    Returns the wall time from the common start to the last finish and the client CPU seconds spent
    meanwhile; re-raises the first failure.
    """
    errors: list[BaseException] = []
    start = threading.Barrier(n + 1)
    registries = [side.registry() for _ in range(n)]

    def body(i: int) -> None:
        try:
            registries[i].conn.request("GET", "/v2/")  # open the connection before the clock starts
        except BaseException as exc:
            errors.append(exc)
        start.wait()
        if errors:
            return
        try:
            work(i, registries[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    start.wait()
    t0, c0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.join()
    wall, client = time.perf_counter() - t0, time.process_time() - c0
    for reg in registries:
        reg.close()
    if errors:
        raise errors[0]
    return wall, client


def parallel_setup(side: Side, items: list[object], fn: Callable[[Registry, object], None]) -> None:
    """Untimed fixture building on ``clients`` threads."""
    n = min(side.cfg.clients, len(items)) or 1

    def work(i: int, reg: Registry) -> None:
        for item in items[i::n]:
            fn(reg, item)

    run_parallel(n, work, side)


def fixture(value: T | None, what: str) -> T:
    """A setup product a workload needs, or a clear failure when its setup stage failed."""
    if not value:
        raise BenchError(f"no {what}: their setup failed (see above)")
    return value


def scratch_dir(side: Side) -> str:
    """A directory on the filesystem of the side's storage root (for page cache recycling)."""
    root = side.server.root
    return os.path.dirname(root.rstrip("/")) if root else (side.cfg.tmpdir or tempfile.gettempdir())


def factory(side: Side, size: int) -> BlobFactory:
    if size not in side.factories:
        side.factories[size] = BlobFactory(size, side.cfg.seed + size)
    return side.factories[size]


# --------------------------------------------------------------------------- setup


def setup_side(side: Side) -> None:
    """Build the untimed fixtures. Only the first stage is fatal; a failed later stage is noted and
    the workloads that need it fail on their own, with the rest of the run going on."""
    cfg = side.cfg
    reg = side.registry()
    try:
        side.mono_style = reg.probe_mono_style(side.unique("probe"))
        reg.mono_style = side.mono_style
        log(f"[{side.label}] monolithic push style: {side.mono_style}")
        parts = side.parts = ImageParts.make(side.unique("parts"))
        reg.push_small("base", parts.config, parts.config_digest)
        reg.push_small("base", parts.layer, parts.layer_digest)
    finally:
        reg.close()

    def pull_pool(reg: Registry) -> None:
        for size in [*cfg.sizes, cfg.mix_size]:
            if size in side.pull_pool:
                continue
            pool = [factory(side, size).make(side.unique("pull", size, i)) for i in range(cfg.blob_count)]
            for blob in pool:
                reg.push_monolithic("pull", blob.pieces(), blob.size, blob.digest)
            # Pulled once, as a blob in use has been: `pull` measures pulls of stored blobs, whatever
            # path the push took (zotpy writes large blobs past the page cache); `first_pull` the other.
            for blob in pool:
                reg.pull_blob("pull", blob.digest)
            side.pull_pool[size] = pool

    def mget(reg: Registry) -> None:
        reg.mount("mget", "base", parts.config_digest)
        reg.mount("mget", "base", parts.layer_digest)
        for i in range(cfg.clients):
            body = parts.manifest(side.unique("mget", i))
            reg.put_manifest("mget", f"m{i:02d}", body)
            side.mget_refs.append((f"m{i:02d}", len(body)))

    def tags(reg: Registry) -> None:
        reg.mount("tags-bench", "base", parts.config_digest)
        reg.mount("tags-bench", "base", parts.layer_digest)

        def put_tag(r: Registry, tag: object) -> None:
            r.put_manifest("tags-bench", str(tag), parts.manifest(side.unique("tag", tag)))

        parallel_setup(side, [f"t{i:05d}" for i in range(cfg.tags)], put_tag)

    def catalog(reg: Registry) -> None:
        def make_repo(r: Registry, i: object) -> None:
            repo = f"catalog/repo-{i:05d}"
            r.mount(repo, "base", parts.config_digest)
            r.mount(repo, "base", parts.layer_digest)
            r.put_manifest(repo, "latest", parts.manifest(side.unique("repo", i)))

        parallel_setup(side, list(range(cfg.repos)), make_repo)

    stages = [
        ("blobs to pull", pull_pool),
        ("manifests to GET", mget),
        (f"{cfg.tags} tags in tags-bench", tags),
        (f"{cfg.repos} repositories for _catalog", catalog),
    ]
    for what, stage in stages:
        log(f"[{side.label}] setup: {what}")
        reg = side.registry()
        try:
            stage(reg)
        except Exception as exc:
            side.notes.append(f"setup of {what} failed: {exc}")
            log(f"[{side.label}] setup of {what} FAILED: {exc}")
        finally:
            reg.close()


# --------------------------------------------------------------------------- workloads


def blob_push(style: str, size: int) -> Callable[[Side, int], dict[str, float]]:
    def run(side: Side, rnd: int) -> dict[str, float]:
        blobs = [
            factory(side, size).make(side.unique(style, size, rnd, i)) for i in range(side.cfg.blob_count)
        ]
        reg = side.registry()
        reg.conn.request("GET", "/v2/")
        lat: list[float] = []
        c0 = time.process_time()
        try:
            for blob in blobs:
                t = time.perf_counter()
                if style == "mono":
                    reg.push_monolithic(f"push-{style}", blob.pieces(), blob.size, blob.digest)
                else:
                    reg.push_chunked(f"push-{style}", blob, side.cfg.chunk)
                lat.append(time.perf_counter() - t)
        finally:
            reg.close()
        return blob_result(lat, size, c0)

    return run


def blob_result(lat: list[float], size: int, client_cpu0: float) -> dict[str, float]:
    """Throughput and p50 of one blob workload from per-blob latencies (client CPU since ``client_cpu0``)."""
    return {
        "_ops": len(lat),
        "_wall": sum(lat),
        "_client": time.process_time() - client_cpu0,
        "mibps": size * len(lat) / MiB / sum(lat),
        "p50_ms": pct(lat, 50) * 1e3,
    }


def _pull_each(side: Side, repo: str, blobs: list[BlobData], size: int) -> dict[str, float]:
    """Fetch each blob once on one connection, timing each GET."""
    reg = side.registry()
    reg.conn.request("GET", "/v2/")
    lat: list[float] = []
    c0 = time.process_time()
    try:
        for blob in blobs:
            t = time.perf_counter()
            got = reg.pull_blob(repo, blob.digest, verify=side.cfg.verify)
            lat.append(time.perf_counter() - t)
            if got != blob.size:
                raise BenchError(f"GET blob {blob.digest}: {got} bytes, expected {blob.size}")
    finally:
        reg.close()
    return blob_result(lat, size, c0)


def blob_pull(size: int) -> Callable[[Side, int], dict[str, float]]:
    def run(side: Side, rnd: int) -> dict[str, float]:
        return _pull_each(side, "pull", fixture(side.pull_pool.get(size), "blobs to pull"), size)

    return run


def push_fresh(size: int) -> Callable[[Side, int], None]:
    """Untimed: push ``--blob-count`` new blobs for ``first_pull`` to fetch."""

    def prepare(side: Side, rnd: int) -> None:
        count = side.cfg.blob_count
        blobs = [factory(side, size).make(side.unique("fresh", size, rnd, i)) for i in range(count)]
        reg = side.registry()
        try:
            for blob in blobs:
                reg.push_monolithic("fresh", blob.pieces(), blob.size, blob.digest)
        finally:
            reg.close()
        side.fresh[size] = blobs

    return prepare


def first_pull(size: int) -> Callable[[Side, int], dict[str, float]]:
    """Each blob the untimed ``prepare`` just pushed, fetched once: a pull right after its push."""

    def run(side: Side, rnd: int) -> dict[str, float]:
        return _pull_each(side, "fresh", fixture(side.fresh.pop(size, None), "blobs just pushed"), size)

    return run


def latency_metrics(lat: list[float], wall: float, client: float) -> dict[str, float]:
    return {
        "_ops": len(lat),
        "_wall": wall,
        "_client": client,
        "rps": len(lat) / wall,
        "p50_ms": pct(lat, 50) * 1e3,
        "p90_ms": pct(lat, 90) * 1e3,
        "p99_ms": pct(lat, 99) * 1e3,
    }


def manifest_get(side: Side, rnd: int) -> dict[str, float]:
    n = side.cfg.clients
    per = max(1, side.cfg.manifest_gets // n)
    lats: list[list[float]] = [[] for _ in range(n)]
    refs = fixture(side.mget_refs, "manifests to GET")

    def work(i: int, reg: Registry) -> None:
        mine = lats[i]
        for k in range(per):
            ref, size = refs[(i + k) % len(refs)]
            t = time.perf_counter()
            body = reg.get_manifest("mget", ref)
            mine.append(time.perf_counter() - t)
            if len(body) != size:
                raise BenchError(f"GET manifest {ref}: {len(body)} bytes, expected {size}")

    wall, client = run_parallel(n, work, side)
    return latency_metrics([x for xs in lats for x in xs], wall, client)


def manifest_put(side: Side, rnd: int) -> dict[str, float]:
    n = side.cfg.clients
    per = max(1, side.cfg.manifest_puts // n)
    parts = side.parts
    assert parts is not None
    repos = [f"mput-{rnd}-{j}" for j in range(min(n, side.cfg.put_repos))]
    reg = side.registry()
    for repo in repos:
        reg.mount(repo, "base", parts.config_digest)
        reg.mount(repo, "base", parts.layer_digest)
    reg.close()
    bodies = [[parts.manifest(side.unique("mput", rnd, i, k)) for k in range(per)] for i in range(n)]
    lats: list[list[float]] = [[] for _ in range(n)]

    def work(i: int, reg: Registry) -> None:
        mine = lats[i]
        repo = repos[i % len(repos)]
        for k, body in enumerate(bodies[i]):
            t = time.perf_counter()
            reg.put_manifest(repo, f"c{i:02d}-{k:05d}", body)
            mine.append(time.perf_counter() - t)

    wall, client = run_parallel(n, work, side)
    return latency_metrics([x for xs in lats for x in xs], wall, client)


def listing(path: str, key: str, expected: Callable[[Side], int]) -> Callable[[Side, int], dict[str, float]]:
    """Latency of one ``n=page`` page (cycling over all pages) and of fetching the whole list."""

    def run(side: Side, rnd: int) -> dict[str, float]:
        cfg = side.cfg
        reg = side.registry()
        try:
            entries, _ = reg.list_all(path, key)
            if len(entries) < expected(side):
                raise BenchError(f"{path}: {len(entries)} entries, expected at least {expected(side)}")
            ordered = sorted(entries)
            pages = [f"{path}?n={cfg.page_size}"] + [
                f"{path}?n={cfg.page_size}&last={ordered[i - 1]}"
                for i in range(cfg.page_size, len(ordered), cfg.page_size)
            ]
            page_lat: list[float] = []
            page_entries = 0
            c0 = time.process_time()
            cpu0 = side.cpu()
            for k in range(cfg.list_requests):
                t = time.perf_counter()
                doc, _ = reg.get_json(pages[k % len(pages)])
                page_lat.append(time.perf_counter() - t)
                page_entries += len(doc.get(key) or [])
            cpu1 = side.cpu()
            whole_lat: list[float] = []
            whole_reqs = 0
            for _ in range(cfg.whole_requests):
                t = time.perf_counter()
                got, whole_reqs = reg.list_all(path, key)
                whole_lat.append(time.perf_counter() - t)
            cpu2 = side.cpu()
            client = time.process_time() - c0
        finally:
            reg.close()
        out = {
            "_ops": cfg.list_requests + cfg.whole_requests,
            "_wall": sum(page_lat) + sum(whole_lat),
            "_client": client,
            "page_p50_ms": pct(page_lat, 50) * 1e3,
            "page_p90_ms": pct(page_lat, 90) * 1e3,
            "page_entries": page_entries / cfg.list_requests,
            "whole_p50_ms": pct(whole_lat, 50) * 1e3,
            "whole_requests": whole_reqs,
            "whole_entries": len(got),
        }
        if cpu0 is not None and cpu1 is not None and cpu2 is not None:
            out["page_cpu_ms"] = (cpu1 - cpu0) * 1e3 / cfg.list_requests
            out["whole_cpu_ms"] = (cpu2 - cpu1) * 1e3 / cfg.whole_requests
        return out

    return run


def concurrent_push(side: Side, rnd: int) -> dict[str, float]:
    cfg = side.cfg
    size = cfg.sizes[-1]
    blob = factory(side, size).make(side.unique("concurrent", rnd))
    before = disk_usage(side.server.root) if side.server.root else None

    def work(i: int, reg: Registry) -> None:
        reg.push_monolithic(f"concurrent-{rnd}-{i}", blob.pieces(), blob.size, blob.digest)

    wall, client = run_parallel(cfg.concurrent_pushes, work, side)
    out = {
        "_ops": cfg.concurrent_pushes,
        "_wall": wall,
        "_client": client,
        "wall_s": wall,
        "mibps": size * cfg.concurrent_pushes / MiB / wall,
    }
    if before is not None and side.server.root:
        out["disk_growth_x"] = (disk_usage(side.server.root) - before) / size
    return out


def mixed(side: Side, rnd: int) -> dict[str, float]:
    """90% pulls of existing blobs, 10% pushes of new ones, on ``mix_clients`` connections."""
    cfg = side.cfg
    size = cfg.mix_size
    rng = random.Random(cfg.seed * 7919 + rnd)
    pool = fixture(side.pull_pool.get(size), "blobs to pull")
    ops: list[tuple[str, BlobData]] = []
    for k in range(cfg.mix_ops):
        if rng.random() < 0.1:
            ops.append(("push", factory(side, size).make(side.unique("mix", rnd, k))))
        else:
            ops.append(("pull", rng.choice(pool)))
    n = cfg.mix_clients
    lats: dict[str, list[float]] = {"pull": [], "push": []}
    lock = threading.Lock()

    def work(i: int, reg: Registry) -> None:
        for kind, blob in ops[i::n]:
            t = time.perf_counter()
            if kind == "pull":
                got = reg.pull_blob("pull", blob.digest, verify=cfg.verify)
                if got != blob.size:
                    raise BenchError(f"GET blob {blob.digest}: {got} bytes, expected {blob.size}")
            else:
                reg.push_monolithic("mix", blob.pieces(), blob.size, blob.digest)
            with lock:
                lats[kind].append(time.perf_counter() - t)

    wall, client = run_parallel(n, work, side)
    out = {
        "_ops": len(ops),
        "_wall": wall,
        "_client": client,
        "mibps": size * len(ops) / MiB / wall,
        "ops_s": len(ops) / wall,
        "pull_p50_ms": pct(lats["pull"], 50) * 1e3,
    }
    if lats["push"]:
        out["push_p50_ms"] = pct(lats["push"], 50) * 1e3
    return out


def workloads(cfg: argparse.Namespace) -> list[Workload]:
    cpu = Metric("cpu_ms_op", "server CPU per op", "ms", LOWER)
    client = Metric("client_cpu_pct", "client CPU (load generator)", "%core", INFO)
    other = Metric("other_load_pct", "CPU of other processes meanwhile", "%core", INFO)
    out: list[Workload] = []
    blob_metrics = [
        Metric("mibps", "throughput", "MiB/s", HIGHER),
        Metric("p50_ms", "latency p50 per blob", "ms", LOWER),
        cpu,
        client,
        other,
    ]
    for size in cfg.sizes:
        hs = human_size(size)
        out.append(
            Workload(
                f"push_mono_{hs}",
                f"push {hs} blob, monolithic",
                blob_push("mono", size),
                blob_metrics,
                "blob",
                True,
                cfg.blob_count * size,
            )
        )
        out.append(
            Workload(
                f"push_chunked_{hs}",
                f"push {hs} blob, chunked {human_size(cfg.chunk)} PATCHes",
                blob_push("chunked", size),
                blob_metrics,
                "blob",
                True,
                cfg.blob_count * size,
            )
        )
        out.append(Workload(f"pull_{hs}", f"pull {hs} blob", blob_pull(size), blob_metrics, "blob", True))
        out.append(Workload(f"first_pull_{hs}", f"first pull of a {hs} blob just pushed", first_pull(size),
                            blob_metrics, "blob", True, prepare=push_fresh(size)))
    lat_metrics = [
        Metric("rps", "requests/s", "req/s", HIGHER),
        Metric("p50_ms", "latency p50", "ms", LOWER),
        Metric("p90_ms", "latency p90", "ms", LOWER),
        Metric("p99_ms", "latency p99", "ms", LOWER),
        cpu,
        client,
        other,
    ]
    out.append(
        Workload(
            "manifest_get",
            f"manifest GET by tag, {cfg.clients} clients",
            manifest_get,
            lat_metrics,
            "request",
        )
    )
    out.append(
        Workload(
            "manifest_put",
            f"manifest PUT, new tags, {cfg.clients} clients, {min(cfg.put_repos, cfg.clients)} repo(s)",
            manifest_put,
            lat_metrics,
            "request",
        )
    )
    list_metrics = [
        Metric("page_p50_ms", f"one n={cfg.page_size} page, p50", "ms", LOWER),
        Metric("page_p90_ms", f"one n={cfg.page_size} page, p90", "ms", LOWER),
        Metric("page_entries", "entries per page response", "n", INFO),
        Metric("page_cpu_ms", "server CPU per page", "ms", LOWER),
        Metric("whole_p50_ms", "whole list (following Link), p50", "ms", LOWER),
        Metric("whole_requests", "requests for the whole list", "n", INFO),
        Metric("whole_entries", "entries in the whole list", "n", INFO),
        Metric("whole_cpu_ms", "server CPU per whole list", "ms", LOWER),
        client,
        other,
    ]
    out.append(
        Workload(
            "tags_list",
            f"tags/list of {cfg.tags} tags",
            listing("/v2/tags-bench/tags/list", "tags", lambda s: cfg.tags),
            list_metrics,
            "request",
        )
    )
    out.append(
        Workload(
            "catalog",
            f"_catalog of {cfg.repos}+ repositories",
            listing("/v2/_catalog", "repositories", lambda s: cfg.repos),
            list_metrics,
            "request",
        )
    )
    out.append(
        Workload(
            "concurrent_push",
            f"{cfg.concurrent_pushes} concurrent pushes of one {human_size(cfg.sizes[-1])} blob to "
            f"{cfg.concurrent_pushes} repositories",
            concurrent_push,
            [
                Metric("mibps", "aggregate throughput", "MiB/s", HIGHER),
                Metric("wall_s", "wall time", "s", LOWER),
                Metric("disk_growth_x", "disk growth in blob copies", "x", LOWER),
                cpu,
                client,
                other,
            ],
            "blob",
            True,
            cfg.concurrent_pushes * cfg.sizes[-1],
        )
    )
    out.append(
        Workload(
            "mix",
            f"90% pull / 10% push of {human_size(cfg.mix_size)} blobs, {cfg.mix_clients} clients",
            mixed,
            [
                Metric("mibps", "throughput", "MiB/s", HIGHER),
                Metric("ops_s", "operations/s", "op/s", HIGHER),
                Metric("pull_p50_ms", "pull latency p50", "ms", LOWER),
                Metric("push_p50_ms", "push latency p50", "ms", LOWER),
                cpu,
                client,
                other,
            ],
            "blob",
            True,
            (cfg.mix_ops // 5 + 1) * cfg.mix_size,
        )
    )
    if cfg.only:
        wanted = set(cfg.only.split(","))
        out = [w for w in out if w.key in wanted or w.key.split("_")[0] in wanted]
    return out


# --------------------------------------------------------------------------- running and reporting


def measure(side: Side, wl: Workload, rnd: int) -> dict[str, float]:
    """Run one workload once, adding server CPU per op, the load generator's CPU share and the CPU
    that everything else on the machine used meanwhile (a busy machine makes the figures noisy)."""
    if wl.prepare is not None:
        wl.prepare(side, rnd)
    sampler = RssSampler(side.server.pids) if wl.sample_rss and side.server.pids else None
    prewarm = 0.0
    if side.cfg.warm_page_cache and wl.writes:
        scratch = min(wl.writes, 4 << 30)
        prewarm = recycle_page_cache(scratch_dir(side), scratch) * 1e3 * 64 * MiB / scratch
    busy0, client0, t0 = machine_busy_seconds(), time.process_time(), time.perf_counter()
    cpu0 = side.cpu()
    if sampler:
        sampler.__enter__()
    try:
        result = wl.run(side, rnd)
    finally:
        if sampler:
            sampler.__exit__()
    cpu1 = side.cpu()
    busy1, client1, t1 = machine_busy_seconds(), time.process_time(), time.perf_counter()
    ops, wall, client = result.pop("_ops"), result.pop("_wall"), result.pop("_client")
    if cpu0 is not None and cpu1 is not None and "cpu_ms_op" in {m.key for m in wl.metrics}:
        result["cpu_ms_op"] = (cpu1 - cpu0) * 1e3 / ops
    if wall > 0:
        result["client_cpu_pct"] = 100 * client / wall
    if cpu0 is not None and cpu1 is not None:
        other = (busy1 - busy0) - (cpu1 - cpu0) - (client1 - client0)
        result["other_load_pct"] = max(0.0, 100 * other / (t1 - t0))
    if sampler:
        result["_rss_mb"] = sampler.max_mb
    if prewarm:
        result["_prewarm_ms_per_64mib"] = prewarm  # first-touch cost of the recycled memory
    return result


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value != value:  # NaN
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def median_of(rounds: list[dict[str, float]], key: str) -> float | None:
    values = [r[key] for r in rounds if key in r]
    return statistics.median(values) if values else None


def summarize(
    sides: list[Side], wls: list[Workload], results: dict[str, dict[str, list[dict]]]
) -> tuple[list[dict], list[dict]]:
    """Rows of medians and ratios, and the checks of issue 2 'What will be checked'."""
    rows: list[dict] = []
    labels = [s.label for s in sides]
    for wl in wls:
        for m in wl.metrics:
            row: dict[str, Any] = {
                "workload": wl.key,
                "title": wl.title,
                "metric": m.key,
                "label": m.label.replace("per op", f"per {wl.op}"),
                "unit": m.unit,
                "better": m.better,
            }
            spreads: list[float] = []
            for label in labels:
                runs = [r for r in results[wl.key][label] if "error" not in r]
                mid = row[label] = median_of(runs, m.key)
                values = [r[m.key] for r in runs if m.key in r]
                if len(values) > 1 and mid and m.better != INFO:
                    spreads.append(100 * (max(values) - min(values)) / abs(mid))
            row["spread_pct"] = max(spreads, default=None)
            if len(labels) == 2 and m.better != INFO and row[labels[0]] is not None and row[labels[1]]:
                row["ratio"] = row[labels[0]] / row[labels[1]]
            rows.append(row)
    rss = {
        label: max((r.get("_rss_mb", 0) for wl in wls for r in results[wl.key][label]), default=0)
        for label in labels
    }
    if any(rss.values()):
        rows.append(
            {
                "workload": "rss",
                "title": "memory",
                "metric": "worker_rss_peak_mb",
                "label": "peak worker RSS during blob workloads (max over rounds)",
                "unit": "MB",
                "better": LOWER,
                **rss,
                **({"ratio": rss[labels[0]] / rss[labels[1]]} if len(labels) == 2 and rss[labels[1]] else {}),
            }
        )

    def get(wkey: str, metric: str, label: str) -> float | None:
        for row in rows:
            if row["workload"] == wkey and row["metric"] == metric:
                return row.get(label)
        return None

    checks: list[dict] = []
    if len(labels) != 2:
        return rows, checks
    sut, ref = labels

    def ratio_check(name: str, wkey: str, metric: str, op: str, target: float) -> None:
        a, b = get(wkey, metric, sut), get(wkey, metric, ref)
        value = a / b if a is not None and b else None
        ok = None if value is None else (value >= target if op == ">=" else value <= target)
        checks.append(
            {"check": name, "workload": wkey, "target": f"{op} {target:g}", "value": value, "pass": ok}
        )

    for size in sides[0].cfg.sizes:
        hs = human_size(size)
        ratio_check(f"push {hs} monolithic throughput {sut}/{ref}", f"push_mono_{hs}", "mibps", ">=", 1.3)
        ratio_check(f"push {hs} chunked throughput {sut}/{ref}", f"push_chunked_{hs}", "mibps", ">=", 1.3)
        ratio_check(f"pull {hs} throughput {sut}/{ref}", f"pull_{hs}", "mibps", ">=", 1.2)
    ratio_check(f"manifest GET req/s {sut}/{ref}", "manifest_get", "rps", ">=", 2.0)
    ratio_check(f"manifest GET server CPU/req {sut}/{ref}", "manifest_get", "cpu_ms_op", "<=", 0.5)
    ratio_check(f"manifest PUT req/s {sut}/{ref}", "manifest_put", "rps", ">=", 1.5)
    growth = get("concurrent_push", "disk_growth_x", sut)
    checks.append(
        {
            "check": f"{sut} disk growth of concurrent pushes (blob copies)",
            "workload": "concurrent_push",
            "target": "<= 1.05",
            "value": growth,
            "pass": None if growth is None else growth <= 1.05,
        }
    )
    page, whole = get("tags_list", "page_p50_ms", sut), get("tags_list", "whole_p50_ms", ref)
    value = page / whole if page is not None and whole else None
    checks.append(
        {
            "check": f"tags: {sut} one page p50 / {ref} whole list p50",
            "workload": "tags_list",
            "target": "<= 1",
            "value": value,
            "pass": None if value is None else value <= 1.0,
        }
    )
    if rss[sut]:
        checks.append(
            {
                "check": f"{sut} worker RSS peak in blob workloads (MB)",
                "workload": "rss",
                "target": "< 150",
                "value": rss[sut],
                "pass": rss[sut] < 150,
            }
        )
    ran = {wl.key for wl in wls} | {"rss"}
    return rows, [c for c in checks if c["workload"] in ran]


def render(
    sides: list[Side], rows: list[dict], checks: list[dict], results: dict, cfg: argparse.Namespace
) -> str:
    labels = [s.label for s in sides]
    out: list[str] = []
    for s in sides:
        out.extend(f"! {s.label}: {note}" for note in s.notes)
        out.append(
            f"{s.label}: {s.server.url} ({s.server.kind}; monolithic push = {s.mono_style}"
            f"{'; pids ' + ','.join(map(str, s.server.pids)) if s.server.pids else '; no pids: no CPU'}"
            f"{'; root ' + s.server.root if s.server.root else ''})"
        )
    out.append(
        f"rounds: {cfg.rounds} (interleaved), medians shown; ratio = {labels[0]}/{labels[-1]}; "
        "'better' says which direction wins for that metric; spread% = (max-min)/median over rounds, "
        "worst side"
    )
    head = ["metric", "unit", "better", *labels] + (["ratio"] if len(labels) == 2 else []) + ["spread%"]
    table: list[list[str]] = []
    current = ""
    for row in rows:
        if row["workload"] != current:
            current = row["workload"]
            errs = {
                label: [r["error"] for r in results.get(current, {}).get(label, []) if "error" in r]
                for label in labels
            }
            table.append([f"== {row['title']}"])
            for label, es in errs.items():
                for e in dict.fromkeys(es):
                    table.append([f"   ! {label} failed: {e}"])
        table.append(
            [f"  {row['label']}", row["unit"], row["better"], *(fmt(row.get(lb)) for lb in labels)]
            + ([fmt(row.get("ratio"))] if len(labels) == 2 else [])
            + [fmt(row.get("spread_pct"))]
        )
    widths = [max(len(r[i]) for r in [head, *table] if len(r) > 1 and i < len(r)) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        if len(cells) == 1:
            return cells[0]
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=False))
        )

    out.append(line(head))
    out.extend(line(r) for r in table)
    probe = getattr(cfg, "page_cache_ms", None)
    if probe and probe["idle_memory"] > 3 * max(probe["just_freed_memory"], 1.0):
        out.append(
            f"note: writing 64 MiB of new page cache costs {probe['idle_memory']:.0f} ms CPU on memory left "
            f"idle and {probe['just_freed_memory']:.0f} ms on memory just freed: this VM hands idle memory "
            "back to its host (free page reporting), and every server pays that first touch for each byte "
            "it stores"
            + (
                ""
                if cfg.warm_page_cache
                else "; --warm-page-cache recycles memory before each writing workload"
            )
        )
    busy = [
        v for row in rows if row["metric"] == "other_load_pct" for v in (row.get(lb) for lb in labels) if v
    ]
    if busy and max(busy) > 20:
        out.append(
            f"warning: other processes used up to {max(busy):.0f}% of a core during the workloads "
            "(row 'CPU of other processes'); the figures are noisy, rerun on a quiet machine"
        )
    if checks:
        out.append("")
        out.append("checks (issue 2, 'What will be checked'):")
        for c in checks:
            verdict = {True: "PASS", False: "FAIL", None: "n/a"}[c["pass"]]
            out.append(f"  {verdict:4}  {c['check']}: {fmt(c['value'])} (target {c['target']})")
    return "\n".join(out)


def start_sides(cfg: argparse.Namespace) -> list[Side]:
    """Connect to the given URLs; spawn the sides without one when no URL is given or with --spawn."""
    run_id = cfg.run_id or uuid.uuid4().hex[:8]
    spawn = cfg.spawn or not (cfg.url or cfg.reference)
    servers: list[Server] = []

    def external(label: str, url: str, pids: str | None, root: str | None) -> Server:
        wait_ready(url.rstrip("/"), None, None, timeout=10)
        pid_list = [int(p) for p in pids.split(",")] if pids else []
        return Server(label, url.rstrip("/"), pid_list, root)

    try:
        if cfg.url:
            servers.append(external(cfg.name, cfg.url, cfg.url_pids, cfg.url_root))
        elif spawn and cfg.sut == "zotpy":
            log(f"spawning zotpy ({cfg.workers} gunicorn workers)")
            servers.append(spawn_zotpy(cfg.name, cfg.workers, cfg.tmpdir, cfg.zotpy_config))
        elif spawn:
            log(f"spawning {cfg.registry_bin} as the system under test")
            servers.append(spawn_distribution(cfg.name, cfg.registry_bin, cfg.tmpdir))
        if cfg.reference:
            servers.append(
                external(cfg.reference_name, cfg.reference, cfg.reference_pids, cfg.reference_root)
            )
        elif spawn and not cfg.no_reference:
            log(f"spawning {cfg.registry_bin} as the reference")
            servers.append(spawn_distribution(cfg.reference_name, cfg.registry_bin, cfg.tmpdir))
    except BaseException:
        for s in servers:
            s.stop(cfg.keep)
        raise
    return [Side(s.name, s, cfg, run_id) for s in servers]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("servers")
    g.add_argument("--url", help="system under test (default: spawn zotpy)")
    g.add_argument("--url-pids", help="comma-separated server pids (children are found) for CPU and RSS")
    g.add_argument("--url-root", help="storage root of --url, for disk growth")
    g.add_argument("--reference", help="reference registry URL (default: spawn Distribution)")
    g.add_argument("--reference-pids", help="comma-separated pids of the reference server")
    g.add_argument("--reference-root", help="storage root of --reference")
    g.add_argument("--name", default="zotpy", help="label of the system under test")
    g.add_argument("--reference-name", default="distribution", help="label of the reference")
    g.add_argument(
        "--spawn",
        action="store_true",
        help="spawn each side that has no URL (the default with no URL at all)",
    )
    g.add_argument(
        "--sut",
        choices=["zotpy", "distribution"],
        default="zotpy",
        help="what --spawn starts as the system under test (distribution: an A/A noise check)",
    )
    g.add_argument("--no-reference", action="store_true", help="spawn only the system under test")
    g.add_argument("--workers", type=int, default=2, help="gunicorn workers for a spawned zotpy")
    g.add_argument("--zotpy-config", help="JSON config template for a spawned zotpy (root/port are replaced)")
    g.add_argument("--registry-bin", default="/usr/bin/docker-registry", help="Distribution binary")
    g.add_argument("--tmpdir", help="where spawned servers keep their roots (default: system temp)")
    g.add_argument("--keep", action="store_true", help="keep spawned servers' temp dirs")
    w = p.add_argument_group("workloads (defaults: the full profile, or --quick)")
    w.add_argument("--quick", action="store_true", help="small sizes, one round: a smoke run")
    w.add_argument("--rounds", type=int)
    w.add_argument("--blob-sizes", help="comma-separated blob sizes, e.g. 16M,64M")
    w.add_argument("--blob-count", type=int, help="blobs per push/pull workload and round")
    w.add_argument("--chunk-size", help="PATCH size of chunked pushes")
    w.add_argument("--clients", type=int, help="concurrent clients for manifest GET/PUT")
    w.add_argument("--manifest-gets", type=int, help="manifest GETs per round (all clients)")
    w.add_argument("--manifest-puts", type=int, help="manifest PUTs per round (all clients)")
    w.add_argument(
        "--put-repos", type=int, default=1, help="repositories the manifest PUT clients share (default 1)"
    )
    w.add_argument("--tags", type=int, help="tags in the tags/list repository")
    w.add_argument("--repos", type=int, help="repositories created for _catalog")
    w.add_argument("--page-size", type=int, help="n= of a page request")
    w.add_argument("--list-requests", type=int, help="page requests per round")
    w.add_argument("--whole-requests", type=int, help="whole-list fetches per round")
    w.add_argument("--concurrent-pushes", type=int, help="parallel pushes of one blob")
    w.add_argument("--mix-clients", type=int)
    w.add_argument("--mix-ops", type=int, help="operations per round in the 90/10 mix")
    w.add_argument("--mix-size", help="blob size of the mix (default: first of --blob-sizes)")
    w.add_argument("--only", help="comma-separated workload keys or prefixes (push,pull,manifest,tags,...)")
    w.add_argument(
        "--warm-page-cache",
        action="store_true",
        help="before each blob-writing workload, write and delete a scratch file of its size, so that a VM "
        "that returns idle memory to its host does not charge first-touch faults to the servers",
    )
    w.add_argument("--verify", action="store_true", help="hash pulled blobs (costs client CPU)")
    w.add_argument("--seed", type=int, default=20240601)
    w.add_argument("--run-id", help="prefix making this run's blobs unique (default random)")
    p.add_argument("--json", help="write all rounds, medians and checks to this file")
    cfg = p.parse_args(argv)
    profile = QUICK if cfg.quick else FULL
    for key, value in profile.items():
        if getattr(cfg, key) is None:
            setattr(cfg, key, value)
    cfg.sizes = [parse_size(s) for s in cfg.blob_sizes.split(",")]
    cfg.chunk = parse_size(cfg.chunk_size)
    cfg.mix_size = parse_size(cfg.mix_size) if cfg.mix_size else cfg.sizes[0]
    if cfg.sut == "distribution" and not cfg.url and cfg.name == "zotpy":  # an A/A run: label both sides
        cfg.name, cfg.reference_name = (
            "dist-a",
            "dist-b" if cfg.reference_name == "distribution" else cfg.reference_name,
        )
    if cfg.rounds < 1:
        p.error("--rounds must be at least 1")
    return cfg


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    sides = start_sides(cfg)
    wls = workloads(cfg)
    results: dict[str, dict[str, list[dict]]] = {wl.key: {s.label: [] for s in sides} for wl in wls}
    started = time.time()
    try:
        cold, warm = page_cache_probe(scratch_dir(sides[0]))
        cfg.page_cache_ms = {"idle_memory": cold, "just_freed_memory": warm}
        log(
            f"page cache: {cold:.0f} ms CPU per new 64 MiB on idle memory, {warm:.0f} ms on just-freed memory"
        )
        for side in sides:
            t = time.perf_counter()
            setup_side(side)
            log(f"[{side.label}] setup done in {time.perf_counter() - t:.1f}s")
        for rnd in range(cfg.rounds):
            order = sides if rnd % 2 == 0 else sides[::-1]
            for wl in wls:
                for side in order:
                    try:
                        res: dict[str, Any] = measure(side, wl, rnd)
                        shown = ", ".join(f"{k}={fmt(v)}" for k, v in res.items() if not k.startswith("_"))
                        log(f"round {rnd + 1} {wl.key:18} {side.label:12} {shown}")
                    except Exception as exc:
                        # a BenchError names the request and the status and body the server answered
                        res = {"error": str(exc) if isinstance(exc, BenchError) else repr(exc)}
                        log(f"round {rnd + 1} {wl.key:18} {side.label:12} FAILED: {exc}")
                    results[wl.key][side.label].append(res)
        rows, checks = summarize(sides, wls, results)
        print(render(sides, rows, checks, results, cfg))
        if cfg.json:
            doc = {
                "started": started,
                "settings": {
                    k: v for k, v in vars(cfg).items() if isinstance(v, str | int | float | list | None)
                },
                "servers": [
                    {
                        "label": s.label,
                        "url": s.server.url,
                        "kind": s.server.kind,
                        "pids": s.server.pids,
                        "root": s.server.root,
                        "mono_style": s.mono_style,
                    }
                    for s in sides
                ],
                "rounds": results,
                "medians": rows,
                "checks": checks,
            }
            Path(cfg.json).write_text(json.dumps(doc, indent=2, default=str))
            log(f"wrote {cfg.json}")
    finally:
        for side in sides:
            side.server.stop(cfg.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
