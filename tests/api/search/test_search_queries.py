"""Every search query against the session's ``world`` registry, with exact expected values.

The world is read-only here: no test in this module pulls a manifest or pushes anything, so download
counts and contents stay what the ``world`` fixture made them.
"""

from __future__ import annotations

from typing import Any

import pytest


def image_list(world, kit, repo: str, page: dict | None = None, fields: str | None = None) -> dict[str, Any]:
    query = (
        "query($repo: String!, $page: PageInput) { ImageList(repo: $repo, requestedPage: $page) {"
        f" Page {{ TotalCount ItemCount }} Results {{ {fields or kit.IMAGE_FIELDS} }} }} }}"
    )
    return world.gql.data(query, {"repo": repo, "page": page})["ImageList"]


def global_search(world, kit, text: str, *, page: dict | None = None, filter: dict | None = None):
    query = (
        "query($q: String!, $f: Filter, $p: PageInput) {"
        " GlobalSearch(query: $q, filter: $f, requestedPage: $p) {"
        f" Page {{ TotalCount ItemCount }} Images {{ {kit.IMAGE_FIELDS} }} Repos {{ {kit.REPO_FIELDS} }}"
        " Layers { Digest Size } } }"
    )
    return world.gql.data(query, {"q": text, "f": filter, "p": page})["GlobalSearch"]


def repo_list(world, kit, page: dict | None = None) -> dict[str, Any]:
    query = (
        "query($p: PageInput) { RepoListWithNewestImage(requestedPage: $p) {"
        f" Page {{ TotalCount ItemCount }} Results {{ {kit.REPO_FIELDS} }} }} }}"
    )
    return world.gql.data(query, {"p": page})["RepoListWithNewestImage"]


def images_query(world, kit, name: str, args: str, variables: dict) -> dict[str, Any]:
    """One of the queries answering a PaginatedImagesResult (DerivedImageList, ImageListForDigest...)."""
    decl = ", ".join(f"${k}: {t}" for k, (t, _v) in variables.items())
    query = (
        f"query({decl}) {{ {name}({args}) {{ Page {{ TotalCount ItemCount }}"
        f" Results {{ {kit.IMAGE_FIELDS} }} }} }}"
    )
    return world.gql.data(query, {k: v for k, (_t, v) in variables.items()})[name]


def keys(results: list[dict]) -> list[tuple[str, str]]:
    return [(r["RepoName"], r["Tag"]) for r in results]


# -- ImageList, Image, ExpandedRepoInfo -------------------------------------------------------------


def test_image_list_of_one_repository(world, kit) -> None:
    answer = image_list(world, kit, kit.BASE)
    assert answer["Page"] == {"TotalCount": 2, "ItemCount": 2}
    assert sorted(keys(answer["Results"])) == [(kit.BASE, "0.9"), (kit.BASE, "1.0")]
    for summary in answer["Results"]:
        kit.check_image_summary(summary, kit.BASE, summary["Tag"], world.images[(kit.BASE, summary["Tag"])])


def test_image_list_of_all_repositories_lists_every_tag_but_no_signature(world, kit) -> None:
    answer = image_list(world, kit, "")
    assert sorted(keys(answer["Results"])) == sorted(world.images), (
        "ImageList(\"\") lists every tagged image of every repository; cosign's sha256-<hex>.sig tags "
        "are signatures, not images"
    )
    assert answer["Page"] == {"TotalCount": len(world.images), "ItemCount": len(world.images)}
    for summary in answer["Results"]:
        key = (summary["RepoName"], summary["Tag"])
        kit.check_image_summary(summary, *key, world.images[key])


def test_image_list_of_unknown_repository_is_empty_or_an_error(world, kit) -> None:
    status, doc = world.gql.raw(
        'query { ImageList(repo: "zotpy/nope") { Page { TotalCount ItemCount } Results { Tag } } }'
    )
    if not doc.get("errors"):
        assert doc["data"]["ImageList"] == {"Page": {"TotalCount": 0, "ItemCount": 0}, "Results": []}


def test_annotations_fill_the_descriptive_fields(world, kit) -> None:
    summary = next(r for r in image_list(world, kit, kit.BASE)["Results"] if r["Tag"] == "1.0")
    got = {k: summary[k] for k in ("Title", "Description", "Vendor", "Licenses", "Source", "Documentation",
                                   "Authors")}
    assert got == {
        "Title": "Base image",
        "Description": "The base of the search tests",
        "Vendor": "Zotpy Tests",
        "Licenses": "Apache-2.0",
        "Source": "https://example.com/base.git",
        "Documentation": "https://example.com/base/docs",
        "Authors": "tests@example.com",
    }


