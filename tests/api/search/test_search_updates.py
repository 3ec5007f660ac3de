"""Search follows the distribution API at once: pushes, pulls (GET, not HEAD), tag moves and deletes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
IMAGES = "query($r: String!) { ImageList(repo: $r) { Page { TotalCount ItemCount } Results { %s } } }"
SUMMARY = "RepoName Tag Digest DownloadCount LastPullTimestamp PushTimestamp TaggedTimestamp IsSigned"


@pytest.fixture
def fresh(search_registry):
    reg, gql = search_registry()
    return reg, gql


def small(kit, name: str, created: str = "2024-05-01T00:00:00Z", **kw):
    return kit.image([kit.layer(name)], created=created, **kw)


def images(gql, repo: str, fields: str = SUMMARY) -> dict[str, dict]:
    return {r["Tag"]: r for r in gql.data(IMAGES % fields, {"r": repo})["ImageList"]["Results"]}


def repo_names(gql, text: str) -> list[str]:
    query = "query($q: String!) { GlobalSearch(query: $q) { Repos { Name } } }"
    return [r["Name"] for r in gql.data(query, {"q": text})["GlobalSearch"]["Repos"]]


def all_repos(gql) -> list[str]:
    query = "{ RepoListWithNewestImage { Results { Name NewestImage { Tag } } } }"
    return sorted(r["Name"] for r in gql.data(query)["RepoListWithNewestImage"]["Results"])


def test_a_push_is_searchable_at_once(fresh, kit) -> None:
    reg, gql = fresh
    before = datetime.now(UTC) - timedelta(seconds=5)
    item = small(kit, "one", annotations={f"{kit.ANNOTATION}title": "One"})
    kit.push(reg, "app/one", item, "1")
    got = images(gql, "app/one", kit.IMAGE_FIELDS)
    assert list(got) == ["1"]
    kit.check_image_summary(got["1"], "app/one", "1", item)
    assert got["1"]["Title"] == "One"
    after = datetime.now(UTC) + timedelta(seconds=5)
    for key in ("PushTimestamp", "TaggedTimestamp"):
        stamp = kit.parse_time(got["1"][key])
        assert stamp is not None and before <= stamp <= after, (key, got["1"][key])
    assert got["1"]["DownloadCount"] == 0
    assert repo_names(gql, "app/one") == ["app/one"]
    assert all_repos(gql) == ["app/one"]


def test_a_push_with_several_tags_lists_each(fresh, kit) -> None:
    reg, gql = fresh
    item = small(kit, "multi-tag")
    for blob in item.blobs:
        reg.push_blob("app/tags", blob.data)
    resp = reg.put_manifest("app/tags", item.digest, item.manifest.data, query="?tag=a&tag=b&tag=c")
    assert resp.status_code == 201, resp.get_data()
    got = images(gql, "app/tags")
    assert sorted(got) == ["a", "b", "c"]
    assert {r["Digest"] for r in got.values()} == {item.digest}


def test_get_counts_a_download_and_head_does_not(fresh, kit) -> None:
    reg, gql = fresh
    item = small(kit, "pulled")
    kit.push(reg, "app/pulled", item, "v1")
    start = images(gql, "app/pulled")["v1"]
    assert start["DownloadCount"] == 0
    for ref in ("v1", item.digest) * 4:
        assert reg.head(f"/v2/app/pulled/manifests/{ref}", headers={"Accept": ACCEPT}).status_code == 200
    for blob in item.blobs:
        assert reg.get(f"/v2/app/pulled/blobs/{blob.digest}").status_code == 200
    time.sleep(0.3)
    assert images(gql, "app/pulled")["v1"]["DownloadCount"] == 0, "HEAD and blob GETs are not pulls"

    for ref in ("v1", "v1", item.digest):
        assert reg.get(f"/v2/app/pulled/manifests/{ref}", headers={"Accept": ACCEPT}).status_code == 200

    def three() -> None:
        got = images(gql, "app/pulled")["v1"]
        assert got["DownloadCount"] == 3, got
        assert got["LastPullTimestamp"] and kit.parse_time(got["LastPullTimestamp"]).year >= 2024, got

    kit.wait_for(three)
    query = '{ ExpandedRepoInfo(repo: "app/pulled") { Summary { DownloadCount } } }'
    assert gql.data(query)["ExpandedRepoInfo"]["Summary"]["DownloadCount"] == 3


def test_many_pulls_are_all_counted(fresh, kit) -> None:
    reg, gql = fresh
    kit.push(reg, "app/busy", small(kit, "busy"), "hot")
    for _ in range(50):
        assert reg.get("/v2/app/busy/manifests/hot", headers={"Accept": ACCEPT}).status_code == 200

    def fifty() -> None:
        assert images(gql, "app/busy")["hot"]["DownloadCount"] == 50

    kit.wait_for(fifty)


def test_deleting_a_tag(fresh, kit) -> None:
    reg, gql = fresh
    shared, other = small(kit, "shared"), small(kit, "other", created="2024-06-01T00:00:00Z")
    kit.push(reg, "app/del", shared, "a")
    kit.push(reg, "app/del", shared, "b")
    kit.push(reg, "app/del", other, "c")
    assert sorted(images(gql, "app/del")) == ["a", "b", "c"]

    assert reg.delete("/v2/app/del/manifests/a").status_code == 202
    assert sorted(images(gql, "app/del")) == ["b", "c"]
    gql.errors('{ Image(image: "app/del:a") { Tag } }')
    query = "query($q: String!) { GlobalSearch(query: $q) { Images { Tag } } }"
    assert gql.data(query, {"q": "app/del:a"})["GlobalSearch"]["Images"] == []
    lookup = "query($d: String!) { ImageListForDigest(id: $d) { Results { Tag } } }"
    found = gql.data(lookup, {"d": shared.digest})["ImageListForDigest"]["Results"]
    assert [r["Tag"] for r in found] == ["b"]


def test_deleting_a_manifest_removes_all_its_tags_and_then_the_repository(fresh, kit) -> None:
    reg, gql = fresh
    first, second = small(kit, "first"), small(kit, "second", created="2024-07-01T00:00:00Z")
    kit.push(reg, "app/gone", first, "a")
    kit.push(reg, "app/gone", first, "b")
    kit.push(reg, "app/gone", second, "c")
    kit.push(reg, "app/stays", small(kit, "stays"), "1")

    assert reg.delete(f"/v2/app/gone/manifests/{first.digest}").status_code == 202
    assert list(images(gql, "app/gone")) == ["c"]
    lookup = "query($d: String!) { ImageListForDigest(id: $d) { Page { TotalCount } Results { Tag } } }"
    assert gql.data(lookup, {"d": first.layers[0].digest})["ImageListForDigest"]["Results"] == []
    assert gql.data(lookup, {"d": first.config.digest})["ImageListForDigest"]["Results"] == []

    assert reg.delete(f"/v2/app/gone/manifests/{second.digest}").status_code == 202
    result = gql.data(IMAGES % "Tag", {"r": "app/gone"})["ImageList"]
    assert result == {"Page": {"TotalCount": 0, "ItemCount": 0}, "Results": []}
    assert repo_names(gql, "app/gone") == []
    assert all_repos(gql) == ["app/stays"]
    assert [r["Tag"] for r in gql.data(IMAGES % "Tag", {"r": ""})["ImageList"]["Results"]] == ["1"]


def test_moving_a_tag(fresh, kit) -> None:
    reg, gql = fresh
    old, new = small(kit, "old"), small(kit, "new", created="2024-08-01T00:00:00Z")
    kit.push(reg, "app/move", old, "latest")
    kit.push(reg, "app/move", new, "latest")
    got = gql.data('{ Image(image: "app/move:latest") { Digest LastUpdated } }')["Image"]
    assert got["Digest"] == new.digest
    assert kit.parse_time(got["LastUpdated"]) == kit.parse_time("2024-08-01T00:00:00Z")
    assert list(images(gql, "app/move")) == ["latest"]
    lookup = "query($d: String!) { ImageListForDigest(id: $d) { Results { Tag } } }"
    assert gql.data(lookup, {"d": old.digest})["ImageListForDigest"]["Results"] == []
    query = '{ ExpandedRepoInfo(repo: "app/move") { Summary { NewestImage { Digest } Size } } }'
    summary = gql.data(query)["ExpandedRepoInfo"]["Summary"]
    assert summary["NewestImage"]["Digest"] == new.digest
    assert summary["Size"] == str(kit.repo_size([new]))


def test_newest_image_follows_deletes(fresh, kit) -> None:
    reg, gql = fresh
    kit.push(reg, "app/newest", small(kit, "n1", created="2024-01-01T00:00:00Z"), "old")
    newer = small(kit, "n2", created="2025-01-01T00:00:00Z")
    kit.push(reg, "app/newest", newer, "new")
    query = '{ ExpandedRepoInfo(repo: "app/newest") { Summary { NewestImage { Tag } LastUpdated } } }'
    assert gql.data(query)["ExpandedRepoInfo"]["Summary"]["NewestImage"]["Tag"] == "new"
    assert reg.delete("/v2/app/newest/manifests/new").status_code == 202
    summary = gql.data(query)["ExpandedRepoInfo"]["Summary"]
    assert summary["NewestImage"]["Tag"] == "old"
    assert kit.parse_time(summary["LastUpdated"]) == kit.parse_time("2024-01-01T00:00:00Z")


@pytest.mark.parametrize("kind", ["cosign-tag", "cosign-referrer", "notation"])
def test_signing_and_unsigning(fresh, kit, kind: str) -> None:
    reg, gql = fresh
    item = small(kit, f"signed-{kind}")
    kit.push(reg, "app/signed", item, "1")
    assert images(gql, "app/signed")["1"]["IsSigned"] is False
    if kind == "cosign-tag":
        tag, sig = kit.cosign_tag_signature(item)
        kit.push(reg, "app/signed", sig, tag)
        tool = "cosign"
    else:
        if kind == "cosign-referrer":
            sig, tool = kit.cosign_referrer_signature(item), "cosign"
        else:
            sig, tool = kit.notation_signature(item), "notation"
        kit.push(reg, "app/signed", sig)
    got = images(gql, "app/signed", "Tag IsSigned SignatureInfo { Tool IsTrusted }")
    assert list(got) == ["1"], "a signature is not an image of its own"
    assert got["1"]["IsSigned"] is True
    assert [s["Tool"] for s in got["1"]["SignatureInfo"]] == [tool]
    signed_only = "{ GlobalSearch(query: \"app/signed:\", filter: {HasToBeSigned: true}) { Images { Tag } } }"
    assert gql.data(signed_only)["GlobalSearch"]["Images"] == [{"Tag": "1"}]

    assert reg.delete(f"/v2/app/signed/manifests/{sig.digest}").status_code == 202
    got = images(gql, "app/signed", "Tag IsSigned SignatureInfo { Tool }")
    assert got["1"]["IsSigned"] is False and not got["1"]["SignatureInfo"], got
    assert gql.data(signed_only)["GlobalSearch"]["Images"] == []


@pytest.mark.parametrize("kind", ["cosign-tag", "cosign-referrer", "notation"])
def test_a_signature_pushed_before_its_image(fresh, kit, kind: str) -> None:
    reg, gql = fresh
    item = small(kit, f"late-{kind}")
    if kind == "cosign-tag":
        tag, sig = kit.cosign_tag_signature(item)
        kit.push(reg, "app/late", sig, tag)
    else:
        sig = kit.notation_signature(item) if kind == "notation" else kit.cosign_referrer_signature(item)
        kit.push(reg, "app/late", sig)
    kit.push(reg, "app/late", item, "1")
    got = images(gql, "app/late", "Tag IsSigned SignatureInfo { Tool }")
    assert list(got) == ["1"]
    assert got["1"]["IsSigned"] is True, got


def test_referrers_follow_pushes_and_deletes(fresh, kit) -> None:
    reg, gql = fresh
    item = small(kit, "subject")
    kit.push(reg, "app/refs", item, "1")
    sbom = kit.artifact({"sbom": b"{}"}, artifact_type=kit.SBOM_TYPE, subject=item)
    kit.push(reg, "app/refs", sbom)
    query = "query($d: String!) { Referrers(repo: \"app/refs\", digest: $d) { Digest ArtifactType } }"
    assert gql.data(query, {"d": item.digest})["Referrers"] == [
        {"Digest": sbom.digest, "ArtifactType": kit.SBOM_TYPE}]
    assert reg.delete(f"/v2/app/refs/manifests/{sbom.digest}").status_code == 202
    assert gql.data(query, {"d": item.digest})["Referrers"] == []


def test_index_pushed_after_its_children_by_digest(fresh, kit) -> None:
    reg, gql = fresh
    children = [small(kit, f"child-{a}", arch=a) for a in ("amd64", "arm64", "s390x")]
    idx = kit.index(children)
    kit.push(reg, "app/idx", idx, "multi")
    got = images(gql, "app/idx", kit.IMAGE_FIELDS)
    assert list(got) == ["multi"], "child manifests pushed by digest are not tagged images"
    kit.check_image_summary(got["multi"], "app/idx", "multi", idx)
    assert reg.delete("/v2/app/idx/manifests/multi").status_code == 202
    assert images(gql, "app/idx") == {}


def test_ranking_of_repository_names(fresh, kit) -> None:
    """zot's ranks: an exact name first, then the query found at the start of the last path component,
    then further inside it, then in the first component."""
    reg, gql = fresh
    names = ["base", "a/base", "zotpy/base", "zotpy/basement", "tools/database", "base/tools", "other/thing"]
    for i, name in enumerate(names):
        kit.push(reg, name, small(kit, f"rank-{i}"), "1")
    query = "query($q: String!) { GlobalSearch(query: $q) { Repos { Name Rank } } }"
    repos = gql.data(query, {"q": "base"})["GlobalSearch"]["Repos"]
    got = [r["Name"] for r in repos]
    assert got[0] == "base", f"the exact match comes first: {got}"
    assert sorted(got[1:4]) == ["a/base", "zotpy/base", "zotpy/basement"], got
    assert got[4:] == ["tools/database", "base/tools"], got
    ranks = [r["Rank"] for r in repos]
    assert ranks == sorted(ranks) and ranks[0] < ranks[1], ranks
    exact = gql.data(query, {"q": "zotpy/base"})["GlobalSearch"]["Repos"]
    assert [r["Name"] for r in exact] == ["zotpy/base", "zotpy/basement"]
    assert exact[0]["Rank"] < exact[1]["Rank"], exact


def test_a_query_with_slashes_is_found_inside_deeper_names(fresh, kit) -> None:
    """zot looks for a multi-component query anywhere in the name as a last resort
    (``library/ubuntu`` finds ``mirror/library/ubuntu``), ranked after the names it starts."""
    reg, gql = fresh
    for i, name in enumerate(["mirror/library/ubuntu", "library/ubuntu", "library/ubuntu-minimal"]):
        kit.push(reg, name, small(kit, f"deep-{i}"), "1")
    query = "query($q: String!) { GlobalSearch(query: $q) { Repos { Name Rank } } }"
    got = [r["Name"] for r in gql.data(query, {"q": "library/ubuntu"})["GlobalSearch"]["Repos"]]
    assert got[:2] == ["library/ubuntu", "library/ubuntu-minimal"], got
    assert got[2:] == ["mirror/library/ubuntu"], got


def test_a_manifest_pushed_only_by_digest_is_not_an_image(fresh, kit) -> None:
    reg, gql = fresh
    kit.push(reg, "app/untagged", small(kit, "untagged"))
    assert images(gql, "app/untagged") == {}
    assert gql.data('{ ImageList(repo: "") { Page { TotalCount } } }')["ImageList"]["Page"]["TotalCount"] == 0


def test_a_signed_index(fresh, kit) -> None:
    reg, gql = fresh
    idx = kit.index([small(kit, f"si-{a}", arch=a) for a in ("amd64", "arm64")])
    kit.push(reg, "app/signed-index", idx, "v1")
    tag, sig = kit.cosign_tag_signature(idx)
    kit.push(reg, "app/signed-index", sig, tag)
    got = images(gql, "app/signed-index", "Tag IsSigned SignatureInfo { Tool } Manifests { IsSigned }")
    assert list(got) == ["v1"]
    assert got["v1"]["IsSigned"] is True
    assert [s["Tool"] for s in got["v1"]["SignatureInfo"]] == ["cosign"]


def test_text_fields_are_returned_exactly(fresh, kit) -> None:
    reg, gql = fresh
    title = 'Ünïcødé "quoted" \\ back\\slash \n new line — 🚀'
    item = small(kit, "text", annotations={f"{kit.ANNOTATION}title": title,
                                           f"{kit.ANNOTATION}description": "x" * 5000})
    kit.push(reg, "app/text", item, "v1")
    got = images(gql, "app/text", "Tag Title Description")["v1"]
    assert got == {"Tag": "v1", "Title": title, "Description": "x" * 5000}


def test_docker_manifests_are_searchable_with_docker_compat(tmp_path, kit) -> None:
    from helpers.layout import build_image, build_index
    from oci_api_client import Registry
    from zotpy.app import create_app, prepare
    from zotpy.config.model import Config, GlobalStorageConfig, HTTPConfig

    root = tmp_path / "root"
    root.mkdir()
    cfg = Config(storage=GlobalStorageConfig(root_directory=str(root), gc=False),
                 http=HTTPConfig(compat=("docker2s2",)),
                 extensions=kit.search_config(root).extensions)
    prepare(cfg)
    reg = Registry(create_app(cfg), root, forbidden=[str(tmp_path)])
    gql = kit.GraphQL(reg)
    docker_image = build_image(docker=True, n_layers=1, labels={f"{kit.ANNOTATION}title": "Docker image"})
    docker_list = build_index(docker=True)
    kit.push(reg, "app/docker", docker_image, "single")
    kit.push(reg, "app/docker", docker_list, "list")
    got = images(gql, "app/docker", "Tag Digest MediaType Title Manifests { Digest Platform { Os Arch } }")
    assert sorted(got) == ["list", "single"]
    assert got["single"]["Digest"] == docker_image.digest
    assert got["single"]["MediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert got["single"]["Title"] == "Docker image"
    assert got["list"]["MediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert [m["Digest"] for m in got["list"]["Manifests"]] == [i.digest for i in docker_list.images]


def test_a_failed_database_write_undoes_the_storage_write(fresh, kit) -> None:
    """Storage and the database never disagree: a hook failure turns into an error for the client and
    the manifest is not stored (nor, for a delete, removed)."""
    reg, gql = fresh
    registry = reg.app.extensions["zotpy.registry"]
    assert registry.hooks, "the metadata hooks are registered with the registry service"
    hooks = registry.hooks[0]
    kept = small(kit, "kept")
    kit.push(reg, "app/undo", kept, "kept")
    item = small(kit, "undone")
    for blob in item.blobs:
        reg.push_blob("app/undo", blob.data)

    def fail(*_args, **_kwargs):
        raise RuntimeError("injected database failure")

    original_put, original_delete = hooks.on_put, hooks.on_delete
    hooks.on_put = fail
    try:
        resp = reg.request("PUT", "/v2/app/undo/manifests/new", data=item.manifest.data,
                           headers={"Content-Type": item.manifest.media_type}, check=False)
        assert resp.status_code >= 400, resp.status_code
    finally:
        hooks.on_put = original_put
    assert reg.get("/v2/app/undo/manifests/new", check=False).status_code == 404
    assert reg.tags("app/undo") == ["kept"]
    assert list(images(gql, "app/undo")) == ["kept"]

    hooks.on_delete = fail
    try:
        resp = reg.request("DELETE", "/v2/app/undo/manifests/kept", check=False)
        assert resp.status_code >= 400, resp.status_code
    finally:
        hooks.on_delete = original_delete
    assert reg.tags("app/undo") == ["kept"]
    assert list(images(gql, "app/undo")) == ["kept"]


def test_derived_and_base_images_of_one_platform_of_an_index(fresh, kit) -> None:
    reg, gql = fresh
    amd, arm = kit.layer("idx-amd64"), kit.layer("idx-arm64")
    children = [kit.image([amd], created="2024-01-01T00:00:00Z"),
                kit.image([arm], created="2024-01-01T00:00:00Z", arch="arm64")]
    kit.push(reg, "app/platforms", kit.index(children), "v1")
    on_amd = kit.image([amd, kit.layer("app-top")], created="2024-02-01T00:00:00Z")
    kit.push(reg, "app/on-amd64", on_amd, "1")

    derived = ("query($d: String) { DerivedImageList(image: \"app/platforms:v1\", digest: $d) "
               "{ Results { RepoName Tag } } }")
    assert gql.data(derived, {"d": children[0].digest})["DerivedImageList"]["Results"] == [
        {"RepoName": "app/on-amd64", "Tag": "1"}]
    assert gql.data(derived, {"d": children[1].digest})["DerivedImageList"]["Results"] == []
    assert gql.data(derived, {"d": None})["DerivedImageList"]["Results"] == [
        {"RepoName": "app/on-amd64", "Tag": "1"}]
    base = '{ BaseImageList(image: "app/on-amd64:1") { Results { RepoName Tag Manifests { Digest } } } }'
    results = gql.data(base)["BaseImageList"]["Results"]
    assert [(r["RepoName"], r["Tag"]) for r in results] == [("app/platforms", "v1")]
    assert children[0].digest in [m["Digest"] for m in results[0]["Manifests"]]


def test_tagged_and_pushed_timestamps(fresh, kit) -> None:
    reg, gql = fresh
    first, second = small(kit, "ts-1"), small(kit, "ts-2")
    kit.push(reg, "app/times", first, "a")
    time.sleep(0.05)
    kit.push(reg, "app/times", first, "b")
    time.sleep(0.05)
    got = images(gql, "app/times")
    assert got["a"]["PushTimestamp"] == got["b"]["PushTimestamp"], "one push time per digest"
    assert kit.parse_time(got["b"]["TaggedTimestamp"]) > kit.parse_time(got["a"]["TaggedTimestamp"])
    kit.push(reg, "app/times", second, "a")
    moved = images(gql, "app/times")
    assert kit.parse_time(moved["a"]["TaggedTimestamp"]) > kit.parse_time(got["b"]["TaggedTimestamp"])
    assert moved["b"] == got["b"]


def test_pulls_of_an_index_and_of_its_platform_manifests(fresh, kit) -> None:
    """zot counts a pull for the digest that was asked for: the index, or one of its manifests."""
    reg, gql = fresh
    children = [small(kit, f"pull-{a}", arch=a) for a in ("amd64", "arm64")]
    idx = kit.index(children)
    kit.push(reg, "app/pull-index", idx, "v1")
    assert reg.get("/v2/app/pull-index/manifests/v1", headers={"Accept": ACCEPT}).status_code == 200
    for _ in range(2):
        path = f"/v2/app/pull-index/manifests/{children[1].digest}"
        assert reg.get(path, headers={"Accept": ACCEPT}).status_code == 200

    def counted() -> None:
        got = images(gql, "app/pull-index", "Tag DownloadCount Manifests { Digest DownloadCount }")["v1"]
        assert got["DownloadCount"] == 1, got
        assert [m["DownloadCount"] for m in got["Manifests"]] == [0, 2], got
        query = '{ ExpandedRepoInfo(repo: "app/pull-index") { Summary { DownloadCount } } }'
        assert gql.data(query)["ExpandedRepoInfo"]["Summary"]["DownloadCount"] == 3

    kit.wait_for(counted)


@pytest.mark.parametrize(("flt", "found"), [
    ({"Os": ["windows"], "Arch": ["amd64"]}, False),  # both exist, never on the same platform
    ({"Os": ["windows"], "Arch": ["arm64"]}, True),
    ({"Os": ["LINUX"]}, True),  # case does not matter
    ({"Arch": ["arm/v7"]}, True),  # the variant is part of Arch
    ({"Arch": ["ARM/V7"]}, True),
    ({"Arch": ["s390x"]}, False),
])
def test_platform_filters_match_one_platform_at_a_time(fresh, kit, flt: dict, found: bool) -> None:
    reg, gql = fresh
    idx = kit.index([small(kit, "mixed-1", arch="amd64"),
                     small(kit, "mixed-2", os_name="windows", arch="arm64"),
                     small(kit, "mixed-3", arch="arm", variant="v7")])
    kit.push(reg, "app/mixed", idx, "v1")
    kit.push(reg, "app/artifact", kit.artifact({"a": b"a"}, artifact_type=kit.MODEL_TYPE), "v1")
    repos = ("query($f: Filter) { GlobalSearch(query: \"app\", filter: $f) { Repos { Name } } }")
    names = [r["Name"] for r in gql.data(repos, {"f": flt})["GlobalSearch"]["Repos"]]
    assert names == (["app/mixed"] if found else []), (flt, names)
    tags = ("query($f: Filter) { GlobalSearch(query: \":v1\", filter: $f) { Images { RepoName } } }")
    names = [r["RepoName"] for r in gql.data(tags, {"f": flt})["GlobalSearch"]["Images"]]
    assert names == (["app/mixed"] if found else []), (flt, names)


ODD_CONFIGS = {
    "empty object": b"{}",
    "null config section": b'{"config": null, "architecture": "amd64", "os": "linux"}',
    "null labels": b'{"config": {"Labels": null}, "architecture": "amd64", "os": "linux"}',
    "null history": b'{"history": null, "rootfs": null}',
    "bad created": b'{"created": "yesterday", "architecture": "amd64", "os": "linux"}',
    "numeric created": b'{"created": 12345}',
    "numeric platform": b'{"architecture": 5, "os": ["linux"]}',
    "non-string labels": b'{"config": {"Labels": {"a": 1, "b": null, "c": ["x"]}}}',
    "history objects odd": b'{"history": [{"created": 5, "empty_layer": "yes"}, 7]}',
    "json null": b"null",
    "json list": b"[1, 2, 3]",
    "not json": b"\x00\x01 definitely not json",
    "deep nesting": b'{"config": ' * 200 + b"{}" + b"}" * 200,
}


@pytest.mark.parametrize("case", sorted(ODD_CONFIGS))
def test_odd_image_configs_are_pushed_and_searchable(fresh, kit, case: str) -> None:
    """The registry accepts any config blob; indexing one it cannot read must not refuse the push,
    and queries over it must answer (fields it could not read are empty), never a 500."""
    from helpers.layout import OCI_CONFIG, OCI_MANIFEST, Blob, Image, canonical_json

    reg, gql = fresh
    config = Blob(OCI_CONFIG, ODD_CONFIGS[case])
    layer = kit.layer(f"odd-{case}")
    manifest = Blob(OCI_MANIFEST, canonical_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": config.descriptor(), "layers": [layer.descriptor()],
        "annotations": {f"{kit.ANNOTATION}title": case},
    }))
    item = Image(manifest, config, (layer,))
    kit.push(reg, "app/odd", item, "v1")
    got = images(gql, "app/odd", kit.IMAGE_FIELDS)
    assert list(got) == ["v1"], case
    assert got["v1"]["Digest"] == item.digest and got["v1"]["Title"] == case
    assert got["v1"]["Manifests"][0]["ConfigDigest"] == config.digest
    for query in ('{ GlobalSearch(query: "app/odd") { Repos { Name Platforms { Os Arch } LastUpdated } } }',
                  '{ GlobalSearch(query: "app/odd:v") { Images { Tag LastUpdated } } }',
                  '{ RepoListWithNewestImage { Results { Name NewestImage { Tag } } } }',
                  '{ DerivedImageList(image: "app/odd:v1") { Results { Tag } } }',
                  '{ BaseImageList(image: "app/odd:v1") { Results { Tag } } }'):
        gql.data(query)


def test_referrers_pushed_before_the_subject_and_in_another_repository(fresh, kit) -> None:
    reg, gql = fresh
    item = small(kit, "late-subject")
    early = kit.artifact({"sbom": b"{}"}, artifact_type=kit.SBOM_TYPE, subject=item)
    kit.push(reg, "app/early", early)  # the subject does not exist yet
    elsewhere = kit.artifact({"sbom": b"[]"}, artifact_type=kit.SBOM_TYPE, subject=item)
    kit.push(reg, "app/elsewhere", elsewhere)
    kit.push(reg, "app/early", item, "1")
    query = "query($r: String!, $d: String!) { Referrers(repo: $r, digest: $d) { Digest } }"
    assert gql.data(query, {"r": "app/early", "d": item.digest})["Referrers"] == [{"Digest": early.digest}]
    assert gql.data(query, {"r": "app/elsewhere", "d": item.digest})["Referrers"] == [
        {"Digest": elsewhere.digest}]
    summary = images(gql, "app/early", "Tag Referrers { Digest }")["1"]
    assert summary["Referrers"] == [{"Digest": early.digest}]


def test_pulls_of_a_manifest_deleted_before_the_counts_are_written(fresh, kit) -> None:
    """Counted pulls of a digest that is deleted before the batch is written must not break the
    batch: the other images' pulls are still counted and queries still answer."""
    reg, gql = fresh
    gone, kept = small(kit, "gone"), small(kit, "kept")
    kit.push(reg, "app/race", gone, "gone")
    kit.push(reg, "app/race", kept, "kept")
    for ref, times in (("gone", 3), ("kept", 2)):
        for _ in range(times):
            assert reg.get(f"/v2/app/race/manifests/{ref}", headers={"Accept": ACCEPT}).status_code == 200
    assert reg.delete(f"/v2/app/race/manifests/{gone.digest}").status_code == 202
    for _ in range(2):
        assert reg.get("/v2/app/race/manifests/kept", headers={"Accept": ACCEPT}).status_code == 200

    def counted() -> None:
        got = images(gql, "app/race")
        assert list(got) == ["kept"], got
        assert got["kept"]["DownloadCount"] == 4, got

    kit.wait_for(counted)
    kit.push(reg, "app/race", gone, "back")
    assert images(gql, "app/race")["back"]["DownloadCount"] in (0, 3)


