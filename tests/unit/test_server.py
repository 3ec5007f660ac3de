"""gunicorn settings built from a config, the master's startup hook, and deploy/gunicorn.py."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gunicorn import sock
from gunicorn.config import Config as GunicornConfig

from helpers.env import free_port
from helpers.tls import self_signed_cert
from zotpy import server
from zotpy.config import Config, GlobalStorageConfig, HTTPConfig, LogConfig, TLSConfig
from zotpy.errors import ConfigError
from zotpy.logs import GunicornLogger

CHECKOUT = Path(__file__).resolve().parents[2]
DEPLOY_CONFIG = CHECKOUT / "deploy" / "gunicorn.py"


def make_config(tmp_path: Path, **http: Any) -> Config:
    return Config(
        storage=GlobalStorageConfig(root_directory=str(tmp_path / "data")),
        http=HTTPConfig(**{"address": "127.0.0.1", "port": 5000, **http}),
        log=LogConfig(level="info", output=str(tmp_path / "zotpy.log")),
        warnings=("extensions.search is accepted but has no effect yet",),
    )


def gunicorn_config(settings: dict[str, Any]) -> GunicornConfig:
    """Feed settings through gunicorn's own validation, as its config-file loader does."""
    cfg = GunicornConfig()
    for name, value in settings.items():
        cfg.set(name, value)
    return cfg


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in saved[0]:
            handler.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", "127.0.0.1:5000"),
        ("0.0.0.0", "0.0.0.0:5000"),
        ("", "0.0.0.0:5000"),
        ("::1", "[::1]:5000"),
        ("::", "[::]:5000"),
        ("[::1]", "[::1]:5000"),
        ("registry.local", "registry.local:5000"),
    ],
)
def test_bind_address(address: str, expected: str) -> None:
    assert server.bind_address(address, 5000) == expected


def test_settings_from_a_config(tmp_path: Path) -> None:
    settings = server.gunicorn_settings(make_config(tmp_path, port=5123), environ={})
    assert settings["bind"] == ["127.0.0.1:5123"]
    assert settings["worker_class"] == "zotpy.server.GeventWorker"
    assert settings["workers"] == server.default_workers() >= 2
    assert settings["worker_connections"] == 1000
    assert settings["graceful_timeout"] == 30
    assert settings["timeout"] == 120
    assert settings["keepalive"] == 75
    assert settings["preload_app"] is False
    assert settings["logger_class"] is GunicornLogger
    assert settings["accesslog"] == settings["errorlog"] == str(tmp_path / "zotpy.log")
    assert "certfile" not in settings and "ssl_context" not in settings

    cfg = gunicorn_config(settings)
    assert cfg.address == [("127.0.0.1", 5123)]
    assert cfg.worker_class is server.GeventWorker
    assert not cfg.is_ssl
    assert cfg.control_socket_disable


def test_environment_overrides(tmp_path: Path) -> None:
    environ = {"ZOTPY_WORKERS": "3", "ZOTPY_WORKER_CONNECTIONS": "250", "ZOTPY_GRACEFUL_TIMEOUT": "5"}
    settings = server.gunicorn_settings(make_config(tmp_path), environ=environ)
    assert (settings["workers"], settings["worker_connections"], settings["graceful_timeout"]) == (3, 250, 5)


@pytest.mark.parametrize("value", ["0", "-2", "many", "1.5"])
def test_bad_environment_values_name_the_variable(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="ZOTPY_WORKERS"):
        server.gunicorn_settings(make_config(tmp_path), environ={"ZOTPY_WORKERS": value})


def test_ipv6_bind_is_accepted_by_gunicorn(tmp_path: Path) -> None:
    config = make_config(tmp_path, address="::1", port=5001)
    cfg = gunicorn_config(server.gunicorn_settings(config, environ={}))
    assert cfg.address == [("::1", 5001)]