def test_config_labels_fill_the_descriptive_fields_without_annotations(world, kit) -> None:
    summary = next(r for r in image_list(world, kit, kit.BASE)["Results"] if r["Tag"] == "0.9")
    got = {k: summary[k] for k in ("Title", "Description", "Vendor", "Licenses", "Source", "Documentation",
                                   "Authors")}
    assert got == {
        "Title": "Old base",
        "Description": "Described by labels only",
        "Vendor": "Label Vendor",
        "Licenses": "MIT",
        "Source": "https://example.com/old.git",
        "Documentation": "https://example.com/old/docs",
        "Authors": "labels@example.com",
    }


def test_last_updated_comes_from_the_config(world, kit) -> None:
    for summary in image_list(world, kit, "")["Results"]:
        key = (summary["RepoName"], summary["Tag"])
        if key in world.created:
            want = kit.parse_time(world.created[key])
            assert kit.parse_time(summary["LastUpdated"]) == want, (key, summary["LastUpdated"])
            for manifest in summary["Manifests"]:
                assert kit.parse_time(manifest["LastUpdated"]) == want, (key, manifest)


def test_history_pairs_layers_with_history_entries(world, kit) -> None:
    item = world.images[(kit.BASE, "1.0")]
    summary = next(r for r in image_list(world, kit, kit.BASE)["Results"] if r["Tag"] == "1.0")
    history = summary["Manifests"][0]["History"]
    assert [h["HistoryDescription"]["CreatedBy"] for h in history] == [
        "ADD layer 0", "ADD layer 1", 'CMD ["sh"]'
    ]
    assert [bool(h["HistoryDescription"]["EmptyLayer"]) for h in history] == [False, False, True]
    assert [h["Layer"]["Digest"] for h in history[:2]] == [b.digest for b in item.layers]
    assert [h["Layer"]["Size"] for h in history[:2]] == [str(b.size) for b in item.layers]
    first = history[0]["HistoryDescription"]
    assert (first["Author"], first["Comment"]) == ("zotpy tests", "c0")
    assert kit.parse_time(first["Created"]) == kit.parse_time("2024-01-01T00:00:00Z")


def test_multi_platform_index_summary(world, kit) -> None:
    item = world.images[(kit.MULTI, "v1")]
    summary = image_list(world, kit, kit.MULTI)["Results"]
    assert len(summary) == 1
    kit.check_image_summary(summary[0], kit.MULTI, "v1", item)
    assert summary[0]["MediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["Platform"] for m in summary[0]["Manifests"]] == [
        {"Os": "linux", "Arch": "amd64"},
        {"Os": "linux", "Arch": "arm64/v8"},
        {"Os": "linux", "Arch": "arm/v7"},
    ]


def test_artifact_type_of_an_artifact_and_of_an_image(world, kit) -> None:
    artifact = image_list(world, kit, kit.ARTIFACTS)["Results"]
    assert [m["ArtifactType"] for m in artifact[0]["Manifests"]] == [kit.MODEL_TYPE]
    image = image_list(world, kit, kit.DERIVED)["Results"]
    assert [m["ArtifactType"] for m in image[0]["Manifests"]] == ["application/vnd.oci.image.config.v1+json"]


def test_signatures_of_every_kind_mark_the_image_signed(world, kit) -> None:
    for summary in image_list(world, kit, "")["Results"]:
        key = (summary["RepoName"], summary["Tag"])
        tools = world.signatures.get(key, ())
        assert summary["IsSigned"] is bool(tools), (key, summary["IsSigned"], summary["SignatureInfo"])
        assert sorted({s["Tool"] for s in summary["SignatureInfo"] or []}) == sorted(tools), (
            key, summary["SignatureInfo"])
        for info in summary["SignatureInfo"] or []:
            assert info["IsTrusted"] is False, info  # no trust store is configured
        if not isinstance(world.images[key], kit.Index):
            assert summary["Manifests"][0]["IsSigned"] is bool(tools), (key, summary["Manifests"][0])


def test_image_query(world, kit) -> None:
    data = world.gql.data(f'query {{ Image(image: "{kit.MULTI}:v1") {{ {kit.IMAGE_FIELDS} }} }}')
    kit.check_image_summary(data["Image"], kit.MULTI, "v1", world.images[(kit.MULTI, "v1")])
    data = world.gql.data(f'query {{ Image(image: "{kit.BASE}:1.0") {{ {kit.IMAGE_FIELDS} }} }}')
    kit.check_image_summary(data["Image"], kit.BASE, "1.0", world.images[(kit.BASE, "1.0")])


@pytest.mark.parametrize("name", ["zotpy/base:9.9", "zotpy/nope:1.0", "zotpy/base"])
def test_image_query_for_a_missing_image_is_an_error(world, kit, name: str) -> None:
    world.gql.errors(f'query {{ Image(image: "{name}") {{ Tag Digest }} }}')


