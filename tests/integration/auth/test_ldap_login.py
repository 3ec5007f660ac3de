"""LDAP logins end to end: a real slapd, zotpy under gunicorn, podman and skopeo as clients."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from helpers.clients import ContainerTools, ToolError
from helpers.env import require_tool
from helpers.layout import OCILayout, build_image, make_layer
from helpers.registry_client import error_codes
from helpers.server import LiveServer, make_server
from helpers.slapd import GROUPS_DN, Slapd

pytestmark = pytest.mark.integration

USERS = {"alice": "alice-pass", "bob": "bob-pass", "eve": "eve-pass"}
DEVS = f"cn=devs,{GROUPS_DN}"
ALL = ["read", "create", "update", "delete"]
ACCESS_CONTROL = {
    "repositories": {
        "**": {"policies": [{"users": ["alice"], "actions": ALL}], "defaultPolicy": ["read"]},
        # LDAP groups (memberOf DNs) are policy groups, as in zot.
        "team/**": {"policies": [{"groups": [DEVS], "actions": ["read", "create", "update"]}],
                    "defaultPolicy": ["read"]},
    },
}


def start_server(workdir: Path, ldap: dict[str, Any], **options: Any) -> LiveServer:
    server = make_server(
        workdir, workers=1,
        http_extra={"auth": {"ldap": ldap, "failDelay": 0}, "accessControl": ACCESS_CONTROL},
        extra_env={"ZOTPY_AUTH_FAILURES": "0"},  # the timing test makes 100 failures in a row
        **options,
    )
    assert isinstance(server, LiveServer)
    server.start()
    return server


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with Slapd(tmp_path_factory.mktemp("slapd"), users=USERS, groups={"devs": ["bob"]}) as slapd:
        yield slapd


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, directory: Slapd) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("ldap-registry"), directory.auth_settings())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def layout(tmp_path: Path) -> OCILayout:
    # Random layers: containers/image caches blob substitutions across runs, so content must be new.
    image = build_image(layers=[make_layer()], labels={"auth": "ldap"})
    return OCILayout(tmp_path / "layout").write({"v1": image})


def ping(server: LiveServer, auth: tuple[str, str] | None) -> requests.Response:
    return requests.get(f"{server.url}/v2/", auth=auth, timeout=30)


def test_podman_login_push_and_pull(server: LiveServer, tools: ContainerTools, layout: OCILayout) -> None:
    require_tool("podman")
    local = "localhost/zotpy-test/ldap:v1"
    tools.load_layout(layout.path, "v1", local)
    image_id = tools.podman_image_id(local)
    with pytest.raises(ToolError):
        tools.podman("login", "--tls-verify=false", "-u", "alice", "-p", "wrong", server.hostport)
    tools.podman("login", "--tls-verify=false", "-u", "alice", "-p", "alice-pass", server.hostport)
    remote = f"{server.hostport}/alice/app:v1"
    tools.podman_push(local, f"docker://{remote}")
    tools.podman("rmi", "--force", local)
    assert tools.podman_pull(remote) == image_id


def test_skopeo_with_credentials_and_ldap_groups(server: LiveServer, tools: ContainerTools,
                                                 layout: OCILayout, tmp_path: Path) -> None:
    require_tool("skopeo")
    target = f"docker://{server.hostport}/team/tool:v1"
    # bob may push under team/ only through his LDAP group.
    tools.skopeo_copy(f"oci:{layout.path}:v1", target, "--dest-creds", "bob:bob-pass")
    with pytest.raises(ToolError):
        tools.skopeo_copy(f"oci:{layout.path}:v1", f"docker://{server.hostport}/bob/x:v1",
                          "--dest-creds", "bob:bob-pass")
    with pytest.raises(ToolError):  # eve is not in the group: read only
        tools.skopeo_copy(f"oci:{layout.path}:v1", target, "--dest-creds", "eve:eve-pass")
    back = OCILayout(tmp_path / "back")
    tools.skopeo_copy(target, f"oci:{back.path}:v1", "--src-creds", "eve:eve-pass")
    assert back.tags()["v1"]["digest"] == layout.tags()["v1"]["digest"]


@pytest.mark.parametrize("auth", [
    ("alice", "wrong"), ("nobody", "alice-pass"), ("*", "alice-pass"), ("*)(uid=*", "alice-pass"),
    ("alice)(|(uid=*", "bob-pass"),
])
def test_bad_credentials_are_401(server: LiveServer, auth: tuple[str, str]) -> None:
    resp = ping(server, auth)
    assert resp.status_code == 401
    assert resp.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert error_codes(resp) == ["UNAUTHORIZED"]


def test_right_credentials_are_200(server: LiveServer) -> None:
    assert ping(server, ("alice", "alice-pass")).status_code == 200
    assert ping(server, None).status_code == 401


def timing_round(session: requests.Session, url: str, cases: dict[str, tuple[str, str]]) -> dict[str, float]:
    """Median answer time per case over 50 tries each, interleaved A B B A so order effects cancel."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for attempt in range(50):
        for name in names if attempt % 2 == 0 else reversed(names):
            started = time.perf_counter()
            resp = session.get(url, auth=cases[name], timeout=30)
            times[name].append(time.perf_counter() - started)
            assert resp.status_code == 401
    return {name: statistics.median(samples) for name, samples in times.items()}


