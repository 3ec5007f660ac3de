"""Tests for zotpy.oci.digest: parsing, rejection of malformed digests, hashing helpers."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from zotpy.errors import DigestInvalid
from zotpy.oci.digest import DEFAULT_ALGORITHM, SUPPORTED_ALGORITHMS, Digest, looks_like_digest, new_hasher

HEX256 = hashlib.sha256(b"hello").hexdigest()
HEX512 = hashlib.sha512(b"hello").hexdigest()


def test_supported_algorithms() -> None:
    assert set(SUPPORTED_ALGORITHMS) == {"sha256", "sha512"}
    assert DEFAULT_ALGORITHM == "sha256"


@pytest.mark.parametrize(("value", "algorithm", "encoded"), [
    (f"sha256:{HEX256}", "sha256", HEX256),
    (f"sha512:{HEX512}", "sha512", HEX512),
    ("sha256:" + "0" * 64, "sha256", "0" * 64),
])
def test_parse_valid(value: str, algorithm: str, encoded: str) -> None:
    digest = Digest.parse(value)
    assert digest.algorithm == algorithm
    assert digest.hex == encoded
    assert str(digest) == value
    assert Digest.parse(str(digest)) == digest


@pytest.mark.parametrize("value", [
    pytest.param("md5:" + "a" * 32, id="md5"),
    pytest.param("sha384:" + "a" * 96, id="sha384"),
    pytest.param("blake3:" + "a" * 64, id="blake3"),
    pytest.param("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", id="registered-but-unsupported"),
    pytest.param("SHA256:" + "a" * 64, id="uppercase-algorithm"),
    pytest.param("sha256:" + "a" * 63, id="sha256-short"),
    pytest.param("sha256:" + "a" * 65, id="sha256-long"),
    pytest.param("sha256:" + "a" * 128, id="sha256-with-sha512-length"),
    pytest.param("sha512:" + "a" * 64, id="sha512-with-sha256-length"),
    pytest.param("sha512:" + "a" * 127, id="sha512-short"),
    pytest.param("sha256:" + "A" * 64, id="uppercase-hex"),
    pytest.param("sha256:" + HEX256[:-1] + "F", id="one-uppercase-hex"),
    pytest.param("sha256:" + "g" * 64, id="non-hex"),
    pytest.param("sha256:" + "a" * 62 + "==", id="padding"),
    pytest.param("sha256" + HEX256, id="missing-colon"),
    pytest.param(HEX256, id="bare-hex"),
    pytest.param("", id="empty"),
    pytest.param(":", id="only-colon"),
    pytest.param("sha256:", id="empty-encoded"),
    pytest.param(":" + HEX256, id="empty-algorithm"),
    pytest.param(f" sha256:{HEX256}", id="leading-space"),
    pytest.param(f"sha256:{HEX256} ", id="trailing-space"),
    pytest.param(f"sha256:{HEX256}\n", id="trailing-newline"),
    pytest.param(f"sha256::{HEX256}", id="double-colon"),
    pytest.param(f"sha256:{HEX256}:{HEX256}", id="two-parts"),
])
def test_parse_rejects(value: str) -> None:
    with pytest.raises(DigestInvalid) as info:
        Digest.parse(value)
    assert info.value.code == "DIGEST_INVALID"
    assert info.value.http_status == 400


@pytest.mark.parametrize("value", [None, 123, b"sha256:" + HEX256.encode(), ["sha256", HEX256]])
def test_parse_rejects_non_str(value: Any) -> None:
    with pytest.raises(DigestInvalid):
        Digest.parse(value)


def test_parse_clips_long_values_in_detail() -> None:
    with pytest.raises(DigestInvalid) as info:
        Digest.parse("x" * 10_000)
    assert len(info.value.detail["digest"]) < 300


def test_of_defaults_to_sha256() -> None:
    digest = Digest.of(b"hello")
    assert digest == Digest("sha256", HEX256)
    assert str(digest) == f"sha256:{HEX256}"


def test_of_sha512() -> None:
    assert Digest.of(b"hello", "sha512") == Digest("sha512", HEX512)


def test_of_empty() -> None:
    assert Digest.of(b"").hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_hasher_matches_algorithm(algorithm: str) -> None:
    digest = Digest.of(b"hello world", algorithm)
    hasher = digest.hasher()
    hasher.update(b"hello ")
    hasher.update(b"world")
    assert hasher.hexdigest() == digest.hex


def test_hasher_is_fresh_each_time() -> None:
    digest = Digest.of(b"x")
    first = digest.hasher()
    first.update(b"x")
    assert digest.hasher().hexdigest() == hashlib.sha256().hexdigest()


def test_new_hasher() -> None:
    assert new_hasher().name == "sha256"
    assert new_hasher("sha512").name == "sha512"


def test_digests_are_hashable_values() -> None:
    a = Digest.parse(f"sha256:{HEX256}")
    b = Digest.of(b"hello")
    assert a == b
    assert len({a, b}) == 1
    assert Digest.of(b"hello", "sha512") != a


@pytest.mark.parametrize(("reference", "expected"), [
    ("latest", False), ("v1.0", False), (f"sha256:{HEX256}", True), ("sha256:bogus", True),
])
def test_looks_like_digest(reference: str, expected: bool) -> None:
    assert looks_like_digest(reference) is expected
