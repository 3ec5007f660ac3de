"""Go duration strings ("1h30m", "500ms", "0") as float seconds."""

from __future__ import annotations

import re

_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # micro sign, as Go accepts
    "μs": 1e-6,  # Greek mu, as Go accepts
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Parse a Go duration (``time.ParseDuration``) into seconds.

    Negative durations are refused: no zot duration key means anything with them.
    Raises ``ValueError`` with a message fit for a config error.
    """
    value = text.strip()
    if value.startswith("-"):
        raise ValueError(f"duration {text!r} must not be negative")
    value = value.removeprefix("+")
    if value == "0":
        return 0.0
    if not value:
        raise ValueError("empty duration")
    total = 0.0
    position = 0
    while position < len(value):
        match = _PART.match(value, position)
        if match is None:
            raise ValueError(
                f"invalid duration {text!r}: expected a Go duration such as '90s', '1h30m' or '500ms'"
            )
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    return total

