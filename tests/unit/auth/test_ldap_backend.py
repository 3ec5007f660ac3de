"""LDAPBackend against a real slapd: binds, groups, filters, escaping, TLS and an unreachable directory."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from helpers.env import free_port
from helpers.slapd import GROUPS_DN, PEOPLE_DN, SUFFIX, Slapd
from helpers.tls import self_signed_cert
from zotpy.auth.ldap import LDAPBackend
from zotpy.errors import AuthUnavailable, ConfigError

USERS = {"alice": "alice-pass", "bob": "bob-pass", "eve": "eve-pass", "dave(x)*": "dave-pass"}
GROUPS = {"devs": ["alice", "bob", "dave(x)*"], "admins": ["alice"]}
DEVS = f"cn=devs,{GROUPS_DN}"
ADMINS = f"cn=admins,{GROUPS_DN}"


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("ldap-tls"))


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory, tls_pair: tuple[Path, Path]) -> Iterator[Slapd]:
    with Slapd(tmp_path_factory.mktemp("slapd"), users=USERS, groups=GROUPS, tls=tls_pair) as slapd:
        yield slapd


@pytest.fixture(autouse=True)
def close_backends(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every backend a test made: its pooled connections, else left to the garbage collector."""
    made: list[LDAPBackend] = []
    real_init = LDAPBackend.__init__

    def init(self: LDAPBackend, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(LDAPBackend, "__init__", init)
    yield
    for ldap in made:
        ldap.close()


def backend(directory: Slapd, **overrides: object) -> LDAPBackend:
    return LDAPBackend(directory.auth_settings(**overrides), connect_timeout=1, receive_timeout=1)


def test_right_password_gives_the_users_groups(directory: Slapd) -> None:
    ldap = backend(directory)
    assert ldap.check("alice", "alice-pass") == frozenset({DEVS, ADMINS})
    assert ldap.check("bob", "bob-pass") == frozenset({DEVS})
    assert ldap.check("alice", "alice-pass") == frozenset({DEVS, ADMINS})  # again, on pooled connections


def test_without_group_attribute_groups_are_empty(directory: Slapd) -> None:
    assert backend(directory, userGroupAttribute="").check("alice", "alice-pass") == frozenset()


@pytest.mark.parametrize(("username", "password"), [
    ("alice", "wrong"),
    ("alice", "bob-pass"),
    ("nobody", "alice-pass"),
    ("alice", ""),
    ("", "alice-pass"),
    ("ALICE ", "x"),
])
def test_wrong_credentials_are_refused(directory: Slapd, username: str, password: str) -> None:
    assert backend(directory).check(username, password) is None


@pytest.mark.parametrize("username", [
    "*",
    "a*",
    "*)(uid=*",
    "alice)(|(uid=*",
    "*)(|(objectClass=*",
    "alice\\2a",
    "alice\x00",
])
def test_filter_injection_finds_nobody(directory: Slapd, username: str) -> None:
    ldap = backend(directory)
    assert ldap.check(username, "alice-pass") is None
    assert ldap.check(username, "bob-pass") is None


def test_special_characters_in_a_real_username_are_matched_literally(directory: Slapd) -> None:
    assert backend(directory).check("dave(x)*", "dave-pass") == frozenset({DEVS})


def test_user_filter_is_anded(directory: Slapd) -> None:
    ldap = backend(directory, userFilter=f"(memberOf={DEVS})")
    assert ldap.check("bob", "bob-pass") == frozenset({DEVS})
    assert ldap.check("eve", "eve-pass") is None  # right password, outside the filter
    bare = backend(directory, userFilter=f"memberOf={ADMINS}")  # zot also accepts it without parentheses
    assert bare.check("alice", "alice-pass") is not None
    assert bare.check("bob", "bob-pass") is None


def test_subtree_search_reaches_below_the_base(directory: Slapd) -> None:
    assert backend(directory, baseDN=SUFFIX).check("alice", "alice-pass") is None  # one level only
    assert backend(directory, baseDN=SUFFIX, subtreeSearch=True).check("alice", "alice-pass") is not None


def test_more_than_one_entry_is_refused(directory: Slapd) -> None:
    # Every person shares objectClass inetOrgPerson: a search on it matches several entries.
    assert backend(directory, userAttribute="objectClass").check("inetOrgPerson", "alice-pass") is None


def test_anonymous_service_bind_without_credentials_file(directory: Slapd) -> None:
    settings = directory.auth_settings()
    del settings["credentialsFile"]
    assert LDAPBackend(settings).check("bob", "bob-pass") == frozenset({DEVS})


def test_wrong_service_credentials_make_the_directory_unavailable(directory: Slapd, tmp_path: Path) -> None:
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"bindDN": f"cn=reader,{SUFFIX}", "bindPassword": "nope"}))
    with pytest.raises(AuthUnavailable):
        backend(directory, credentialsFile=str(creds)).check("alice", "alice-pass")


