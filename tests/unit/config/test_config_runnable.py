"""check_runnable refuses what cannot run yet; warnings and the sanitised view for logs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from zotpy.config import check_runnable, load_mapping, sanitized
from zotpy.errors import ConfigError

ROOT = {"rootDirectory": "/srv/zot"}
TLS = {"cert": "/etc/zot/c.pem", "key": "/etc/zot/k.pem"}
MTLS = {**TLS, "cacert": "/etc/zot/ca.pem"}


def refusal(data: dict[str, Any]) -> str:
    config = load_mapping(data)  # what `zotpy verify` does: the shape is valid
    with pytest.raises(ConfigError) as caught:
        check_runnable(config)
    return str(caught.value)


@pytest.mark.parametrize(("auth", "tls"), [
    ({"openid": {"providers": {"github": {"clientid": "id", "scopes": ["user"]}}}}, None),
    ({"mtls": {"identityAttributes": ["CN"]}}, MTLS),
])
def test_authentication_is_refused_until_built(auth: dict[str, Any], tls: dict[str, Any] | None) -> None:
    http: dict[str, Any] = {"auth": auth}
    if tls:
        http["tls"] = tls
    message = refusal({"storage": ROOT, "http": http})
    assert "refuses to start" in message
    assert "will not run open while the config asks for protection" in message
    assert f"http.auth.{next(iter(auth))}: authentication is not available" in message


def test_settings_that_protect_nothing_alone_may_run() -> None:
    auth = {"failDelay": 2, "apikey": False}
    check_runnable(load_mapping({"storage": ROOT, "http": {"tls": TLS, "auth": auth}}))


@pytest.mark.parametrize("auth", [
    {"htpasswd": {"path": "/etc/zot/htpasswd"}},
    {"ldap": {"address": "ldap", "baseDN": "dc=x", "userAttribute": "uid"}},
    {"bearer": {"realm": "https://auth/token", "service": "zot", "cert": "/etc/zot/auth.crt"}},
    {"apikey": True},
])
def test_built_authentication_runs(auth: dict[str, Any]) -> None:
    check_runnable(load_mapping({"storage": ROOT, "http": {"auth": auth, "accessControl": {
        "repositories": {"**": {"defaultPolicy": ["read"]}}}}}))


def test_access_control_conditions_are_refused_until_built() -> None:
    message = refusal({"storage": ROOT, "http": {"auth": {"htpasswd": {"path": "/h"}}, "accessControl": {
        "repositories": {"prod/**": {"policies": [
            {"users": ["ann"], "actions": ["read"], "conditions": [{"expression": "true"}]}]}}}}})
    assert "http.accessControl.repositories.prod/**.policies[0].conditions: CEL conditions are not" in message
    assert "will not run open" in message


def test_access_control_without_authentication_allows_only_anonymous_policies() -> None:
    check_runnable(load_mapping({"storage": ROOT, "http": {"accessControl": {
        "repositories": {"**": {"anonymousPolicy": ["read"]}}}}}))
    message = refusal({"storage": ROOT, "http": {"accessControl": {
        "repositories": {"**": {"defaultPolicy": ["read"]}}, "adminPolicy": {"users": ["a"]}}}})
    assert "http.accessControl.repositories.**: only anonymousPolicy may be set without http.auth" in message
    assert "http.accessControl.adminPolicy: needs http.auth" in message


def test_client_certificates_are_refused_until_built() -> None:
    message = refusal({"storage": ROOT, "http": {"tls": MTLS}})
    assert "http.tls.cacert: client certificate verification (mTLS) is not available" in message


@pytest.mark.parametrize(("storage", "path", "name"), [
    ({**ROOT, "storageDriver": {"name": "azure", "accountname": "a"}}, "storage.storageDriver", "azure"),
    ({**ROOT, "subPaths": {"/a": {"rootDirectory": "/srv/a", "storageDriver": {"name": "gcs"}}}},
     "storage.subPaths./a.storageDriver", "gcs"),
])
def test_storage_drivers_are_refused_until_built(storage: dict[str, Any], path: str, name: str) -> None:
    message = refusal({"storage": storage})
    assert f"{path}: storage driver '{name}' is not available yet" in message
    assert "asks for protection" not in message


def test_s3_runs_and_needs_a_local_root_directory() -> None:
    check_runnable(load_mapping({"storage": {**ROOT, "storageDriver": {"name": "s3", "bucket": "b"}}}))
    message = refusal({"storage": {"storageDriver": {"name": "s3", "bucket": "b"}}})
    assert "storage.rootDirectory: required with storageDriver" in message


def test_every_refusal_is_listed() -> None:
    message = refusal({"storage": {**ROOT, "storageDriver": {"name": "azure"}},
                       "http": {"auth": {"openid": {"providers": {"github": {"clientid": "i",
                                                                             "scopes": ["u"]}}}},
                                "accessControl": {"repositories": {"a": {"policies": [
                                    {"users": ["a"], "conditions": [{"expression": "true"}]}]}}}}})
    assert [line.split(":")[0].strip() for line in message.splitlines()[1:]] == [
        "http.auth.openid", "http.accessControl.repositories.a.policies[0].conditions",
        "storage.storageDriver",
    ]


def test_sections_without_effect_warn_once_each() -> None:
    config = load_mapping({
        "storage": {**ROOT, "gcTimeWindow": "01:00-05:00", "maxRepos": 10, "retention": {"policies": []},
                    "cacheDriver": {"name": "redis", "url": "redis://localhost"},
                    "subPaths": {"/a": {"rootDirectory": "/srv/a", "retention": {}}}},
        "http": {"ratelimit": {"rate": 5}},
        "scheduler": {"numWorkers": 2},
        "cluster": {"members": ["a:1"], "hashKey": "0123456789abcdef"},
        "extensions": {"search": {}, "lint": {"enable": False}},
    })
    check_runnable(config)
    keys = [warning.split(" ")[0] for warning in config.warnings]
    assert sorted(keys) == sorted([
        "storage.cacheDriver", "storage.maxRepos", "http.ratelimit", "scheduler", "cluster",
        "extensions.lint",
    ])
    assert all("no effect yet" in warning for warning in config.warnings)


SECRETS = ["s3-secret-key", "s3-access-key", "oidc-client-secret", "redis-password", "sink-password",
           "sink-token", "0123456789abcdef", "url-password"]


def test_sanitized_masks_every_secret() -> None:
    config = load_mapping({
        "storage": {**ROOT,
                    "storageDriver": {"name": "s3", "bucket": "my-bucket", "accesskey": "s3-access-key",
                                      "SecretKey": "s3-secret-key"},
                    "cacheDriver": {"name": "redis", "url": "redis://ann:url-password@cache:6379/0",
                                    "password": "redis-password"}},
        "http": {"auth": {"openid": {"providers": {"oidc": {
            "issuer": "https://idp", "clientid": "zot-client", "clientsecret": "oidc-client-secret",
            "scopes": ["openid"]}}}}},
        "cluster": {"members": ["a:1"], "hashKey": "0123456789abcdef"},
        "extensions": {"events": {"sinks": [{"type": "http", "address": "http://sink",
                                             "credentials": {"username": "bob", "password": "sink-password",
                                                             "token": "sink-token"}}]}},
    })
    text = json.dumps(sanitized(config))
    for secret in SECRETS:
        assert secret not in text
    view = sanitized(config)
    assert view["storage"]["storage_driver"]["secretkey"] == "******"
    assert view["cluster"]["hashKey"] == "******"
    assert view["storage"]["cache_driver"]["url"] == "redis://ann:******@cache:6379/0"
    # What is not secret stays readable.
    assert view["storage"]["storage_driver"]["bucket"] == "my-bucket"
    assert view["http"]["auth"]["openid"]["providers"]["oidc"]["clientid"] == "zot-client"
    assert view["extensions"]["events"]["sinks"][0]["credentials"]["username"] == "bob"
    assert view["storage"]["root_directory"] == "/srv/zot"


def test_sanitized_is_plain_json() -> None:
    config = load_mapping({"storage": {**ROOT, "subPaths": {"/a": {"rootDirectory": "/srv/a"}}},
                           "extensions": {"lint": {"mandatoryAnnotations": ["a"]}}})
    view = sanitized(config)
    assert json.loads(json.dumps(view)) == view
    assert view["storage"]["sub_paths"]["a"]["root_directory"] == "/srv/a"
    assert view["extensions"]["lint"]["mandatoryAnnotations"] == ["a"]