def test_expanded_repo_info(world, kit) -> None:
    query = (
        "query($r: String!) { ExpandedRepoInfo(repo: $r) {"
        f" Summary {{ {kit.REPO_FIELDS} }} Images {{ {kit.IMAGE_FIELDS} }} }} }}"
    )
    info = world.gql.data(query, {"r": kit.BASE})["ExpandedRepoInfo"]
    assert sorted(i["Tag"] for i in info["Images"]) == ["0.9", "1.0"]
    for summary in info["Images"]:
        kit.check_image_summary(summary, kit.BASE, summary["Tag"], world.images[(kit.BASE, summary["Tag"])])
    repo = info["Summary"]
    assert repo["Name"] == kit.BASE
    assert repo["Size"] == str(kit.repo_size(world.tagged(kit.BASE).values()))
    assert repo["Platforms"] == [{"Os": "linux", "Arch": "amd64"}]
    assert "Zotpy Tests" in repo["Vendors"]
    assert repo["NewestImage"]["Tag"] == "1.0"
    assert kit.parse_time(repo["LastUpdated"]) == kit.parse_time("2024-01-01T00:00:00Z")
    assert (repo["StarCount"], repo["IsStarred"], repo["IsBookmarked"]) == (0, False, False)


def test_expanded_repo_info_of_an_unknown_repository_does_not_fail_the_server(world, kit) -> None:
    status, doc = world.gql.raw('query { ExpandedRepoInfo(repo: "zotpy/nope") { Summary { Name } '
                                "Images { Tag } } }")
    if not doc.get("errors"):
        info = doc["data"]["ExpandedRepoInfo"]
        assert not info["Images"], info


# -- RepoListWithNewestImage, repository summaries -----------------------------------------------


def test_repo_list_with_newest_image(world, kit) -> None:
    answer = repo_list(world, kit)
    repos = {r["Name"]: r for r in answer["Results"]}
    assert sorted(repos) == world.repos()
    assert answer["Page"] == {"TotalCount": len(repos), "ItemCount": len(repos)}
    newest = {kit.BASE: "1.0", kit.DERIVED: "2.0", kit.UNRELATED: "1.0", kit.MULTI: "v1",
              kit.ARTIFACTS: "model", kit.BASEMENT: "1", kit.DATABASE: "1"}
    for name, summary in repos.items():
        assert summary["NewestImage"]["Tag"] == newest[name], summary
        assert summary["NewestImage"]["RepoName"] == name, summary
        assert summary["NewestImage"]["Digest"] == world.digest(name, newest[name]), summary
        assert summary["Size"] == str(kit.repo_size(world.tagged(name).values())), (name, summary["Size"])
        assert (summary["StarCount"], summary["IsStarred"], summary["IsBookmarked"]) == (0, False, False)


def test_repo_platforms(world, kit) -> None:
    repos = {r["Name"]: r for r in repo_list(world, kit)["Results"]}
    platforms = {name: sorted((p["Os"], p["Arch"]) for p in r["Platforms"]) for name, r in repos.items()}
    assert platforms[kit.MULTI] == [("linux", "amd64"), ("linux", "arm/v7"), ("linux", "arm64/v8")]
    assert platforms[kit.DERIVED] == [("linux", "ppc64le")]
    assert platforms[kit.UNRELATED] == [("windows", "amd64")]
    assert platforms[kit.BASE] == [("linux", "amd64")]


def test_download_counts_of_images_and_repositories(world, kit) -> None:
    def check() -> None:
        images = {(r["RepoName"], r["Tag"]): r for r in image_list(world, kit, "")["Results"]}
        for key, summary in images.items():
            assert summary["DownloadCount"] == world.downloads.get(key, 0), (key, summary["DownloadCount"])
            if world.downloads.get(key):
                assert summary["LastPullTimestamp"], summary
        repos = {r["Name"]: r["DownloadCount"] for r in repo_list(world, kit)["Results"]}
        want = {name: sum(n for (r, _t), n in world.downloads.items() if r == name) for name in repos}
        assert repos == want

    kit.wait_for(check)


def test_starred_and_bookmarked_repos_are_empty_for_anonymous(world, kit) -> None:
    for name in ("StarredRepos", "BookmarkedRepos"):
        data = world.gql.data(f"query {{ {name} {{ Page {{ TotalCount ItemCount }} Results {{ Name }} }} }}")
        assert data[name] == {"Page": {"TotalCount": 0, "ItemCount": 0}, "Results": []}, data


# -- GlobalSearch ------------------------------------------------------------------------------------


def test_global_search_for_a_repository_name_ranks_the_exact_match_first(world, kit) -> None:
    answer = global_search(world, kit, kit.BASE)
    names = [r["Name"] for r in answer["Repos"]]
    assert names == [kit.BASE, kit.BASEMENT], names
    assert not answer["Images"]
    assert answer["Page"] == {"TotalCount": 2, "ItemCount": 2}
    ranks = [r["Rank"] for r in answer["Repos"]]
    assert ranks == sorted(ranks) and ranks[0] < ranks[1], ranks


