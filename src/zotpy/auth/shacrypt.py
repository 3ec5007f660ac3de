"""SHA-crypt (``$5$`` SHA-256, ``$6$`` SHA-512) password hashes, as specified by Ulrich Drepper.

Python 3.13 dropped the ``crypt`` module, so the scheme is computed here; only verification is needed
(htpasswd files are written by other tools).  The result is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

ROUNDS_DEFAULT = 5000
ROUNDS_MIN = 1000
ROUNDS_MAX = 999_999_999
SALT_MAX = 16
ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _order(size: int, group: int, rotate_left: bool) -> list[tuple[int, ...]]:
    """The spec's byte order for the final encoding: triples taken across the digest, rotated."""
    triples = []
    for i in range(group):
        triple = [i, i + group, i + 2 * group]
        shift = i % 3 if rotate_left else (3 - i % 3) % 3
        triples.append(tuple(triple[shift:] + triple[:shift]))
    return triples


# (hash function, digest size, triples, tail indexes)
_SCHEMES: dict[str, tuple[Callable[..., hashlib._Hash], list[tuple[int, ...]], tuple[int, ...]]] = {
    "5": (hashlib.sha256, _order(32, 10, rotate_left=False), (31, 30)),
    "6": (hashlib.sha512, _order(64, 21, rotate_left=True), (63,)),
}


def is_sha_crypt(hashed: str) -> bool:
    return hashed.startswith(("$5$", "$6$"))


def _repeat(block: bytes, length: int) -> bytes:
    return (block * (length // len(block) + 1))[:length]


def _encode(digest: bytes, triples: list[tuple[int, ...]], tail: tuple[int, ...]) -> str:
    out = []
    for a, b, c in triples:
        value = (digest[a] << 16) | (digest[b] << 8) | digest[c]
        for _ in range(4):
            out.append(ALPHABET[value & 0x3F])
            value >>= 6
    value = 0
    for index in tail:
        value = (value << 8) | digest[index]
    for _ in range(len(tail) + 1):
        out.append(ALPHABET[value & 0x3F])
        value >>= 6
    return "".join(out)


def sha_crypt(password: bytes, setting: str) -> str:
    """The full hash string for ``password`` with the scheme, rounds and salt of ``setting``."""
    parts = setting.split("$")
    if len(parts) < 3 or parts[0] != "" or parts[1] not in _SCHEMES:
        raise ValueError("not a SHA-crypt setting")
    scheme = parts[1]
    new, triples, tail = _SCHEMES[scheme]
    rest = parts[2:]
    rounds, explicit = ROUNDS_DEFAULT, False
    if rest[0].startswith("rounds="):
        try:
            rounds = int(rest[0][len("rounds="):])
        except ValueError:
            raise ValueError("bad rounds in SHA-crypt setting") from None
        rounds, explicit = min(max(rounds, ROUNDS_MIN), ROUNDS_MAX), True
        rest = rest[1:]
        if not rest:
            raise ValueError("SHA-crypt setting without salt")
    salt = rest[0][:SALT_MAX].encode()

    size = new().digest_size
    alternate = new(password + salt + password).digest()
    a = new(password + salt + _repeat(alternate, len(password)))
    length = len(password)
    while length:
        a.update(alternate if length & 1 else password)
        length >>= 1
    result = a.digest()
    p_bytes = _repeat(new(password * len(password)).digest(), len(password))
    s_bytes = _repeat(new(salt * (16 + result[0])).digest(), len(salt))
    for i in range(rounds):
        c = new(p_bytes if i & 1 else result)
        if i % 3:
            c.update(s_bytes)
        if i % 7:
            c.update(p_bytes)
        c.update(result if i & 1 else p_bytes)
        result = c.digest()
    assert len(result) == size
    prefix = f"${scheme}$" + (f"rounds={rounds}$" if explicit else "") + salt.decode()
    return f"{prefix}${_encode(result, triples, tail)}"


def verify(password: bytes, hashed: str) -> bool:
    """True when ``password`` matches the SHA-crypt string ``hashed``; False for malformed strings."""
    try:
        computed = sha_crypt(password, hashed)
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(computed.encode(), hashed.encode())