def test_loglevel_follows_the_config_but_keeps_gunicorn_debug_for_trace(tmp_path: Path) -> None:
    def level(name: str) -> str:
        config = make_config(tmp_path)
        config = Config(storage=config.storage, http=config.http, log=LogConfig(level=name))
        return str(server.gunicorn_settings(config, environ={})["loglevel"])

    assert [level(name) for name in ("trace", "debug", "info", "warn", "error", "panic")] == [
        "debug",
        "info",
        "info",
        "warning",
        "error",
        "critical",
    ]


def test_tls_settings_enforce_tls_1_2(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path / "tls")
    config = make_config(tmp_path, tls=TLSConfig(cert=str(cert), key=str(key)))
    settings = server.gunicorn_settings(config, environ={})
    assert (settings["certfile"], settings["keyfile"]) == (str(cert), str(key))

    cfg = gunicorn_config(settings)
    assert cfg.is_ssl
    context = sock.ssl_context(cfg)  # what gunicorn's workers call
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_config_path_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert server.config_path({}) == str(tmp_path / "conf" / "config.json")
    assert server.config_path({"ZOTPY_CONFIG": "etc/zot.yaml"}) == str(tmp_path / "etc" / "zot.yaml")
    assert server.config_path({"ZOTPY_CONFIG": "/etc/zotpy/config.json"}) == "/etc/zotpy/config.json"


def write_config(tmp_path: Path, document: dict[str, Any]) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    return str(path)


def test_settings_or_exit_names_the_bad_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"storage": {"rootDirectory": str(tmp_path), "dedup": True}})
    with pytest.raises(SystemExit) as exit_info:
        server.settings_or_exit(path, environ={})
    assert isinstance(exit_info.value.code, str)
    assert exit_info.value.code.startswith("error: ")
    assert "storage.dedup" in exit_info.value.code


def test_settings_or_exit_refuses_auth_that_is_not_built(tmp_path: Path) -> None:
    openid = {"providers": {"github": {"clientid": "id", "scopes": ["user"]}}}
    document = {"storage": {"rootDirectory": str(tmp_path)}, "http": {"auth": {"openid": openid}}}
    with pytest.raises(SystemExit) as exit_info:
        server.settings_or_exit(write_config(tmp_path, document), environ={})
    assert "http.auth.openid" in str(exit_info.value.code)


def test_settings_or_exit_refuses_a_bad_environment(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"storage": {"rootDirectory": str(tmp_path)}})
    with pytest.raises(SystemExit, match="ZOTPY_GRACEFUL_TIMEOUT"):
        server.settings_or_exit(path, environ={"ZOTPY_GRACEFUL_TIMEOUT": "soon"})


def test_on_starting_prepares_once_and_logs_warnings_and_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    prepared: list[Config] = []
    monkeypatch.setattr(server, "prepare", prepared.append)
    config = make_config(tmp_path)
    server.gunicorn_settings(config, environ={})["on_starting"](object())

    assert prepared == [config]
    entries = [json.loads(line) for line in (tmp_path / "zotpy.log").read_text().splitlines()]
    assert [e["message"] for e in entries if e["level"] == "warning"] == list(config.warnings)
    [started] = [e for e in entries if "config" in e]
    assert started["config"]["http"]["port"] == 5000


@pytest.mark.parametrize("error", [ConfigError("storage.rootDirectory: nope"), PermissionError(13, "denied")])
def test_on_starting_turns_operator_errors_into_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None, error: Exception
) -> None:
    def fail(config: Config) -> None:
        raise error

    monkeypatch.setattr(server, "prepare", fail)
    hook = server.gunicorn_settings(make_config(tmp_path), environ={})["on_starting"]
    with pytest.raises(RuntimeError, match="startup failed"):
        hook(object())


def test_embedded_application_uses_the_settings_and_create_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sentinel = object()
    monkeypatch.setattr(server, "create_app", lambda config: (config, sentinel))
    config = make_config(tmp_path, port=5124)
    settings = server.gunicorn_settings(config, environ={"ZOTPY_WORKERS": "2"})
    application = server.ZotpyApplication(config, settings)
    assert application.cfg.address == [("127.0.0.1", 5124)]
    assert application.cfg.workers == 2
    assert application.cfg.worker_class is server.GeventWorker
    assert application.load() == (config, sentinel)


