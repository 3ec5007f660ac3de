"""The HTTP API: the OCI distribution-spec `/v2/` routes, health probes and error rendering."""

from zotpy.api.errors import register_error_handlers
from zotpy.api.health import health
from zotpy.api.routes import build_blueprint

__all__ = ["build_blueprint", "health", "register_error_handlers"]
