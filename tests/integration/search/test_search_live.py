"""The search extension on a live gunicorn, with images pushed by real clients.

skopeo pushes a labelled and annotated image, a base/derived pair sharing layers and a multi-platform
index, all from OCI layouts built by ``helpers.layout``; the oras SDK pushes an artifact and a referrer
with a subject. Then the fixed queries answer over HTTP with the expected shapes and values, and a
restart after a layout was written into the stopped server's root includes it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from helpers.clients import ContainerTools
from helpers.env import missing, require_tool
from helpers.layout import (
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    Index,
    OCILayout,
    build_artifact,
    build_image,
    build_index,
    make_layer,
)
from helpers.registry_client import RegistryClient, expect
from helpers.server import Server, make_server, require_zotpy

pytestmark = pytest.mark.integration

try:
    import oras.client as oras_client
    from oras.oci import Subject
except ImportError:
    missing("the oras Python SDK is not installed")

SEARCH = "/v2/_zot/ext/search"
EXTENSIONS = {"search": {"enable": True}}
MODEL_CONFIG_TYPE = "application/vnd.zotpy.model.config.v1+json"
SBOM_TYPE = "application/vnd.zotpy.sbom.v1+json"
ANN = "org.opencontainers.image."
ANNOTATIONS = {
    f"{ANN}title": "Live app",
    f"{ANN}description": "Pushed by skopeo",
    f"{ANN}vendor": "Zotpy Live",
    f"{ANN}licenses": "BSD-3-Clause",
    f"{ANN}source": "https://example.com/app.git",
    f"{ANN}documentation": "https://example.com/app",
    f"{ANN}authors": "live@example.com",
}
IMAGE = """RepoName Tag Digest MediaType Size IsSigned Title Description Vendor Licenses Source Documentation
  Authors LastUpdated DownloadCount
  Manifests { Digest ConfigDigest Size ArtifactType Platform { Os Arch } Layers { Digest Size } }"""


def graphql(server: Server, query: str, variables: dict | None = None, *, method: str = "POST") -> dict:
    """The ``data`` of a query that must succeed; the HTTP exchange is checked on the way."""
    url = server.url + SEARCH
    if method == "GET":
        resp = requests.get(url, params={"query": query}, timeout=30)
    else:
        resp = requests.post(url, json={"query": query, "variables": variables or {}}, timeout=30)
    assert resp.status_code == 200, (query, resp.status_code, resp.text[:1000])
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
    doc = resp.json()
    assert not doc.get("errors"), (query, variables, doc["errors"])
    return doc["data"]


def graphql_errors(server: Server, query: str) -> list[dict]:
    resp = requests.post(server.url + SEARCH, json={"query": query}, timeout=30)
    assert resp.status_code < 500, resp.text
    errors = resp.json().get("errors")
    assert errors, resp.text
    return errors


def image_size(item: Image | Index) -> int:
    if isinstance(item, Index):
        return sum(image_size(child) for child in item.images)
    return item.manifest.size + item.config.size + sum(b.size for b in item.layers)


def poll(check, timeout: float = 15.0) -> Any:
    """Retry ``check`` until it passes: pull counters of other workers are written in batches."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@dataclass
class Pushed:
    server: Server
    images: dict[str, Image | Index] = field(default_factory=dict)
    artifact_digest: str = ""
    sbom_digest: str = ""
    second_referrer: str = ""


