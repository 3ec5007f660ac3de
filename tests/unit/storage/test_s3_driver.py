"""What the S3 driver does beyond the shared contract: multipart streams, resumable appends kept in the
bucket, multipart copies, presigned URLs and its config keys (against moto's S3 server)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from helpers.moto_s3 import MotoS3
from zotpy.errors import ConfigError, StorageError
from zotpy.storage.drivers import build_driver
from zotpy.storage.drivers.s3 import META_UPLOAD, S3Driver
from zotpy.storage.drivers.s3_settings import MIN_PART_SIZE, parse_settings

MiB = 1024 * 1024


class Recording:
    """A boto3 client proxy that records the operations called and the size of each part sent."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[str] = []
        self.part_sizes: list[int] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._client, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if name == "upload_part":
                self.part_sizes.append(len(kwargs["Body"]))
            return target(*args, **kwargs)

        return call


@pytest.fixture
def bucket(moto_s3: MotoS3) -> str:
    return moto_s3.new_bucket()


@pytest.fixture
def client(moto_s3: MotoS3) -> Recording:
    return Recording(moto_s3.client())


def make_driver(moto_s3: MotoS3, bucket: str, client: Recording, **extra: Any) -> S3Driver:
    return S3Driver(parse_settings(moto_s3.driver_settings(bucket, "/store", chunksize=MIN_PART_SIZE,
                                                           **extra)), client)


@pytest.fixture
def driver(moto_s3: MotoS3, bucket: str, client: Recording) -> S3Driver:
    return make_driver(moto_s3, bucket, client)


