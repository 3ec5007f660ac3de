"""Key handling: case-insensitive names, user-data keys kept, unknown keys named by path."""

from __future__ import annotations

from typing import Any

import pytest

from zotpy.config import load_mapping
from zotpy.errors import ConfigError

ROOT = {"rootDirectory": "/srv/zot"}


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_mapping(data)
    return str(caught.value)


def test_keys_match_case_insensitively_at_every_level() -> None:
    config = load_mapping({
        "DistSpecVersion": "1.1.1",
        "STORAGE": {"RootDirectory": "/srv/zot", "GCDELAY": "2h", "gcinterval": "3h", "Dedupe": False},
        "Http": {"PORT": "9000", "ADDRESS": "0.0.0.0", "Compat": ["docker2s2"]},
        "log": {"LEVEL": "info"},
        "Extensions": {
            "SEARCH": {"CVE": {"UpdateInterval": "3h"}},
            "Metrics": {"PROMETHEUS": {"PATH": "/m"}},
        },
    })
    assert config.storage.root_directory == "/srv/zot"
    storage = config.storage
    assert (storage.gc_delay, storage.gc_interval, storage.dedupe) == (7200.0, 10800.0, False)
    assert (config.http.port, config.http.address, config.docker_compat) == (9000, "0.0.0.0", True)
    assert config.log.level == "info"
    # Mapping sections carry zot's spellings whatever the file used.
    assert config.extensions["search"]["cve"]["updateInterval"] == 10800.0
    assert config.extensions["metrics"]["prometheus"]["path"] == "/m"


def test_user_data_keys_are_kept_as_given() -> None:
    config = load_mapping({
        "storage": {**ROOT, "subPaths": {"/infra": {"rootDirectory": "/srv/infra"}}},
        "http": {"accessControl": {
            "groups": {"Admins": {"users": ["Ann"]}},
            "repositories": {"Team/**": {"defaultPolicy": ["read"]}},
        }},
    })
    access = config.http.access_control
    assert access is not None
    assert list(access["groups"]) == ["Admins"]
    assert list(access["repositories"]) == ["Team/**"]
    assert list(config.storage.sub_paths) == ["infra"]


def test_driver_maps_are_lower_cased_like_zot() -> None:
    config = load_mapping({"storage": {**ROOT, "storageDriver": {
        "Name": "S3", "RegionEndpoint": "http://localhost:4566", "Credentials": {"Type": "x"},
    }}})
    assert config.storage.storage_driver == {
        "name": "s3", "regionendpoint": "http://localhost:4566", "credentials": {"type": "x"},
    }


@pytest.mark.parametrize(("data", "path"), [
    ({"storage": ROOT, "registry": {}}, "registry"),
    ({"storage": {**ROOT, "rootDir": "/x"}}, "storage.rootDir"),
    ({"storage": {**ROOT, "subPaths": {"/a": {"rootDirectory": "/y", "foo": 1}}}}, "storage.subPaths./a.foo"),
    ({"storage": ROOT, "http": {"auth": {"ldap": {
        "address": "h", "baseDN": "b", "userAttribute": "uid", "bindPassword": "x"}}}},
     "http.auth.ldap.bindPassword"),
    ({"storage": ROOT, "extensions": {"sync": {"registries": [
        {"urls": ["https://a"], "content": [{"prefix": "a"}, {"prefix": "b", "tags": {"regexp": "x"}}]}]}}},
     "extensions.sync.registries[0].content[1].tags.regexp"),
    ({"storage": {**ROOT, "retention": {"policies": [{"keepTags": [{"keep": 1}]}]}}},
     "storage.retention.policies[0].keepTags[0].keep"),
    ({"storage": ROOT, "http": {"accessControl": {"repositories": {"**": {"policies": [{"user": []}]}}}}},
     "http.accessControl.repositories.**.policies[0].user"),
])
def test_unknown_keys_are_named_by_full_path(data: dict[str, Any], path: str) -> None:
    assert f"  {path}: unknown key" in problems(data)


def test_unknown_key_suggests_the_near_spelling() -> None:
    message = problems({"storage": {**ROOT, "dedup": True}})
    assert "storage.dedup: unknown key (did you mean 'dedupe'?)" in message


def test_same_key_twice_in_different_case_is_an_error() -> None:
    message = problems({"storage": {**ROOT, "gc": True, "GC": False}})
    assert "storage.GC: repeats 'gc' (keys are case-insensitive)" in message


def test_every_problem_is_listed_in_one_error() -> None:
    message = problems({
        "storage": {**ROOT, "dedupe": "sometimes"},
        "http": {"port": "http"},
        "log": {"level": "loud"},
    })
    lines = message.splitlines()
    assert lines[0] == "config: invalid configuration:"
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["storage.dedupe", "http.port", "log.level"]


@pytest.mark.parametrize(("data", "expected"), [
    ({"storage": "/srv/zot"}, "storage: expected a mapping"),
    ({"storage": ROOT, "http": {"tls": ["a", "b"]}}, "http.tls: expected a mapping"),
    ({"storage": {**ROOT, "subPaths": ["/a"]}}, "storage.subPaths: expected a mapping"),
    ({"storage": ROOT, "http": {"compat": "docker2s2"}}, "http.compat: expected a list"),
    ({"storage": ROOT, "http": {"realm": None}}, "http.realm: must not be null"),
])
def test_wrong_shapes_are_named(data: dict[str, Any], expected: str) -> None:
    assert expected in problems(data)


@pytest.mark.parametrize("data", [{}, None])
def test_empty_config_is_an_error(data: Any) -> None:
    with pytest.raises(ConfigError, match="empty"):
        load_mapping(data)


def test_missing_storage_is_an_error() -> None:
    assert "storage: required key missing" in problems({"http": {"port": 5000}})