@pytest.fixture(scope="module")
def search_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = make_server(tmp_path_factory.mktemp("search-live"), extensions=EXTENSIONS, workers=2)
    require_zotpy(server, "the search extension")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pushed(search_server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pushed]:
    """Everything pushed once: skopeo for images and the index, the oras SDK for artifacts."""
    require_tool("skopeo")
    work = tmp_path_factory.mktemp("search-live-push")
    tools = ContainerTools(work / "containers")
    host = search_server.hostport
    result = Pushed(search_server)
    try:
        shared = [make_layer(size=2048), make_layer(size=1024)]
        items: dict[str, Image | Index] = {
            "live/app:1.0": build_image(annotations=ANNOTATIONS, labels={"maintainer": "zotpy"}),
            "live/base:1": build_image(layers=shared),
            "live/derived:1": build_image(layers=[*shared, make_layer(size=512)], architecture="arm64"),
            "live/multi:v1": build_index(),
        }
        for name, item in items.items():
            repo, tag = name.split(":")
            layout = OCILayout(work / "layouts" / repo.replace("/", "_")).write({tag: item})
            extra = ["--all"] if isinstance(item, Index) else []
            tools.skopeo_copy(f"oci:{layout.path}:{tag}", f"docker://{host}/{name}", *extra)
            result.images[name] = item

        sdk = oras_client.OrasClient(hostname=host, insecure=True)
        (work / "model.bin").write_bytes(b"weights" * 100)
        (work / "model-config.json").write_text('{"framework": "none"}')
        resp = sdk.push(target=f"{host}/live/models:v1", files=[str(work / "model.bin")],
                        manifest_config=f"{work / 'model-config.json'}:{MODEL_CONFIG_TYPE}",
                        disable_path_validation=True, quiet=True)
        assert resp.status_code == 201, resp.text
        result.artifact_digest = resp.headers["Docker-Content-Digest"]

        app = result.images["live/app:1.0"]
        subject = Subject(mediaType=OCI_MANIFEST, digest=app.digest, size=app.manifest.size)
        (work / "sbom.json").write_text('{"packages": []}')
        (work / "sbom-config.json").write_text("{}")
        resp = sdk.push(target=f"{host}/live/app:sbom", files=[str(work / "sbom.json")],
                        manifest_config=f"{work / 'sbom-config.json'}:{SBOM_TYPE}", subject=subject,
                        manifest_annotations={"org.zotpy.kind": "sbom"},
                        disable_path_validation=True, quiet=True)
        assert resp.status_code == 201, resp.text
        result.sbom_digest = resp.headers["Docker-Content-Digest"]

        # A referrer with an explicit artifactType, PUT by digest through the raw API.
        assert isinstance(app, Image)
        note = build_artifact({"note.txt": b"hello"}, artifact_type="application/vnd.zotpy.note.v1",
                              subject=app)
        client = RegistryClient(search_server.url)
        client.push_image("live/app", note)
        client.close()
        result.second_referrer = note.digest
        yield result
    finally:
        tools.close()


def test_image_list_of_skopeo_pushed_images(pushed: Pushed) -> None:
    server = pushed.server
    query = f'{{ ImageList(repo: "") {{ Page {{ TotalCount ItemCount }} Results {{ {IMAGE} }} }} }}'
    results = graphql(server, query)
    got = {f"{r['RepoName']}:{r['Tag']}": r for r in results["ImageList"]["Results"]}
    expected = {**pushed.images}
    assert set(expected) <= set(got), sorted(got)
    for name, item in expected.items():
        summary = got[name]
        assert summary["Digest"] == item.digest, name
        assert summary["MediaType"] == item.manifest.media_type, name
        assert summary["Size"] == str(image_size(item)), (name, summary["Size"], image_size(item))
        children = item.images if isinstance(item, Index) else (item,)
        assert [m["Digest"] for m in summary["Manifests"]] == [c.digest for c in children]
        for manifest, child in zip(summary["Manifests"], children, strict=True):
            assert manifest["ConfigDigest"] == child.config.digest
            assert manifest["Layers"] == [{"Digest": b.digest, "Size": str(b.size)} for b in child.layers]
    # the oras artifact and the sbom tag (a referrer that is also tagged) are images too
    assert got["live/models:v1"]["Digest"] == pushed.artifact_digest
    assert got["live/models:v1"]["Manifests"][0]["ArtifactType"] == MODEL_CONFIG_TYPE
    total = results["ImageList"]["Page"]
    assert total["TotalCount"] == total["ItemCount"] == len(got)


def test_annotations_pushed_by_skopeo(pushed: Pushed) -> None:
    summary = graphql(pushed.server, f'{{ Image(image: "live/app:1.0") {{ {IMAGE} }} }}')["Image"]
    assert {k: summary[k] for k in ("Title", "Description", "Vendor", "Licenses", "Source", "Documentation",
                                    "Authors")} == {
        "Title": "Live app", "Description": "Pushed by skopeo", "Vendor": "Zotpy Live",
        "Licenses": "BSD-3-Clause", "Source": "https://example.com/app.git",
        "Documentation": "https://example.com/app", "Authors": "live@example.com",
    }
    assert summary["Manifests"][0]["Platform"] == {"Os": "linux", "Arch": "amd64"}
    assert summary["LastUpdated"].startswith("2024-01-01T00:00:00")


