"""The metadata database is rebuilt from storage at startup (``prepare``): after it is deleted, after
layouts are written or removed while the registry is stopped; and a restart over an unchanged root
changes nothing and is quick."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from helpers.layout import REF_NAME, OCILayout
from zotpy.app import prepare

STABLE_IMAGE = """
  RepoName Tag Digest MediaType Size LastUpdated Description IsSigned SignatureInfo { Tool } Licenses Title
  Source Documentation Vendor Authors
  Referrers { MediaType ArtifactType Size Digest Annotations { Key Value } }
  Manifests {
    Digest ConfigDigest LastUpdated Size IsSigned ArtifactType Platform { Os Arch } Layers { Size Digest }
    History { Layer { Size Digest } HistoryDescription { Created CreatedBy Author Comment EmptyLayer } }
  }
"""
STABLE_REPO = "Name LastUpdated Size Platforms { Os Arch } Vendors NewestImage { Tag Digest }"
VOLATILE_IMAGE = "RepoName Tag DownloadCount LastPullTimestamp PushTimestamp TaggedTimestamp"
VOLATILE_REPO = "Name DownloadCount StarCount"


def _normalise(value: Any) -> Any:
    """Lists whose order carries no meaning (vendors, platforms, referrers...) sorted for comparison."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        items = [_normalise(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    return value


def snapshot(gql, *, volatile: bool = False) -> dict[str, Any]:
    """The answers of the main queries; with ``volatile`` also push times and pull statistics."""
    image_fields = STABLE_IMAGE + (" DownloadCount LastPullTimestamp PushTimestamp TaggedTimestamp"
                                   if volatile else "")
    repo_fields = STABLE_REPO + (" DownloadCount StarCount" if volatile else "")
    page = '{sortBy: ALPHABETIC_ASC}'
    queries = {
        "images": f'{{ ImageList(repo: "", requestedPage: {page}) {{ Page {{ TotalCount ItemCount }} '
                  f"Results {{ {image_fields} }} }} }}",
        "repos": f"{{ RepoListWithNewestImage(requestedPage: {page}) {{ Page {{ TotalCount ItemCount }} "
                 f"Results {{ {repo_fields} }} }} }}",
        "search": '{ GlobalSearch(query: "base") { Page { TotalCount } Repos { Name Rank } } }',
        "tags": '{ GlobalSearch(query: ":1.0") { Images { RepoName Tag Digest } } }',
        "derived": '{ DerivedImageList(image: "zotpy/base:0.9") { Results { RepoName Tag } } }',
        "base": '{ BaseImageList(image: "zotpy/derived:2.0") { Results { RepoName Tag } } }',
        "expanded": f'{{ ExpandedRepoInfo(repo: "zotpy/base") {{ Summary {{ {repo_fields} }} '
                    f"Images {{ {image_fields} }} }} }}",
    }
    return {name: _normalise(gql.data(query)) for name, query in queries.items()}


def test_the_database_is_rebuilt_after_being_deleted(tmp_path: Path, kit) -> None:
    root = tmp_path / "root"
    world = kit.populate(kit.start_app(root), root)
    before = snapshot(world.gql)
    assert before["images"]["ImageList"]["Page"]["TotalCount"] == len(world.images)

    assert kit.delete_database(root), "the database lives at <root>/_zotpy/zotpy.db"
    gql = kit.GraphQL(kit.start_app(root))
    assert (root / kit.DB_DIR / kit.DB_FILES[0]).exists()
    assert snapshot(gql) == before


def test_layouts_written_while_stopped_are_found(tmp_path: Path, kit) -> None:
    root = tmp_path / "root"
    world = kit.populate(kit.start_app(root), root)
    kit.wait_for(lambda: _downloads(world.gql, "zotpy/multi", 3))

    # Stopped: a new repository written by hand, with an image and an index.
    single = kit.image([kit.layer("hand-1"), kit.layer("hand-2")], created="2025-02-02T00:00:00Z",
                       annotations={f"{kit.ANNOTATION}title": "Hand made"})
    multi = kit.index([kit.image([kit.layer(f"hand-{a}")], created="2025-02-03T00:00:00Z", arch=a)
                       for a in ("amd64", "arm64")])
    OCILayout(root / "hand" / "made").write({"1.0": single, "multi": multi})

    gql = kit.GraphQL(kit.start_app(root))
    found = {r["Tag"]: r for r in gql.data(
        f'{{ ImageList(repo: "hand/made") {{ Results {{ {kit.IMAGE_FIELDS} }} }} }}')["ImageList"]["Results"]}
    assert sorted(found) == ["1.0", "multi"]
    kit.check_image_summary(found["1.0"], "hand/made", "1.0", single)
    kit.check_image_summary(found["multi"], "hand/made", "multi", multi)
    assert found["1.0"]["Title"] == "Hand made"
    names = [r["Name"] for r in gql.data('{ GlobalSearch(query: "hand/made") { Repos { Name } } }')
             ["GlobalSearch"]["Repos"]]
    assert names == ["hand/made"]
    total = gql.data('{ ImageList(repo: "") { Page { TotalCount } } }')["ImageList"]["Page"]["TotalCount"]
    assert total == len(world.images) + 2
    assert _downloads(gql, "zotpy/multi", 3), "pull statistics survive a restart"


