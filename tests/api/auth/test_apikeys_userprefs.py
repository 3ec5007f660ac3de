"""API keys (``/zot/auth/apikey``) and user preferences (``/v2/_zot/ext/userprefs``) with per-user search."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from zotpy.meta.authmodels import AuthTables
from zotpy.meta.db import DEFAULT_DB_NAME, open_database
from zotpy.storage.layout import PRIVATE_DIR

Factory = Callable[..., Any]
SEARCH = {"search": {"enable": True}}


def _graphql(client: Any, query: str) -> dict[str, Any]:
    response = client.request("POST", "/v2/_zot/ext/search", json={"query": query})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert "errors" not in body, body
    return body["data"]


def test_api_keys_are_made_listed_used_and_revoked(make_app: Factory) -> None:
    app = make_app(auth={"apikey": True})
    mary = app("mary")
    made = mary.request("POST", "/zot/auth/apikey", json={"label": "laptop", "scopes": ["x"]},
                        headers={"User-Agent": "tests/1"})
    assert made.status_code == 201
    details = made.get_json()
    key = details["apiKey"]
    assert key.startswith("zak_") and len(key) == 36
    assert details["label"] == "laptop" and details["creatorUa"] == "tests/1"
    assert details["expirationDate"] == "0001-01-01T00:00:00Z" and details["isExpired"] is False
    # the key is mary's password now, for mary only
    assert app("mary", key).request("DELETE", "/v2/team/none/manifests/latest").status_code == 404
    assert app("eve", key).request("GET", "/v2/").status_code == 401
    assert app("mary", key[:-1] + "0").request("GET", "/v2/").status_code == 401
    listed = mary.request("GET", "/zot/auth/apikey").get_json()["apiKeys"]
    assert [k["uuid"] for k in listed] == [details["uuid"]]
    assert "apiKey" not in listed[0] and listed[0]["lastUsed"] != "0001-01-01T00:00:00Z"
    assert app("eve").request("GET", "/zot/auth/apikey").get_json()["apiKeys"] == []
    # eve cannot revoke mary's key
    assert app("eve").request("DELETE", f"/zot/auth/apikey?id={details['uuid']}").status_code == 404
    assert mary.request("DELETE", f"/zot/auth/apikey?id={details['uuid']}").status_code == 200
    assert app("mary", key).request("GET", "/v2/").status_code == 401


def test_api_key_requests_are_checked(make_app: Factory) -> None:
    app = make_app(auth={"apikey": True})
    mary = app("mary")
    assert app().request("GET", "/zot/auth/apikey").status_code == 401
    assert app().request("POST", "/zot/auth/apikey", json={}).status_code == 401
    past = mary.request("POST", "/zot/auth/apikey", json={"expirationDate": "2001-01-01T00:00:00Z"})
    assert past.status_code == 400
    assert mary.request("POST", "/zot/auth/apikey", json={"expirationDate": "soon"}).status_code == 400
    assert mary.request("POST", "/zot/auth/apikey", json={"label": 5}).status_code == 400
    assert mary.request("POST", "/zot/auth/apikey", data=b"[1]").status_code == 400
    assert mary.request("POST", "/zot/auth/apikey", data=b"{" + b" " * 9000 + b"}").status_code == 413
    assert mary.request("DELETE", "/zot/auth/apikey").status_code == 400
    assert mary.request("DELETE", "/zot/auth/apikey?id=a&id=b").status_code == 400


def test_expired_api_key_is_refused(make_app: Factory, tmp_path: Any) -> None:
    app = make_app(auth={"apikey": True})
    made = app("mary").request("POST", "/zot/auth/apikey",
                               json={"expirationDate": "2099-01-01T00:00:00Z"}).get_json()
    assert app("mary", made["apiKey"]).request("GET", "/v2/").status_code == 200
    db = open_database(str(tmp_path / "root" / PRIVATE_DIR / DEFAULT_DB_NAME))
    tables = AuthTables(db)
    tables.api_key.update(expires_at=time.time() - 1).where(tables.api_key.uuid == made["uuid"]).execute()
    db.close()
    assert app("mary", made["apiKey"]).request("GET", "/v2/").status_code == 401


def test_apikey_route_is_absent_unless_configured(make_app: Factory) -> None:
    assert make_app()("mary").request("GET", "/zot/auth/apikey").status_code == 404


def test_stars_and_bookmarks_are_per_user(make_app: Factory) -> None:
    app = make_app(extensions=SEARCH)
    admin, eve, bob = app("admin"), app("eve"), app("bob")
    for repo in ("team/a", "prod/svc", "public/x"):
        assert admin.push_image(repo).status_code == 201
    prefs = "/v2/_zot/ext/userprefs"
    assert eve.request("PUT", f"{prefs}?action=toggleStar&repo=team/a").status_code == 200
    assert bob.request("PUT", f"{prefs}?action=toggleStar&repo=team/a").status_code == 200
    assert eve.request("PUT", f"{prefs}?action=toggleBookmark&repo=public/x").status_code == 200
    # prod/svc is not eve's to see: answered as if it did not exist
    assert eve.request("PUT", f"{prefs}?action=toggleStar&repo=prod/svc").status_code == 404
    assert eve.request("PUT", f"{prefs}?action=toggleStar&repo=no/such").status_code == 404
    assert eve.request("PUT", f"{prefs}?action=explode&repo=team/a").status_code == 400
    assert app().request("PUT", f"{prefs}?action=toggleStar&repo=public/x").status_code == 403

    query = """{ RepoListWithNewestImage { Results { Name StarCount IsStarred IsBookmarked } }
                 StarredRepos { Results { Name } } BookmarkedRepos { Results { Name } } }"""
    seen = _graphql(eve, query)
    rows = {r["Name"]: r for r in seen["RepoListWithNewestImage"]["Results"]}
    assert set(rows) == {"team/a", "public/x"}
    assert rows["team/a"] == {"Name": "team/a", "StarCount": 2, "IsStarred": True, "IsBookmarked": False}
    assert rows["public/x"]["IsBookmarked"] is True and rows["public/x"]["IsStarred"] is False
    assert [r["Name"] for r in seen["StarredRepos"]["Results"]] == ["team/a"]
    assert [r["Name"] for r in seen["BookmarkedRepos"]["Results"]] == ["public/x"]
    # toggling again takes the star back, for eve only
    assert eve.request("PUT", f"{prefs}?action=toggleStar&repo=team/a").status_code == 200
    again = {r["Name"]: r for r in _graphql(eve, query)["RepoListWithNewestImage"]["Results"]}
    assert again["team/a"]["IsStarred"] is False and again["team/a"]["StarCount"] == 1
    assert _graphql(bob, query)["StarredRepos"]["Results"] == [{"Name": "team/a"}]


def test_search_shows_pusher_and_deletability_per_user(make_app: Factory) -> None:
    app = make_app(extensions=SEARCH)
    assert app("eve").push_image("team/eves").status_code == 201
    query = '{ ImageList(repo: "team/eves") { Results { RepoName PushedBy IsDeletable } } }'
    for user, deletable in (("eve", False), ("mary", True), ("admin", True)):
        results = _graphql(app(user), query)["ImageList"]["Results"]
        assert results == [{"RepoName": "team/eves", "PushedBy": "eve", "IsDeletable": deletable}], user
    assert _graphql(app(), query)["ImageList"]["Results"] == []  # anonymous may read public/** only


@pytest.mark.parametrize("path", ["/v2/_zot/ext/search", "/v2/_zot/ext/userprefs"])
def test_extensions_need_a_login_when_nothing_is_anonymous(make_app: Factory, path: str) -> None:
    app = make_app(extensions=SEARCH, policy={"repositories": {"**": {"defaultPolicy": ["read"]}}})
    assert app().request("POST" if "search" in path else "PUT", path).status_code == 401
    assert app().request("GET", "/v2/_zot/ext/mgmt").status_code == 200