def test_multi_platform_index(pushed: Pushed) -> None:
    summary = graphql(pushed.server, f'{{ Image(image: "live/multi:v1") {{ {IMAGE} }} }}')["Image"]
    assert summary["MediaType"] == OCI_INDEX
    assert [m["Platform"] for m in summary["Manifests"]] == [
        {"Os": "linux", "Arch": "amd64"},
        {"Os": "linux", "Arch": "arm64/v8"},
        {"Os": "linux", "Arch": "arm/v7"},
    ]
    query = ('{ ExpandedRepoInfo(repo: "live/multi") { Summary { Name Platforms { Os Arch } '
             "NewestImage { Tag } } Images { Tag } } }")
    repo = graphql(pushed.server, query)["ExpandedRepoInfo"]
    assert repo["Summary"]["NewestImage"]["Tag"] == "v1"
    assert len(repo["Summary"]["Platforms"]) == 3
    assert [i["Tag"] for i in repo["Images"]] == ["v1"]


def test_base_and_derived_images(pushed: Pushed) -> None:
    derived = graphql(pushed.server, '{ DerivedImageList(image: "live/base:1") { Page { TotalCount } '
                                     "Results { RepoName Tag } } }")["DerivedImageList"]
    assert derived["Results"] == [{"RepoName": "live/derived", "Tag": "1"}]
    base = graphql(pushed.server, '{ BaseImageList(image: "live/derived:1") { Page { TotalCount } '
                                  "Results { RepoName Tag } } }")["BaseImageList"]
    assert base["Results"] == [{"RepoName": "live/base", "Tag": "1"}]
    assert base["Page"]["TotalCount"] == 1


def test_image_list_for_a_shared_layer(pushed: Pushed) -> None:
    layer = pushed.images["live/base:1"].layers[0]
    query = "query($d: String!) { ImageListForDigest(id: $d) { Results { RepoName Tag } } }"
    results = graphql(pushed.server, query, {"d": layer.digest})["ImageListForDigest"]["Results"]
    assert sorted((r["RepoName"], r["Tag"]) for r in results) == [("live/base", "1"), ("live/derived", "1")]


def test_global_search_forms(pushed: Pushed) -> None:
    server = pushed.server
    query = "query($q: String!) { GlobalSearch(query: $q) { Repos { Name } Images { RepoName Tag } } }"
    repos = [r["Name"] for r in graphql(server, query, {"q": "live/base"})["GlobalSearch"]["Repos"]]
    assert repos == ["live/base"]
    tagged = graphql(server, query, {"q": "live/app:1"})["GlobalSearch"]["Images"]
    assert tagged == [{"RepoName": "live/app", "Tag": "1.0"}]
    by_tag = graphql(server, query, {"q": ":v1"})["GlobalSearch"]["Images"]
    assert sorted((i["RepoName"], i["Tag"]) for i in by_tag) == [("live/models", "v1"), ("live/multi", "v1")]
    digest = pushed.images["live/app:1.0"].digest
    by_digest = graphql(server, query, {"q": digest})["GlobalSearch"]["Images"]
    assert by_digest == [{"RepoName": "live/app", "Tag": "1.0"}]


def test_referrers_pushed_with_oras(pushed: Pushed) -> None:
    query = ("query($d: String!, $t: [String!]) { Referrers(repo: \"live/app\", digest: $d, type: $t) "
             "{ Digest ArtifactType MediaType Annotations { Key Value } } }")
    digest = pushed.images["live/app:1.0"].digest
    every = graphql(pushed.server, query, {"d": digest})["Referrers"]
    assert sorted(r["Digest"] for r in every) == sorted([pushed.sbom_digest, pushed.second_referrer])
    sbom = graphql(pushed.server, query, {"d": digest, "t": [SBOM_TYPE]})["Referrers"]
    assert [r["Digest"] for r in sbom] == [pushed.sbom_digest]
    assert sbom[0]["ArtifactType"] == SBOM_TYPE
    assert {"Key": "org.zotpy.kind", "Value": "sbom"} in sbom[0]["Annotations"]


def test_pagination_sorting_and_filters(pushed: Pushed) -> None:
    server = pushed.server
    query = ("query($p: PageInput) { ImageList(repo: \"\", requestedPage: $p) {"
             " Page { TotalCount ItemCount } Results { RepoName Tag } } }")
    everything = graphql(server, query, {"p": {"sortBy": "ALPHABETIC_ASC"}})["ImageList"]
    names = [(r["RepoName"], r["Tag"]) for r in everything["Results"]]
    assert names == sorted(names)
    page = graphql(server, query, {"p": {"limit": 2, "offset": 1, "sortBy": "ALPHABETIC_ASC"}})["ImageList"]
    assert [(r["RepoName"], r["Tag"]) for r in page["Results"]] == names[1:3]
    assert page["Page"] == {"TotalCount": len(names), "ItemCount": 2}
    search = ("query($f: Filter) { GlobalSearch(query: \"live\", filter: $f) { Page { TotalCount } "
              "Repos { Name } } }")
    arm = graphql(server, search, {"f": {"Arch": ["arm64"]}})["GlobalSearch"]["Repos"]
    assert "live/derived" in [r["Name"] for r in arm] and "live/app" not in [r["Name"] for r in arm]
    signed_only = graphql(server, search, {"f": {"HasToBeSigned": True}})["GlobalSearch"]
    assert signed_only["Repos"] == [] and signed_only["Page"]["TotalCount"] == 0