def test_sha512_images(fresh, kit) -> None:
    from helpers.layout import build_image

    reg, gql = fresh
    item = build_image(algorithm="sha512", n_layers=2)
    for blob in item.blobs:
        reg.push_blob("app/sha512", blob.data, "monolithic", "sha512")
    # By its sha512 digest, tagged with ?tag= (a push by tag alone is digested with sha256).
    resp = reg.put_manifest("app/sha512", item.digest, item.manifest.data, item.manifest.media_type,
                            query="?tag=v1")
    assert resp.status_code == 201, resp.get_data()
    served = reg.head("/v2/app/sha512/manifests/v1", headers={"Accept": ACCEPT})
    assert served.headers["Docker-Content-Digest"] == item.digest
    got = images(gql, "app/sha512", kit.IMAGE_FIELDS)
    assert list(got) == ["v1"]
    kit.check_image_summary(got["v1"], "app/sha512", "v1", item)
    assert got["v1"]["Digest"].startswith("sha512:")
    lookup = "query($d: String!) { ImageListForDigest(id: $d) { Results { Tag } } }"
    for digest in (item.digest, item.config.digest, item.layers[1].digest):
        assert gql.data(lookup, {"d": digest})["ImageListForDigest"]["Results"] == [{"Tag": "v1"}], digest
    assert reg.delete(f"/v2/app/sha512/manifests/{item.digest}").status_code == 202
    assert images(gql, "app/sha512") == {}


