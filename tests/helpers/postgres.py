"""A throwaway PostgreSQL cluster for tests, from Debian's ``postgresql`` package.

``initdb`` + ``pg_ctl`` in a temporary directory on a free TCP port (password-checked with SCRAM, so
the password-file path is exercised), run as the current user or, under root (which PostgreSQL
refuses), as the package's ``postgres`` user through ``runuser``.  Stopped with ``pg_ctl stop -m fast``.
Tests isolate themselves with a fresh schema each (``fresh_url``), which costs milliseconds.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from helpers.env import free_port, missing

USER = "zotpy"
PASSWORD = "zotpy-test-password"
DATABASE = "zotpy"


def _bin_dir() -> str | None:
    """Where Debian keeps the server binaries (``/usr/lib/postgresql/<version>/bin``), newest first."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0, reverse=True)
    if candidates:
        return os.path.dirname(candidates[0])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


@dataclass
class Postgres:
    """A running cluster: where it listens and how to reach it."""

    host: str
    port: int
    password_file: Path

    def url(self, *, with_password: bool = False, schema: str | None = None) -> str:
        auth = f"{USER}:{quote(PASSWORD)}" if with_password else USER
        url = f"postgresql://{auth}@{self.host}:{self.port}/{DATABASE}"
        if schema:
            url += f"?options=-csearch_path%3D{schema}"
        return url

    def fresh_url(self) -> str:
        """The URL of a new, empty schema (tables land there), password not included."""
        import psycopg2

        schema = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg2.connect(self.url(with_password=True)) as conn, conn.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {schema}")
        conn.close()
        return self.url(schema=schema)

    def cache_driver(self, url: str | None = None) -> dict[str, str]:
        """A ``storage.cacheDriver`` mapping for this cluster (password from a file)."""
        return {"name": "postgresql", "url": url or self.fresh_url(), "passwordFile": str(self.password_file)}


@contextmanager
def postgres_server() -> Iterator[Postgres]:
    """Run a private cluster until the block ends; skip (fail under CI) without the package."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        missing("PostgreSQL server binaries are not installed (Debian package 'postgresql')")
    assert bin_dir is not None
    prefix: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            missing("running as root and there is no 'postgres' user to run PostgreSQL as")
        runuser = shutil.which("runuser")
        if runuser is None:
            missing("running as root and 'runuser' is missing")
        assert owner is not None and runuser is not None
        prefix = [runuser, "-u", "postgres", "--"]
    work = Path(tempfile.mkdtemp(prefix="zotpy-pg-"))
    data = work / "data"
    pwfile = work / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    password_file = work / "password"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    if owner is not None:
        os.chown(work, owner.pw_uid, owner.pw_gid)
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    port = free_port()
    log = work / "postgres.log"
    try:
        subprocess.run([*prefix, f"{bin_dir}/initdb", "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
                        "--auth-local=trust", "--auth-host=scram-sha-256", "--locale=C.UTF-8",
                        "--encoding=UTF8", "--no-sync"],
                       check=True, capture_output=True, timeout=120)
        options = (f"-h 127.0.0.1 -p {port} -k {work} -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=200")
        subprocess.run([*prefix, f"{bin_dir}/pg_ctl", "-D", str(data), "-l", str(log), "-o", options,
                        "-w", "-t", "60", "start"], check=True, capture_output=True, timeout=90)
        subprocess.run([*prefix, f"{bin_dir}/createdb", "-h", str(work), "-p", str(port), "-U", USER,
                        "-O", USER, DATABASE], check=True, capture_output=True, timeout=60)
        yield Postgres("127.0.0.1", port, password_file)
    except subprocess.CalledProcessError as exc:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(f"PostgreSQL failed: {exc.cmd}: {exc.stderr!r}\n{tail}") from exc
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run([*prefix, f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(work, ignore_errors=True)