def test_global_search_for_a_word_ranks_name_matches_before_substring_matches(world, kit) -> None:
    answer = global_search(world, kit, "base")
    names = [r["Name"] for r in answer["Repos"]]
    assert sorted(names) == sorted([kit.BASE, kit.BASEMENT, kit.DATABASE]), names
    assert names[-1] == kit.DATABASE, f"'base' inside 'database' ranks after names starting with it: {names}"
    ranks = [r["Rank"] for r in answer["Repos"]]
    assert ranks == sorted(ranks), ranks


def test_global_search_repository_summaries(world, kit) -> None:
    answer = global_search(world, kit, kit.MULTI)
    [repo] = answer["Repos"]
    assert repo["Name"] == kit.MULTI
    assert repo["NewestImage"]["Tag"] == "v1"
    assert repo["Size"] == str(kit.repo_size(world.tagged(kit.MULTI).values()))
    assert kit.parse_time(repo["LastUpdated"]) == kit.parse_time("2024-04-01T00:00:00Z")


@pytest.mark.parametrize("text", ["ZOTPY/BASE", "  zotpy/base  ", "/zotpy/base/"])
def test_global_search_trims_and_lowercases_the_query(world, kit, text: str) -> None:
    names = [r["Name"] for r in global_search(world, kit, text)["Repos"]]
    assert names == [kit.BASE, kit.BASEMENT], (text, names)


def test_global_search_repo_and_tag_prefix(world, kit) -> None:
    answer = global_search(world, kit, f"{kit.BASE}:1")
    assert keys(answer["Images"]) == [(kit.BASE, "1.0")]
    assert not answer["Repos"]
    assert answer["Page"] == {"TotalCount": 1, "ItemCount": 1}
    kit.check_image_summary(answer["Images"][0], kit.BASE, "1.0", world.images[(kit.BASE, "1.0")])


def test_global_search_repo_with_empty_tag_lists_every_tag(world, kit) -> None:
    answer = global_search(world, kit, f"{kit.BASE}:")
    assert sorted(keys(answer["Images"])) == [(kit.BASE, "0.9"), (kit.BASE, "1.0")]


@pytest.mark.parametrize(("text", "expected"), [
    (":1.0", [("zotpy/base", "1.0"), ("zotpy/unrelated", "1.0")]),
    (":v", [("zotpy/multi", "v1")]),
    (":model", [("zotpy/artifacts", "model")]),
])
def test_global_search_tag_across_repositories(world, kit, text: str, expected: list) -> None:
    answer = global_search(world, kit, text)
    assert sorted(keys(answer["Images"])) == expected, text
    assert answer["Page"]["TotalCount"] == len(expected)


def test_global_search_by_digest(world, kit) -> None:
    digest = world.digest(kit.BASE, "1.0")
    answer = global_search(world, kit, digest)
    assert keys(answer["Images"]) == [(kit.BASE, "1.0")], answer["Images"]
    assert not answer["Repos"]


def test_global_search_layers_are_never_populated(world, kit) -> None:
    for text in (kit.BASE, f"{kit.BASE}:1", world.layers["A"].digest):
        assert not global_search(world, kit, text)["Layers"], text


def test_global_search_without_match(world, kit) -> None:
    answer = global_search(world, kit, "no-such-thing-anywhere")
    assert not answer["Repos"] and not answer["Images"]
    assert answer["Page"] == {"TotalCount": 0, "ItemCount": 0}


# -- filters -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("filter", "expected"), [
    ({"Os": ["windows"]}, ["zotpy/unrelated"]),
    ({"Arch": ["ppc64le"]}, ["zotpy/derived"]),
    ({"Os": ["linux"], "Arch": ["ppc64le", "amd64"]}, ["zotpy/base", "zotpy/basement", "zotpy/derived",
                                                       "zotpy/multi"]),
    ({"HasToBeSigned": True}, ["zotpy/base", "zotpy/derived", "zotpy/unrelated"]),
    ({"HasToBeSigned": True, "Os": ["windows"]}, ["zotpy/unrelated"]),
    ({"Os": ["plan9"]}, []),
])
def test_global_search_filters_repositories(world, kit, filter: dict, expected: list) -> None:
    answer = global_search(world, kit, "zotpy", filter=filter)
    assert sorted(r["Name"] for r in answer["Repos"]) == expected, filter
    assert answer["Page"]["TotalCount"] == len(expected), answer["Page"]


