"""Manifest GET/PUT and blob pull measured with wrk, a load generator written in C.

bench.py's Python clients share one GIL: against a fast server the client, not the server, sets the
pace (16 runnable threads wait their turn, which shows as a ~100 ms p99). This script spawns zotpy
and CNCF Distribution as bench.py does, pushes the same image into both, and drives them with
``wrk`` in interleaved rounds, reporting medians of requests/s (or MiB/s) and server CPU per request.

    python benchmarks/wrk_bench.py [--rounds 3] [--seconds 8] [--connections 16] [--workers 2]

Needs the Debian packages ``wrk`` and ``docker-registry``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    OCI_MANIFEST,
    BlobFactory,
    ImageParts,
    Registry,
    Server,
    cpu_seconds,
    spawn_distribution,
    spawn_zotpy,
)

MiB = 1024 * 1024
REPO = "bench/wrk"
PUT_SCRIPT = """
counter = 0
thread_id = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
function request()
  counter = counter + 1
  local tag = "w" .. thread_id .. "-" .. counter
  local body = string.format(template, tag)
  return wrk.format("PUT", "/v2/" .. repo .. "/manifests/" .. tag, {["Content-Type"] = "%(media)s"}, body)
end
"""


def wrk(url: str, seconds: int, connections: int, script: str | None = None) -> tuple[float, int, float]:
    """(requests/s, requests, transfer MiB/s) of one wrk run."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-H", f"Accept: {OCI_MANIFEST}"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    scale = {"B": 1 / MiB, "KB": 1 / 1024, "MB": 1, "GB": 1024}
    mib = float(transfer.group(1)) * scale.get(transfer.group(2), 1) if transfer else 0.0
    return rate, count, mib


def prepare(server: Server, parts: ImageParts, blob: bytes, blob_digest: str, workdir: str,
            rounds: int) -> list[str]:
    """Push the image and the pull blob; write one PUT script per round (each into a fresh
    repository, so every round starts from the same state); return their paths."""
    registry = Registry(server.url, mono_style="post-put" if server.kind == "distribution" else "post")
    put_repos = [f"bench/put{n}" for n in range(rounds)]
    for data, digest in ((parts.config, parts.config_digest), (parts.layer, parts.layer_digest)):
        for repo in (REPO, *put_repos):
            registry.push_small(repo, data, digest)
    registry.push_small(REPO, blob, blob_digest)
    registry.put_manifest(REPO, "v1", parts.manifest("wrk"))
    registry.close()
    template = parts.manifest("%s").decode().replace('"', '\\"')
    scripts = []
    for repo in put_repos:
        script = Path(workdir, f"put-{server.name}-{repo.replace('/', '-')}.lua")
        head = f'template = "{template}"\nrepo = "{repo}"\n'
        script.write_text(head + PUT_SCRIPT % {"media": OCI_MANIFEST})
        scripts.append(str(script))
    return scripts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--blob-size", type=int, default=64, help="pull blob size in MiB")
    args = parser.parse_args()
    for tool in ("wrk", "docker-registry"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install {tool})")
    workdir = tempfile.mkdtemp(prefix="wrk-bench-")
    parts = ImageParts.make("wrk")
    blob_data = BlobFactory(args.blob_size * MiB, 7).make("pull")
    blob = b"".join(bytes(piece) for piece in blob_data.pieces())
    blob_digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    servers = [spawn_zotpy("zotpy", args.workers, workdir, None),
               spawn_distribution("distribution", "docker-registry", workdir)]
    results: dict[str, dict[str, list[float]]] = {s.name: {} for s in servers}
    try:
        scripts = {s.name: prepare(s, parts, blob, blob_digest, workdir, args.rounds) for s in servers}
        workloads = {
            "manifest GET req/s": (f"/v2/{REPO}/manifests/v1", None, "rate"),
            "manifest PUT req/s (new tags, fresh repo per round)": ("/", "put", "rate"),
            f"blob GET {args.blob_size} MiB, MiB/s": (f"/v2/{REPO}/blobs/{blob_digest}", None, "mib"),
        }
        for round_no in range(args.rounds):
            order = servers if round_no % 2 == 0 else list(reversed(servers))
            for name, (path, script, kind) in workloads.items():
                for server in order:
                    before = cpu_seconds(server.pids)
                    rate, count, mib = wrk(server.url + path, args.seconds, args.connections,
                                           scripts[server.name][round_no] if script else None)
                    cpu_ms = (cpu_seconds(server.pids) - before) * 1000 / max(count, 1)
                    results[server.name].setdefault(name, []).append(rate if kind == "rate" else mib)
                    results[server.name].setdefault(name + " | server CPU ms/req", []).append(cpu_ms)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'metric':55} {'zotpy':>10} {'distribution':>13} {'ratio':>7}")
    for metric in results["zotpy"]:
        ours = statistics.median(results["zotpy"][metric])
        theirs = statistics.median(results["distribution"][metric])
        print(f"{metric:55} {ours:10.2f} {theirs:13.2f} {ours / theirs if theirs else 0:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
