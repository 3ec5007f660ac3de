"""Values: durations, ports, booleans, defaults, stores, paths and per-section rules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from zotpy import DIST_SPEC_VERSION
from zotpy.config import load_mapping
from zotpy.config.durations import parse_duration
from zotpy.errors import ConfigError

ROOT = {"rootDirectory": "/srv/zot"}


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_mapping(data)
    return str(caught.value)


@pytest.mark.parametrize(("text", "seconds"), [
    ("1h", 3600.0), ("90s", 90.0), ("1h30m", 5400.0), ("500ms", 0.5), ("2h45m10s", 9910.0),
    ("0", 0.0), ("0s", 0.0), ("1.5h", 5400.0), ("250us", 0.00025), ("720h", 2592000.0), ("+5m", 300.0),
])
def test_go_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1", "h", "1d", "-1h", "", "1h 30m", "ten minutes", "1H"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("value", "expected"), [
    ("5x", "storage.gcDelay: invalid duration '5x'"),
    ("-5s", "storage.gcDelay: duration '-5s' must not be negative"),
    (60, "storage.gcDelay: expected a duration string such as '90s' or '1h30m', got the number 60"),
    (True, "storage.gcDelay: expected a duration string"),
])
def test_bad_duration_in_config(value: Any, expected: str) -> None:
    assert expected in problems({"storage": {**ROOT, "gcDelay": value}})


def test_zero_duration_may_be_a_number() -> None:
    assert load_mapping({"storage": {**ROOT, "gcDelay": 0, "gcInterval": "0s"}}).storage.gc_delay == 0.0


@pytest.mark.parametrize(("port", "expected"), [
    ("8080", 8080), (5000, 5000), ("0", 0), ("", 0), (65535, 65535),
])
def test_ports(port: Any, expected: int) -> None:
    assert load_mapping({"storage": ROOT, "http": {"port": port}}).http.port == expected


@pytest.mark.parametrize("port", ["70000", -1, 65536, "http", True, 80.5, None])
def test_bad_ports(port: Any) -> None:
    assert "http.port: " in problems({"storage": ROOT, "http": {"port": port}})


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), (False, False), ("true", True), ("False", False),
])
def test_booleans(value: Any, expected: bool) -> None:
    assert load_mapping({"storage": {**ROOT, "commit": value}}).storage.commit is expected


@pytest.mark.parametrize("value", ["maybe", 1, 0, "yes", None, []])
def test_bad_booleans(value: Any) -> None:
    assert "storage.commit: " in problems({"storage": {**ROOT, "commit": value}})


def test_defaults_follow_zot() -> None:
    config = load_mapping({"storage": ROOT})
    storage, http = config.storage, config.http
    assert (storage.dedupe, storage.gc, storage.commit, storage.remote_cache) == (True, True, False, False)
    assert (storage.gc_delay, storage.gc_interval, storage.max_repos) == (3600.0, 3600.0, 0)
    assert (storage.sub_paths, storage.fast_restart, storage.retention) == ({}, False, None)
    assert (http.address, http.port, http.realm, http.tls, http.auth) == ("127.0.0.1", 8080, "", None, None)
    assert (http.read_timeout, http.write_timeout, http.compat) == (60.0, 60.0, ())
    assert (config.log.level, config.log.output, config.log.audit) == ("debug", None, None)
    assert config.dist_spec_version == DIST_SPEC_VERSION
    assert (dict(config.extensions), config.scheduler, config.cluster) == ({}, None, None)
    assert config.warnings == ()


def test_gc_off_zeroes_unset_gc_timings_only() -> None:
    storage = load_mapping({"storage": {**ROOT, "gc": False}}).storage
    assert (storage.gc_delay, storage.gc_interval) == (0.0, 0.0)
    storage = load_mapping({"storage": {**ROOT, "gc": False, "gcDelay": "2h"}}).storage
    assert (storage.gc_delay, storage.gc_interval) == (7200.0, 0.0)


def test_remote_cache_defaults_on_with_a_storage_driver_and_dedupe() -> None:
    driver = {"name": "s3", "bucket": "b"}
    assert load_mapping({"storage": {**ROOT, "storageDriver": driver}}).storage.remote_cache is True
    storage = load_mapping({"storage": {**ROOT, "dedupe": False, "storageDriver": driver}}).storage
    assert storage.remote_cache is False


def test_sub_paths_are_read_only_and_keyed_without_slash() -> None:
    storage = load_mapping({"storage": {**ROOT, "subPaths": {
        "/a": {"rootDirectory": "/srv/a", "dedupe": False},
        "/b-2": {"rootDirectory": "/srv/b", "gc": False},
    }}}).storage
    assert list(storage.sub_paths) == ["a", "b-2"]
    assert storage.sub_paths["a"].dedupe is False and storage.sub_paths["a"].gc_delay == 3600.0
    assert storage.sub_paths["b-2"].gc_delay == 0.0
    with pytest.raises(TypeError):
        storage.sub_paths["c"] = storage.sub_paths["a"]  # type: ignore[index]


@pytest.mark.parametrize(("sub_paths", "expected"), [
    ({"/a": {"rootDirectory": "/srv/zot"}},
     "subPaths./a.rootDirectory: is the same directory as the rootDirectory of storage"),
    ({"/a": {"rootDirectory": "/srv/zot/a"}},
     "subPaths./a.rootDirectory: is nested inside the rootDirectory of storage"),
    ({"/a": {"rootDirectory": "/srv"}},
     "subPaths./a.rootDirectory: contains the rootDirectory of storage"),
    ({"/a": {"rootDirectory": "/srv/a"}, "/b": {"rootDirectory": "/srv/a/../a"}},
     "subPaths./b.rootDirectory: is the same directory as the rootDirectory of subPaths./a"),
    ({"/a": {"dedupe": True}}, "subPaths./a.rootDirectory: required key missing"),
    ({"/a": {"rootDirectory": "/srv/a", "gcDelay": "0s"}},
     "subPaths./a.gcDelay: must be greater than 0 when gc is on"),
])
def test_sub_path_stores_must_be_separate_and_complete(sub_paths: dict[str, Any], expected: str) -> None:
    assert f"storage.{expected}" in problems({"storage": {**ROOT, "subPaths": sub_paths}})


def test_sibling_directories_with_a_common_prefix_do_not_overlap() -> None:
    storage = load_mapping({"storage": {**ROOT, "subPaths": {"/a": {"rootDirectory": "/srv/zot2"}}}}).storage
    assert storage.sub_paths["a"].root_directory == "/srv/zot2"


@pytest.mark.parametrize("route", ["a", "/", "/a/b", "/a/", "/A", "/..", "/-a"])
def test_bad_sub_path_routes(route: str) -> None:
    message = problems({"storage": {**ROOT, "subPaths": {route: {"rootDirectory": "/srv/x"}}}})
    assert f"storage.subPaths.{route}: a subPaths route must be '/' followed by one" in message


def test_relative_paths_resolve_against_base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    config = load_mapping({
        "storage": {"rootDirectory": "data", "subPaths": {"/a": {"rootDirectory": "../other"}},
                    "storageDriver": {"name": "s3", "rootdirectory": "zot"}},
        "http": {
            "tls": {"cert": "tls/cert.pem", "key": "/abs/key.pem"},
            "auth": {"htpasswd": {"path": "htpasswd"}},
        },
        "log": {"output": "logs/zot.log"},
        "extensions": {"sync": {"credentialsFile": "creds.json", "downloadDir": "sync", "registries": []}},
    }, base_dir=str(tmp_path))
    assert config.storage.root_directory == str(tmp_path / "data")
    assert config.storage.sub_paths["a"].root_directory == str(tmp_path.parent / "other")
    driver = config.storage.storage_driver
    assert driver is not None and driver["rootdirectory"] == "zot"  # a bucket prefix, not a local path
    assert config.http.tls is not None
    assert (config.http.tls.cert, config.http.tls.key) == (str(tmp_path / "tls/cert.pem"), "/abs/key.pem")
    assert config.http.auth is not None and config.http.auth["htpasswd"]["path"] == str(tmp_path / "htpasswd")
    assert config.log.output == str(tmp_path / "logs/zot.log")
    assert config.extensions["sync"]["credentialsFile"] == str(tmp_path / "creds.json")
    assert config.extensions["sync"]["downloadDir"] == str(tmp_path / "sync")


def test_relative_paths_default_to_the_working_directory(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    storage = load_mapping({"storage": {"rootDirectory": "data"}}).storage
    assert storage.root_directory == os.path.join(tmp_path, "data")


@pytest.mark.parametrize(("http", "expected"), [
    ({"tls": {"cert": "c.pem"}}, "http.tls.key: required key missing"),
    ({"tls": {"key": "k.pem", "cacert": "ca.pem"}}, "http.tls.cert: required key missing"),
    ({"compat": ["docker2s2", "docker1"]}, "http.compat[1]: expected one of docker2s2"),
    ({"externalUrl": "registry.example.com"}, "http.externalUrl: expected an absolute http/https URL"),
    ({"readTimeout": "soon"}, "http.readTimeout: invalid duration"),
    ({"auth": {"htpasswd": {"path": ""}}}, "http.auth.htpasswd.path: must not be empty"),
    ({"auth": {"ldap": {"address": "ldap"}}}, "http.auth.ldap.baseDN: required key missing"),
    ({"auth": {"openid": {"providers": {"facebook": {}}}}},
     "http.auth.openid.providers.facebook: unknown provider"),
    ({"auth": {"openid": {"providers": {"github": {"clientid": "x"}}}}},
     "http.auth.openid.providers.github: needs scopes"),
    ({"auth": {"bearer": {"cert": "c", "awsSecretsManager": {"region": "r", "secretName": "s"}}}},
     "http.auth.bearer.awsSecretsManager: cannot be combined with cert"),
    ({"auth": {"mtls": {"identityAttributes": ["Serial"]}}, "tls": {"cert": "c", "key": "k", "cacert": "ca"}},
     "http.auth.mtls.identityAttributes: unknown attribute 'Serial'"),
    ({"auth": {"mtls": {}}}, "http.auth.mtls: needs http.tls.cacert"),
    ({"auth": {"failDelay": "5s"}}, "http.auth.failDelay: expected an integer"),
    ({"accessControl": {"repositories": {"**": {"defaultPolicy": ["read", "push"]}}}},
     "http.accessControl.repositories.**.defaultPolicy[1]: expected one of read, create, update, delete"),
    ({"accessControl": {"repositories": {"**": {"policies": [{"conditions": [{"message": "m"}]}]}}}},
     "http.accessControl.repositories.**.policies[0].conditions[0].expression: required key missing"),
    ({"ratelimit": {"rate": 0}}, "http.ratelimit.rate: must be at least 1"),
])
def test_http_rules(http: dict[str, Any], expected: str) -> None:
    assert expected in problems({"storage": ROOT, "http": http})


def test_openid_turns_api_keys_on_and_accepts_any_provider_case() -> None:
    auth = load_mapping({"storage": ROOT, "http": {"auth": {"openid": {"providers": {
        "GitHub": {"credentialsFile": "/etc/gh.json", "scopes": ["read:org"]}}}}}}).http.auth
    assert auth is not None and auth["apikey"] is True and list(auth["openid"]["providers"]) == ["github"]


def test_detect_manifest_collision_is_an_action() -> None:
    access = load_mapping({"storage": ROOT, "http": {"accessControl": {
        "adminPolicy": {"users": ["admin"], "actions": ["detectManifestCollision"]}}}}).http.access_control
    assert access is not None and access["adminPolicy"]["actions"] == ("detectManifestCollision",)


@pytest.mark.parametrize(("storage", "expected"), [
    ({"storageDriver": {"name": "minio"}},
     "storage.storageDriver.name: unknown driver 'minio'; expected one of s3, gcs, azure"),
    ({"storageDriver": {"bucket": "b"}},
     "storage.storageDriver.name: required; expected one of s3, gcs, azure"),
    ({"cacheDriver": {"name": "dynamodb", "cacheTablename": "t"}},
     "storage.cacheDriver: dynamodb is only usable"),
    ({"redirectBlobURL": True}, "storage.redirectBlobURL: only valid with a storageDriver"),
    ({"gcTimeWindow": "25:00-02:00"}, "storage.gcTimeWindow: expected 'HH:MM-HH:MM'"),
    ({"gcTimeWindow": "02:00-02:00"}, "storage.gcTimeWindow: start and end of the window are the same"),
    ({"maxRepos": -1}, "storage.maxRepos: must be at least 0"),
    ({"retention": {"policies": [{"keepTags": [{"patterns": ["v1.*", "(unclosed"]}]}]}},
     "storage.retention.policies[0].keepTags[0].patterns[1]: invalid regular expression '(unclosed'"),
    ({"retention": {"policies": [{"keepTags": [{"pulledWithin": "a week"}]}]}},
     "storage.retention.policies[0].keepTags[0].pulledWithin: invalid duration"),
])
def test_storage_rules(storage: dict[str, Any], expected: str) -> None:
    assert expected in problems({"storage": {**ROOT, **storage}})


def test_retention_defaults() -> None:
    policies = [{"repositories": ["**"], "keepTags": [{"patterns": ["v.*"], "pushedWithin": "24h"}]}]
    config = load_mapping({"storage": {**ROOT, "gcDelay": "2h", "retention": {"policies": policies}}})
    retention = config.storage.retention
    assert retention is not None
    assert (retention["dryRun"], retention["delay"]) == (False, 7200.0)
    policy = retention["policies"][0]
    assert (policy["deleteReferrers"], policy["deleteUntagged"]) == (False, True)
    assert policy["keepTags"][0]["pushedWithin"] == 86400.0


def test_log_level_is_case_insensitive_and_checked() -> None:
    assert load_mapping({"storage": ROOT, "log": {"level": "WARN"}}).log.level == "warn"
    message = problems({"storage": ROOT, "log": {"level": "verbose"}})
    assert "log.level: expected one of trace, debug" in message


@pytest.mark.parametrize(("cluster", "expected"), [
    ({"members": ["a:1"], "hashKey": "short"}, "cluster.hashKey: must be exactly 16 characters"),
    ({"members": [], "hashKey": "0123456789abcdef"}, "cluster.members: needs the host:port"),
    ({"hashKey": "0123456789abcdef"}, "cluster.members: required key missing"),
])
def test_cluster_rules(cluster: dict[str, Any], expected: str) -> None:
    assert expected in problems({"storage": ROOT, "cluster": cluster})


def test_scheduler_workers_must_be_positive() -> None:
    message = problems({"storage": ROOT, "scheduler": {"numWorkers": 0}})
    assert "scheduler.numWorkers: must be at least 1" in message


def test_present_extension_sections_are_enabled_except_lint() -> None:
    extensions = load_mapping({"storage": ROOT, "extensions": {
        "search": {}, "ui": None, "metrics": {}, "scrub": {"enable": False}, "lint": {}, "trust": {},
    }}).extensions
    assert {name: section["enable"] for name, section in extensions.items()} == {
        "search": True, "ui": True, "metrics": True, "scrub": False, "lint": False, "trust": True,
    }


@pytest.mark.parametrize(("extensions", "expected"), [
    ({"ui": {"enable": True}}, "extensions.ui: the UI needs the search extension enabled"),
    ({"metrics": {"prometheus": {"path": "/v2"}}},
     "extensions.metrics.prometheus.path: must be a clean absolute path"),
    ({"metrics": {"prometheus": {"path": "metrics"}}}, "extensions.metrics.prometheus.path: must be a clean"),
    ({"search": {"cve": {"trivy": {"sbom": {"format": "xml"}}}}},
     "extensions.search.cve.trivy.sbom.format: expected one of spdx-json, cyclonedx"),
    ({"sync": {"registries": [{"urls": []}]}}, "extensions.sync.registries[0].urls: needs at least one URL"),
    ({"sync": {"registries": [{"urls": ["https://a"], "maxRetries": 3}]}},
     "extensions.sync.registries[0].retryDelay: required when maxRetries is set"),
    ({"sync": {"registries": [{"urls": ["https://a"], "retryDelay": "1m", "maxRetryDelay": "5s"}]}},
     "extensions.sync.registries[0].maxRetryDelay: must not be smaller than retryDelay"),
    ({"sync": {"registries": [{"urls": ["https://a"], "content": [{"prefix": "a", "tags": {"regex": "("}}]}]}
      },
     "extensions.sync.registries[0].content[0].tags.regex: invalid regular expression"),
    ({"sync": {"registries": [{"urls": ["https://a"], "preserveDigest": True}]}},
     "extensions.sync.registries[0].preserveDigest: needs 'docker2s2' in http.compat"),
    ({"sync": {"registries": [{"urls": ["https://a"], "credentialHelper": "oauth2"}]}},
     "extensions.sync.registries[0].oauth2CredentialHelper: required when credentialHelper is oauth2"),
    ({"sync": {"registries": [{"urls": ["https://a"], "credentialHelper": "oauth2", "oauth2CredentialHelper":
                               {"tokenURL": "https://idp/t", "assertionFile": "a", "signingFile": "s"}}]}},
     "extensions.sync.registries[0].oauth2CredentialHelper: needs exactly one of assertionFile and"),
    ({"events": {"sinks": [{"type": "kafka", "address": "k:9092"}]}},
     "extensions.events.sinks[0].type: expected one of http, nats"),
    ({"lint": {"mandatoryAnnotations": "org.opencontainers.image.source"}},
     "extensions.lint.mandatoryAnnotations: expected a list"),
])
def test_extension_rules(extensions: dict[str, Any], expected: str) -> None:
    assert expected in problems({"storage": ROOT, "extensions": extensions})


def test_extension_sections_are_read_only() -> None:
    config = load_mapping({"storage": ROOT, "extensions": {"lint": {"mandatoryAnnotations": ["a"]}}})
    extensions = config.extensions
    with pytest.raises(TypeError):
        extensions["lint"]["enable"] = True  # type: ignore[index]
    assert extensions["lint"]["mandatoryAnnotations"] == ("a",)


def test_any_dist_spec_version_is_kept_with_a_warning() -> None:
    config = load_mapping({"distSpecVersion": "1.0.1", "storage": ROOT})
    assert config.dist_spec_version == "1.0.1"
    assert any("distSpecVersion '1.0.1'" in warning for warning in config.warnings)