@pytest.mark.parametrize("content", [None, "not json", "[]", '{"bindDN": "cn=x"}', '{"bindPassword": "x"}'])
def test_bad_credentials_file_is_a_config_error(directory: Slapd, tmp_path: Path,
                                                content: str | None) -> None:
    creds = tmp_path / "creds.json"
    if content is not None:
        creds.write_text(content)
    with pytest.raises(ConfigError, match=r"http\.auth\.ldap\.credentialsFile"):
        backend(directory, credentialsFile=str(creds))


def test_credentials_file_keys_are_case_insensitive(directory: Slapd, tmp_path: Path) -> None:
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"binddn": f"cn=reader,{SUFFIX}", "BINDPASSWORD": "reader-secret"}))
    assert backend(directory, credentialsFile=str(creds)).check("bob", "bob-pass") == frozenset({DEVS})


def test_ldaps_with_ca_cert(directory: Slapd, tls_pair: tuple[Path, Path]) -> None:
    ldap = backend(directory, insecure=False, port=directory.tls_port, caCert=str(tls_pair[0]))
    assert ldap.check("alice", "alice-pass") == frozenset({DEVS, ADMINS})
    assert ldap.check("alice", "wrong") is None


def test_ldaps_with_an_untrusted_certificate_is_unavailable(directory: Slapd) -> None:
    with pytest.raises(AuthUnavailable):
        backend(directory, insecure=False, port=directory.tls_port).check("alice", "alice-pass")


def test_ldaps_skip_verify(directory: Slapd) -> None:
    ldap = backend(directory, insecure=False, port=directory.tls_port, skipVerify=True)
    assert ldap.check("alice", "alice-pass") == frozenset({DEVS, ADMINS})


def test_start_tls(directory: Slapd, tls_pair: tuple[Path, Path]) -> None:
    ldap = backend(directory, startTLS=True, caCert=str(tls_pair[0]))
    assert ldap.check("bob", "bob-pass") == frozenset({DEVS})


def test_concurrent_checks_share_a_bounded_pool(directory: Slapd) -> None:
    ldap = LDAPBackend(directory.auth_settings(), pool_size=2)
    cases = [("alice", "alice-pass"), ("bob", "bob-pass"), ("bob", "wrong"), ("nobody", "x")] * 10
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda case: ldap.check(*case), cases))
    expected = [frozenset({DEVS, ADMINS}), frozenset({DEVS}), None, None] * 10
    assert results == expected


def test_directory_down_is_unavailable_quickly() -> None:
    settings = {"address": "127.0.0.1", "port": free_port(), "insecure": True, "baseDN": PEOPLE_DN,
                "userAttribute": "uid"}
    ldap = LDAPBackend(settings, connect_timeout=1, receive_timeout=1)
    started = time.monotonic()
    with pytest.raises(AuthUnavailable) as caught:
        ldap.check("alice", "alice-pass")
    assert time.monotonic() - started < 1.0
    assert caught.value.http_status == 503


def test_directory_that_never_answers_times_out() -> None:
    with socket.socket() as black_hole:  # accepts connections (kernel backlog) and never says a word
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(16)
        settings = {"address": "127.0.0.1", "port": black_hole.getsockname()[1], "insecure": True,
                    "baseDN": PEOPLE_DN, "userAttribute": "uid"}
        ldap = LDAPBackend(settings, connect_timeout=1, receive_timeout=1)
        started = time.monotonic()
        with pytest.raises(AuthUnavailable):
            ldap.check("alice", "alice-pass")
        assert time.monotonic() - started < 3.0


