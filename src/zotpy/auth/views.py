"""zot's ``/zot/auth`` routes: API keys (``/zot/auth/apikey``) and logout (``/zot/auth/logout``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, json, request

from zotpy.auth.apikeys import ApiKeys
from zotpy.auth.authenticate import session_cookie
from zotpy.auth.guard import Guard
from zotpy.auth.identity import Identity
from zotpy.auth.sessions import COOKIE, Sessions
from zotpy.errors import Invalid, ManifestTooLarge, NameUnknown, Unauthorized

MAX_KEY_REQUEST = 8 * 1024
MAX_LABEL = 256


def _json(doc: Any, status: int = 200) -> Response:
    response = Response(json.dumps(doc), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def _parse_expiry(value: Any) -> float | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise Invalid("expirationDate must be an RFC 3339 time")
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid("expirationDate must be an RFC 3339 time") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    if stamp.timestamp() <= datetime.now(UTC).timestamp():
        raise Invalid("expirationDate is in the past")
    return stamp.timestamp()


def _key_request() -> dict[str, Any]:
    length = request.content_length
    raw = request.stream.read(MAX_KEY_REQUEST + 1) if length is None or length <= MAX_KEY_REQUEST else None
    if raw is None or len(raw) > MAX_KEY_REQUEST:
        raise ManifestTooLarge("request body too large")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise Invalid("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object")
    label, scopes = body.get("label", ""), body.get("scopes", [])
    if not isinstance(label, str) or len(label) > MAX_LABEL:
        raise Invalid(f"label must be a string of at most {MAX_LABEL} characters")
    if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes):
        raise Invalid("scopes must be a list of strings")
    return {"label": label, "scopes": scopes, "expires_at": _parse_expiry(body.get("expirationDate"))}


def build_blueprint(guard: Guard, apikeys: ApiKeys | None, sessions: Sessions | None) -> Blueprint:
    bp = Blueprint("zot_auth", __name__)

    def caller() -> Identity:
        identity = guard.identify()
        if identity is None:
            raise Unauthorized(headers=guard.challenge_headers())
        return identity

    if apikeys is not None:
        @bp.route("/zot/auth/apikey", methods=["GET"])
        def list_keys() -> Response:
            return _json({"apiKeys": apikeys.list(caller().username)})

        @bp.route("/zot/auth/apikey", methods=["POST"])
        def create_key() -> Response:
            identity = caller()
            wanted = _key_request()
            details = apikeys.create(identity.username, identity.groups, wanted["label"], wanted["scopes"],
                                     wanted["expires_at"], request.headers.get("User-Agent", ""))
            return _json(details, 201)

        @bp.route("/zot/auth/apikey", methods=["DELETE"])
        def delete_key() -> Response:
            identity = caller()
            ids = request.args.getlist("id")
            if len(ids) != 1 or not ids[0]:
                raise Invalid("exactly one id query parameter is required")
            if not apikeys.delete(identity.username, ids[0]):
                raise NameUnknown("no such API key", detail={"id": ids[0][:64]})
            return _json({})

    if sessions is not None:
        @bp.route("/zot/auth/logout", methods=["POST"])
        def logout() -> Response:
            cookie = session_cookie(request.environ)
            if cookie:
                sessions.end(cookie)
            response = _json({})
            response.delete_cookie(COOKIE, path="/")
            return response

    return bp
