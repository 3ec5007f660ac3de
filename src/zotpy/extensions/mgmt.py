"""``GET /v2/_zot/ext/mgmt``: the stripped configuration zot's UI reads to choose its login options.

Enabled together with search, as in zot (its own ``mgmt`` config section is ignored).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, jsonify

from zotpy import __version__
from zotpy.config.model import Config
from zotpy.extensions import search

if TYPE_CHECKING:
    from zotpy.extensions import ExtensionContext

NAME = "mgmt"
PATH = "/v2/_zot/ext/mgmt"
NEEDS_METADATA = False


def is_enabled(config: Config) -> bool:
    """mgmt follows search, as in zot (its own config section is ignored)."""
    return search.is_enabled(config)


def endpoints(config: Config) -> list[str]:
    return [PATH]


def stripped_config(config: Config, extensions: tuple[str, ...]) -> dict[str, Any]:
    """distSpecVersion, build identity and which authentication methods a client may use."""
    auth = config.http.auth or {}
    methods: dict[str, Any] = {}
    if auth.get("htpasswd") or auth.get("ldap"):
        methods["htpasswd"] = {}  # LDAP is offered as "username and password", like htpasswd
    bearer = auth.get("bearer")
    if bearer:
        methods["bearer"] = {"realm": bearer.get("realm", ""), "service": bearer.get("service", "")}
    providers = (auth.get("openid") or {}).get("providers") or {}
    if providers:
        methods["openid"] = {"providers": {name: {"name": (settings or {}).get("name", name)}
                                           for name, settings in providers.items()}}
    if auth.get("apikey"):
        methods["apikey"] = True
    return {
        "distSpecVersion": config.dist_spec_version,
        "commit": "",
        "releaseTag": f"v{__version__}",
        "binaryType": "".join(f"-{name}" for name in sorted(extensions)),
        "http": {"auth": methods},
    }


def init_app(app: Flask, ctx: ExtensionContext) -> None:
    bp = Blueprint("zot_mgmt", __name__)
    body = stripped_config(ctx.config, ctx.enabled)

    @bp.route(PATH, methods=["GET"])
    def mgmt() -> Response:
        return jsonify(body)

    app.register_blueprint(bp)