def test_global_search_filters_images(world, kit) -> None:
    signed = global_search(world, kit, f"{kit.BASE}:", filter={"HasToBeSigned": True})
    assert keys(signed["Images"]) == [(kit.BASE, "1.0")]
    arch = global_search(world, kit, ":1.0", filter={"Os": ["windows"]})
    assert keys(arch["Images"]) == [(kit.UNRELATED, "1.0")]


def test_global_search_bookmark_and_star_filters_for_anonymous(world, kit) -> None:
    assert global_search(world, kit, "zotpy", filter={"IsStarred": True})["Repos"] == []
    assert global_search(world, kit, "zotpy", filter={"IsBookmarked": True})["Repos"] == []
    not_starred = global_search(world, kit, "zotpy", filter={"IsStarred": False})["Repos"]
    assert len(not_starred) == 6, [r["Name"] for r in not_starred]


# -- DerivedImageList, BaseImageList, ImageListForDigest, Referrers --------------------------------


@pytest.mark.parametrize(("query", "image", "expected"), [
    ("DerivedImageList", "zotpy/base:0.9", [("zotpy/base", "1.0"), ("zotpy/derived", "2.0")]),
    ("DerivedImageList", "zotpy/base:1.0", [("zotpy/derived", "2.0")]),
    ("DerivedImageList", "zotpy/derived:2.0", []),
    ("DerivedImageList", "zotpy/unrelated:1.0", []),
    ("BaseImageList", "zotpy/derived:2.0", [("zotpy/base", "0.9"), ("zotpy/base", "1.0")]),
    ("BaseImageList", "zotpy/base:1.0", [("zotpy/base", "0.9")]),
    ("BaseImageList", "zotpy/base:0.9", []),
    ("BaseImageList", "zotpy/unrelated:1.0", []),
])
def test_base_and_derived_images(world, kit, query: str, image: str, expected: list) -> None:
    answer = images_query(world, kit, query, "image: $i", {"i": ("String!", image)})
    assert sorted(keys(answer["Results"])) == expected, (query, image)
    assert answer["Page"] == {"TotalCount": len(expected), "ItemCount": len(expected)}
    for summary in answer["Results"]:
        key = (summary["RepoName"], summary["Tag"])
        kit.check_image_summary(summary, *key, world.images[key])


def test_derived_images_paginate(world, kit) -> None:
    answer = images_query(world, kit, "DerivedImageList", "image: $i, requestedPage: $p", {
        "i": ("String!", "zotpy/base:0.9"), "p": ("PageInput", {"limit": 1, "offset": 0,
                                                                "sortBy": "ALPHABETIC_ASC"})})
    assert keys(answer["Results"]) == [("zotpy/base", "1.0")]
    assert answer["Page"] == {"TotalCount": 2, "ItemCount": 1}


def test_derived_and_base_images_of_a_missing_image(world, kit) -> None:
    for query in ("DerivedImageList", "BaseImageList"):
        status, doc = world.gql.raw(f'query {{ {query}(image: "zotpy/nope:1") {{ Results {{ Tag }} }} }}')
        if not doc.get("errors"):
            assert doc["data"][query]["Results"] == [], doc


def _digest_cases(world, kit) -> dict[str, tuple[str, list]]:
    base09, base10 = world.images[("zotpy/base", "0.9")], world.images[("zotpy/base", "1.0")]
    multi = world.images[("zotpy/multi", "v1")]
    return {
        "manifest": (base10.digest, [("zotpy/base", "1.0")]),
        "config": (base09.config.digest, [("zotpy/base", "0.9")]),
        "shared layer": (world.layers["A"].digest,
                         [("zotpy/base", "0.9"), ("zotpy/base", "1.0"), ("zotpy/derived", "2.0")]),
        "last layer": (world.layers["C"].digest, [("zotpy/derived", "2.0")]),
        "index": (multi.digest, [("zotpy/multi", "v1")]),
        "index child": (multi.images[1].digest, [("zotpy/multi", "v1")]),
        "child layer": (multi.images[2].layers[0].digest, [("zotpy/multi", "v1")]),
        "unknown": ("sha256:" + "0" * 64, []),
    }


@pytest.mark.parametrize("case", ["manifest", "config", "shared layer", "last layer", "index", "index child",
                                  "child layer", "unknown"])
def test_image_list_for_digest(world, kit, case: str) -> None:
    digest, expected = _digest_cases(world, kit)[case]
    answer = images_query(world, kit, "ImageListForDigest", "id: $d", {"d": ("String!", digest)})
    assert sorted(keys(answer["Results"])) == expected, (case, digest)
    assert answer["Page"]["TotalCount"] == len(expected)


def referrers(world, types: list[str] | None = None) -> list[dict]:
    query = ("query($r: String!, $d: String!, $t: [String!]) { Referrers(repo: $r, digest: $d, type: $t) {"
             " MediaType ArtifactType Size Digest Annotations { Key Value } } }")
    variables = {"r": "zotpy/base", "d": world.digest("zotpy/base", "1.0"), "t": types}
    return world.gql.data(query, variables)["Referrers"]


