"""The zotpy command: verify's exit codes and messages, --version, usage errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from zotpy import __version__
from zotpy.cli import main

CHECKOUT = Path(__file__).resolve().parents[2]


def write_config(directory: Path, document: dict[str, Any], name: str = "config.json") -> str:
    path = directory / name
    path.write_text(json.dumps(document))
    return str(path)


def minimal(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    return {"storage": {"rootDirectory": str(tmp_path / "data")}, **sections}


def test_verify_accepts_the_embedded_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(CHECKOUT / "conf" / "config.json")]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "config OK"
    assert err == ""


@pytest.mark.parametrize("example", sorted((CHECKOUT / "conf" / "examples").glob("*")), ids=lambda p: p.name)
def test_verify_accepts_every_example(example: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", str(example)]) == 0
    assert "config OK" in capsys.readouterr().out


def test_verify_rejects_an_unknown_key_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = minimal(tmp_path)
    document["storage"]["gcDelayy"] = "1h"
    assert main(["verify", write_config(tmp_path, document)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ")
    assert "storage.gcDelayy" in err


def test_verify_rejects_a_bad_value_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = minimal(tmp_path, http={"port": "not-a-port"})
    assert main(["verify", write_config(tmp_path, document)]) == 1
    assert "http.port" in capsys.readouterr().err


def test_verify_reports_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.json"
    assert main(["verify", str(missing)]) == 1
    assert str(missing) in capsys.readouterr().err


def test_verify_prints_warnings_for_settings_without_effect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = minimal(tmp_path, extensions={"lint": {"enable": True}})
    assert main(["verify", write_config(tmp_path, document)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "config OK"
    assert "warning:" in err and "extensions.lint" in err


def test_verify_accepts_auth_but_warns_that_serve_refuses_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    openid = {"providers": {"github": {"clientid": "id", "scopes": ["user"]}}}
    document = minimal(tmp_path, http={"auth": {"openid": openid}})
    assert main(["verify", write_config(tmp_path, document)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == "config OK"
    assert "zotpy serve` would not start" in err
    assert "http.auth.openid" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert f"zotpy {__version__}" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["serve"], ["verify"], ["frobnicate"]])
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "usage: zotpy" in capsys.readouterr().err


def test_module_entry_point_returns_the_exit_status(tmp_path: Path) -> None:
    document = minimal(tmp_path)
    document["bogus"] = True
    result = subprocess.run(
        [sys.executable, "-m", "zotpy.cli", "verify", write_config(tmp_path, document)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "bogus" in result.stderr
    assert "Traceback" not in result.stderr