def _downloads(gql, repo: str, count: int) -> bool:
    query = "query($r: String!) { ExpandedRepoInfo(repo: $r) { Summary { DownloadCount } } }"
    got = gql.data(query, {"r": repo})["ExpandedRepoInfo"]["Summary"]["DownloadCount"]
    assert got == count, (repo, got, count)
    return True


def test_first_start_over_an_existing_layout_tree(tmp_path: Path, kit) -> None:
    root = tmp_path / "root"
    items = {f"tree/app{i}": kit.image([kit.layer(f"tree-{i}")], created=f"2025-01-0{i + 1}T00:00:00Z")
             for i in range(3)}
    for repo, item in items.items():
        OCILayout(root / repo).write({"v1": item, "v2": item})
    gql = kit.GraphQL(kit.start_app(root))
    results = gql.data('{ ImageList(repo: "", requestedPage: {sortBy: ALPHABETIC_ASC}) { Results { RepoName '
                       "Tag Digest } } }")["ImageList"]["Results"]
    assert [(r["RepoName"], r["Tag"]) for r in results] == [
        (repo, tag) for repo in sorted(items) for tag in ("v1", "v2")]
    assert all(r["Digest"] == items[r["RepoName"]].digest for r in results)


def test_repositories_removed_while_stopped_are_forgotten(tmp_path: Path, kit) -> None:
    root = tmp_path / "root"
    world = kit.populate(kit.start_app(root), root)
    shutil.rmtree(root / "zotpy" / "unrelated")
    shutil.rmtree(root / "tools")
    gql = kit.GraphQL(kit.start_app(root))
    repos = gql.data("{ RepoListWithNewestImage { Results { Name } } }")["RepoListWithNewestImage"]["Results"]
    assert sorted(r["Name"] for r in repos) == sorted(
        set(world.repos()) - {"zotpy/unrelated", "tools/database"})
    images = gql.data('{ ImageList(repo: "") { Results { RepoName Tag } } }')["ImageList"]["Results"]
    assert {r["RepoName"] for r in images}.isdisjoint({"zotpy/unrelated", "tools/database"})
    names = [r["Name"] for r in gql.data('{ GlobalSearch(query: "base") { Repos { Name } } }')
             ["GlobalSearch"]["Repos"]]
    assert "tools/database" not in names


def test_tags_changed_by_hand_while_stopped_are_seen(tmp_path: Path, kit) -> None:
    """An edit deep inside the tree (one repository's index.json) is a change of storage too."""
    root = tmp_path / "root"
    world = kit.populate(kit.start_app(root), root)
    layout = OCILayout(root / "zotpy" / "base")
    index = layout.index()
    for descriptor in index["manifests"]:
        if (descriptor.get("annotations") or {}).get(REF_NAME) == "0.9":
            descriptor["annotations"][REF_NAME] = "0.9-renamed"
    (layout.path / "index.json").write_text(json.dumps(index))

    gql = kit.GraphQL(kit.start_app(root))
    tags = sorted(r["Tag"] for r in gql.data('{ ImageList(repo: "zotpy/base") { Results { Tag } } }')
                  ["ImageList"]["Results"])
    assert tags == ["0.9-renamed", "1.0"]
    digest = gql.data('{ Image(image: "zotpy/base:0.9-renamed") { Digest } }')["Image"]["Digest"]
    assert digest == world.digest("zotpy/base", "0.9")


def test_a_restart_over_an_unchanged_root_changes_nothing_and_is_quick(tmp_path: Path, kit) -> None:
    root = tmp_path / "root"
    world = kit.populate(kit.start_app(root), root)
    kit.wait_for(lambda: _downloads(world.gql, "zotpy/base", 2))
    before = snapshot(world.gql, volatile=True)

    cfg = kit.search_config(root)
    started = time.perf_counter()
    prepare(cfg)
    elapsed = time.perf_counter() - started
    gql = kit.GraphQL(kit.start_app(root))
    assert snapshot(gql, volatile=True) == before
    assert elapsed < 1.5, f"prepare() over an unchanged root took {elapsed:.2f}s"