def test_referrers_of_an_image(world, kit) -> None:
    sbom, attestation = world.referrers["sbom"], world.referrers["attestation"]
    listed = {r["Digest"]: r for r in referrers(world)}
    assert {sbom.digest, attestation.digest} <= set(listed), listed
    extra = {r["ArtifactType"] for d, r in listed.items() if d not in (sbom.digest, attestation.digest)}
    assert extra <= {kit.COSIGN_SIG_TYPE}, f"only the cosign signature may be listed besides them: {extra}"
    got = listed[sbom.digest]
    assert got == {
        "MediaType": "application/vnd.oci.image.manifest.v1+json",
        "ArtifactType": kit.SBOM_TYPE,
        "Size": sbom.manifest.size,
        "Digest": sbom.digest,
        "Annotations": [{"Key": "org.zotpy.kind", "Value": "sbom"}],
    }
    assert listed[attestation.digest]["Annotations"] == []


@pytest.mark.parametrize(("types", "names"), [
    (["application/vnd.zotpy.sbom.v1+json"], ["sbom"]),
    (["application/vnd.zotpy.attestation.v1+json"], ["attestation"]),
    (["application/vnd.zotpy.sbom.v1+json", "application/vnd.zotpy.attestation.v1+json"],
     ["sbom", "attestation"]),
    (["application/vnd.zotpy.none"], []),
    ([], ["sbom", "attestation", "*"]),
])
def test_referrers_filtered_by_type(world, kit, types: list, names: list) -> None:
    got = sorted(r["Digest"] for r in referrers(world, types))
    if "*" in names:  # an empty type list filters nothing
        assert got == sorted(r["Digest"] for r in referrers(world)), types
        return
    assert got == sorted(world.referrers[n].digest for n in names), types


def test_referrers_of_an_image_summary(world, kit) -> None:
    summary = next(r for r in image_list(world, kit, kit.BASE)["Results"] if r["Tag"] == "1.0")
    listed = {r["Digest"] for r in summary["Referrers"]}
    assert {world.referrers["sbom"].digest, world.referrers["attestation"].digest} <= listed
    other = next(r for r in image_list(world, kit, kit.BASE)["Results"] if r["Tag"] == "0.9")
    assert not other["Referrers"]


def test_referrers_of_an_unknown_digest(world, kit) -> None:
    query = 'query { Referrers(repo: "zotpy/base", digest: "sha256:%s") { Digest } }' % ("1" * 64)
    status, doc = world.gql.raw(query)
    if not doc.get("errors"):
        assert doc["data"]["Referrers"] == []


# -- pagination and sorting ------------------------------------------------------------------------

ALL_SORTED = [
    ("tools/database", "1"), ("zotpy/artifacts", "model"), ("zotpy/base", "0.9"), ("zotpy/base", "1.0"),
    ("zotpy/basement", "1"), ("zotpy/derived", "2.0"), ("zotpy/multi", "v1"), ("zotpy/unrelated", "1.0"),
]


@pytest.mark.parametrize(("limit", "offset", "expected"), [
    (3, 0, ALL_SORTED[0:3]),
    (3, 3, ALL_SORTED[3:6]),
    (3, 6, ALL_SORTED[6:8]),
    (3, 8, []),
    (100, 0, ALL_SORTED),
    (1, 7, ALL_SORTED[7:8]),
])
def test_image_list_pages(world, kit, limit: int, offset: int, expected: list) -> None:
    page = {"limit": limit, "offset": offset, "sortBy": "ALPHABETIC_ASC"}
    answer = image_list(world, kit, "", page, fields="RepoName Tag")
    assert keys(answer["Results"]) == expected
    assert answer["Page"] == {"TotalCount": len(ALL_SORTED), "ItemCount": len(expected)}


def test_pages_cover_everything_once(world, kit) -> None:
    seen = []
    for offset in range(0, 9, 2):
        answer = image_list(world, kit, "", {"limit": 2, "offset": offset, "sortBy": "ALPHABETIC_DSC"},
                            fields="RepoName Tag")
        seen += keys(answer["Results"])
    assert seen == ALL_SORTED[::-1]


def test_empty_page_input_returns_everything(world, kit) -> None:
    for page in ({}, {"offset": 0}, {"limit": 0}):
        answer = image_list(world, kit, "", page, fields="RepoName Tag")
        assert sorted(keys(answer["Results"])) == ALL_SORTED, page
        assert answer["Page"]["ItemCount"] == len(ALL_SORTED), page


