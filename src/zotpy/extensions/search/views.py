"""The GraphQL endpoint: GET ``?query=`` (and ``variables``, ``operationName``) or POST JSON."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from ariadne import format_error, graphql_sync, make_executable_schema, unwrap_graphql_error
from flask import Blueprint, Response, request
from graphql import GraphQLError, GraphQLSchema

from zotpy.extensions.search import PATH
from zotpy.extensions.search.catalog import SharedCache
from zotpy.extensions.search.resolvers import SearchContext, bindables

if TYPE_CHECKING:
    from zotpy.extensions import ExtensionContext

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 256 * 1024
"""A search request is a query document and a few variables; anything larger is refused."""


class _ErrorLog(logging.LoggerAdapter):
    """Errors in what a client asked (bad queries, unknown images) are logged quietly, without a
    traceback; anything else a resolver raises is a server fault and is logged with one."""

    def error(self, msg: Any, *args: Any, exc_info: Any = None, **kwargs: Any) -> None:
        original = getattr(exc_info, "original_error", None)
        if isinstance(exc_info, GraphQLError) and (original is None or isinstance(original, GraphQLError)):
            self.logger.debug("search query error: %s", msg)
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kwargs)


def _format_error(error: GraphQLError, debug: bool = False) -> dict[str, Any]:
    """zot-style errors; a fault inside zotpy is reported without its internal message."""
    formatted: dict[str, Any] = format_error(error, debug=False)
    original = unwrap_graphql_error(error)
    if original is not None and not isinstance(original, GraphQLError):
        formatted["message"] = "internal error: the query could not be answered"
    return formatted


YIELD_EVERY = 2000


def yielding(every: int = YIELD_EVERY) -> Callable[..., Any]:
    """GraphQL middleware that lets the worker's other requests run during a long answer.

    A page over thousands of images resolves tens of thousands of fields in pure Python; every
    ``every`` fields this yields to the gevent hub (``time.sleep(0)`` once gevent has patched it),
    so one search never holds a worker's event loop for long.
    """
    count = 0

    def middleware(next_: Callable[..., Any], root: Any, info: Any, **kwargs: Any) -> Any:
        nonlocal count
        count += 1
        if count % every == 0:
            time.sleep(0)
        return next_(root, info, **kwargs)

    return middleware


def load_schema() -> GraphQLSchema:
    type_defs = resources.files("zotpy.extensions.search").joinpath("schema.graphql").read_text("utf-8")
    return make_executable_schema(type_defs, *bindables())


def _errors(message: str, status: int) -> Response:
    return _json({"errors": [{"message": message}]}, status)


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(json.dumps(body, separators=(",", ":"), default=str), status=status,
                    mimetype="application/json")


def _request_data() -> dict[str, Any] | str:
    """The GraphQL request, or an error message."""
    if request.method == "GET":
        data: dict[str, Any] = {"query": request.args.get("query")}
        if "variables" in request.args:
            try:
                data["variables"] = json.loads(request.args["variables"])
            except ValueError:
                return "variables must be a JSON object"
        if "operationName" in request.args:
            data["operationName"] = request.args["operationName"]
        return data
    if (request.content_length or 0) > MAX_REQUEST_BYTES:
        return "request body too large"
    raw = request.get_data(cache=False)
    if len(raw) > MAX_REQUEST_BYTES:
        return "request body too large"
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "the request body must be a JSON object with a query"
    if not isinstance(body, dict):
        return "the request body must be a JSON object with a query"
    return body


def build_blueprint(ctx: ExtensionContext) -> Blueprint:
    assert ctx.meta is not None
    schema = load_schema()
    meta, access, hooks = ctx.meta, ctx.access, ctx.hooks
    bp = Blueprint("zot_search", __name__)
    error_log = _ErrorLog(log, {})
    shared = SharedCache()  # image rows and the tag list, shared by this process's requests

    @bp.route(PATH, methods=["GET", "POST"])
    def search() -> Response:
        data = _request_data()
        if isinstance(data, str):
            return _errors(data, 400)
        if hooks is not None:
            hooks.counter.flush()  # this worker's pending pulls show at once
        context = {"search": SearchContext(meta, access.identity(), access.can_read, access.can_delete,
                                           shared)}
        try:
            _, result = graphql_sync(schema, data, context_value=context, debug=False, logger=error_log,
                                     error_formatter=_format_error, middleware=[yielding()])
        except GraphQLError as error:
            return _errors(error.message, 400)
        # As zot (gqlgen): a query that could not be parsed or validated is 422; errors met while
        # executing a valid query (an unknown image, CVE scanning off) come with 200 and `data`.
        return _json(result, 200 if "data" in result else 422)

    return bp