def test_an_index_of_indexes_is_listed_without_failing(fresh, kit) -> None:
    from helpers.layout import OCI_INDEX, Blob, Index, canonical_json

    reg, gql = fresh
    inner = kit.index([small(kit, "inner-amd64"), small(kit, "inner-arm64", arch="arm64")])
    kit.push(reg, "app/nested", inner)
    leaf = small(kit, "outer-s390x", arch="s390x")
    kit.push(reg, "app/nested", leaf)
    outer_doc = {"schemaVersion": 2, "mediaType": OCI_INDEX,
                 "manifests": [inner.descriptor(), leaf.descriptor()]}
    outer = Index(Blob(OCI_INDEX, canonical_json(outer_doc)), (leaf,))
    resp = reg.put_manifest("app/nested", "nested", outer.index.data, OCI_INDEX)
    assert resp.status_code == 201, resp.get_data()
    got = images(gql, "app/nested", "Tag Digest MediaType Manifests { Digest Platform { Os Arch } }")
    assert list(got) == ["nested"]
    assert got["nested"]["Digest"] == outer.digest
    assert leaf.digest in [m["Digest"] for m in got["nested"]["Manifests"]]
    gql.data('{ GlobalSearch(query: "app/nested") { Repos { Name Platforms { Os Arch } Size } } }')
    gql.data('{ RepoListWithNewestImage { Results { Name NewestImage { Tag } } } }')