def test_unknown_user_and_wrong_password_take_the_same_time(server: LiveServer) -> None:
    """Over 50 tries each, the median answer times differ by less than 10% (no username enumeration).

    The machine is shared, so a round disturbed by other load is measured again (up to 3 rounds); a
    real difference shows in every round (without the decoy bind for unknown users: 17-31%).
    """
    session = requests.Session()
    url = f"{server.url}/v2/"
    cases = {"unknown user": ("nobody", "some-password"), "wrong password": ("alice", "some-password")}
    for auth in cases.values():  # warm the worker and its LDAP connections
        for _ in range(5):
            session.get(url, auth=auth, timeout=30)
    rounds = []
    for _ in range(3):
        medians = timing_round(session, url, cases)
        spread = abs(medians["unknown user"] - medians["wrong password"]) / max(medians.values())
        rounds.append(f"{({k: round(v * 1000, 3) for k, v in medians.items()})} ms, spread {spread:.1%}")
        print("LDAP timing medians:", rounds[-1])
        if spread < 0.10:
            return
    pytest.fail("unknown user and wrong password differ by 10% or more in every round:\n" + "\n".join(rounds))


def test_directory_slow_or_down_is_503_and_never_stalls_the_worker(tmp_path: Path, directory: Slapd) -> None:
    black_hole = socket.socket()  # accepts connections (kernel backlog), never answers
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(16)
    settings = directory.auth_settings(port=black_hole.getsockname()[1])
    server = start_server(tmp_path / "registry", settings)
    try:
        slow: dict[str, Any] = {}

        def ask_slow_directory() -> None:
            started = time.monotonic()
            slow["resp"] = ping(server, ("alice", "alice-pass"))
            slow["seconds"] = time.monotonic() - started

        thread = threading.Thread(target=ask_slow_directory)
        thread.start()
        time.sleep(0.5)  # the worker is now waiting on the directory
        started = time.monotonic()
        anonymous = ping(server, None)
        quick = time.monotonic() - started
        thread.join(30)
        print(f"slow directory: 503 after {slow['seconds']:.2f}s; meanwhile an anonymous request took "
              f"{quick * 1000:.1f} ms")
        assert anonymous.status_code == 401
        assert quick < 1.0, f"another request waited {quick:.2f}s behind the slow directory"
        assert slow["resp"].status_code == 503, slow["resp"].text
        assert error_codes(slow["resp"]) == ["UNAVAILABLE"]
        assert slow["seconds"] < 15

        black_hole.close()  # now nothing listens: connection refused
        started = time.monotonic()
        down = ping(server, ("alice", "alice-pass"))
        assert down.status_code == 503 and error_codes(down) == ["UNAVAILABLE"]
        assert time.monotonic() - started < 2.0
        assert ping(server, None).status_code == 401  # no credentials: no directory needed
        assert "Traceback" not in server.logs()
    finally:
        black_hole.close()
        server.stop()
