"""Two zotpy nodes sharing one bucket (moto's S3 server) and one PostgreSQL database, behind nginx
round-robin: chunked uploads split across nodes complete, skopeo and podman push through nginx and
pull from either node, and concurrent pushes of one tag through both nodes leave a consistent index."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from helpers.clients import ContainerTools
from helpers.env import require_tool
from helpers.layout import OCILayout, build_image, digest_of, make_layer
from helpers.moto_s3 import MotoS3
from helpers.nginx import NginxProxy
from helpers.postgres import Postgres
from helpers.registry_client import RegistryClient, expect
from helpers.server import LiveServer

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
TAG_ANNOTATION = "org.opencontainers.image.ref.name"


@dataclass
class Cluster:
    nodes: list[LiveServer]
    proxy: NginxProxy
    moto: MotoS3
    bucket: str

    def index_json(self, repo: str) -> dict[str, Any]:
        body = self.moto.client().get_object(Bucket=self.bucket, Key=f"zot/{repo}/index.json")["Body"]
        return json.loads(body.read())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, moto_s3: MotoS3,
            postgres: Postgres) -> Iterator[Cluster]:
    require_tool("nginx")
    bucket = moto_s3.new_bucket()
    storage = {"storageDriver": moto_s3.driver_settings(bucket, "/zot", chunksize=5 * MiB),
               "cacheDriver": postgres.cache_driver()}
    nodes: list[LiveServer] = []
    proxy: NginxProxy | None = None
    try:
        for number in range(2):  # one after the other: each runs the one-time startup work
            node = LiveServer(tmp_path_factory.mktemp(f"node{number}"), storage_extra=storage)
            nodes.append(node)
            node.start()
        proxy = NginxProxy(tmp_path_factory.mktemp("nginx"),
                           ";\n        server ".join(node.hostport for node in nodes))
        proxy.start()
        yield Cluster(nodes, proxy, moto_s3, bucket)
    finally:
        if proxy is not None:
            proxy.stop()
        for node in nodes:
            node.stop()


def test_chunked_upload_alternating_between_nodes(cluster: Cluster, repo_name: str) -> None:
    data = os.urandom(13 * MiB + 5)
    digest = digest_of(data)
    nodes = [node.url for node in cluster.nodes]
    first = requests.post(f"{nodes[0]}/v2/{repo_name}/blobs/uploads/", timeout=30)
    assert first.status_code == 202
    path = first.headers["Location"]
    chunk = 3 * MiB
    for number, start in enumerate(range(0, len(data), chunk)):
        piece = data[start:start + chunk]
        resp = requests.patch(nodes[(number + 1) % 2] + path, data=piece, timeout=60, headers={
            "Content-Type": "application/octet-stream", "Content-Range": f"{start}-{start + len(piece) - 1}"})
        assert resp.status_code == 202, resp.text
        path = resp.headers["Location"]
    done = requests.put(nodes[1] + path, params={"digest": digest}, timeout=60)
    assert done.status_code == 201, done.text
    for url in nodes:
        assert requests.get(f"{url}/v2/{repo_name}/blobs/{digest}", timeout=60).content == data


def test_skopeo_and_podman_push_through_nginx_and_pull_from_either_node(
        tmp_path: Path, tools: ContainerTools, cluster: Cluster, repo_name: str) -> None:
    require_tool("skopeo")
    require_tool("podman")
    image = build_image(layers=[make_layer(size=6 * MiB), make_layer({"etc/hello": b"two nodes\n"})])
    layout = OCILayout(tmp_path / "src").write({"v1": image})
    tools.skopeo_copy(f"oci:{layout.path}:v1", f"docker://{cluster.proxy.hostport}/{repo_name}:v1")
    for number, node in enumerate(cluster.nodes):
        copy = OCILayout(tmp_path / f"from-node{number}")
        tools.skopeo_copy(f"docker://{node.hostport}/{repo_name}:v1", f"oci:{copy.path}:v1")
        assert copy.tags()["v1"]["digest"] == image.digest
        for blob in image.blobs:
            assert copy.read_blob(blob.digest) == blob.data

    local = "localhost/zotpy-test/two-nodes:v1"
    tools.load_layout(layout.path, "v1", local)
    image_id = tools.podman_image_id(local)
    tools.podman_push(local, f"docker://{cluster.proxy.hostport}/{repo_name}-podman:v1")
    tools.podman("rmi", "--force", local)
    for node in cluster.nodes:
        assert tools.podman_pull(f"{node.hostport}/{repo_name}-podman:v1") == image_id


def test_concurrent_pushes_of_one_tag_through_both_nodes_stay_consistent(
        cluster: Cluster, repo_name: str) -> None:
    clients = [RegistryClient(node.url) for node in cluster.nodes]
    images = [build_image(n_layers=1, labels={"n": str(i)}) for i in range(12)]
    for image in images:  # blobs first, so the race is on index.json alone
        for blob in image.blobs:
            clients[0].push_blob(repo_name, blob)
    errors: list[BaseException] = []

    def push(number: int) -> None:
        try:
            client = RegistryClient(cluster.nodes[number % 2].url)
            manifest = images[number].manifest
            expect(client.put_manifest(repo_name, "latest", manifest.data, manifest.media_type), 201)
            client.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    entries = cluster.index_json(repo_name)["manifests"]
    tagged = [e for e in entries if (e.get("annotations") or {}).get(TAG_ANNOTATION) == "latest"]
    assert len(tagged) == 1
    # No push was lost: every manifest is still in index.json (the tag's losers as untagged entries).
    assert {e["digest"] for e in entries} == {image.digest for image in images}
    winner = tagged[0]["digest"]
    for client in clients:
        head = expect(client.head_manifest(repo_name, "latest"), 200)
        assert head.headers["Docker-Content-Digest"] == winner
        client.close()