def test_image_sort_alphabetic(world, kit) -> None:
    asc = image_list(world, kit, "", {"sortBy": "ALPHABETIC_ASC"}, fields="RepoName Tag")
    dsc = image_list(world, kit, "", {"sortBy": "ALPHABETIC_DSC"}, fields="RepoName Tag")
    assert keys(asc["Results"]) == ALL_SORTED
    assert keys(dsc["Results"]) == ALL_SORTED[::-1]


def test_image_sort_update_time_puts_the_newest_first(world, kit) -> None:
    answer = image_list(world, kit, "", {"sortBy": "UPDATE_TIME"}, fields="RepoName Tag LastUpdated")
    dated = sorted(world.created, key=lambda k: world.created[k], reverse=True)
    got = [k for k in keys(answer["Results"]) if k in world.created]
    assert got == dated
    assert keys(answer["Results"])[-1] == ("zotpy/artifacts", "model"), "an image without a date comes last"


def test_image_sort_downloads_puts_the_most_pulled_first(world, kit) -> None:
    def check() -> None:
        answer = image_list(world, kit, "", {"sortBy": "DOWNLOADS"}, fields="RepoName Tag DownloadCount")
        assert keys(answer["Results"])[:3] == [("zotpy/multi", "v1"), ("zotpy/base", "1.0"),
                                               ("zotpy/unrelated", "1.0")]
        counts = [r["DownloadCount"] for r in answer["Results"]]
        assert counts == sorted(counts, reverse=True)

    kit.wait_for(check)


@pytest.mark.parametrize("criterion", ["RELEVANCE", "STARS", "SEVERITY"])
def test_image_sort_other_criteria_keep_the_whole_set(world, kit, criterion: str) -> None:
    """RELEVANCE has no query to rank images by; zot rejects STARS and SEVERITY for images. Either way:
    a complete list, or a GraphQL error — never a 500 or a partial list."""
    query = ("query($p: PageInput) { ImageList(repo: \"\", requestedPage: $p) { Page { TotalCount ItemCount }"
             " Results { RepoName Tag } } }")
    status, doc = world.gql.raw(query, {"p": {"sortBy": criterion}})
    if criterion == "RELEVANCE":
        assert not doc.get("errors"), doc
    if not doc.get("errors"):
        assert sorted(keys(doc["data"]["ImageList"]["Results"])) == ALL_SORTED


REPOS_SORTED = ["tools/database", "zotpy/artifacts", "zotpy/base", "zotpy/basement", "zotpy/derived",
                "zotpy/multi", "zotpy/unrelated"]


def test_repo_sort_alphabetic(world, kit) -> None:
    asc = [r["Name"] for r in repo_list(world, kit, {"sortBy": "ALPHABETIC_ASC"})["Results"]]
    dsc = [r["Name"] for r in repo_list(world, kit, {"sortBy": "ALPHABETIC_DSC"})["Results"]]
    assert asc == REPOS_SORTED
    assert dsc == REPOS_SORTED[::-1]


def test_repo_sort_update_time(world, kit) -> None:
    names = [r["Name"] for r in repo_list(world, kit, {"sortBy": "UPDATE_TIME"})["Results"]]
    assert names == ["zotpy/multi", "zotpy/derived", "zotpy/unrelated", "zotpy/base", "zotpy/basement",
                     "tools/database", "zotpy/artifacts"]


def test_repo_sort_downloads(world, kit) -> None:
    def check() -> None:
        results = repo_list(world, kit, {"sortBy": "DOWNLOADS"})["Results"]
        assert [r["Name"] for r in results][:3] == ["zotpy/multi", "zotpy/base", "zotpy/unrelated"]

    kit.wait_for(check)


@pytest.mark.parametrize("criterion", ["STARS", "RELEVANCE"])
def test_repo_sort_stars_and_relevance_keep_the_whole_set(world, kit, criterion: str) -> None:
    answer = repo_list(world, kit, {"sortBy": criterion})
    assert sorted(r["Name"] for r in answer["Results"]) == REPOS_SORTED
    assert answer["Page"] == {"TotalCount": 7, "ItemCount": 7}


def test_repo_list_pages(world, kit) -> None:
    answer = repo_list(world, kit, {"limit": 2, "offset": 2, "sortBy": "ALPHABETIC_ASC"})
    assert [r["Name"] for r in answer["Results"]] == REPOS_SORTED[2:4]
    assert answer["Page"] == {"TotalCount": 7, "ItemCount": 2}


@pytest.mark.parametrize("criterion", ["ALPHABETIC_ASC", "ALPHABETIC_DSC", "UPDATE_TIME", "DOWNLOADS"])
def test_global_search_repo_sorting(world, kit, criterion: str) -> None:
    expected = {
        "ALPHABETIC_ASC": REPOS_SORTED[1:],
        "ALPHABETIC_DSC": REPOS_SORTED[1:][::-1],
        "UPDATE_TIME": ["zotpy/multi", "zotpy/derived", "zotpy/unrelated", "zotpy/base", "zotpy/basement",
                        "zotpy/artifacts"],
    }

    def check() -> None:
        names = [r["Name"] for r in global_search(world, kit, "zotpy", page={"sortBy": criterion})["Repos"]]
        if criterion == "DOWNLOADS":
            assert names[:3] == ["zotpy/multi", "zotpy/base", "zotpy/unrelated"], names
            assert sorted(names) == REPOS_SORTED[1:]
        else:
            assert names == expected[criterion], names

    kit.wait_for(check)


