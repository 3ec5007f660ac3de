"""moto's standalone S3 server for tests: a real HTTP endpoint on a free port, one process per session.

Started with ``python -m moto.server`` (pip ``moto[server]``), polled until it answers, stopped with
SIGTERM.  Each test takes its own bucket, so tests sharing the server never see each other's keys.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from helpers.env import free_port, missing

START_TIMEOUT = 30.0
ACCESS_KEY = "zotpy-test"
SECRET_KEY = "zotpy-test-secret"
REGION = "us-east-1"


@dataclass
class MotoS3:
    """A running moto S3 endpoint and the credentials it accepts (any, as moto does not check them)."""

    endpoint: str
    region: str = REGION
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def new_bucket(self) -> str:
        """A fresh, empty bucket."""
        name = f"zotpy-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def driver_settings(self, bucket: str, rootdirectory: str = "/zot", **extra: Any) -> dict[str, Any]:
        """A ``storageDriver`` mapping (zot's lower-cased keys) for ``bucket`` on this endpoint."""
        return {"name": "s3", "bucket": bucket, "region": self.region, "regionendpoint": self.endpoint,
                "rootdirectory": rootdirectory, "accesskey": self.access_key, "secretkey": self.secret_key,
                "secure": False, **extra}


def _moto_available() -> bool:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def moto_s3_server(workdir: Path) -> Iterator[MotoS3]:
    """Run moto's S3 server until the block ends; skip (fail under CI) when moto is not installed."""
    if not _moto_available():
        missing("moto[server] is not installed (pip install -e '.[test]')")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (workdir / "moto.log").open("ab")
    env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                            start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {proc.returncode}: "
                                   f"{(workdir / 'moto.log').read_text(errors='replace')[-2000:]}")
            try:
                requests.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except requests.RequestException:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto server not ready on {endpoint}") from None
                time.sleep(0.1)
        yield MotoS3(endpoint)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
