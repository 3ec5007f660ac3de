"""Cross-origin headers and preflight answers, as zot gives them (``http.allowOrigin``).

Every answer names the allowed origin (``*`` unless the config names one); credentials are allowed
only towards an explicit origin. An ``OPTIONS`` request is answered with the methods of the route
it asks about, before authentication (a browser's preflight carries no credentials).
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import Response

ALLOWED_HEADERS = "Authorization,content-type,X-ZOT-API-CLIENT"


def add_cors_headers(response: Response, allow_origin: str | None) -> Response:
    response.headers["Access-Control-Allow-Origin"] = allow_origin or "*"
    response.headers["Access-Control-Allow-Headers"] = ALLOWED_HEADERS
    if allow_origin and allow_origin != "*":
        response.headers["Access-Control-Allow-Credentials"] = "true"
    return response


def preflight(methods: Iterable[str]) -> Response:
    """The answer to ``OPTIONS``: 200, no body, the route's methods."""
    listed = [method for method in methods if method != "OPTIONS"]
    response = Response(status=200)
    response.headers["Access-Control-Allow-Methods"] = ",".join([*listed, "OPTIONS"])
    return response