def test_a_restart_after_pushes_and_deletes_gives_the_same_answers(tmp_path: Path, kit) -> None:
    """What the live hooks wrote and what a rebuild finds on disk agree."""
    root = tmp_path / "root"
    world = kit.populate(kit.start_app(root), root)
    reg = world.reg
    assert reg.delete("/v2/zotpy/basement/manifests/1").status_code == 202
    assert reg.delete(f"/v2/zotpy/multi/manifests/{world.digest('zotpy/multi', 'v1')}").status_code == 202
    kit.push(reg, "zotpy/late", kit.image([kit.layer("late")], created="2025-03-03T00:00:00Z"), "1")
    live = snapshot(world.gql)

    kit.delete_database(root)
    rebuilt = snapshot(kit.GraphQL(kit.start_app(root)))
    assert rebuilt == live


def test_broken_repositories_do_not_stop_the_rebuild(tmp_path: Path, kit) -> None:
    """A damaged layout is skipped (or partly indexed); startup succeeds and the rest is searchable."""
    root = tmp_path / "root"
    good = kit.image([kit.layer("good")], created="2025-01-01T00:00:00Z")
    OCILayout(root / "ok" / "good").write({"1": good})

    bad_json = OCILayout(root / "bad" / "json").write(
        {"1": kit.image([kit.layer("bj")], created="2025-01-01T00:00:00Z")})
    (bad_json.path / "index.json").write_text("{not json")

    missing_manifest = kit.image([kit.layer("mm")], created="2025-01-01T00:00:00Z")
    layout = OCILayout(root / "bad" / "missing-manifest").write({"1": missing_manifest})
    layout.blob_path(missing_manifest.digest).unlink()

    missing_config = kit.image([kit.layer("mc")], created="2025-01-01T00:00:00Z")
    layout = OCILayout(root / "bad" / "missing-config").write({"1": missing_config, "2": good})
    layout.blob_path(missing_config.config.digest).unlink()

    garbage = kit.image([kit.layer("gb")], created="2025-01-01T00:00:00Z")
    layout = OCILayout(root / "bad" / "garbage-manifest").write({"1": garbage})
    layout.blob_path(garbage.digest).write_bytes(b"\x00\xffnot a manifest")

    gql = kit.GraphQL(kit.start_app(root))
    results = gql.data('{ ImageList(repo: "") { Results { RepoName Tag Digest } } }')["ImageList"]["Results"]
    found = {(r["RepoName"], r["Tag"]): r["Digest"] for r in results}
    assert found.get(("ok/good", "1")) == good.digest, found
    assert found.get(("bad/missing-config", "2")) == good.digest, found
    assert ("bad/missing-manifest", "1") not in found, found
    assert ("bad/garbage-manifest", "1") not in found, found


def test_sub_path_stores_are_searched_and_rebuilt(tmp_path: Path, kit) -> None:
    from oci_api_client import Registry
    from zotpy.app import create_app
    from zotpy.config.model import Config, GlobalStorageConfig, StorageConfig

    root, sub_root = tmp_path / "root", tmp_path / "sub"
    root.mkdir()
    sub_root.mkdir()
    cfg = Config(
        storage=GlobalStorageConfig(root_directory=str(root), gc=False,
                                    sub_paths={"sp": StorageConfig(root_directory=str(sub_root), gc=False)}),
        extensions=kit.search_config(root).extensions,
    )

    def start() -> kit.GraphQL:
        prepare(cfg)
        return kit.GraphQL(Registry(create_app(cfg), root, forbidden=[]))

    gql = start()
    in_sub = kit.image([kit.layer("sub")], created="2025-01-01T00:00:00Z")
    in_default = kit.image([kit.layer("default")], created="2025-01-02T00:00:00Z")
    kit.push(gql.reg, "sp/app", in_sub, "1")
    kit.push(gql.reg, "main/app", in_default, "1")
    assert (sub_root / "sp" / "app" / "index.json").exists()
    query = ('{ ImageList(repo: "", requestedPage: {sortBy: ALPHABETIC_ASC})'
             " { Results { RepoName Tag Digest } } }")
    expected = [{"RepoName": "main/app", "Tag": "1", "Digest": in_default.digest},
                {"RepoName": "sp/app", "Tag": "1", "Digest": in_sub.digest}]
    assert gql.data(query)["ImageList"]["Results"] == expected

    kit.delete_database(root)
    kit.delete_database(sub_root)
    assert start().data(query)["ImageList"]["Results"] == expected


