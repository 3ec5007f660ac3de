"""A live gunicorn storing in S3 (moto's server) with its index and metadata in PostgreSQL, driven by
real clients: skopeo and podman round trips, chunked uploads whose PATCHes cross the 5 MiB part size,
dedupe across repositories (one object per digest, placeholders promoted on delete), a restart, and
``redirectBlobURL`` answering 307 to a presigned URL."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import requests

from helpers.clients import ContainerTools
from helpers.env import require_tool
from helpers.layout import OCILayout, build_image, digest_of, make_layer
from helpers.moto_s3 import MotoS3
from helpers.postgres import Postgres
from helpers.registry_client import RegistryClient, expect
from helpers.server import LiveServer, Server

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
ROOT_PREFIX = "zot"


class S3Registry:
    """A registry on a bucket of its own and a PostgreSQL schema of its own."""

    def __init__(self, server: Server, moto: MotoS3, bucket: str, schema_url: str,
                 postgres: Postgres) -> None:
        self.server = server
        self.moto = moto
        self.bucket = bucket
        self.schema_url = schema_url
        self.postgres = postgres

    def keys(self) -> list[str]:
        pages = self.moto.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def sizes(self) -> dict[str, int]:
        """Size of every object in the bucket, by key."""
        pages = self.moto.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}

    def pending_uploads(self) -> list[Any]:
        return list(self.moto.client().list_multipart_uploads(Bucket=self.bucket).get("Uploads", []))

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        schema = self.schema_url.rsplit("%3D", 1)[1]
        with psycopg2.connect(self.postgres.url(with_password=True)) as conn, conn.cursor() as cursor:
            cursor.execute(f"SET search_path TO {schema}")
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        conn.close()
        return rows


def start_s3_registry(factory: Callable[..., Server], moto: MotoS3, postgres: Postgres,
                      **storage: Any) -> S3Registry:
    bucket = moto.new_bucket()
    url = postgres.fresh_url()
    storage_extra = {
        "storageDriver": moto.driver_settings(bucket, f"/{ROOT_PREFIX}", chunksize=5 * MiB),
        "cacheDriver": postgres.cache_driver(url),
        **storage,
    }
    server = factory(storage_extra=storage_extra, extensions={"search": {"enable": True}})
    assert isinstance(server, LiveServer)
    return S3Registry(server, moto, bucket, url, postgres)


@pytest.fixture(scope="module")
def s3_registry(tmp_path_factory: pytest.TempPathFactory, moto_s3: MotoS3,
                postgres: Postgres) -> Iterator[S3Registry]:
    started: list[Server] = []

    def factory(**options: Any) -> Server:
        server = LiveServer(tmp_path_factory.mktemp("s3-registry"), **options)
        started.append(server)
        server.start()
        return server

    try:
        yield start_s3_registry(factory, moto_s3, postgres)
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def client(request: pytest.FixtureRequest, s3_registry: S3Registry) -> Iterator[RegistryClient]:
    client = s3_registry.server.client()
    try:
        yield client
    finally:
        client.close()
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            request.node.add_report_section("call", "zotpy logs", s3_registry.server.logs())


def test_skopeo_round_trip_keeps_digests(tmp_path: Path, tools: ContainerTools, s3_registry: S3Registry,
                                         client: RegistryClient, repo_name: str) -> None:
    require_tool("skopeo")
    image = build_image(layers=[make_layer(size=7 * MiB), make_layer(size=1000)])
    source = OCILayout(tmp_path / "src").write({"v1": image})
    ref = f"docker://{s3_registry.server.hostport}/{repo_name}:v1"
    digestfile = tmp_path / "digest"
    tools.skopeo_copy(f"oci:{source.path}:v1", ref, "--digestfile", str(digestfile))
    assert digestfile.read_text().strip() == image.digest

    copy = OCILayout(tmp_path / "back")
    tools.skopeo_copy(ref, f"oci:{copy.path}:v1")
    assert copy.tags()["v1"]["digest"] == image.digest
    for blob in (*image.blobs, image.manifest):
        assert copy.read_blob(blob.digest) == blob.data

    keys = s3_registry.keys()
    for blob in image.blobs:
        assert f"{ROOT_PREFIX}/{repo_name}/blobs/sha256/{blob.digest.split(':')[1]}" in keys
    assert f"{ROOT_PREFIX}/{repo_name}/index.json" in keys
    assert not [k for k in keys if "/.uploads/" in k]
    assert s3_registry.pending_uploads() == []
    # The dedupe index and the metadata live in PostgreSQL.
    assert s3_registry.query("SELECT name FROM store_repository WHERE name = %s", repo_name) == [(repo_name,)]
    assert s3_registry.query("SELECT count(*) FROM store_blob_location WHERE path LIKE %s",
                             f"{repo_name}/%")[0][0] == len(image.blobs)  # config and layers


def test_podman_push_and_pull(tmp_path: Path, tools: ContainerTools, s3_registry: S3Registry,
                              repo_name: str) -> None:
    require_tool("podman")
    require_tool("skopeo")
    image = build_image(layers=[make_layer({"etc/hello": b"hello from S3\n"})])
    layout = OCILayout(tmp_path / "layout").write({"v1": image})
    local = "localhost/zotpy-test/s3:v1"
    tools.load_layout(layout.path, "v1", local)
    image_id = tools.podman_image_id(local)
    remote = f"{s3_registry.server.hostport}/{repo_name}:v1"
    tools.podman_push(local, f"docker://{remote}")
    tools.podman("rmi", "--force", local)
    assert tools.podman_pull(remote) == image_id


@pytest.mark.parametrize("chunk_size", [3 * MiB, 7 * MiB + 3])
def test_chunked_upload_across_parts(s3_registry: S3Registry, repo_name: str, chunk_size: int) -> None:
    data = os.urandom(17 * MiB + 11)
    digest = digest_of(data)
    # A new connection per request, so PATCHes spread over the workers (progress lives in the bucket).
    first = requests.post(f"{s3_registry.server.url}/v2/{repo_name}/blobs/uploads/", timeout=30)
    assert first.status_code == 202
    location = s3_registry.server.url + first.headers["Location"]
    for start in range(0, len(data), chunk_size):
        chunk = data[start:start + chunk_size]
        resp = requests.patch(location, data=chunk, timeout=60, headers={
            "Content-Type": "application/octet-stream", "Content-Range": f"{start}-{start + len(chunk) - 1}"})
        assert resp.status_code == 202, resp.text
        assert resp.headers["Range"] == f"0-{start + len(chunk) - 1}"
        location = s3_registry.server.url + resp.headers["Location"]
    assert requests.get(location, timeout=30).headers["Range"] == f"0-{len(data) - 1}"
    done = requests.put(location, params={"digest": digest}, timeout=60)
    assert done.status_code == 201, done.text
    got = requests.get(f"{s3_registry.server.url}/v2/{repo_name}/blobs/{digest}", timeout=60)
    assert got.status_code == 200
    assert got.content == data
    ranged = requests.get(f"{s3_registry.server.url}/v2/{repo_name}/blobs/{digest}", timeout=60,
                          headers={"Range": f"bytes={6 * MiB}-{6 * MiB + 99}"})
    assert ranged.status_code == 206 and ranged.content == data[6 * MiB:6 * MiB + 100]
    assert s3_registry.pending_uploads() == []


def test_dedupe_keeps_one_object_and_deleting_the_original_promotes_a_copy(
        tmp_path: Path, tools: ContainerTools, s3_registry: S3Registry, client: RegistryClient,
        repo_name: str) -> None:
    require_tool("skopeo")
    image = build_image(layers=[make_layer(size=6 * MiB), make_layer(size=1000)])
    source = OCILayout(tmp_path / "src").write({"v1": image})
    first, second = f"{repo_name}-a", f"{repo_name}-b"
    for repo in (first, second):
        tools.skopeo_copy(f"oci:{source.path}:v1", f"docker://{s3_registry.server.hostport}/{repo}:v1")
    sizes = s3_registry.sizes()
    for blob in image.blobs:
        hex_ = blob.digest.split(":")[1]
        # One full object per digest; the second repository's copy is an empty placeholder.
        assert sizes[f"{ROOT_PREFIX}/{first}/blobs/sha256/{hex_}"] == len(blob.data)
        assert sizes[f"{ROOT_PREFIX}/{second}/blobs/sha256/{hex_}"] == 0
        assert s3_registry.query("SELECT path FROM store_blob_location WHERE digest = %s ORDER BY id",
                                 blob.digest) == [(f"{first}/blobs/sha256/{hex_}",),
                                                  (f"{second}/blobs/sha256/{hex_}",)]

    expect(client.delete_manifest(first, image.digest), 202)
    for blob in image.blobs:
        expect(client.delete_blob(first, blob.digest), 202)
        expect(client.get_blob(first, blob.digest), 404)
    sizes = s3_registry.sizes()
    assert not [key for key in sizes if key.startswith(f"{ROOT_PREFIX}/{first}/blobs/sha256/")]
    for blob in image.blobs:  # promoted: the second repository now holds the bytes
        assert sizes[f"{ROOT_PREFIX}/{second}/blobs/sha256/{blob.digest.split(':')[1]}"] == len(blob.data)

    copy = OCILayout(tmp_path / "back")
    tools.skopeo_copy(f"docker://{s3_registry.server.hostport}/{second}:v1", f"oci:{copy.path}:v1")
    assert copy.tags()["v1"]["digest"] == image.digest
    for blob in (*image.blobs, image.manifest):
        assert copy.read_blob(blob.digest) == blob.data


def test_restart_finds_everything_in_the_bucket(s3_registry: S3Registry, client: RegistryClient,
                                                repo_name: str) -> None:
    image = build_image()
    client.push_image(repo_name, image, "kept")
    s3_registry.server.restart()
    fresh = s3_registry.server.client()
    try:
        names = [name for page in fresh.follow_pages(expect(fresh.catalog(n=1000), 200), "repositories")
                 for name in page]
        assert repo_name in names
        assert expect(fresh.get_manifest(repo_name, "kept"), 200).content == image.manifest.data
    finally:
        fresh.close()


def test_redirect_blob_url_answers_307(tmp_path: Path, tools: ContainerTools,
                                       server_factory: Callable[..., Server], moto_s3: MotoS3,
                                       postgres: Postgres, repo_name: str) -> None:
    registry = start_s3_registry(server_factory, moto_s3, postgres, redirectBlobURL=True)
    image = build_image(layers=[make_layer(size=2 * MiB)])
    client = registry.server.client()
    try:
        client.push_image(repo_name, image, "v1")
        layer = image.layers[0]
        resp = client.get_blob(repo_name, layer.digest, allow_redirects=False)
        assert resp.status_code == 307
        assert resp.headers["Location"].startswith(moto_s3.endpoint)
        assert resp.headers["Docker-Content-Digest"] == layer.digest
        assert requests.get(resp.headers["Location"], timeout=30).content == layer.data
        expect(client.head_blob(repo_name, layer.digest), 200)  # HEAD answers itself
    finally:
        client.close()
    # A real client follows the redirect to the bucket.
    require_tool("skopeo")
    copy = OCILayout(tmp_path / "back")
    tools.skopeo_copy(f"docker://{registry.server.hostport}/{repo_name}:v1", f"oci:{copy.path}:v1")
    assert copy.tags()["v1"]["digest"] == image.digest
    assert copy.read_blob(layer.digest) == layer.data