def test_directory_restart_is_survived(tmp_path: Path) -> None:
    slapd = Slapd(tmp_path / "slapd", users={"alice": "alice-pass"})
    slapd.start()
    try:
        ldap = LDAPBackend(slapd.auth_settings(userGroupAttribute=""), connect_timeout=1, receive_timeout=1)
        assert ldap.check("alice", "alice-pass") == frozenset()
        slapd.stop()
        with pytest.raises(AuthUnavailable):
            ldap.check("alice", "alice-pass")
        slapd.start(load=False)
        assert ldap.check("alice", "alice-pass") == frozenset()  # stale pooled connections replaced
        slapd.stop()
        slapd.start(load=False)
        assert ldap.check("alice", "alice-pass") == frozenset()
    finally:
        slapd.stop()


def test_default_ports_follow_insecure(directory: Slapd) -> None:
    base = {"address": "127.0.0.1", "baseDN": PEOPLE_DN, "userAttribute": "uid"}
    assert LDAPBackend(base).settings.port == 636
    assert LDAPBackend({**base, "insecure": True}).settings.port == 389
    secure = LDAPBackend({**base, "insecure": True, "startTLS": True}).settings
    assert secure.start_tls and not secure.use_ssl
    assert LDAPBackend(base).settings.use_ssl


def test_credentials_file_is_reloaded_when_it_changes(directory: Slapd, tmp_path: Path) -> None:
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"bindDN": f"cn=reader,{SUFFIX}", "bindPassword": "reader-secret"}))
    ldap = backend(directory, credentialsFile=str(creds))
    assert ldap.check("bob", "bob-pass") == frozenset({DEVS})
    creds.write_text(json.dumps({"bindDN": f"cn=reader,{SUFFIX}", "bindPassword": "changed-and-wrong"}))
    with pytest.raises(AuthUnavailable):  # the pooled service connection was dropped, the new bind fails
        ldap.check("bob", "bob-pass")
    creds.write_text("{ half-written")
    with pytest.raises(AuthUnavailable):  # a broken file keeps the last good (here: wrong) credentials
        ldap.check("bob", "bob-pass")
    creds.write_text(json.dumps({"bindDN": f"cn=reader,{SUFFIX}", "bindPassword": "reader-secret"}))
    assert ldap.check("bob", "bob-pass") == frozenset({DEVS})


def test_a_directory_that_stops_answering_costs_one_timeout(tmp_path: Path) -> None:
    """A pooled connection that times out is not retried: a hanging directory costs one timeout, not two."""
    slapd = Slapd(tmp_path / "slapd", users={"bob": "bob-pass"})
    slapd.start()
    try:
        ldap = LDAPBackend(slapd.auth_settings(), connect_timeout=1, receive_timeout=1)
        assert ldap.check("bob", "bob-pass") is not None  # the pools now hold live connections
        assert slapd.proc is not None
        os.kill(slapd.proc.pid, signal.SIGSTOP)  # still accepts (kernel backlog), never answers
        try:
            started = time.monotonic()
            with pytest.raises(AuthUnavailable):
                ldap.check("bob", "bob-pass")
            assert time.monotonic() - started < 1.8
        finally:
            os.kill(slapd.proc.pid, signal.SIGCONT)
        assert ldap.check("bob", "bob-pass") is not None  # and it recovers
    finally:
        slapd.stop()


def test_unreadable_ca_cert_is_a_config_error(directory: Slapd, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"http\.auth\.ldap\.caCert"):
        backend(directory, insecure=False, caCert=str(tmp_path / "missing.pem"))


def test_wrong_base_dn_finds_nobody(directory: Slapd, caplog: pytest.LogCaptureFixture) -> None:
    assert backend(directory, baseDN="ou=nowhere,dc=zotpy,dc=test").check("alice", "alice-pass") is None
    assert "search under ou=nowhere" in caplog.text
