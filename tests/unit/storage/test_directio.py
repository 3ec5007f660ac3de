"""Direct (page-cache bypassing) writes of the local driver: what lands, what stays cached."""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.pagecache import resident_pages
from zotpy.storage.drivers import LocalDriver, build_driver, directio
from zotpy.storage.drivers.directio import ALIGN, BUFFER_SIZE, write_stream

PAGE = mmap.PAGESIZE
DATA = os.urandom(5 * BUFFER_SIZE + 1234)


def pieces(data: bytes, size: int = 300_007) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def write_file(path: Path, data: bytes, *, direct: bool, offset: int = 0) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        return write_stream(fd, pieces(data), offset, direct=direct)
    finally:
        os.close(fd)


@pytest.fixture
def direct_capable(tmp_path: Path) -> Path:
    """A directory on a filesystem that takes O_DIRECT (the test root's usual ext4/xfs)."""
    probe = tmp_path / "probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_DIRECT)
    except OSError as exc:  # pragma: no cover - depends on where the test root lives
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{tmp_path} refuses O_DIRECT: {exc}")
    finally:
        os.close(fd)
    return tmp_path


def test_direct_write_lands_whole_and_bypasses_the_cache(direct_capable: Path) -> None:
    path = direct_capable / "blob"
    assert write_file(path, DATA, direct=True) == len(DATA)
    # Only the unaligned tail went through the cache; the five full buffers did not.
    assert resident_pages(path) <= 1
    assert path.read_bytes() == DATA


def test_buffered_write_stays_cached(direct_capable: Path) -> None:
    """The control: the same bytes written with direct off are all in the page cache."""
    path = direct_capable / "blob"
    write_file(path, DATA, direct=False)
    assert resident_pages(path) == (len(DATA) + PAGE - 1) // PAGE
    assert path.read_bytes() == DATA


def test_small_streams_take_the_cache(direct_capable: Path) -> None:
    """Less than one buffer (manifests, index.json, configs) is written the ordinary way."""
    path = direct_capable / "small"
    small = DATA[:BUFFER_SIZE - 1]
    write_file(path, small, direct=True)
    assert resident_pages(path) == (len(small) + PAGE - 1) // PAGE
    assert path.read_bytes() == small


def test_descriptor_is_left_without_o_direct(direct_capable: Path) -> None:
    fd = os.open(direct_capable / "blob", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        write_stream(fd, pieces(DATA), 0, direct=True)
        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
        os.write(fd, b"x")  # an unaligned write still works on it
    finally:
        os.close(fd)


@pytest.mark.parametrize("offset", [0, 1, ALIGN - 1, ALIGN, BUFFER_SIZE + 17])
def test_write_from_any_offset(direct_capable: Path, offset: int) -> None:
    path = direct_capable / "up"
    prefix = os.urandom(offset)
    path.write_bytes(prefix)
    assert write_file(path, DATA, direct=True, offset=offset) == len(DATA)
    assert path.read_bytes() == prefix + DATA


def test_failed_stream_returns_its_buffers(direct_capable: Path) -> None:
    def failing() -> Iterator[bytes]:
        yield DATA[:3 * BUFFER_SIZE + 5]
        raise ConnectionResetError("client went away")

    before = len(directio._POOL._idle)
    fd = os.open(direct_capable / "blob", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(ConnectionResetError):
            write_stream(fd, failing(), 0, direct=True)
    finally:
        os.close(fd)
    assert len(directio._POOL._idle) >= max(before, 2)


def test_filesystem_refusing_o_direct_gets_buffered_writes(
        direct_capable: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = fcntl.fcntl

    def refuse(fd: int, cmd: int, arg: int = 0) -> int:
        if cmd == fcntl.F_SETFL and arg & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, cmd, arg)

    monkeypatch.setattr(directio.fcntl, "fcntl", refuse)
    path = direct_capable / "blob"
    assert write_file(path, DATA, direct=True) == len(DATA)
    assert path.read_bytes() == DATA
    assert resident_pages(path) == (len(DATA) + PAGE - 1) // PAGE


def test_write_refused_after_the_flag_was_taken_is_redone_buffered(
        direct_capable: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.pwrite
    refused: list[int] = []

    def pwrite(fd: int, data: memoryview, position: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(position)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, position)

    monkeypatch.setattr(directio.os, "pwrite", pwrite)
    path = direct_capable / "blob"
    assert write_file(path, DATA, direct=True) == len(DATA)
    assert refused == [0]  # refused once; the flag is dropped and the rest goes buffered
    assert path.read_bytes() == DATA


def test_env_switch_turns_direct_writes_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZOTPY_DIRECT_WRITES", raising=False)
    on = build_driver(str(tmp_path / "a"), None, commit=False)
    assert isinstance(on, LocalDriver) and on.direct_writes
    monkeypatch.setenv("ZOTPY_DIRECT_WRITES", "off")
    off = build_driver(str(tmp_path / "b"), None, commit=False)
    assert isinstance(off, LocalDriver) and not off.direct_writes