def pieces(total: int, piece: int = 256 * 1024, seed: int = 0) -> Iterator[bytes]:
    """``total`` pseudo-random bytes in ``piece``-sized chunks, as a request body arrives."""
    block = hashlib.sha256(str(seed).encode()).digest() * (piece // 32)
    sent = 0
    while sent < total:
        size = min(piece, total - sent)
        yield block[:size]
        sent += size


def data(total: int, seed: int = 0) -> bytes:
    return b"".join(pieces(total, seed=seed))


def pending_uploads(moto_s3: MotoS3, bucket: str) -> list[dict[str, Any]]:
    return list(moto_s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def test_keys_live_under_rootdirectory_in_zot_layout(driver: S3Driver, moto_s3: MotoS3, bucket: str) -> None:
    driver.write_atomic("library/app/index.json", [b"{}"])
    keys = [o["Key"] for o in moto_s3.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["store/library/app/index.json"]


def test_large_write_streams_as_multipart_with_one_part_in_memory(
        driver: S3Driver, client: Recording, moto_s3: MotoS3, bucket: str) -> None:
    size = 3 * MIN_PART_SIZE + 12345
    assert driver.write_atomic("big", pieces(size)) == size
    assert "put_object" not in client.calls
    assert client.calls.count("upload_part") == 4
    # Never more than one part plus one incoming piece is held.
    assert max(client.part_sizes) < MIN_PART_SIZE + 256 * 1024
    assert driver.read_bytes("big") == data(size)
    assert pending_uploads(moto_s3, bucket) == []


def test_failed_large_write_aborts_its_multipart_upload(
        driver: S3Driver, moto_s3: MotoS3, bucket: str) -> None:
    def failing() -> Iterator[bytes]:
        yield from pieces(2 * MIN_PART_SIZE)
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        driver.write_atomic("big", failing())
    assert not driver.exists("big")
    assert pending_uploads(moto_s3, bucket) == []


def test_appends_become_parts_and_progress_lives_in_the_bucket(
        moto_s3: MotoS3, bucket: str, client: Recording) -> None:
    first = make_driver(moto_s3, bucket, client)
    first.create("repo/.uploads/s")
    chunks = [data(3 * MiB, 1), data(4 * MiB, 2), data(1 * MiB, 3), data(7 * MiB, 4)]
    expected = 0
    for number, chunk in enumerate(chunks):
        # Every PATCH may land on another worker or node: a fresh driver (and client) each time.
        driver = make_driver(moto_s3, bucket, Recording(moto_s3.client())) if number % 2 else first
        expected += len(chunk)
        assert driver.append("repo/.uploads/s", pieces(len(chunk), seed=number + 1)) == expected
        assert driver.stat("repo/.uploads/s").size == expected
    head = moto_s3.client().head_object(Bucket=bucket, Key="store/repo/.uploads/s")
    assert META_UPLOAD in head["Metadata"]  # full parts went to a multipart upload
    assert head["ContentLength"] < MIN_PART_SIZE  # only the tail is kept on the key
    assert driver.read_bytes("repo/.uploads/s") == b"".join(chunks)  # sealed on read
    head = moto_s3.client().head_object(Bucket=bucket, Key="store/repo/.uploads/s")
    assert META_UPLOAD not in head["Metadata"]  # now a plain object


def test_append_after_seal_reuses_the_sealed_bytes(driver: S3Driver, client: Recording) -> None:
    driver.create("s")
    driver.append("s", pieces(6 * MiB, seed=1))
    assert driver.read_bytes("s") == data(6 * MiB, 1)  # sealed: now a plain object
    assert driver.append("s", pieces(2 * MiB, seed=2)) == 8 * MiB
    assert "upload_part_copy" in client.calls  # server-side, not re-uploaded
    assert driver.read_bytes("s") == data(6 * MiB, 1) + data(2 * MiB, 2)


def test_append_failing_midway_leaves_no_trace(driver: S3Driver) -> None:
    driver.create("s")
    driver.append("s", pieces(6 * MiB, seed=1))

    def failing() -> Iterator[bytes]:
        yield from pieces(11 * MiB, seed=9)  # two more parts were sent before the failure
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        driver.append("s", failing())
    assert driver.stat("s").size == 6 * MiB
    assert driver.append("s", pieces(1 * MiB, seed=2)) == 7 * MiB
    assert driver.read_bytes("s") == data(6 * MiB, 1) + data(1 * MiB, 2)


def test_move_of_an_upload_commits_it(driver: S3Driver, moto_s3: MotoS3, bucket: str) -> None:
    driver.create("r/.uploads/s")
    driver.append("r/.uploads/s", pieces(6 * MiB))
    driver.append("r/.uploads/s", [b"end"])
    driver.move("r/.uploads/s", "r/blobs/sha256/abc")
    assert not driver.exists("r/.uploads/s")
    assert driver.read_bytes("r/blobs/sha256/abc") == data(6 * MiB) + b"end"
    assert pending_uploads(moto_s3, bucket) == []


def test_move_above_the_threshold_is_a_multipart_copy(
        moto_s3: MotoS3, bucket: str, client: Recording) -> None:
    driver = make_driver(moto_s3, bucket, client, multipartcopythresholdsize=MIN_PART_SIZE,
                         multipartcopychunksize=MIN_PART_SIZE)
    driver.write_atomic("a", pieces(12 * MiB))
    driver.move("a", "b")
    assert client.calls.count("upload_part_copy") == 2
    assert "copy_object" not in client.calls
    assert driver.read_bytes("b") == data(12 * MiB)
    assert not driver.exists("a")


def test_link_is_an_independent_copy(driver: S3Driver) -> None:
    driver.write_atomic("r1/blob", [b"shared"])
    assert driver.link("r1/blob", "r2/blob")
    driver.delete("r1/blob")
    assert driver.read_bytes("r2/blob") == b"shared"


def test_delete_of_an_upload_aborts_its_multipart_upload(
        driver: S3Driver, moto_s3: MotoS3, bucket: str) -> None:
    driver.create("r/.uploads/s")
    driver.append("r/.uploads/s", pieces(6 * MiB))
    assert len(pending_uploads(moto_s3, bucket)) == 1
    driver.delete("r/.uploads/s")
    assert pending_uploads(moto_s3, bucket) == []


def test_delete_tree_aborts_uploads_below(driver: S3Driver, moto_s3: MotoS3, bucket: str) -> None:
    driver.create("r/.uploads/s")
    driver.append("r/.uploads/s", pieces(6 * MiB))
    driver.delete_tree("r")
    assert pending_uploads(moto_s3, bucket) == []
    assert not driver.exists("r")


def test_open_read_is_a_ranged_streaming_get(driver: S3Driver, client: Recording) -> None:
    driver.write_atomic("f", pieces(2 * MiB))
    with driver.open_read("f", MiB + 5) as f:
        assert not isinstance(f, bytes)
        assert f.read(10) == data(2 * MiB)[MiB + 5:MiB + 15]
    assert driver.local_path("f") is None


def test_presigned_url_serves_the_object(driver: S3Driver) -> None:
    driver.write_atomic("r/blobs/sha256/x", [b"payload"])
    url = driver.presigned_url("r/blobs/sha256/x")
    assert url is not None and "Signature" in url
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == b"payload"


def test_backend_errors_are_storage_errors(moto_s3: MotoS3) -> None:
    driver = S3Driver(parse_settings(moto_s3.driver_settings("no-such-bucket")))
    with pytest.raises(StorageError, match="NoSuchBucket"):
        driver.write_atomic("f", [b"x"])


def test_build_driver_selects_s3(moto_s3: MotoS3, bucket: str, tmp_path: Any) -> None:
    driver = build_driver(str(tmp_path), moto_s3.driver_settings(bucket), commit=False)
    assert isinstance(driver, S3Driver)
    driver.write_atomic("x", [b"1"])
    assert driver.read_bytes("x") == b"1"


def test_credentials_come_from_the_aws_chain(moto_s3: MotoS3, bucket: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    settings = moto_s3.driver_settings(bucket)
    del settings["accesskey"], settings["secretkey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-env")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-env-secret")
    driver = S3Driver(parse_settings(settings))
    assert driver.client._request_signer._credentials.access_key == "from-env"
    driver.write_atomic("x", [b"1"])


@pytest.mark.parametrize(("settings", "key"), [
    ({"name": "s3"}, "bucket"),
    ({"name": "s3", "bucket": "b", "chunksize": 1024}, "chunksize"),
    ({"name": "s3", "bucket": "b", "accesskey": "only-half"}, "secretkey"),
    ({"name": "s3", "bucket": "b", "secure": "maybe"}, "secure"),
    ({"name": "s3", "bucket": "b", "multipartcopychunksize": 6 * 1024**3}, "multipartcopychunksize"),
    ({"name": "s3", "bucket": "b", "bukket": "typo"}, "bukket"),
])
def test_bad_settings_name_the_key(settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"storage\.storageDriver\.{key}:"):
        parse_settings(settings)


def test_settings_defaults_follow_distribution() -> None:
    settings = parse_settings({"name": "s3", "bucket": "b", "regionendpoint": "minio:9000", "secure": False,
                               "rootdirectory": "/zot/", "secretkey": "topsecret", "accesskey": "AKID"})
    assert settings.endpoint == "http://minio:9000"
    assert settings.force_path_style  # implied by a custom endpoint
    assert settings.prefix == "zot"
    assert settings.part_size == 10 * MiB
    assert "topsecret" not in repr(settings) and "AKID" not in repr(settings)
    assert parse_settings({"name": "s3", "bucket": "b"}).force_path_style is False
