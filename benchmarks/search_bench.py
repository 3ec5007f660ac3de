"""Search extension benchmark: startup rebuild time and GraphQL latency over a large root.

    python benchmarks/search_bench.py                 # 1,000 repositories x 10 tags (10,000 manifests)
    python benchmarks/search_bench.py --quick         # 50 x 10, a smoke run of a few seconds

1. Populate: OCI image layouts are written straight into an empty root (``--repos`` x ``--tags``
   manifests, each with its own small config and annotations; one tiny layer shared by hard links).
2. Startup rebuild: zotpy (gunicorn, search on) is started over that root; the time from spawning the
   master until ``/startupz`` answers is the rebuild of the metadata database from storage.
   ``ImageList`` then has to report every manifest.
3. Restart over the unchanged root (the rebuild is expected to be skipped), and a restart after one
   repository's ``index.json`` changed while stopped.
4. Latency: ``--clients`` threads, each with its own keep-alive connection, send ``--requests``
   POSTs of each GraphQL query; p50/p90/p99 and requests per second per query.

Standard library only, plus ``harness.py`` for the HTTP client.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import REPO_ROOT, Connection, free_port, status_kib, worker_pids

SEARCH = "/v2/_zot/ext/search"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
ARCHES = ("amd64", "arm64", "ppc64le", "s390x")


# -- populating a root ------------------------------------------------------------------------------


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def repo_name(i: int) -> str:
    return f"bench/team-{i % 20:02d}/repo-{i:05d}"


def write_root(root: Path, repos: int, tags: int) -> int:
    """Write ``repos`` OCI layouts of ``tags`` distinct manifests each; the number of manifests."""
    layer = b"zotpy search benchmark layer\n" * 8
    layer_digest = _digest(layer)
    master = root / "_shared-layer"
    master.parent.mkdir(parents=True, exist_ok=True)
    master.write_bytes(layer)
    for i in range(repos):
        repo = root / repo_name(i)
        blobs = repo / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        os.link(master, blobs / layer_digest.split(":")[1])
        descriptors = []
        for t in range(tags):
            created = f"2024-{1 + t % 12:02d}-{1 + i % 28:02d}T{t % 24:02d}:00:00Z"
            config = _canonical({
                "created": created, "architecture": ARCHES[(i + t) % len(ARCHES)], "os": "linux",
                "config": {"Labels": {"bench.repo": str(i), "bench.tag": str(t)}},
                "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
                "history": [{"created": created, "created_by": f"bench {i} {t}"}],
            })
            manifest = _canonical({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": _digest(config), "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": len(layer)}],
                "annotations": {"org.opencontainers.image.title": f"repo {i} tag {t}",
                                "org.opencontainers.image.vendor": f"vendor-{i % 7}"},
            })
            for data in (config, manifest):
                (blobs / _digest(data).split(":")[1]).write_bytes(data)
            descriptors.append({"mediaType": OCI_MANIFEST, "digest": _digest(manifest),
                                "size": len(manifest), "annotations": {REF_NAME: f"v{t}"}})
        (repo / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        (repo / "index.json").write_text(json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}))
    master.unlink()
    return repos * tags


# -- the server -------------------------------------------------------------------------------------


class SearchServer:
    """zotpy under gunicorn with ``extensions.search`` on, restartable over the same root."""

    def __init__(self, workdir: Path, root: Path, workers: int) -> None:
        self.workdir, self.root, self.workers = workdir, root, workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "server.log"
        self.config = workdir / "config.json"
        self.config.write_text(json.dumps({
            "distSpecVersion": "1.1.1",
            "storage": {"rootDirectory": str(root), "gc": False},
            "http": {"address": "127.0.0.1", "port": str(self.port)},
            "log": {"level": "error"},
            "extensions": {"search": {"enable": True}},
        }, indent=2))

    def start(self, timeout: float) -> float:
        """Spawn the server; seconds until ``/startupz`` and ``/v2/`` answer 200."""
        env = dict(os.environ)
        env["ZOTPY_CONFIG"] = str(self.config)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), env.get("PYTHONPATH")]))
        env["ZOTPY_WORKERS"] = str(self.workers)
        cmd = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.py", "--workers", str(self.workers)]
        started = time.perf_counter()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            if self._answers("/startupz") and self._answers("/v2/"):
                return time.perf_counter() - started
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout:.0f}s:\n{self.tail()}")

    def _answers(self, path: str) -> bool:
        conn = Connection(self.url, timeout=2)
        try:
            return conn.request("GET", path).status == 200
        except OSError:
            return False
        except Exception:  # the harness raises its own error for a refused or cut connection
            return False
        finally:
            conn.close()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


def graphql(conn: Connection, query: str, variables: dict | None = None) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    resp = conn.request("POST", SEARCH, headers={"Content-Type": "application/json"}, body=body)
    doc = json.loads(resp.body)
    if resp.status != 200 or doc.get("errors"):
        raise RuntimeError(f"{query[:80]!r} -> {resp.status} {str(doc)[:300]}")
    return doc["data"]


# -- latency ----------------------------------------------------------------------------------------


def queries(repos: int) -> dict[str, tuple[str, Callable[[int], dict]]]:
    """Name -> (query, variables for request n). Repository names rotate so no answer is cached."""
    image = ("RepoName Tag Digest Size LastUpdated Title Vendor IsSigned"
             " Manifests { Digest Platform { Os Arch } }")
    repo = "Name Size LastUpdated Rank Platforms { Os Arch } NewestImage { Tag Digest }"
    page = "{limit: 10, offset: 0, sortBy: %s}"
    return {
        "GlobalSearch repo": (
            f"query($q: String!) {{ GlobalSearch(query: $q, requestedPage: {page % 'RELEVANCE'}) "
            f"{{ Page {{ TotalCount }} Repos {{ {repo} }} }} }}",
            lambda n: {"q": f"repo-{n * 7 % repos:05d}"}),
        "GlobalSearch fuzzy": (
            f"query($q: String!) {{ GlobalSearch(query: $q, requestedPage: {page % 'RELEVANCE'}) "
            f"{{ Page {{ TotalCount }} Repos {{ {repo} }} }} }}",
            lambda n: {"q": f"repo-{n * 7 % repos:05d}"[:-1]}),
        "GlobalSearch repo:tag": (
            f"query($q: String!) {{ GlobalSearch(query: $q, requestedPage: {page % 'ALPHABETIC_ASC'}) "
            f"{{ Page {{ TotalCount }} Images {{ {image} }} }} }}",
            lambda n: {"q": f"{repo_name(n * 7 % repos)}:v"}),
        "ImageList repo": (
            f"query($r: String!) {{ ImageList(repo: $r) {{ Page {{ TotalCount }} Results {{ {image} }} }} }}",
            lambda n: {"r": repo_name(n * 7 % repos)}),
        "ImageList all, page": (
            f"query {{ ImageList(repo: \"\", requestedPage: {page % 'UPDATE_TIME'}) "
            f"{{ Page {{ TotalCount }} Results {{ {image} }} }} }}",
            lambda n: {}),
    }


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in seconds)
    if not ms:
        return {}

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(round(p / 100 * (len(ms) - 1))))]

    return {"p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "mean_ms": statistics.fmean(ms),
            "max_ms": ms[-1]}


PINGER = """
import json, os, sys, time
sys.path.insert(0, {bench_dir!r})
from harness import Connection
conn, out = Connection({url!r}, timeout=120), []
while True:
    started = time.perf_counter()
    conn.request("GET", "/v2/")
    out.append(time.perf_counter() - started)
    if os.path.exists({stop!r}):
        break
    time.sleep(0.02)
