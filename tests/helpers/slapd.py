"""A real OpenLDAP directory for tests: Debian's ``slapd`` as an unprivileged process on a free port.

``Slapd`` writes a ``slapd.conf`` (mdb backend and the ``memberof`` overlay, under a temporary
directory), starts ``slapd -d 0`` in the foreground, waits until it answers, loads users and groups with
``ldapadd`` and stops it with SIGTERM.  Users get salted SHA-1 (``{SSHA}``) passwords; groups are
``groupOfNames`` entries, so each user's ``memberOf`` lists the groups' DNs.  ``tls`` (a certificate
and key) adds an ``ldaps://`` listener.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.env import free_port, missing

SUFFIX = "dc=zotpy,dc=test"
ROOT_DN = f"cn=admin,{SUFFIX}"
PEOPLE_DN = f"ou=people,{SUFFIX}"
GROUPS_DN = f"ou=groups,{SUFFIX}"
SERVICE_DN = f"cn=reader,{SUFFIX}"
SERVICE_PASSWORD = "reader-secret"
MODULE_DIR = "/usr/lib/ldap"
SCHEMA_DIR = "/etc/ldap/schema"
START_TIMEOUT = 20.0


def find_slapd() -> str:
    """The slapd binary (in /usr/sbin, often outside a user's PATH); skip or fail (CI) when absent."""
    path = shutil.which("slapd") or shutil.which("slapd", path="/usr/sbin:/usr/local/sbin:/sbin")
    if path is None or shutil.which("ldapadd") is None:
        missing("slapd and ldapadd are not installed (Debian packages slapd and ldap-utils)")
    assert path is not None
    return path


def ssha(password: str) -> str:
    """An OpenLDAP ``{SSHA}`` userPassword value."""
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


@dataclass
class Slapd:
    """One directory: ``users`` maps uid -> password, ``groups`` maps cn -> member uids."""

    workdir: Path
    users: Mapping[str, str] = field(default_factory=dict)
    groups: Mapping[str, Sequence[str]] = field(default_factory=dict)
    tls: tuple[Path, Path] | None = None

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)
        self.port = free_port()
        self.tls_port = free_port() if self.tls else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.root_password = "admin-secret"

    @property
    def pidfile(self) -> Path:
        return self.workdir / "slapd.pid"

    # -- addresses --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    def user_dn(self, uid: str) -> str:
        return f"uid={uid},{PEOPLE_DN}"

    def group_dn(self, cn: str) -> str:
        return f"cn={cn},{GROUPS_DN}"

    def credentials_file(self, bind_dn: str = SERVICE_DN, password: str = SERVICE_PASSWORD) -> Path:
        """zot's ``credentialsFile`` for the service account."""
        path = self.workdir / "ldap-credentials.json"
        path.write_text(json.dumps({"bindDN": bind_dn, "bindPassword": password}))
        return path

    def auth_settings(self, **overrides: Any) -> dict[str, Any]:
        """An ``http.auth.ldap`` section for this directory (plain LDAP, service bind, memberOf groups)."""
        settings: dict[str, Any] = {
            "address": "127.0.0.1",
            "port": self.port,
            "insecure": True,
            "baseDN": PEOPLE_DN,
            "userAttribute": "uid",
            "userGroupAttribute": "memberOf",
            "credentialsFile": str(self.credentials_file()),
        }
        settings.update(overrides)
        return settings

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, *, load: bool = True) -> None:
        """Start slapd and load the entries; ``load=False`` restarts it on its existing data (same port)."""
        for attempt in range(3):
            try:
                self._start_process()
                break
            except _PortTaken:
                if not load or attempt == 2:
                    raise
                self.port = free_port()  # lost a race for the port: take others
                self.tls_port = free_port() if self.tls else None
        if load:
            self._load()

    def _start_process(self) -> None:
        slapd = find_slapd()
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = self.workdir / "data"
        data.mkdir(exist_ok=True)
        conf = self.workdir / "slapd.conf"
        conf.write_text(self._config(data))
        self.pidfile.unlink(missing_ok=True)
        urls = self.url + (f" ldaps://127.0.0.1:{self.tls_port}" if self.tls else "")
        with (self.workdir / "slapd.log").open("ab") as log:
            # -d 0: stay in the foreground (no debug output), so SIGTERM reaches slapd itself.
            self.proc = subprocess.Popen(
                [slapd, "-d", "0", "-f", str(conf), "-h", urls],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        self._wait_ready()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        path = self.workdir / "slapd.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def __enter__(self) -> Slapd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------------------
    def _config(self, data: Path) -> str:
        schemas = ("core", "cosine", "inetorgperson", "nis")
        lines = [f"include {SCHEMA_DIR}/{name}.schema" for name in schemas]
        lines += [
            f"modulepath {MODULE_DIR}",
            "moduleload back_mdb",
            "moduleload memberof",
            f"pidfile {self.pidfile}",
            f"argsfile {self.workdir / 'slapd.args'}",
        ]
        if self.tls:
            lines += [f"TLSCertificateFile {self.tls[0]}", f"TLSCertificateKeyFile {self.tls[1]}"]
        lines += [
            "database mdb",
            "maxsize 33554432",
            f'suffix "{SUFFIX}"',
            f'rootdn "{ROOT_DN}"',
            f"rootpw {ssha(self.root_password)}",
            f"directory {data}",
            "overlay memberof",
            "memberof-group-oc groupOfNames",
            "memberof-member-ad member",
            "memberof-memberof-ad memberOf",
            "access to attrs=userPassword by anonymous auth by * none",
            f'access to * by dn.exact="{SERVICE_DN}" read by * read',
        ]
        return "\n".join(lines) + "\n"

    def _ldif(self) -> str:
        blocks = [
            f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: zotpy\no: zotpy test",
            f"dn: {PEOPLE_DN}\nobjectClass: organizationalUnit\nou: people",
            f"dn: {GROUPS_DN}\nobjectClass: organizationalUnit\nou: groups",
            f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
            f"cn: reader\nuserPassword: {ssha(SERVICE_PASSWORD)}",
        ]
        for uid, password in self.users.items():
            blocks.append(
                f"dn: {self.user_dn(uid)}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
                f"userPassword: {ssha(password)}"
            )
        for cn, members in self.groups.items():
            member_lines = "".join(f"\nmember: {self.user_dn(uid)}" for uid in members)
            blocks.append(f"dn: {self.group_dn(cn)}\nobjectClass: groupOfNames\ncn: {cn}{member_lines}")
        return "\n\n".join(blocks) + "\n"

    def _load(self) -> None:
        ldif = self.workdir / "data.ldif"
        ldif.write_text(self._ldif())
        proc = subprocess.run(
            ["ldapadd", "-x", "-H", self.url, "-D", ROOT_DN, "-w", self.root_password, "-f", str(ldif)],
            capture_output=True, text=True, timeout=30,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"ldapadd failed ({proc.returncode}): {proc.stderr}\n{self.logs()}")

    def _wait_ready(self) -> None:
        """Until slapd has written its pid file (after binding its listeners) and accepts connections.

        The pid file tells our slapd from another process that may have taken the port meanwhile.
        """
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                if any(_in_use(port) for port in (self.port, self.tls_port) if port):
                    raise _PortTaken(f"port {self.port} or {self.tls_port} was taken meanwhile")
                raise RuntimeError(f"slapd exited with {self.proc.returncode}\n{self.logs()}")
            try:
                if self.pidfile.read_text().strip() == str(self.proc.pid):
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"slapd did not listen on {self.url} within {START_TIMEOUT}s\n{self.logs()}")


class _PortTaken(RuntimeError):
    """slapd could not bind its port (another process took it after ``free_port``)."""


def _in_use(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False
