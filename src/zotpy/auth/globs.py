"""Repository patterns of ``accessControl.repositories`` with doublestar semantics.

``*`` and ``?`` stay within one path component, ``**`` as a whole component spans any number of them
(``tmp/**`` matches ``tmp``, ``tmp/a`` and ``tmp/a/b``), ``[...]`` is a character class and
``{a,b}`` a choice, as in the Go doublestar library zot uses.
"""

from __future__ import annotations

import functools
import re


def _translate(pattern: str, i: int = 0, stop: str = "") -> tuple[str, int]:
    """Regex text for ``pattern[i:]`` up to an unnested character of ``stop``; and where it ended."""
    out: list[str] = []
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch in stop:
            return "".join(out), i
        if ch == "*":
            if pattern.startswith("**", i):
                start_ok = i == 0 or pattern[i - 1] == "/"
                end = i + 2
                if start_ok and (end == n or pattern[end] == "/"):
                    if end == n:
                        # "a/**" also matches "a": make the separator before it optional.
                        if out and out[-1] == "/":
                            out[-1] = "(?:/.*)?"
                        else:
                            out.append(".*")
                        i = end
                    else:
                        out.append("(?:.*/)?")
                        i = end + 1
                    continue
                i += 1  # "**" inside a component is a plain "*"
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            close = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "^") else i + 1)
            if close < 0:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:close]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = close
        elif ch == "{":
            choices: list[str] = []
            j = i + 1
            while True:
                part, j = _translate(pattern, j, ",}")
                choices.append(part)
                if j >= n:
                    raise ValueError(f"unclosed '{{' in pattern {pattern!r}")
                if pattern[j] == "}":
                    break
                j += 1
            out.append("(?:" + "|".join(choices) + ")")
            i = j
        elif ch == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out), i


@functools.lru_cache(maxsize=1024)
def compile_glob(pattern: str) -> re.Pattern[str]:
    text, _ = _translate(pattern)
    return re.compile(f"^{text}$", re.DOTALL)


def matches(pattern: str, name: str) -> bool:
    try:
        return compile_glob(pattern).match(name) is not None
    except (ValueError, re.error):
        return False
