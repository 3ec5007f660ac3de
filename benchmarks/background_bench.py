#!/usr/bin/env python3
"""Request latency while background work runs: manifest GET and blob pull, idle vs. GC + scrub.

Spawns zotpy under gunicorn (its own scheduler off), pushes one image into each of ``--repos``
repositories (a unique small layer and a shared layer, deduplicated), then measures in interleaved
rounds: an idle phase, and a busy phase during which a separate low-priority process (nice, ionice,
like the scheduler) runs the GC steps of every store and the scrub steps of every repository in a loop,
with the pacing the scheduler uses. Reports p50/p99 per phase, the busy/idle ratio, request errors and
the CPU the background process spent. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    REPO_ROOT,
    BenchError,
    ImageParts,
    Registry,
    cpu_seconds,
    parse_size,
    pct,
    small_blob,
    spawn_zotpy,
)

FULL = {"repos": 1000, "layer_size": "1M", "seconds": 20.0, "rounds": 2, "clients": 4}
QUICK = {"repos": 60, "layer_size": "256k", "seconds": 3.0, "rounds": 1, "clients": 2}
TARGET_RATIO = 1.5
REQUEST_TIMEOUT = 30.0  # a request this slow is counted as an error instead of stalling the run
STEP_PAUSE = 0.01  # between steps, as zotpy.scheduler.runner paces a job


# --------------------------------------------------------------------------- setup


def populate(url: str, repos: int, layer_size: int, threads: int = 4) -> list[tuple[str, str]]:
    """One tagged image per repository; returns (repository, shared layer digest) pairs."""
    shared, shared_digest = small_blob("background-shared", layer_size)
    names = [f"bg/r{i:04d}" for i in range(repos)]
    first = Registry(url)
    try:
        first.push_small(names[0], shared, shared_digest)
    finally:
        first.close()

    def push(worker: int) -> None:
        registry = Registry(url)
        try:
            for name in names[worker::threads]:
                if name != names[0]:
                    registry.mount(name, names[0], shared_digest)
                parts = ImageParts.make(name)
                registry.push_small(name, parts.layer, parts.layer_digest)
                registry.push_small(name, parts.config, parts.config_digest)
                doc = json.loads(parts.manifest(name))
                doc["layers"].append({"mediaType": doc["layers"][0]["mediaType"], "digest": shared_digest,
                                      "size": len(shared)})
                registry.put_manifest(name, "v1", json.dumps(doc, separators=(",", ":")).encode())
        finally:
            registry.close()

    workers = [threading.Thread(target=push, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return [(name, shared_digest) for name in names]


# --------------------------------------------------------------------------- measuring


def client_for(url: str) -> Registry:
    registry = Registry(url)
    registry.conn.timeout = REQUEST_TIMEOUT
    return registry


def measure(url: str, targets: list[tuple[str, str]], seconds: float, clients: int) -> dict[str, Any]:
    """``clients`` threads alternate a manifest GET and a blob pull on random repositories."""
    manifest: list[float] = []
    blob: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(seed: int) -> None:
        rng = random.Random(seed)
        registry = client_for(url)
        mine_m: list[float] = []
        mine_b: list[float] = []
        try:
            while time.monotonic() < deadline:
                repo, digest = rng.choice(targets)
                try:
                    start = time.perf_counter()
                    registry.get_manifest(repo, "v1")
                    mine_m.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    registry.pull_blob(repo, digest)
                    mine_b.append(time.perf_counter() - start)
                except (BenchError, OSError) as exc:
                    with lock:
                        errors.append(f"{repo}: {exc}")
                    registry.close()
                    registry = client_for(url)
        finally:
            registry.close()
            with lock:
                manifest.extend(mine_m)
                blob.extend(mine_b)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"manifest": manifest, "blob": blob, "errors": errors}


def summary(samples: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"errors": len(samples["errors"]), "error_examples": samples["errors"][:5]}
    for kind in ("manifest", "blob"):
        values = samples[kind]
        out[kind] = {"count": len(values), "p50_ms": round(pct(values, 50) * 1000, 3),
                     "p99_ms": round(pct(values, 99) * 1000, 3)}
    return out


# --------------------------------------------------------------------------- background process


def background(config_path: str, stats_path: str, priority: str, paced: bool) -> int:
    """Run GC and scrub steps back to back until SIGTERM, at the scheduler's pace.

    ``priority`` ``scheduler`` lowers it as the scheduler process does (nice, ionice); ``idle`` also
    puts it in SCHED_IDLE, where it only gets CPU no other process wants. Unpaced, steps follow each
    other without the scheduler's pauses and scrub reads without its rate limit (the worst case).
    """
    from zotpy.app import build_registry
    from zotpy.config import load
    from zotpy.meta.db import close_if_open
    from zotpy.scheduler.integrity import scheduled_throttle
    from zotpy.scheduler.jobs import collectors
    from zotpy.scheduler.process import lower_priority
    from zotpy.storage.scrub import ScrubPass, Throttle

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    lower_priority()
    if priority == "idle":
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    config = load(config_path)
    registry, indexes = build_registry(config)
    collector = collectors(config, registry)[0][2]  # the default store: the benchmark has no other
    jobs: list[tuple[str, Callable[[], Any]]] = [("gc", collector.steps)]
    throttle = scheduled_throttle if paced else Throttle
    scrub = ScrubPass(registry.stores.all(), registry.stores.for_repo, throttle)
    pause = STEP_PAUSE if paced else 0.0
    jobs.append(("scrub", scrub.steps))
    counts = {"gc_steps": 0, "scrub_steps": 0, "gc_passes": 0, "scrub_passes": 0, "failed_steps": 0}
    Path(stats_path).write_text(json.dumps({"started": True}))
    started = time.monotonic()
    # GC and scrub run side by side: one step of each in turn, each restarting when its pass ends.
    running = {name: iter(steps()) for name, steps in jobs}
    factories = dict(jobs)
    while not stop.is_set():
        for name in running:
            step = next(running[name], None)
            if step is None:
                counts[f"{name}_passes"] += 1
                running[name] = iter(factories[name]())
                for index in indexes:
                    close_if_open(index.db)
                continue
            try:
                step()
            except Exception:  # counted, as the scheduler logs and goes on
                counts["failed_steps"] += 1
            counts[f"{name}_steps"] += 1
            time.sleep(pause)
    Path(stats_path).write_text(json.dumps({**counts, "seconds": round(time.monotonic() - started, 3)}))
    return 0


def start_background(config: str, stats: Path, priority: str, paced: bool) -> subprocess.Popen[bytes]:
    stats.unlink(missing_ok=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), env.get("PYTHONPATH")]))
    argv = [sys.executable, __file__, "--background", config, "--stats", str(stats), "--priority", priority]
    if not paced:
        argv.append("--unpaced")
    proc = subprocess.Popen(argv, env=env, cwd=REPO_ROOT)
    deadline = time.monotonic() + 30
    while not stats.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the background process did not start")
        time.sleep(0.05)
    return proc


def stop_background(proc: subprocess.Popen[bytes], stats: Path) -> dict[str, Any]:
    cpu = cpu_seconds([proc.pid])
    proc.send_signal(signal.SIGTERM)
    proc.wait(60)
    doc: dict[str, Any] = json.loads(stats.read_text())
    doc["cpu_seconds"] = round(cpu, 2)
    return doc


# --------------------------------------------------------------------------- main


def run(opts: argparse.Namespace) -> dict[str, Any]:
    os.environ["ZOTPY_SCHEDULER"] = "off"  # the benchmark runs the background work itself
    with tempfile.TemporaryDirectory(prefix="bg-bench-", dir=opts.tmpdir) as scratch:
        template = Path(scratch, "template.json")
        template.write_text(json.dumps({"storage": {"gc": True, "gcDelay": "1s", "dedupe": True},
                                        "log": {"level": "error"}}))
        server = spawn_zotpy("zotpy", opts.workers, opts.tmpdir, str(template))
    assert server.workdir is not None
    config = os.path.join(server.workdir, "config.json")
    stats = Path(server.workdir, "background.json")
    try:
        began = time.monotonic()
        targets = populate(server.url, opts.repos, parse_size(opts.layer_size))
        print(f"pushed {len(targets)} repositories in {time.monotonic() - began:.1f}s", flush=True)
        measure(server.url, targets, min(2.0, opts.seconds), opts.clients)  # warm up
        phases: dict[str, dict[str, list[Any]]] = {p: {"manifest": [], "blob": [], "errors": []}
                                                   for p in ("idle", "busy")}
        work: list[dict[str, Any]] = []
        for round_no in range(opts.rounds):
            for phase in ("idle", "busy"):
                busy = phase == "busy"
                proc = start_background(config, stats, opts.priority, not opts.unpaced) if busy else None
                samples = measure(server.url, targets, opts.seconds, opts.clients)
                if proc is not None:
                    work.append(stop_background(proc, stats))
                for key in phases[phase]:
                    phases[phase][key].extend(samples[key])
                print(f"round {round_no + 1} {phase}: {json.dumps(summary(samples))}", flush=True)
        result: dict[str, Any] = {"repos": opts.repos, "layer_size": opts.layer_size, "clients": opts.clients,
                                  "priority": opts.priority, "paced": not opts.unpaced,
                                  "seconds_per_phase": opts.seconds, "rounds": opts.rounds,
                                  "idle": summary(phases["idle"]), "busy": summary(phases["busy"]),
                                  "background": work}
        for kind in ("manifest", "blob"):
            for stat in ("p50_ms", "p99_ms"):
                result[f"{kind}_{stat[:3]}_ratio"] = round(result["busy"][kind][stat]
                                                           / result["idle"][kind][stat], 3)
        result["target_met"] = (result["manifest_p99_ratio"] <= TARGET_RATIO
                                and result["idle"]["errors"] == result["busy"]["errors"] == 0)
        return result
    finally:
        server.stop(keep=opts.keep)


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{result['repos']} repositories, {result['clients']} clients, {result['rounds']} x "
          f"{result['seconds_per_phase']}s per phase, background priority {result['priority']}, "
          f"{'paced as the scheduler' if result['paced'] else 'unpaced'}")
    print(f"{'':24}{'idle':>12}{'busy':>12}{'ratio':>8}")
    for kind in ("manifest", "blob"):
        for stat in ("p50_ms", "p99_ms"):
            idle, busy = result["idle"][kind][stat], result["busy"][kind][stat]
            ratio = result[f"{kind}_{stat[:3]}_ratio"]
            print(f"{kind + ' GET ' + stat:24}{idle:>12.3f}{busy:>12.3f}{ratio:>8.2f}")
    counts = [result[p]["manifest"]["count"] + result[p]["blob"]["count"] for p in ("idle", "busy")]
    print(f"{'requests':24}{counts[0]:>12}{counts[1]:>12}")
    print(f"{'errors':24}{result['idle']['errors']:>12}{result['busy']['errors']:>12}")
    for run_no, work in enumerate(result["background"], 1):
        print(f"background run {run_no}: {work}")
    verdict = "met" if result["target_met"] else "NOT met"
    print(f"target (manifest GET p99 within {TARGET_RATIO}x of idle, no errors): {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few repositories, short phases")
    parser.add_argument("--repos", type=int)
    parser.add_argument("--layer-size", help="size of the layer every image shares (e.g. 1M)")
    parser.add_argument("--seconds", type=float, help="length of each measured phase")
    parser.add_argument("--rounds", type=int, help="idle/busy phase pairs, interleaved")
    parser.add_argument("--clients", type=int, help="concurrent client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--priority", choices=("scheduler", "idle"), default="scheduler",
                        help="background priority: the scheduler's (nice, ionice) or SCHED_IDLE")
    parser.add_argument("--unpaced", action="store_true",
                        help="no pause between steps and no scrub rate limit (the worst case)")
    parser.add_argument("--tmpdir")
    parser.add_argument("--keep", action="store_true", help="keep the server's root and logs")
    parser.add_argument("--json", help="write the result document here")
    parser.add_argument("--background", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--stats", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.background:
        return background(opts.background, opts.stats, opts.priority, not opts.unpaced)
    for key, value in (QUICK if opts.quick else FULL).items():
        if getattr(opts, key) is None:
            setattr(opts, key, value)
    result = run(opts)
    print_table(result)
    if opts.json:
        Path(opts.json).write_text(json.dumps(result, indent=2))
    return 0 if result["idle"]["errors"] == result["busy"]["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
