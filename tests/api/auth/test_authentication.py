"""Authentication through the app: credentials, malformed headers, sessions, throttling, failDelay."""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

from helpers.auth_policy import USERS
from helpers.htpasswd import bcrypt_hash, sha_crypt_hash
from zotpy.auth import htpasswd as htpasswd_module

Factory = Callable[..., Any]

MALFORMED = [
    "Basic",
    "Basic !!!not-base64!!!",
    "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic " + base64.b64encode(b":only-password").decode(),
    "Basic " + base64.b64encode(b"user:").decode(),
    "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    "Bearer some.jwt.token",
    "Digest username=x",
    "Negotiate abc",
    "Basic " + base64.b64encode(b"eve:x").decode() + ", Basic " + base64.b64encode(b"eve:y").decode(),
    "Basic " + "A" * 20000,
]


def _error(response: Any) -> dict[str, Any]:
    body = response.get_json()
    assert isinstance(body, dict) and isinstance(body.get("errors"), list), response.get_data()
    return body["errors"][0]


@pytest.mark.parametrize("header", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_authorization_is_a_clear_401(make_app: Factory, header: str) -> None:
    client = make_app()()
    for path in ("/v2/", "/v2/team/a/tags/list", "/v2/public/x/manifests/latest", "/v2/_catalog"):
        response = client.request("GET", path, headers={"Authorization": header})
        assert response.status_code == 401, (header, path, response.get_data())
        assert _error(response)["code"] == "UNAUTHORIZED"
        assert response.headers["WWW-Authenticate"] == 'Basic realm="Authorization Required"'


def test_wrong_password_and_unknown_user_answer_alike(make_app: Factory) -> None:
    app = make_app(http={"realm": "zotpy test"})
    wrong = app("eve", "not-her-password").request("GET", "/v2/")
    unknown = app("nobody", "whatever").request("GET", "/v2/")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_data() == unknown.get_data()
    challenge = 'Basic realm="zotpy test"'
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"] == challenge


def test_multiple_authorization_headers_are_refused(make_app: Factory) -> None:
    client = make_app()()
    good = client.headers  # anonymous: no header of its own
    assert good == {}
    response = client.client.get("/v2/", headers=[("Authorization", "Basic " + base64.b64encode(
        f"eve:{USERS['eve']}".encode()).decode()), ("Authorization", "Basic Og==")])
    assert response.status_code == 401
    assert "more than one" in _error(response)["message"]


def test_empty_basic_counts_as_anonymous(make_app: Factory) -> None:
    client = make_app()()
    empty = {"Authorization": "Basic Og=="}
    assert client.request("GET", "/v2/public/x/tags/list", headers=empty).status_code != 401
    assert client.request("GET", "/v2/team/a/tags/list", headers=empty).status_code == 401
    # the ping asks for a login, so clients with stored credentials send them
    assert client.request("GET", "/v2/", headers=empty).status_code == 401


def test_anonymous_ping_when_nothing_is_anonymous(make_app: Factory) -> None:
    app = make_app(policy={"repositories": {"**": {"defaultPolicy": ["read"]}}})
    ping = app().request("GET", "/v2/")
    assert ping.status_code == 401 and _error(ping)["code"] == "UNAUTHORIZED"
    assert app().request("GET", "/v2/_catalog").status_code == 401
    assert app("eve").request("GET", "/v2/").status_code == 200
    # the web UI is told to log in without a browser dialog
    ui = app().request("GET", "/v2/", headers={"X-ZOT-API-CLIENT": "zot-ui"})
    assert ui.status_code == 401 and "WWW-Authenticate" not in ui.headers


def test_authentication_without_access_control_lets_every_user_act(make_app: Factory) -> None:
    app = make_app(policy=None)
    assert app().request("GET", "/v2/x/tags/list").status_code == 401
    assert app("eve").push_image("any/repo").status_code == 201
    assert app("bob").request("DELETE", "/v2/any/repo/manifests/latest").status_code == 202


def test_sha_crypt_and_bcrypt_variants_log_in(make_app: Factory, tmp_path: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(users={"eve": "x"})
    lines = [f"s256:{sha_crypt_hash('pw-256', 5)}", f"s512:{sha_crypt_hash('pw-512', 6)}",
             f"b2a:{bcrypt_hash('pw-2a', prefix='$2a$')}", f"b2b:{bcrypt_hash('pw-2b', prefix='$2b$')}",
             f"b2y:{bcrypt_hash('pw-2y', prefix='$2y$')}", "md5:$apr1$abc$def", "broken-line"]
    (tmp_path / "htpasswd").write_text("\n".join(lines) + "\n")
    os.utime(tmp_path / "htpasswd", (time.time() + 5, time.time() + 5))
    monkeypatch.setattr(htpasswd_module, "STAT_INTERVAL", 0.0)
    for user, password in (("s256", "pw-256"), ("s512", "pw-512"), ("b2a", "pw-2a"), ("b2b", "pw-2b"),
                           ("b2y", "pw-2y")):
        assert app(user, password).request("GET", "/v2/").status_code == 200, user
        assert app(user, password + "x").request("GET", "/v2/").status_code == 401, user
    assert app("md5", "anything").request("GET", "/v2/").status_code == 401
    assert app("eve", "x").request("GET", "/v2/").status_code == 401  # removed from the file


def test_htpasswd_file_is_reloaded_when_it_changes(make_app: Factory, tmp_path: Any) -> None:
    app = make_app(users={"eve": "first"})
    assert app("eve", "first").request("GET", "/v2/").status_code == 200
    (tmp_path / "htpasswd").write_text(f"eve:{bcrypt_hash('second')}\nnew:{bcrypt_hash('fresh')}\n")
    deadline = time.monotonic() + 5
    while app("new", "fresh").request("GET", "/v2/").status_code != 200:
        assert time.monotonic() < deadline, "the new htpasswd file was never read"
        time.sleep(0.2)
    # the cached success of the old password ends with the reload
    assert app("eve", "first").request("GET", "/v2/").status_code == 401
    assert app("eve", "second").request("GET", "/v2/").status_code == 200


def test_ui_session_cookie_login_and_logout(make_app: Factory) -> None:
    app = make_app()
    ui = {"X-ZOT-API-CLIENT": "zot-ui"}
    login = app("eve").request("GET", "/v2/_catalog", headers=ui)
    assert login.status_code == 200
    cookie = login.headers["Set-Cookie"]
    assert cookie.startswith("session=") and "HttpOnly" in cookie
    anonymous = app()  # same Flask client: it carries the cookie
    listed = anonymous.request("GET", "/v2/_catalog", headers=ui)
    assert listed.status_code == 200
    assert anonymous.request("GET", "/v2/team/a/tags/list", headers=ui).status_code != 401
    # without the UI header the cookie is not a credential
    assert anonymous.request("GET", "/v2/team/a/tags/list").status_code == 401
    assert anonymous.request("POST", "/zot/auth/logout", headers=ui).status_code == 200
    assert anonymous.request("GET", "/v2/team/a/tags/list", headers=ui).status_code == 401


def test_forged_session_cookie_is_dropped(make_app: Factory) -> None:
    app = make_app()
    client = app()
    client.client.set_cookie("session", "0" * 64 + ".forged", domain="localhost")
    response = client.request("GET", "/v2/team/a/tags/list", headers={"X-ZOT-API-CLIENT": "zot-ui"})
    assert response.status_code == 401
    assert "session=;" in response.headers.get("Set-Cookie", "")


def test_repeated_failures_are_throttled(make_app: Factory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZOTPY_AUTH_FAILURES", "3/60")
    monkeypatch.setenv("ZOTPY_TRUSTED_PROXIES", "10.0.0.0/8")
    app = make_app()
    for _ in range(3):
        assert app("eve", "bad").request("GET", "/v2/").status_code == 401
    blocked = app("eve").request("GET", "/v2/")
    assert blocked.status_code == 429 and _error(blocked)["code"] == "TOOMANYREQUESTS"
    assert 0 < int(blocked.headers["Retry-After"]) <= 60
    # X-Forwarded-For from an untrusted peer changes nothing
    spoofed = app("eve").request("GET", "/v2/", headers={"X-Forwarded-For": "192.0.2.7"})
    assert spoofed.status_code == 429
    # anonymous reads are not blocked
    assert app().request("GET", "/v2/public/x/tags/list").status_code != 429
    # behind a trusted proxy each client has its own count
    proxied = app("eve").request("GET", "/v2/", headers={"X-Forwarded-For": "192.0.2.7"},
                                 environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert proxied.status_code == 200


def test_fail_delay_slows_refusals(make_app: Factory) -> None:
    app = make_app(auth={"failDelay": 1})
    started = time.monotonic()
    assert app("eve", "bad").request("GET", "/v2/").status_code == 401
    assert time.monotonic() - started >= 1.0
    started = time.monotonic()
    assert app("eve").request("DELETE", "/v2/infra/app/manifests/latest").status_code == 403
    assert time.monotonic() - started >= 1.0
    started = time.monotonic()
    assert app().request("GET", "/v2/team/a/tags/list").status_code == 401  # no credentials: no delay
    assert time.monotonic() - started < 1.0


def test_session_keys_file_signs_the_cookies(make_app: Factory, tmp_path: Any) -> None:
    import hashlib
    import hmac
    import json

    from zotpy.errors import ConfigError

    keys = tmp_path / "session-keys.json"
    keys.write_text(json.dumps({"hashKey": "k" * 32, "encryptKey": "e" * 32}))
    app = make_app(auth={"sessionKeysFile": str(keys), "secureSession": True})
    login = app("eve").request("GET", "/v2/", headers={"X-ZOT-API-CLIENT": "zot-ui"})
    cookie = login.headers["Set-Cookie"]
    assert "Secure" in cookie
    session_id, signature = cookie.split(";")[0].split("=", 1)[1].split(".")
    assert signature == hmac.new(b"k" * 32, session_id.encode(), hashlib.sha256).hexdigest()
    keys.write_text(json.dumps({"hashKey": "short"}))
    with pytest.raises(ConfigError, match="http.auth.sessionKeysFile"):
        make_app(auth={"sessionKeysFile": str(keys)})


def test_anonymous_only_policy_without_authentication(tmp_path: Any) -> None:
    from zotpy.app import create_app, prepare
    from zotpy.config import check_runnable, load_mapping

    config = load_mapping({"storage": {"rootDirectory": str(tmp_path / "root")}, "http": {"accessControl": {
        "repositories": {"public/**": {"anonymousPolicy": ["read", "create"]}}}}})
    check_runnable(config)
    prepare(config)
    client = create_app(config).test_client()
    assert client.get("/v2/").status_code == 200
    assert client.post("/v2/public/a/blobs/uploads/").status_code == 202
    refused = client.post("/v2/private/a/blobs/uploads/")
    assert refused.status_code == 401 and refused.get_json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert client.get("/v2/_catalog").get_json() == {"repositories": ["public/a"]}