def test_get_and_post_agree(pushed: Pushed) -> None:
    query = '{ ImageList(repo: "live/app") { Results { Tag Digest } } }'
    assert graphql(pushed.server, query, method="GET") == graphql(pushed.server, query)


def test_downloads_are_counted_across_workers(pushed: Pushed) -> None:
    server = pushed.server
    client = RegistryClient(server.url)
    try:
        for _ in range(6):
            expect(client.get_manifest("live/base", "1"), 200)
            expect(client.head_manifest("live/base", "1"), 200)
    finally:
        client.close()
    query = '{ Image(image: "live/base:1") { DownloadCount } }'

    def six() -> None:
        assert graphql(server, query)["Image"]["DownloadCount"] == 6

    poll(six)


def test_deletes_are_seen_at_once(pushed: Pushed, tmp_path: Path) -> None:
    server = pushed.server
    client = RegistryClient(server.url)
    try:
        item = build_image(n_layers=1)
        client.push_image("live/deleted", item, "a")
        client.push_image("live/deleted", item, "b")
        query = '{ ImageList(repo: "live/deleted") { Results { Tag } } }'
        assert sorted(r["Tag"] for r in graphql(server, query)["ImageList"]["Results"]) == ["a", "b"]
        expect(client.delete_manifest("live/deleted", "a"), 202)
        for _ in range(4):  # whichever worker answers
            assert [r["Tag"] for r in graphql(server, query)["ImageList"]["Results"]] == ["b"]
        expect(client.delete_manifest("live/deleted", item.digest), 202)
        for _ in range(4):
            assert graphql(server, query)["ImageList"]["Results"] == []
    finally:
        client.close()


def test_cve_queries_are_refused_clearly(pushed: Pushed) -> None:
    errors = graphql_errors(pushed.server, '{ CVEListForImage(image: "live/app:1.0") { Tag } }')
    assert "not enabled" in errors[0]["message"].lower()


def test_introspection_over_http(pushed: Pushed) -> None:
    data = graphql(pushed.server, "{ __schema { queryType { fields { name } } } }")
    names = {f["name"] for f in data["__schema"]["queryType"]["fields"]}
    assert {"ImageList", "ExpandedRepoInfo", "GlobalSearch", "DerivedImageList", "BaseImageList",
            "ImageListForDigest", "Image", "Referrers", "RepoListWithNewestImage", "StarredRepos",
            "BookmarkedRepos", "CVEListForImage", "ImageListForCVE", "ImageListWithCVEFixed",
            "CVEDiffListForImages"} <= names


def test_restart_after_writing_a_layout_while_stopped(server_factory, tools: ContainerTools,
                                                     tmp_path: Path) -> None:
    require_tool("skopeo")
    server = server_factory(extensions=EXTENSIONS, workers=2)
    require_zotpy(server, "the search extension")
    pushed_item = build_image(n_layers=1)
    layout = OCILayout(tmp_path / "src").write({"1": pushed_item})
    tools.skopeo_copy(f"oci:{layout.path}:1", f"docker://{server.hostport}/restart/pushed:1")
    query = '{ ImageList(repo: "") { Page { TotalCount } Results { RepoName Tag Digest } } }'
    assert graphql(server, query)["ImageList"]["Page"]["TotalCount"] == 1

    server.stop()
    written = build_index()
    OCILayout(server.root / "restart" / "written").write({"multi": written})
    server.start()
    results = {(r["RepoName"], r["Tag"]): r["Digest"] for r in graphql(server, query)["ImageList"]["Results"]}
    assert results == {
        ("restart/pushed", "1"): pushed_item.digest,
        ("restart/written", "multi"): written.digest,
    }
    repos = graphql(server, '{ GlobalSearch(query: "restart") { Repos { Name } } }')["GlobalSearch"]["Repos"]
    assert sorted(r["Name"] for r in repos) == ["restart/pushed", "restart/written"]

    # A restart over the unchanged root is quick and gives the same answers.
    before = graphql(server, query)
    server.stop()
    started = time.monotonic()
    server.start()
    ready = time.monotonic() - started
    assert graphql(server, query) == before
    assert ready < 10, f"restart over an unchanged root took {ready:.1f}s"


