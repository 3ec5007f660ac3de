"""Reading config files: formats by extension, parse errors, relative paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zotpy.config import load
from zotpy.errors import ConfigError

JSON_TEXT = json.dumps({"storage": {"rootDirectory": "data"}, "http": {"port": "5000"}})
YAML_TEXT = "storage:\n  rootDirectory: data\nhttp:\n  port: 5000\n"


@pytest.mark.parametrize(("name", "text"), [
    ("zot.json", JSON_TEXT), ("zot.yaml", YAML_TEXT), ("zot.yml", YAML_TEXT), ("zot.YAML", YAML_TEXT),
    ("zot", JSON_TEXT), ("zot", YAML_TEXT),
])
def test_formats(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    config = load(path)
    assert (config.http.port, config.source) == (5000, str(path))
    assert config.storage.root_directory == str(tmp_path / "data")


def test_paths_are_relative_to_the_config_file_not_the_cwd(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "elsewhere").mkdir()
    path = tmp_path / "etc" / "zot.json"
    path.write_text(json.dumps({"storage": {"rootDirectory": "../var/zot"}, "log": {"audit": "audit.log"}}))
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = load(str(path))
    assert config.storage.root_directory == str(tmp_path / "var" / "zot")
    assert config.log.audit == str(tmp_path / "etc" / "audit.log")


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("bad.json", '{"storage": {"rootDirectory": "/x",}}', "invalid JSON at line 1 column 36"),
    ("bad.yaml", "storage: [unclosed", "invalid YAML"),
    ("bad", "storage: [unclosed", "invalid YAML"),
    ("zot.toml", "[storage]\n", "unsupported config format '.toml'"),
    ("empty.json", "", "the configuration is empty"),
    ("empty.yaml", "# nothing\n", "the configuration is empty"),
    ("list.json", "[1, 2]", "the configuration must be a mapping"),
    ("scalar.yaml", "just text", "the configuration must be a mapping"),
])
def test_unreadable_configs(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected) as caught:
        load(path)
    assert str(caught.value).startswith(str(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load(tmp_path / "absent.json")


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "zot.json"
    path.write_text(json.dumps({"storage": {"rootDirectory": "/x", "gcDelay": "soon"}}))
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value).splitlines()[0] == f"{path}: invalid configuration:"
    assert "  storage.gcDelay: invalid duration 'soon'" in str(caught.value)