def test_global_search_pages(world, kit) -> None:
    answer = global_search(world, kit, "zotpy", page={"limit": 4, "offset": 4, "sortBy": "ALPHABETIC_ASC"})
    assert [r["Name"] for r in answer["Repos"]] == REPOS_SORTED[5:7]
    assert answer["Page"] == {"TotalCount": 6, "ItemCount": 2}
    images = global_search(world, kit, f"{kit.BASE}:", page={"limit": 1, "offset": 1,
                                                              "sortBy": "ALPHABETIC_ASC"})
    assert keys(images["Images"]) == [(kit.BASE, "1.0")]
    assert images["Page"] == {"TotalCount": 2, "ItemCount": 1}


# -- transports ----------------------------------------------------------------------------------------


def test_get_and_post_give_the_same_answer(world, kit) -> None:
    query = f'{{ ImageList(repo: "{kit.BASE}") {{ Page {{ TotalCount }} Results {{ Tag Digest Size }} }} }}'
    assert world.gql.data(query, method="GET") == world.gql.data(query)
    variables = {"r": kit.MULTI}
    query = "query($r: String!) { ExpandedRepoInfo(repo: $r) { Summary { Name Size } } }"
    assert world.gql.data(query, variables, method="GET") == world.gql.data(query, variables)


def test_typename_and_aliases(world, kit) -> None:
    data = world.gql.data(f'{{ a: Image(image: "{kit.BASE}:1.0") {{ __typename Tag }} '
                          f'b: Image(image: "{kit.BASE}:0.9") {{ Tag }} }}')
    assert data == {"a": {"__typename": "ImageSummary", "Tag": "1.0"}, "b": {"Tag": "0.9"}}


def test_global_search_edge_forms(world, kit) -> None:
    assert not global_search(world, kit, "zotpy/bas:1")["Images"], "repo:tag needs the exact repository"
    everything = global_search(world, kit, "")
    assert sorted(r["Name"] for r in everything["Repos"]) == REPOS_SORTED
    assert everything["Page"]["TotalCount"] == len(REPOS_SORTED)
    assert sorted(r["Name"] for r in global_search(world, kit, "zotpy/")["Repos"]) == REPOS_SORTED[1:]
    assert image_list(world, kit, "zotpy/bas", fields="Tag")["Results"] == [], "ImageList takes an exact name"


def test_repo_list_defaults_to_the_newest_first(world, kit) -> None:
    names = [r["Name"] for r in repo_list(world, kit)["Results"]]
    assert names == ["zotpy/multi", "zotpy/derived", "zotpy/unrelated", "zotpy/base", "zotpy/basement",
                     "tools/database", "zotpy/artifacts"]


def test_base_and_derived_lists_default_to_the_newest_first(world, kit) -> None:
    derived = images_query(world, kit, "DerivedImageList", "image: $i", {"i": ("String!", "zotpy/base:0.9")})
    assert keys(derived["Results"]) == [("zotpy/derived", "2.0"), ("zotpy/base", "1.0")]
    base = images_query(world, kit, "BaseImageList", "image: $i", {"i": ("String!", "zotpy/derived:2.0")})
    assert keys(base["Results"]) == [("zotpy/base", "1.0"), ("zotpy/base", "0.9")]


@pytest.mark.parametrize("criterion", ["RELEVANCE", "UPDATE_TIME", "ALPHABETIC_ASC", "ALPHABETIC_DSC",
                                       "DOWNLOADS"])
def test_paging_with_ties_neither_repeats_nor_skips(world, kit, criterion: str) -> None:
    """Several images tie on the sort key (no pulls, no date); walking the pages still yields each once."""
    seen: list[tuple[str, str]] = []
    for offset in range(0, len(ALL_SORTED) + 3, 3):
        page = {"limit": 3, "offset": offset, "sortBy": criterion}
        seen += keys(image_list(world, kit, "", page, fields="RepoName Tag")["Results"])
    assert sorted(seen) == ALL_SORTED, (criterion, seen)
    repos: list[str] = []
    for offset in range(0, 9, 2):
        page = {"limit": 2, "offset": offset, "sortBy": criterion}
        repos += [r["Name"] for r in repo_list(world, kit, page)["Results"]]
    assert sorted(repos) == REPOS_SORTED, (criterion, repos)