def test_referrers_survive_their_subject_being_deleted_and_pushed_again(fresh, kit) -> None:
    """The distribution API keeps a referrer when its subject is deleted; search agrees with it."""
    reg, gql = fresh
    item = small(kit, "comeback")
    kit.push(reg, "app/comeback", item, "1")
    sbom = kit.artifact({"sbom": b"{}"}, artifact_type=kit.SBOM_TYPE, subject=item)
    kit.push(reg, "app/comeback", sbom)
    assert reg.delete(f"/v2/app/comeback/manifests/{item.digest}").status_code == 202
    kit.push(reg, "app/comeback", item, "1")
    listed = reg.get(f"/v2/app/comeback/referrers/{item.digest}").get_json()["manifests"]
    assert [d["digest"] for d in listed] == [sbom.digest]
    query = "query($d: String!) { Referrers(repo: \"app/comeback\", digest: $d) { Digest } }"
    assert gql.data(query, {"d": item.digest})["Referrers"] == [{"Digest": sbom.digest}]
    assert images(gql, "app/comeback", "Tag Referrers { Digest }")["1"]["Referrers"] == [
        {"Digest": sbom.digest}]


def test_deleting_a_cosign_signature_tag_unsigns_the_image(fresh, kit) -> None:
    reg, gql = fresh
    item = small(kit, "sig-by-tag")
    kit.push(reg, "app/sigtag", item, "1")
    tag, sig = kit.cosign_tag_signature(item)
    kit.push(reg, "app/sigtag", sig, tag)
    assert images(gql, "app/sigtag", "Tag IsSigned")["1"]["IsSigned"] is True
    assert reg.delete(f"/v2/app/sigtag/manifests/{tag}").status_code == 202
    assert images(gql, "app/sigtag", "Tag IsSigned")["1"]["IsSigned"] is False
