"""Kubernetes-style health probes, as zot serves them."""

from flask import Blueprint

health = Blueprint("health", __name__)


@health.get("/livez")
@health.get("/readyz")
@health.get("/startupz")
def probe() -> tuple[str, int]:
    """The app only exists once one-time startup work is done, so each probe is ok when it answers."""
    return "ok", 200
