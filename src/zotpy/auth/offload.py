"""Run CPU-heavy calls (password hashing) off the gevent event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def off_loop(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` in gevent's threadpool when this process runs gevent, else directly.

    bcrypt and SHA-crypt take tens of milliseconds; on the hub they would stall every other request
    of the worker.  Without monkey-patching (tests, CLI) there is no loop to protect.
    """
    try:
        from gevent import get_hub, monkey
    except ImportError:  # pragma: no cover - gevent is a hard dependency
        return call(*args)
    if not monkey.is_module_patched("threading"):
        return call(*args)
    result: T = get_hub().threadpool.apply(call, args)
    return result
