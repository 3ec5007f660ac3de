"""SHA-crypt against openssl and the spec's vectors; htpasswd parsing, caching and reloads."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from helpers.htpasswd import bcrypt_hash, sha_crypt_hash
from zotpy.auth import shacrypt
from zotpy.auth.htpasswd import HtpasswdBackend, check_hash, parse
from zotpy.errors import ConfigError


@pytest.mark.parametrize(("password", "hashed"), [
    # from Drepper's specification
    ("Hello world!", "$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"),
    ("Hello world!", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbY"
                     "EdFCoEOfaS35inz1"),
    # from openssl passwd -5
    ("Hello world!", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"),
])
def test_sha_crypt_vectors(password: str, hashed: str) -> None:
    assert shacrypt.verify(password.encode(), hashed)
    assert not shacrypt.verify(password.encode() + b"!", hashed)


@pytest.mark.parametrize("variant", [5, 6])
@pytest.mark.parametrize("password", ["short", "ünïcödé päss", "x" * 100])
def test_sha_crypt_agrees_with_openssl(variant: int, password: str) -> None:
    hashed = sha_crypt_hash(password, variant, salt="abcdefgh12345678")
    assert shacrypt.sha_crypt(password.encode(), hashed) == hashed


@pytest.mark.parametrize("malformed", ["$5$", "$6$rounds=x$salt$hash", "$7$salt$hash", "$5$rounds=1000",
                                       "plain"])
def test_malformed_hashes_never_match(malformed: str) -> None:
    assert not shacrypt.verify(b"pw", malformed)
    assert not check_hash("pw", malformed)


def test_bcrypt_limits() -> None:
    hashed = bcrypt_hash("pw")
    assert check_hash("pw", hashed) and not check_hash("pw2", hashed)
    assert not check_hash("x" * 73, bcrypt_hash("x" * 72))  # over bcrypt's limit: refused, never truncated
    assert not check_hash("pw", "$2b$04$short")


def test_parse_skips_comments_and_unsupported_lines() -> None:
    text = f"# comment\n\neve:{bcrypt_hash('a')}\nmd5:$apr1$x$y\nnocolon\n:nouser\nann:$6$s$h\n"
    assert sorted(parse(text)) == ["ann", "eve"]


def test_backend_checks_caches_and_reloads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from zotpy.auth import htpasswd as module

    path = tmp_path / "htpasswd"
    path.write_text(f"eve:{bcrypt_hash('one')}\n")
    backend = HtpasswdBackend(str(path))
    assert backend.check("eve", "one") == frozenset()
    assert backend.check("eve", "two") is None and backend.check("bob", "one") is None
    calls: list[str] = []
    monkeypatch.setattr(module, "check_hash", lambda password, hashed: calls.append(hashed) or False)
    assert backend.check("eve", "one") == frozenset()  # cached: no hash check
    assert calls == []
    assert backend.check("ghost", "one") is None  # an unknown user still costs a hash check
    assert len(calls) == 1 and calls[0].startswith("$2")
    monkeypatch.undo()
    monkeypatch.setattr(module, "STAT_INTERVAL", 0.0)
    path.write_text(f"eve:{bcrypt_hash('two')}\n")
    os.utime(path, (time.time() + 10, time.time() + 10))
    assert backend.check("eve", "one") is None
    assert backend.check("eve", "two") == frozenset()


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="http.auth.htpasswd.path"):
        HtpasswdBackend(str(tmp_path / "absent"))