def test_the_same_image_in_two_repositories_keeps_per_repository_facts(tmp_path: Path, kit) -> None:
    """Signatures, referrers and pulls belong to a repository, also when another repository holds the
    same manifest, live and after a rebuild (which parses each digest once)."""
    root = tmp_path / "root"
    reg = kit.start_app(root)
    gql = kit.GraphQL(reg)
    item = kit.image([kit.layer("shared-image")], created="2025-01-01T00:00:00Z")
    for repo in ("app/signed", "app/plain"):
        kit.push(reg, repo, item, "1")
    kit.push(reg, "app/signed", kit.cosign_referrer_signature(item))
    sbom = kit.artifact({"sbom": b"{}"}, artifact_type=kit.SBOM_TYPE, subject=item)
    kit.push(reg, "app/signed", sbom)
    for _ in range(2):
        assert reg.get("/v2/app/signed/manifests/1", headers={"Accept": kit._ACCEPT}).status_code == 200

    query = ('query($r: String!) { ImageList(repo: $r) { Results { Tag Digest IsSigned DownloadCount '
             "Referrers { Digest } } } }")

    def facts(gql) -> dict:
        return {repo: gql.data(query, {"r": repo})["ImageList"]["Results"]
                for repo in ("app/signed", "app/plain")}

    def check(got: dict, downloads: bool) -> None:
        [signed], [plain] = got["app/signed"], got["app/plain"]
        assert signed["Digest"] == plain["Digest"] == item.digest
        assert (signed["IsSigned"], plain["IsSigned"]) == (True, False), got
        assert signed["Referrers"] == [{"Digest": sbom.digest}] and plain["Referrers"] == [], got
        if downloads:
            assert (signed["DownloadCount"], plain["DownloadCount"]) == (2, 0), got

    kit.wait_for(lambda: check(facts(gql), downloads=True))
    kit.delete_database(root)
    check(facts(kit.GraphQL(kit.start_app(root))), downloads=False)


def test_a_tag_listed_twice_in_index_json_resolves_as_storage_does(tmp_path: Path, kit) -> None:
    """A hand-written index.json may name one tag twice; search must name the manifest that a pull of
    that tag gets."""
    root = tmp_path / "root"
    first = kit.image([kit.layer("dup-1")], created="2025-01-01T00:00:00Z")
    second = kit.image([kit.layer("dup-2")], created="2025-01-02T00:00:00Z")
    layout = OCILayout(root / "app" / "dup").write({"dup": first, "other": second})
    index = layout.index()
    for descriptor in index["manifests"]:
        descriptor["annotations"][REF_NAME] = "dup"
    (layout.path / "index.json").write_text(json.dumps(index))

    reg = kit.start_app(root)
    served = reg.head("/v2/app/dup/manifests/dup", headers={"Accept": kit._ACCEPT})
    assert served.status_code == 200
    found = kit.GraphQL(reg).data('{ ImageList(repo: "app/dup") { Results { Tag Digest } } }')
    digest = served.headers["Docker-Content-Digest"]
    assert found["ImageList"]["Results"] == [{"Tag": "dup", "Digest": digest}]


def test_unusual_ref_names_in_a_hand_written_layout_match_what_storage_serves(tmp_path: Path, kit) -> None:
    """index.json may carry ref names that are not valid tags (a full reference, spaces, too long);
    search lists the tags that ``tags/list`` lists, with the digests a pull of them gets."""
    from urllib.parse import quote

    root = tmp_path / "root"
    names = ["ok", "v1.0_RC-1", "docker.io/library/app:1.0", "has space", "x" * 129, "-leading-dash", ""]
    items = {name: kit.image([kit.layer(f"ref-{i}")], created="2025-01-01T00:00:00Z")
             for i, name in enumerate(names)}
    OCILayout(root / "app" / "refs").write(items)

    reg = kit.start_app(root)
    listed = reg.tags("app/refs")
    assert {"ok", "v1.0_RC-1"} <= set(listed)
    found = kit.GraphQL(reg).data('{ ImageList(repo: "app/refs") { Results { Tag Digest } } }')
    searched = {r["Tag"]: r["Digest"] for r in found["ImageList"]["Results"]}
    assert sorted(searched) == sorted(listed)
    for tag in listed:
        head = reg.head(f"/v2/app/refs/manifests/{quote(tag, safe='')}", headers={"Accept": kit._ACCEPT},
                        check=False)
        if head.status_code == 200:
            assert searched[tag] == head.headers["Docker-Content-Digest"], tag