print(json.dumps(out))
"""


def measure(url: str, query: str, variables: Callable[[int], dict], requests: int, clients: int) -> dict:
    """Latency percentiles (ms) and throughput of ``requests`` queries sent by ``clients`` threads.

    Meanwhile a separate process (so the client threads' GIL does not delay it) pings ``GET /v2/``
    every 20 ms: its latency shows whether search work holds up the other requests a worker serves
    (a gevent worker runs one greenlet at a time).
    """
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def work() -> None:
        conn = Connection(url, timeout=120)
        mine = []
        try:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    break
                started = time.perf_counter()
                try:
                    graphql(conn, query, variables(n))
                except Exception as exc:  # recorded, reported, and fails the run
                    with lock:
                        errors.append(repr(exc))
                    continue
                mine.append(time.perf_counter() - started)
        finally:
            conn.close()
            with lock:
                latencies.extend(mine)

    with tempfile.TemporaryDirectory() as scratch:
        stop = os.path.join(scratch, "stop")
        script = PINGER.format(bench_dir=str(Path(__file__).resolve().parent), url=url, stop=stop)
        pinger = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        threads = [threading.Thread(target=work) for _ in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        Path(stop).touch()
        output, _ = pinger.communicate(timeout=120)
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, first: {errors[0]}")
    ping_stats = percentiles(json.loads(output or "[]"))
    return {"requests": len(latencies), "clients": clients, **percentiles(latencies),
            "req_per_s": len(latencies) / elapsed,
            "ping_p50_ms": ping_stats.get("p50_ms"), "ping_p99_ms": ping_stats.get("p99_ms"),
            "ping_max_ms": ping_stats.get("max_ms")}


# -- main -------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="search-bench-", dir=args.tmpdir))
    root = workdir / "root"
    report: dict[str, Any] = {"repos": args.repos, "tags": args.tags, "workers": args.workers}
    server = SearchServer(workdir, root, args.workers)
    try:
        started = time.perf_counter()
        report["manifests"] = write_root(root, args.repos, args.tags)
        report["populate_s"] = time.perf_counter() - started
        print(f"populated {report['manifests']} manifests in {report['populate_s']:.1f}s", flush=True)

        report["startup_rebuild_s"] = server.start(args.start_timeout)
        conn = Connection(server.url, timeout=300)
        total = graphql(conn, '{ ImageList(repo: "") { Page { TotalCount } } }')["ImageList"]["Page"]
        if total["TotalCount"] != report["manifests"]:
            raise RuntimeError(f"ImageList reports {total['TotalCount']} images, not {report['manifests']}")
        probe = ('{ ImageList(repo: "", requestedPage: {limit: 50, sortBy: ALPHABETIC_ASC})'
                 " { Results { Digest } } }")
        before = graphql(conn, probe)
        conn.close()
        print(f"startup with rebuild: {report['startup_rebuild_s']:.2f}s", flush=True)

        server.stop()
        report["restart_unchanged_s"] = server.start(args.start_timeout)
        conn = Connection(server.url, timeout=300)
        if graphql(conn, probe) != before:
            raise RuntimeError("a restart over the unchanged root changed the answers")
        conn.close()
        print(f"restart over the unchanged root: {report['restart_unchanged_s']:.2f}s", flush=True)

        server.stop()
        index_path = root / repo_name(0) / "index.json"
        index = json.loads(index_path.read_text())
        extra = dict(index["manifests"][0], annotations={REF_NAME: "touched"})
        index["manifests"].append(extra)
        index_path.write_text(json.dumps(index))
        report["restart_one_repo_changed_s"] = server.start(args.start_timeout)
        conn = Connection(server.url, timeout=300)
        found = graphql(conn, "query($r: String!) { ImageList(repo: $r) { Page { TotalCount } } }",
                        {"r": repo_name(0)})
        seen = found["ImageList"]["Page"]["TotalCount"] == args.tags + 1
        report["restart_one_repo_changed_sees_change"] = seen
        conn.close()
        print(f"restart after one repository changed: {report['restart_one_repo_changed_s']:.2f}s "
              f"(change seen: {report['restart_one_repo_changed_sees_change']})", flush=True)

        report["latency"] = {}
        for name, (query, variables) in queries(args.repos).items():
            if args.only and not any(name.startswith(prefix) for prefix in args.only.split(",")):
                continue
            conn = Connection(server.url)
            for n in range(min(5, args.requests)):  # warm-up
                graphql(conn, query, variables(n))
            conn.close()
            stats = measure(server.url, query, variables, args.requests, args.clients)
            report["latency"][name] = stats
            print(f"{name:24s} p50 {stats['p50_ms']:7.1f} ms  p90 {stats['p90_ms']:7.1f} ms  "
                  f"p99 {stats['p99_ms']:7.1f} ms  {stats['req_per_s']:7.1f} req/s  "
                  f"(GET /v2/ meanwhile: p50 {stats['ping_p50_ms'] or 0:.1f}, "
                  f"p99 {stats['ping_p99_ms'] or 0:.1f} ms)",
                  flush=True)
        if server.proc is not None:
            peaks = [status_kib(pid, "VmHWM") / 1024 for pid in worker_pids([server.proc.pid])]
            report["worker_peak_rss_mb"] = [round(mb, 1) for mb in peaks]
            print(f"worker peak RSS: {', '.join(f'{mb:.0f} MB' for mb in peaks)}", flush=True)
    except BaseException:
        sys.stderr.write(server.tail())
        raise
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50 repositories, few requests (smoke run)")
    parser.add_argument("--repos", type=int, help="repositories (default 1000; 50 with --quick)")
    parser.add_argument("--tags", type=int, default=10, help="tags per repository (10)")
    parser.add_argument("--requests", type=int, help="requests per query (400; 40 with --quick)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument("--only", help="comma-separated prefixes of the query names to measure")
    parser.add_argument("--start-timeout", type=float, default=300.0, help="seconds to wait for a start")
    parser.add_argument("--tmpdir", help="where the temporary root goes")
    parser.add_argument("--keep", action="store_true", help="keep the root and the server log")
    parser.add_argument("--json", help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.repos is None:
        args.repos = 50 if args.quick else 1000
    if args.requests is None:
        args.requests = 40 if args.quick else 400
    report = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
