"""A private nginx in front of a live registry, using the project's ``deploy/nginx.conf`` site.

The site file is included as-is except for the two lines it documents as the ones to adapt: the
upstream ``server 127.0.0.1:5000;`` and ``listen 80;``. nginx runs in the foreground as this test
process's child (``daemon off``), with its pid, logs and temp paths under its own prefix directory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from helpers.env import free_port, require_tool
from helpers.server import REPO_ROOT

SITE_CONFIG = REPO_ROOT / "deploy" / "nginx.conf"
UPSTREAM_LINE = "server 127.0.0.1:5000;"
LISTEN_LINE = "listen 80;"


class NginxError(RuntimeError):
    pass


def adapt_site(text: str, upstream: str, listen: str) -> str:
    """Point the site at ``upstream`` (host:port) and make it listen on ``listen`` (host:port)."""
    for line in (UPSTREAM_LINE, LISTEN_LINE):
        count = sum(1 for raw in text.splitlines() if raw.strip() == line)
        if count != 1:
            raise NginxError(f"{SITE_CONFIG} should have exactly one active {line!r} line, found {count}")
    out = []
    for raw in text.splitlines():
        stripped = raw.strip()
        indent = raw[: len(raw) - len(raw.lstrip())]
        if stripped == UPSTREAM_LINE:
            raw = f"{indent}server {upstream};"
        elif stripped == LISTEN_LINE:
            raw = f"{indent}listen {listen};"
        out.append(raw)
    return "\n".join(out) + "\n"


class NginxProxy:
    """nginx on a free port of 127.0.0.1 proxying to ``upstream`` (``host:port`` of gunicorn)."""

    def __init__(self, prefix: Path, upstream: str) -> None:
        self.prefix = Path(prefix)
        self.upstream = upstream
        self.address = "127.0.0.1"
        self.port = free_port(self.address)
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf = self.prefix / "nginx.conf"

    @property
    def hostport(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.hostport}"

    def write_config(self) -> None:
        self.prefix.mkdir(parents=True, exist_ok=True)
        temp = self.prefix / "temp"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (temp / sub).mkdir(parents=True, exist_ok=True)
        site = self.prefix / "site.conf"
        site.write_text(adapt_site(SITE_CONFIG.read_text(), self.upstream, self.hostport))
        # As root, nginx would switch its workers to "nobody", who cannot write our temp paths.
        user = "user root;\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"""{user}daemon off;
worker_processes 1;
pid {self.prefix}/nginx.pid;
error_log {self.prefix}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {self.prefix}/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {site};
}}
"""
        )

    def logs(self, limit: int = 4000) -> str:
        parts = []
        for name in ("error.log", "access.log", "stderr.log"):
            path = self.prefix / name
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- nginx {name} ---\n{text[-limit:]}")
        return "\n".join(parts)

    def start(self, timeout: float = 20.0) -> None:
        nginx = require_tool("nginx")
        self.write_config()
        with (self.prefix / "stderr.log").open("ab") as stderr:
            self.proc = subprocess.Popen(
                [nginx, "-p", str(self.prefix), "-e", str(self.prefix / "error.log"), "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise NginxError(f"nginx exited with {self.proc.returncode}\n{self.logs()}")
            try:
                resp = requests.get(f"{self.url}/v2/", timeout=2)
                if resp.status_code == 200:
                    return
                last = f"GET /v2/ -> {resp.status_code}"
            except requests.RequestException as exc:
                last = repr(exc)
            time.sleep(0.1)
        self.stop()
        raise NginxError(f"nginx not ready on {self.url} after {timeout}s ({last})\n{self.logs()}")

    def stop(self, timeout: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
