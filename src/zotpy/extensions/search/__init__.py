"""The search extension: zot's GraphQL API at ``/v2/_zot/ext/search``, answered from the metadata database.

Importing this package is cheap; ariadne and the resolvers load in :func:`init_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask

from zotpy.config.model import Config

if TYPE_CHECKING:
    from zotpy.extensions import ExtensionContext

NAME = "search"
PATH = "/v2/_zot/ext/search"
NEEDS_METADATA = True


def is_enabled(config: Config) -> bool:
    """``extensions.search`` present and not switched off (a present, empty section means on)."""
    section = config.extensions.get("search")
    return section is not None and bool(section.get("enable", True))


def endpoints(config: Config) -> list[str]:
    return [PATH]


def init_app(app: Flask, ctx: ExtensionContext) -> None:
    from zotpy.extensions.search.views import build_blueprint

    if ctx.meta is None:
        raise RuntimeError("the search extension needs the metadata database")
    app.register_blueprint(build_blueprint(ctx))
