"""Run blocking calls (password hashing, device writes) off the gevent event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a hard dependency
        return False
    return bool(monkey.is_module_patched("threading"))


def off_loop(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` in gevent's threadpool when this process runs gevent, else directly.

    bcrypt and SHA-crypt take tens of milliseconds; on the hub they would stall every other request
    of the worker.  Without monkey-patching (tests, CLI) there is no loop to protect.
    """
    if not _patched():
        return call(*args)
    from gevent import get_hub

    result: T = get_hub().threadpool.apply(call, args)
    return result


def start_off_loop(call: Callable[..., T], *args: Any) -> Callable[[], T]:
    """Start ``call(*args)`` and return a function that waits for its result (or raises its error).

    Under gevent the call runs in the hub's threadpool while the caller goes on (the greenlet waits
    cooperatively when it asks for the result); without gevent it runs at once.
    """
    if not _patched():
        try:
            value = call(*args)
        except BaseException as exc:
            error = exc

            def fail() -> T:
                raise error

            return fail
        return lambda: value
    from gevent import get_hub

    pending = get_hub().threadpool.spawn(call, *args)
    return pending.get