def run_deploy_config(tmp_path: Path, config: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run gunicorn with deploy/gunicorn.py from an unrelated directory, as systemd would."""
    env = {**os.environ, "ZOTPY_CONFIG": config}
    return subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY_CONFIG), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_config_reads_the_zotpy_config(tmp_path: Path) -> None:
    document = {
        "storage": {"rootDirectory": str(tmp_path / "data")},
        "http": {"address": "::1", "port": 5125},
    }
    result = run_deploy_config(tmp_path, write_config(tmp_path, document), "--print-config")
    assert result.returncode == 0, result.stderr
    lines = (line.partition("=") for line in result.stdout.splitlines())
    printed = {name.strip(): value.strip() for name, _, value in lines}
    assert printed["bind"] == "['[::1]:5125']"
    assert printed["worker_class"] == "zotpy.server.GeventWorker"
    assert printed["wsgi_app"] == "zotpy.wsgi:app"
    assert printed["preload_app"] == "False"
    assert "MonkeyPatchWarning" not in result.stderr


def test_deploy_config_with_a_bad_config_exits_with_one_line(tmp_path: Path) -> None:
    document = {"storage": {"rootDirectory": str(tmp_path / "data")}, "http": {"prot": 5000}}
    result = run_deploy_config(tmp_path, write_config(tmp_path, document), "--print-config")
    assert result.returncode == 1
    assert "http.prot" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_sigterm_does_not_wait_for_idle_keepalive_connections(tmp_path: Path) -> None:
    """Connections waiting for their next request do not hold shutdown up for the grace period."""
    port = free_port()
    document = {
        "storage": {"rootDirectory": str(tmp_path / "data")},
        "http": {"address": "127.0.0.1", "port": port},
        "log": {"level": "info", "output": str(tmp_path / "zotpy.log")},
    }
    env = {**os.environ, "ZOTPY_CONFIG": write_config(tmp_path, document), "ZOTPY_WORKERS": "1"}
    command = [sys.executable, "-m", "gunicorn", "-c", str(DEPLOY_CONFIG)]
    process = subprocess.Popen(command, cwd=tmp_path, env=env)
    try:
        idle = wait_until_serving(port)
        partial = socket.create_connection(("127.0.0.1", port))
        partial.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")  # a request that never completes
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=25) == 0
        assert time.monotonic() - started < 10  # the grace period is 30 s
        idle.close()
        partial.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    entries = [json.loads(line) for line in (tmp_path / "zotpy.log").read_text().splitlines()]
    assert not [e for e in entries if e["level"] in ("warning", "error")]


def wait_until_serving(port: int) -> socket.socket:
    """A keep-alive connection that has completed one request once the server answers."""
    deadline = time.monotonic() + 30
    while True:
        try:
            connection = socket.create_connection(("127.0.0.1", port), timeout=5)
            connection.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            if connection.recv(4096).startswith(b"HTTP/1.1 200"):
                return connection
            connection.close()
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no server on port {port}")
        time.sleep(0.1)


ZERO_COPY_SCRIPT = r"""
from gevent import monkey
monkey.patch_all()
import hashlib, os, socket, sys, tempfile
import gevent
from zotpy.wire import install_zero_copy_sendfile

calls = []
real_sendfile = os.sendfile


def counting_sendfile(*args):
    calls.append(args)
    return real_sendfile(*args)


os.sendfile = counting_sendfile
install_zero_copy_sendfile()
data = os.urandom(8 * 1024 * 1024 + 123)
with tempfile.TemporaryFile() as f:
    f.write(data)
    f.flush()
    left, right = socket.socketpair()
    received = bytearray()

    def drain():
        while len(received) < len(data) - 1000:
            chunk = right.recv(1 << 20)
            if not chunk:
                break
            received.extend(chunk)

    reader = gevent.spawn(drain)
    sent = left.sendfile(f, offset=1000)
    reader.join(timeout=30)
    print(sent, f.tell(), hashlib.sha256(received).hexdigest() == hashlib.sha256(data[1000:]).hexdigest(),
          len(calls))
"""


def test_gevent_sockets_send_files_with_os_sendfile(tmp_path: Path) -> None:
    """gevent's own sendfile copies 8 KiB at a time through user space; ours stays in the kernel."""
    result = subprocess.run([sys.executable, "-c", ZERO_COPY_SCRIPT], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(CHECKOUT / "src")})
    assert result.returncode == 0, result.stderr
    sent, position, same, sendfile_calls = result.stdout.split()
    assert int(sent) == 8 * 1024 * 1024 + 123 - 1000
    assert int(position) == 8 * 1024 * 1024 + 123
    assert same == "True"
    # The kernel moved the bytes, in large steps (8 KiB sends would take over a thousand calls).
    assert 1 <= int(sendfile_calls) < 200


