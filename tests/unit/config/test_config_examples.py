"""zot's own example configs and zotpy's conf/ files load."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from zotpy.config import Config, check_runnable, load
from zotpy.errors import ConfigError

CHECKOUT = Path(__file__).resolve().parents[3]
# zot's own example configs (from zot's examples/ directory), kept as test data.
DEFAULT_EXAMPLES = Path(__file__).resolve().parents[2] / "data" / "zot-examples"
ZOT_EXAMPLES = Path(os.environ.get("ZOT_EXAMPLES", str(DEFAULT_EXAMPLES)))


def _zot_files() -> list[Path]:
    if not ZOT_EXAMPLES.is_dir():
        if os.environ.get("CI"):
            raise RuntimeError(f"zot examples not found at {ZOT_EXAMPLES} (set ZOT_EXAMPLES)")
        return []
    return sorted(path for path in ZOT_EXAMPLES.iterdir() if path.suffix in (".json", ".yaml"))


# Secrets files that zot configs point at (credentialsFile), not registry configs.
CREDENTIAL_FILES = [path for path in _zot_files() if path.name.endswith("-credentials.json")]
ZOT_CONFIGS = [path for path in _zot_files() if path not in CREDENTIAL_FILES]
OUR_CONFIGS = sorted((CHECKOUT / "conf").glob("*.json")) + sorted((CHECKOUT / "conf/examples").glob("*.*"))


def _without_source(config: Config) -> Config:
    return dataclasses.replace(config, source=None)


@pytest.mark.skipif(not ZOT_CONFIGS, reason="zot example configs not available (set ZOT_EXAMPLES)")
@pytest.mark.parametrize("path", ZOT_CONFIGS, ids=lambda path: path.name)
def test_every_zot_example_loads(path: Path) -> None:
    config = load(path)
    raw = json.loads(path.read_text()) if path.suffix == ".json" else None
    assert config.source == str(path)
    if raw is not None:
        assert config.http.port == int(raw["http"].get("port", 8080))
        assert config.http.address == raw["http"].get("address", "127.0.0.1")
        assert config.log.level == raw["log"]["level"]
        assert set(config.extensions) == set(raw.get("extensions", {}))
        assert set(config.storage.sub_paths) == {route[1:] for route in raw["storage"].get("subPaths", {})}


@pytest.mark.skipif(not CREDENTIAL_FILES, reason="zot example configs not available (set ZOT_EXAMPLES)")
@pytest.mark.parametrize("path", CREDENTIAL_FILES, ids=lambda path: path.name)
def test_zot_credentials_files_are_not_configs(path: Path) -> None:
    with pytest.raises(ConfigError, match=r"storage: required key missing"):
        load(path)


@pytest.mark.skipif(not ZOT_CONFIGS, reason="zot example configs not available (set ZOT_EXAMPLES)")
def test_zot_yaml_example_equals_its_json_twin() -> None:
    from_yaml = load(ZOT_EXAMPLES / "config-example.yaml")
    from_json = load(ZOT_EXAMPLES / "config-example.json")
    assert _without_source(from_yaml) == _without_source(from_json)
    assert from_yaml.http.auth is not None
    assert from_yaml.http.auth["ldap"]["baseDN"] == "ou=Users,dc=example,dc=org"


@pytest.mark.skipif(not ZOT_CONFIGS, reason="zot example configs not available (set ZOT_EXAMPLES)")
def test_zot_examples_keep_their_details() -> None:
    s3 = load(ZOT_EXAMPLES / "config-s3.json")
    assert s3.storage.storage_driver is not None and s3.storage.storage_driver["name"] == "s3"
    assert s3.storage.remote_cache is True
    assert s3.storage.sub_paths["b"].remote_cache is False
    assert s3.storage.sub_paths["c"].cache_driver is not None
    assert s3.storage.sub_paths["c"].cache_driver["cachetablename"] == "cTable"

    policy = load(ZOT_EXAMPLES / "config-policy.json")
    access = policy.http.access_control
    assert access is not None
    assert list(access["repositories"]) == ["**", "tmp/**", "infra/*", "repos2/repo", "prod/**"]
    conditions = access["repositories"]["prod/**"]["policies"][0]["conditions"]
    assert conditions[1]["expression"] == 'req.referenceType == "digest"'
    assert access["groups"]["group1"]["users"] == ("jack", "john", "jane", "ana")

    gc = load(ZOT_EXAMPLES / "config-gc.json")
    storage = gc.storage
    assert (storage.gc_delay, storage.gc_interval, storage.gc_time_window) == (7200.0, 3600.0, "01:00-08:00")

    sync = load(ZOT_EXAMPLES / "config-sync.json").extensions["sync"]
    assert sync["registries"][2]["maxRetryDelay"] == 30.0
    assert sync["registries"][1]["content"][0]["tags"]["semver"] is True


@pytest.mark.parametrize("path", OUR_CONFIGS, ids=lambda path: path.name)
def test_our_configs_load_and_can_run(path: Path) -> None:
    config = load(path)
    check_runnable(config)
    assert config.storage.root_directory


def test_default_config_keeps_data_in_the_checkout() -> None:
    config = load(CHECKOUT / "conf" / "config.json")
    assert config.storage.root_directory == str(CHECKOUT / "data")
    assert (config.http.address, config.http.port, config.log.level) == ("127.0.0.1", 5000, "info")
    assert config.warnings == ()


def test_yaml_and_json_examples_give_equal_configs() -> None:
    from_yaml = load(CHECKOUT / "conf/examples/minimal.yaml")
    assert _without_source(from_yaml) == _without_source(load(CHECKOUT / "conf/examples/minimal.json"))