def test_concurrent_pushes_and_pulls_are_all_recorded(pushed: Pushed) -> None:
    """16 clients push tags into one repository and pull them, spread over both workers: search lists
    exactly the tags storage has, and loses no pull."""
    from concurrent.futures import ThreadPoolExecutor

    server = pushed.server
    items = {f"t{i:02d}": build_image(n_layers=1) for i in range(16)}

    def push_and_pull(tag: str) -> None:
        client = RegistryClient(server.url)
        try:
            client.push_image("live/busy", items[tag], tag)
            for _ in range(3):
                expect(client.get_manifest("live/busy", tag), 200)
        finally:
            client.close()

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(push_and_pull, items))

    client = RegistryClient(server.url)
    try:
        stored = sorted(expect(client.tags("live/busy"), 200).json()["tags"])
    finally:
        client.close()
    assert stored == sorted(items)
    query = '{ ImageList(repo: "live/busy") { Page { TotalCount } Results { Tag Digest DownloadCount } } }'

    def complete() -> None:
        results = graphql(server, query)["ImageList"]["Results"]
        assert {r["Tag"]: r["Digest"] for r in results} == {t: i.digest for t, i in items.items()}
        assert {r["Tag"]: r["DownloadCount"] for r in results} == dict.fromkeys(items, 3)

    poll(complete)


def test_pulls_counted_just_before_a_shutdown_are_kept(server_factory) -> None:
    """Pull counters are written in batches; a graceful stop (SIGTERM) must still write the last batch."""
    server = server_factory(extensions=EXTENSIONS, workers=2)
    require_zotpy(server, "the search extension")
    client = RegistryClient(server.url)
    try:
        item = build_image(n_layers=1)
        client.push_image("live/stopped", item, "1")
        for _ in range(7):
            expect(client.get_manifest("live/stopped", "1"), 200)
    finally:
        client.close()
    server.stop()
    server.start()
    query = '{ Image(image: "live/stopped:1") { DownloadCount LastPullTimestamp } }'
    got = graphql(server, query)["Image"]
    assert got["DownloadCount"] == 7, got
    assert got["LastPullTimestamp"], got


def test_racing_pushes_to_one_tag_agree_with_storage(pushed: Pushed) -> None:
    """Clients push different images to the same tag at once; afterwards search names the digest
    that storage serves for it."""
    from concurrent.futures import ThreadPoolExecutor

    server = pushed.server
    for round_ in range(5):
        candidates = [build_image(n_layers=1) for _ in range(8)]

        def push(item: Image) -> None:
            client = RegistryClient(server.url)
            try:
                client.push_image("live/race", item, "hot")
            finally:
                client.close()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(push, candidates))
        client = RegistryClient(server.url)
        try:
            stored = expect(client.head_manifest("live/race", "hot"), 200).headers["Docker-Content-Digest"]
        finally:
            client.close()
        for _ in range(3):
            found = graphql(server, '{ Image(image: "live/race:hot") { Digest } }')["Image"]["Digest"]
            assert found == stored, (round_, found, stored)


def test_queries_during_writes_do_not_leave_stale_answers(pushed: Pushed) -> None:
    """Readers that query while others push and delete must not keep a stale view: once the writes
    are over, every worker answers with what storage holds."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    server = pushed.server
    stop = threading.Event()
    query = '{ ImageList(repo: "live/churn") { Results { Tag Digest } } }'

    def read() -> None:
        while not stop.is_set():
            requests.post(server.url + SEARCH, json={"query": query}, timeout=30)

    def write(i: int) -> None:
        client = RegistryClient(server.url)
        try:
            for round_ in range(6):
                item = build_image(n_layers=1)
                client.push_image("live/churn", item, f"w{i}")
                if round_ % 3 == 2:
                    expect(client.delete_manifest("live/churn", item.digest), 202)
        finally:
            client.close()

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        with ThreadPoolExecutor(6) as pool:
            list(pool.map(write, range(6)))
    finally:
        stop.set()
        for reader in readers:
            reader.join()

    client = RegistryClient(server.url)
    try:
        tags = expect(client.tags("live/churn"), 200).json().get("tags") or []
        stored = {t: expect(client.head_manifest("live/churn", t), 200).headers["Docker-Content-Digest"]
                  for t in tags}
    finally:
        client.close()
    for _ in range(20):  # new connections land on either worker
        found = {r["Tag"]: r["Digest"] for r in graphql(server, query)["ImageList"]["Results"]}
        assert found == stored