class _PeerSocket:
    """A socket whose peer address is given; records the options set on it."""

    def __init__(self, peer: tuple[str, int] | str) -> None:
        self.peer = peer
        self.options: dict[tuple[int, int], int] = {}

    def getpeername(self) -> tuple[str, int] | str:
        return self.peer

    def setsockopt(self, level: int, name: int, value: int) -> None:
        self.options[(level, name)] = value


@pytest.mark.parametrize(("peer", "shrunk"), [
    (("127.0.0.1", 5000), True),
    (("127.8.9.10", 5000), True),
    (("::1", 5000), True),
    (("::ffff:127.0.0.1", 5000), True),
    (("10.1.2.3", 5000), False),
    (("2001:db8::1", 5000), False),
    ("/run/zotpy.sock", False),
])
def test_send_buffer_shrinks_only_towards_local_peers(peer: tuple[str, int] | str, shrunk: bool) -> None:
    import socket

    from zotpy.wire import LOCAL_PEER_SNDBUF, _fit_send_buffer_to_peer

    sock = _PeerSocket(peer)
    _fit_send_buffer_to_peer(sock)
    expected = {(socket.SOL_SOCKET, socket.SO_SNDBUF): LOCAL_PEER_SNDBUF} if shrunk else {}
    assert sock.options == expected


def test_send_buffer_of_a_real_loopback_connection_is_set() -> None:
    import socket

    from zotpy.wire import LOCAL_PEER_SNDBUF, _fit_send_buffer_to_peer

    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        with client, accepted:
            _fit_send_buffer_to_peer(accepted)
            # Linux doubles the value for its own bookkeeping.
            assert accepted.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) in (LOCAL_PEER_SNDBUF,
                                                                                2 * LOCAL_PEER_SNDBUF)


@pytest.mark.parametrize("read_ahead", [0, 100, 70_000, 300_000])
@pytest.mark.parametrize("sizes", [[1 << 20], [65_536, 1 << 20, 100, 1 << 20], [1000, 200_000, 3]])
def test_lean_body_reads_return_the_body_exactly(read_ahead: int, sizes: list[int]) -> None:
    """Large reads go straight to the socket; with read-ahead left in the socket reader, small reads
    in between and the next request's bytes behind the body, every byte comes back once, in order."""
    import random
    import socket
    import threading

    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import SocketUnreader

    from zotpy.wire import install_lean_body_reads

    install_lean_body_reads()
    body = random.Random(5).randbytes(3 * 1024 * 1024 + 17)
    after = b"GET /next HTTP/1.1\r\n\r\n"
    left, right = socket.socketpair()
    with left, right:
        unreader = SocketUnreader(right)
        unreader.buf.write(body[:read_ahead])  # what header parsing read beyond the headers
        sender = threading.Thread(target=left.sendall, args=(body[read_ahead:] + after,))
        sender.start()
        stream = Body(LengthReader(unreader, len(body)))
        got = bytearray()
        turn = 0
        while piece := stream.read(sizes[turn % len(sizes)]):
            assert len(piece) <= sizes[turn % len(sizes)]
            got += piece
            turn += 1
        sender.join()
        assert bytes(got) == body
        rest = unreader.read(len(after))  # the next request is still there, untouched
        assert rest == after
