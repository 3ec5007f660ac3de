"""User preferences: ``PUT /v2/_zot/ext/userprefs?action=toggleStar|toggleBookmark&repo=<name>``.

On with search, as in zot.  Stars and bookmarks are per user and feed the search fields ``IsStarred``,
``IsBookmarked``, ``StarCount``, ``StarredRepos`` and ``BookmarkedRepos``.  Anonymous callers get 403;
a repository that does not exist, or that the caller may not read, is 404 alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, request

from zotpy.config.model import Config
from zotpy.errors import Denied, Invalid, NameUnknown
from zotpy.extensions import search

if TYPE_CHECKING:
    from zotpy.extensions import ExtensionContext

NAME = "userprefs"
PATH = "/v2/_zot/ext/userprefs"
NEEDS_METADATA = True
ACTIONS = {"toggleStar": "star", "toggleBookmark": "bookmark"}


def is_enabled(config: Config) -> bool:
    return search.is_enabled(config)


def endpoints(config: Config) -> list[str]:
    return [PATH]


def init_app(app: Flask, ctx: ExtensionContext) -> None:
    meta, access = ctx.meta, ctx.access
    if meta is None:
        raise RuntimeError("the userprefs extension needs the metadata database")
    bp = Blueprint("zot_userprefs", __name__)

    @bp.route(PATH, methods=["PUT"])
    def toggle() -> Response:
        identity = access.identity()
        if identity is None:
            raise Denied("user preferences need a logged-in user")
        kind = ACTIONS.get(request.args.get("action", ""))
        repo = request.args.get("repo", "")
        if kind is None:
            raise Invalid(f"action must be one of {', '.join(ACTIONS)}")
        if not repo:
            raise Invalid("the repo query parameter is required")
        if meta.repo_id(repo, create=False) is None or not access.can_read(identity, repo):
            raise NameUnknown(detail={"name": repo[:256]})
        table = meta.t.star if kind == "star" else meta.t.bookmark
        user = str(identity)
        with meta.db.atomic():
            chosen = (table.user == user) & (table.repo == repo)
            if not table.delete().where(chosen).execute():
                table.insert(user=user, repo=repo).on_conflict_ignore().execute()
        return Response(b"", status=200)

    app.register_blueprint(bp)
