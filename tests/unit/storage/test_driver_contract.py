"""The contract every storage driver passes (STYLE habit 4).

One parametrised module: the ``driver`` fixture builds each backend over an empty root
(``local`` on a temp dir, ``s3`` on a fresh bucket of moto's S3 server). Tests that need a
filesystem (symlinks, inodes) use ``fs_driver``, which only builds drivers with a local path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from zotpy.errors import PathNotFound, PathOutsideRoot, StorageError
from zotpy.storage.drivers import Driver, LocalDriver, build_driver
from zotpy.storage.drivers.local import TEMP_PREFIX


@dataclass
class Backend:
    """A driver over an empty root, and a way to see everything outside that root."""

    driver: Driver
    outside: Callable[[], dict[str, bytes | None]]


def _tree(directory: Path, skip: Path) -> dict[str, bytes | None]:
    """Every entry under ``directory`` except ``skip``: files with contents, directories as None."""
    out: dict[str, bytes | None] = {}
    for dirpath, dirnames, filenames in os.walk(directory):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames:
            out[os.path.relpath(os.path.join(dirpath, name), directory)] = None
        for name in filenames:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, directory)] = Path(path).read_bytes()
    return out


def _local(tmp_path: Path, commit: bool) -> Backend:
    root = tmp_path / "root"
    return Backend(LocalDriver(str(root), commit=commit), lambda: _tree(tmp_path, root))


def _s3(request: pytest.FixtureRequest) -> Backend:
    from zotpy.storage.drivers.s3 import S3Driver
    from zotpy.storage.drivers.s3_settings import parse_settings

    moto = request.getfixturevalue("moto_s3")
    bucket = moto.new_bucket()
    client = moto.client()
    client.put_object(Bucket=bucket, Key="zot/outside/secret", Body=b"secret")

    def outside() -> dict[str, bytes | None]:
        keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for item in page.get("Contents", []) if not item["Key"].startswith("zot/root/")]
        return {key: client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}

    return Backend(S3Driver(parse_settings(moto.driver_settings(bucket, "/zot/root/"))), outside)


BACKENDS = ("local", "s3")
PARAMS = [("local", False), ("local", True), ("s3", False)]  # ``commit`` (fsync) only means something locally


def _param_id(param: tuple[str, bool]) -> str:
    return f"{param[0]}-commit" if param[1] else param[0]


# Tests of filesystem behaviour (symlinks, inodes, temp files) run on the backends that have one.
fs_only = pytest.mark.parametrize("backend", [p for p in PARAMS if p[0] == "local"], indirect=True,
                                  ids=_param_id)


@pytest.fixture(params=PARAMS, ids=_param_id)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    name, commit = request.param
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    return _local(tmp_path, commit) if name == "local" else _s3(request)


@pytest.fixture
def driver(backend: Backend) -> Driver:
    return backend.driver


@pytest.fixture
def fs_driver(driver: Driver) -> Driver:
    """A driver backed by a local filesystem (symlinks, inodes, temp files beside the target)."""
    if driver.local_path("") is None:
        pytest.skip("the backend has no local filesystem")
    return driver


def fs(driver: Driver, path: str) -> Path:
    local = driver.local_path(path)
    assert local is not None
    return Path(local)


def chunks_then_fail(*chunks: bytes) -> Iterator[bytes]:
    yield from chunks
    raise RuntimeError("client went away")


# -- reading and writing ---------------------------------------------------------------


def test_write_atomic_and_read(driver: Driver) -> None:
    assert driver.write_atomic("a/b/file", [b"hello ", b"", b"world"]) == 11
    assert driver.read_bytes("a/b/file") == b"hello world"
    assert driver.exists("a/b/file")
    assert driver.exists("a/b")
    assert driver.is_dir("a/b")
    assert not driver.is_dir("a/b/file")


def test_write_atomic_empty(driver: Driver) -> None:
    assert driver.write_atomic("empty", []) == 0
    assert driver.read_bytes("empty") == b""
    assert driver.stat("empty").size == 0


def test_write_atomic_replaces(driver: Driver) -> None:
    driver.write_atomic("f", [b"first version"])
    driver.write_atomic("f", [b"second"])
    assert driver.read_bytes("f") == b"second"
    assert driver.list_dir("") == ["f"]


def test_write_atomic_failure_keeps_old_content_and_leaves_no_temp(driver: Driver) -> None:
    driver.write_atomic("dir/f", [b"old"])
    with pytest.raises(RuntimeError):
        driver.write_atomic("dir/f", chunks_then_fail(b"new ", b"partial"))
    assert driver.read_bytes("dir/f") == b"old"
    assert driver.list_dir("dir") == ["f"]


def test_write_atomic_failure_on_new_file_leaves_nothing(driver: Driver) -> None:
    driver.make_dirs("dir")
    with pytest.raises(RuntimeError):
        driver.write_atomic("dir/new", chunks_then_fail(b"x" * 1000))
    assert not driver.exists("dir/new")
    assert driver.list_dir("dir") == []


@fs_only
def test_write_atomic_leaves_no_temp_files(fs_driver: Driver) -> None:
    fs_driver.write_atomic("d/f", [b"x"])
    fs_driver.write_atomic("d/f", [b"y"])
    assert not [n for n in os.listdir(fs(fs_driver, "d")) if n.startswith(TEMP_PREFIX)]


def test_stat(driver: Driver) -> None:
    driver.write_atomic("f", [b"12345"])
    info = driver.stat("f")
    assert info.size == 5
    assert not info.is_dir
    assert info.mtime > 0
    assert driver.stat("").is_dir


def test_stat_identity_changes_when_replaced(driver: Driver) -> None:
    driver.write_atomic("f", [b"12345"])
    before = driver.stat("f").identity
    assert before == driver.stat("f").identity
    driver.write_atomic("f", [b"123456"])
    assert driver.stat("f").identity != before


def test_stat_of_directory(driver: Driver) -> None:
    driver.make_dirs("x/y")
    assert driver.stat("x/y").is_dir
    driver.make_dirs("x/y")  # idempotent


def test_open_read_with_offset(driver: Driver) -> None:
    driver.write_atomic("f", [b"0123456789"])
    with driver.open_read("f") as f:
        assert f.read() == b"0123456789"
    with driver.open_read("f", 4) as f:
        assert f.read() == b"456789"
    with driver.open_read("f", 10) as f:
        assert f.read() == b""


def test_iter_chunks(driver: Driver) -> None:
    data = bytes(range(256)) * 10
    driver.write_atomic("f", [data])
    parts = list(driver.iter_chunks("f", 1000))
    assert b"".join(parts) == data
    assert [len(p) for p in parts] == [1000, 1000, 560]
    assert b"".join(driver.iter_chunks("f")) == data


def test_iter_chunks_of_empty_file(driver: Driver) -> None:
    driver.write_atomic("f", [])
    assert list(driver.iter_chunks("f")) == []


def test_create_and_append(driver: Driver) -> None:
    driver.create("up/session")
    assert driver.stat("up/session").size == 0
    assert driver.append("up/session", [b"abc"]) == 3
    assert driver.append("up/session", [b"de", b"f"]) == 6
    assert driver.append("up/session", []) == 6
    assert driver.read_bytes("up/session") == b"abcdef"


def test_create_refuses_an_existing_file(driver: Driver) -> None:
    driver.write_atomic("f", [b"keep"])
    with pytest.raises(StorageError):
        driver.create("f")
    assert driver.read_bytes("f") == b"keep"


def test_append_failure_truncates_back(driver: Driver) -> None:
    driver.create("s")
    driver.append("s", [b"first"])
    with pytest.raises(RuntimeError):
        driver.append("s", chunks_then_fail(b"x" * 100_000, b"y" * 10))
    assert driver.read_bytes("s") == b"first"
    assert driver.stat("s").size == 5
    assert driver.append("s", [b"-second"]) == 12
    assert driver.read_bytes("s") == b"first-second"


AWKWARD = (1, 4095, 65_537, 1_048_577, 300_001)


def _odd_pieces(data: bytes, sizes: tuple[int, ...] = AWKWARD) -> Iterator[bytes]:
    """``data`` in pieces of awkward sizes, so buffer and block boundaries fall mid-piece."""
    start, turn = 0, 0
    while start < len(data):
        size = sizes[turn % len(sizes)]
        yield data[start:start + size]
        start += size
        turn += 1


LARGE = os.urandom(3 * 1024 * 1024 + 4321)  # several direct-write buffers and an unaligned tail


def test_large_write_atomic_in_odd_pieces(driver: Driver) -> None:
    assert driver.write_atomic("big", _odd_pieces(LARGE)) == len(LARGE)
    assert driver.read_bytes("big") == LARGE
    assert b"".join(driver.iter_chunks("big")) == LARGE


def test_large_appends_from_unaligned_sizes(driver: Driver) -> None:
    driver.create("up/s")
    cuts = [0, 777, 777 + 1_048_576, 2_500_003, len(LARGE)]
    for a, b in zip(cuts, cuts[1:], strict=False):
        assert driver.append("up/s", _odd_pieces(LARGE[a:b])) == b
    assert driver.read_bytes("up/s") == LARGE


def test_large_append_failure_truncates_back(driver: Driver) -> None:
    driver.create("s")
    driver.append("s", [b"first"])
    with pytest.raises(RuntimeError):
        driver.append("s", chunks_then_fail(LARGE[:2_200_000]))
    assert driver.stat("s").size == 5
    assert driver.append("s", [LARGE]) == 5 + len(LARGE)
    assert driver.read_bytes("s") == b"first" + LARGE


def test_large_write_atomic_failure_keeps_old_content(driver: Driver) -> None:
    driver.write_atomic("f", [b"old"])
    with pytest.raises(RuntimeError):
        driver.write_atomic("f", chunks_then_fail(LARGE[:2_200_000]))
    assert driver.read_bytes("f") == b"old"


def test_move(driver: Driver) -> None:
    driver.write_atomic("a/f", [b"data"])
    driver.move("a/f", "b/c/g")
    assert not driver.exists("a/f")
    assert driver.read_bytes("b/c/g") == b"data"


def test_move_replaces_target(driver: Driver) -> None:
    driver.write_atomic("src", [b"new"])
    driver.write_atomic("dst", [b"old"])
    driver.move("src", "dst")
    assert driver.read_bytes("dst") == b"new"
    assert driver.list_dir("") == ["dst"]


def test_link(driver: Driver) -> None:
    driver.write_atomic("r1/blob", [b"shared"])
    assert driver.link("r1/blob", "r2/blobs/blob") is True
    assert driver.read_bytes("r2/blobs/blob") == b"shared"
    driver.delete("r1/blob")
    assert driver.read_bytes("r2/blobs/blob") == b"shared"


@fs_only
def test_link_same_inode(fs_driver: Driver) -> None:
    fs_driver.write_atomic("r1/blob", [b"shared"])
    fs_driver.link("r1/blob", "r2/blob")
    assert fs(fs_driver, "r1/blob").stat().st_ino == fs(fs_driver, "r2/blob").stat().st_ino
    assert fs(fs_driver, "r1/blob").stat().st_nlink == 2
    assert not [n for n in os.listdir(fs(fs_driver, "r2")) if n.startswith(TEMP_PREFIX)]


def test_file_id_tells_copies_apart(driver: Driver) -> None:
    """Separate writes of equal bytes are never reported as one stored object (dedupe relies on it)."""
    driver.write_atomic("r1/blob", [b"same"])
    driver.write_atomic("r2/blob", [b"same"])
    first, second = driver.stat("r1/blob").file_id, driver.stat("r2/blob").file_id
    assert first == () or first != second
    assert driver.stat("r1/blob").file_id == first  # stable while the file stays


@fs_only
def test_file_id_follows_hard_links(fs_driver: Driver) -> None:
    fs_driver.write_atomic("r1/blob", [b"shared"])
    fs_driver.write_atomic("r2/blob", [b"shared"])
    assert fs_driver.stat("r1/blob").file_id != fs_driver.stat("r2/blob").file_id
    fs_driver.link("r1/blob", "r2/blob")
    assert fs_driver.stat("r1/blob").file_id == fs_driver.stat("r2/blob").file_id != ()


def test_link_replaces_target(driver: Driver) -> None:
    driver.write_atomic("src", [b"new"])
    driver.write_atomic("dst", [b"old"])
    assert driver.link("src", "dst")
    assert driver.read_bytes("dst") == b"new"


def test_delete(driver: Driver) -> None:
    driver.write_atomic("d/f", [b"x"])
    driver.delete("d/f")
    assert not driver.exists("d/f")
    with pytest.raises(PathNotFound):
        driver.delete("d/f")


def test_delete_tree(driver: Driver) -> None:
    driver.write_atomic("repo/blobs/sha256/aa", [b"x"])
    driver.write_atomic("repo/index.json", [b"{}"])
    driver.write_atomic("other/f", [b"y"])
    driver.delete_tree("repo")
    assert not driver.exists("repo")
    assert driver.list_dir("") == ["other"]


@pytest.mark.parametrize("path", ["", ".", "./", "/"])
def test_delete_tree_refuses_the_root(driver: Driver, path: str) -> None:
    driver.write_atomic("keep", [b"x"])
    with pytest.raises(PathOutsideRoot):
        driver.delete_tree(path)
    assert driver.read_bytes("keep") == b"x"


def test_list_dir_sorted(driver: Driver) -> None:
    for name in ["b", "a", "c/d", "B"]:
        driver.write_atomic(name, [b""])
    assert driver.list_dir("") == ["B", "a", "b", "c"]
    assert driver.list_dir(".") == ["B", "a", "b", "c"]
    assert driver.list_dir("c") == ["d"]
    driver.make_dirs("empty")
    assert driver.list_dir("empty") == []


def test_path_normalisation(driver: Driver) -> None:
    driver.write_atomic("./a//b/./f", [b"x"])
    assert driver.read_bytes("a/b/f") == b"x"
    assert driver.read_bytes("a/b/f/") == b"x"


def test_missing_is_path_not_found(driver: Driver) -> None:
    driver.write_atomic("file", [b"x"])
    calls: list[Callable[[], Any]] = [
        lambda: driver.stat("missing"),
        lambda: driver.read_bytes("missing"),
        lambda: driver.open_read("missing"),
        lambda: list(driver.iter_chunks("missing")),
        lambda: driver.append("missing", [b"x"]),
        lambda: driver.move("missing", "elsewhere"),
        lambda: driver.link("missing", "elsewhere"),
        lambda: driver.delete("missing"),
        lambda: driver.delete_tree("missing"),
        lambda: driver.list_dir("missing"),
        lambda: driver.list_dir("file"),  # not a directory
        lambda: driver.stat("file/below"),
        lambda: driver.read_bytes("missing/deeper/file"),
    ]
    for call in calls:
        with pytest.raises(PathNotFound):
            call()
    assert not driver.exists("missing")
    assert not driver.exists("elsewhere")
    assert not driver.is_dir("missing")


def test_presigned_url_only_where_the_backend_serves_urls(driver: Driver) -> None:
    driver.write_atomic("r/blob", [b"x"])
    url = driver.presigned_url("r/blob")
    assert (url is None) == (driver.local_path("") is not None)


def test_path_not_found_is_a_storage_error() -> None:
    assert issubclass(PathNotFound, StorageError)
    assert issubclass(PathOutsideRoot, StorageError)


# -- staying inside the root -----------------------------------------------------------

ESCAPES = [
    pytest.param("../outside/secret", id="parent"),
    pytest.param("../outside", id="parent-dir"),
    pytest.param("..", id="dotdot"),
    pytest.param("a/../../outside/secret", id="nested-parent"),
    pytest.param("a/..", id="dotdot-inside"),
    pytest.param("/etc/passwd", id="absolute"),
    pytest.param("//outside/secret", id="double-slash-absolute"),
    pytest.param("a\x00b", id="nul"),
    pytest.param("\x00", id="only-nul"),
]

OPERATIONS: dict[str, Callable[[Driver, str], Any]] = {
    "stat": lambda d, p: d.stat(p),
    "exists": lambda d, p: d.exists(p),
    "is_dir": lambda d, p: d.is_dir(p),
    "read_bytes": lambda d, p: d.read_bytes(p),
    "open_read": lambda d, p: d.open_read(p).close(),
    "iter_chunks": lambda d, p: list(d.iter_chunks(p)),
    "write_atomic": lambda d, p: d.write_atomic(p, [b"pwned"]),
    "append": lambda d, p: d.append(p, [b"pwned"]),
    "create": lambda d, p: d.create(p),
    "make_dirs": lambda d, p: d.make_dirs(p),
    "move-from": lambda d, p: d.move(p, "inside-target"),
    "move-to": lambda d, p: d.move("inside", p),
    "link-from": lambda d, p: d.link(p, "inside-target"),
    "link-to": lambda d, p: d.link("inside", p),
    "delete": lambda d, p: d.delete(p),
    "delete_tree": lambda d, p: d.delete_tree(p),
    "list_dir": lambda d, p: d.list_dir(p),
    "local_path": lambda d, p: d.local_path(p),
    "presigned_url": lambda d, p: d.presigned_url(p),
}


def _assert_refused(backend: Backend, operation: str, path: str) -> None:
    driver = backend.driver
    driver.write_atomic("inside", [b"inside"])
    before = backend.outside()
    with pytest.raises(PathOutsideRoot):
        OPERATIONS[operation](driver, path)
    assert backend.outside() == before
    assert driver.read_bytes("inside") == b"inside"
    assert not driver.exists("inside-target")


@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("path", ESCAPES)
def test_paths_escaping_the_root_are_refused(backend: Backend, operation: str, path: str) -> None:
    _assert_refused(backend, operation, path)


@pytest.fixture
def symlinks(fs_driver: Driver, tmp_path: Path) -> Driver:
    """``dirlink`` → a directory outside the root, ``filelink`` → a file outside it."""
    os.symlink(tmp_path / "outside", fs(fs_driver, "dirlink"))
    os.symlink(tmp_path / "outside" / "secret", fs(fs_driver, "filelink"))
    return fs_driver


@fs_only
@pytest.mark.parametrize("operation", list(OPERATIONS))
@pytest.mark.parametrize("path", ["dirlink/secret", "dirlink/new", "dirlink/sub/new"])
def test_symlinked_directory_pointing_outside_is_refused(
        backend: Backend, symlinks: Driver, operation: str, path: str) -> None:
    _assert_refused(backend, operation, path)



@fs_only
@pytest.mark.parametrize(("operation", "path"), [
    ("stat", "filelink"),
    ("read_bytes", "filelink"),
    ("open_read", "filelink"),
    ("iter_chunks", "filelink"),
    ("append", "filelink"),
    ("link-from", "filelink"),
    ("stat", "dirlink"),
    ("list_dir", "dirlink"),
    ("delete_tree", "dirlink"),
])
def test_symlink_pointing_outside_is_refused(
        backend: Backend, symlinks: Driver, operation: str, path: str) -> None:
    _assert_refused(backend, operation, path)


@fs_only
def test_symlink_inside_the_root_is_followed(fs_driver: Driver) -> None:
    fs_driver.write_atomic("real/f", [b"x"])
    os.symlink(fs(fs_driver, "real"), fs(fs_driver, "alias"))
    assert fs_driver.read_bytes("alias/f") == b"x"


# -- construction ----------------------------------------------------------------------


def test_build_driver_local_by_default(tmp_path: Path) -> None:
    driver = build_driver(str(tmp_path / "r"), None, commit=False)
    assert isinstance(driver, LocalDriver)
    assert (tmp_path / "r").is_dir()
    assert isinstance(build_driver(str(tmp_path / "r"), {"name": "local"}, commit=True), LocalDriver)


def test_build_driver_unknown_name_lists_the_available(tmp_path: Path) -> None:
    from zotpy.errors import ConfigError

    with pytest.raises(ConfigError, match="local"):
        build_driver(str(tmp_path), {"name": "gcs"}, commit=False)
