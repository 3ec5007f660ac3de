"""Strict marshmallow fields for zot's config keys.

Each field accepts only the types zot's own loader would make sense of and words its errors as
"expected ..." so the loader can print ``key.path: problem`` lines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from marshmallow import ValidationError, fields

from .durations import parse_duration

#: Directory that relative paths in the config are resolved against, set by the loader per load.
BASE_DIR: ContextVar[str | None] = ContextVar("zotpy_config_base_dir", default=None)

_MESSAGES: dict[str, str | list[Any] | dict[Any, Any]] = {
    "required": "required key missing",
    "null": "must not be null",
    "validator_failed": "invalid value",
}


class _Field(fields.Field):
    """Base with the loader's wording for missing and null values."""

    default_error_messages = _MESSAGES


class Str(_Field):
    """A string (numbers are not silently turned into strings)."""

    def __init__(self, *, choices: tuple[str, ...] | None = None, non_empty: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.choices = choices
        self.non_empty = non_empty

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError(f"expected a string, got {_kind(value)}")
        if self.non_empty and not value.strip():
            raise ValidationError("must not be empty")
        if self.choices is not None and value not in self.choices:
            raise ValidationError(f"expected one of {', '.join(self.choices)}; got {value!r}")
        return value


class Bool(_Field):
    """``true``/``false``; the strings "true"/"false" are accepted as zot's loader does."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ValidationError(f"expected true or false, got {_kind(value)}")


class Int(_Field):
    """An integer (not a boolean, not a float), optionally bounded."""

    def __init__(self, *, minimum: int | None = None, maximum: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimum = minimum
        self.maximum = maximum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"expected an integer, got {_kind(value)}")
        if self.minimum is not None and value < self.minimum:
            raise ValidationError(f"must be at least {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ValidationError(f"must be at most {self.maximum}, got {value}")
        return value


class Port(_Field):
    """A TCP port given as a string or a number; empty means 0 (kernel-chosen), as zot."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, str) and value.strip() == "":
            return 0
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(f"expected a port number 0-65535, got {_kind(value)}")
        if not 0 <= value <= 65535:
            raise ValidationError(f"expected a port number 0-65535, got {value}")
        return value


class Duration(_Field):
    """A Go duration string ("1h", "90s", "500ms", "0"), or the number 0; loaded as float seconds."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if value == 0 and not isinstance(value, bool):
            return 0.0
        if not isinstance(value, str):
            raise ValidationError(
                f"expected a duration string such as '90s' or '1h30m', got {_kind(value)}"
            )
        try:
            return parse_duration(value)
        except ValueError as error:
            raise ValidationError(str(error)) from None


class Path(Str):
    """A file or directory path; a relative one is resolved against the config file's directory.

    An empty string stays empty (zot treats it as unset).
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not text:
            return text
        return resolve_path(text)


def resolve_path(text: str) -> str:
    """``text`` made absolute against the current load's base directory (cwd when unset)."""
    base = BASE_DIR.get() or os.getcwd()
    return os.path.normpath(os.path.join(base, text))


class Regex(Str):
    """A regular expression that must compile."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            re.compile(text)
        except re.error as error:
            raise ValidationError(f"invalid regular expression {text!r}: {error}") from None
        return text


class URL(Str):
    """An absolute URL whose scheme is in ``schemes`` (``None``: any absolute URI, e.g. a URN)."""

    def __init__(self, *, schemes: tuple[str, ...] | None = ("http", "https"), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schemes = schemes

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        parts = urlsplit(text)
        if self.schemes is None:
            if not parts.scheme:
                raise ValidationError(f"expected an absolute URI, got {text!r}")
        elif parts.scheme not in self.schemes or not parts.netloc:
            raise ValidationError(
                f"expected an absolute {'/'.join(self.schemes)} URL, got {text!r}"
            )
        return text


class List(fields.List):
    """A list; a lone string is refused rather than split into characters."""

    default_error_messages = {**_MESSAGES, "invalid": "expected a list"}

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        # YAML `key:` with nothing after it is null; read it as an empty list.
        return super().deserialize([] if value is None else value, attr, data, **kwargs)


class Section(fields.Nested):
    """A nested section; ``null`` (YAML ``key:`` with nothing after it) reads as an empty section."""

    default_error_messages = {**_MESSAGES, "type": "expected a mapping"}

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        return super().deserialize({} if value is None else value, attr, data, **kwargs)


KeyCheck = Callable[[str], "str | None"]


class KeyedMap(fields.Dict):
    """A map whose keys are user data (routes, globs, names), kept as given unless ``fold_case``.

    ``check_key`` returns a problem description for a bad key or None. Errors are reported under the
    key itself, so paths read ``storage.subPaths./a.rootDirectory``.
    """

    default_error_messages = {**_MESSAGES, "invalid": "expected a mapping"}

    def __init__(self, values: fields.Field | type[fields.Field], *, check_key: KeyCheck | None = None,
                 fold_case: bool = False, **kwargs: Any) -> None:
        super().__init__(values=values, **kwargs)
        self.check_key = check_key
        self.fold_case = fold_case

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        return super().deserialize({} if value is None else value, attr, data, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.make_error("invalid")
        assert self.value_field is not None
        result: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                errors[str(key)] = [f"key must be a string, got {_kind(key)}"]
                continue
            if self.fold_case:
                key = key.lower()
            problem = self.check_key(key) if self.check_key else None
            if problem:
                errors[key] = [problem]
                continue
            try:
                result[key] = self.value_field.deserialize(item, key, value, **kwargs)
            except ValidationError as error:
                errors[key] = error.messages
        if errors:
            raise ValidationError(errors)
        return result


class FreeMap(_Field):
    """A free-form driver map (``storageDriver``, ``cacheDriver``, ``sessionDriver``).

    Keys are lower-cased at every level, as zot's loader does before the driver reads them; a ``name``
    key is required and must be one of ``names``.
    """

    def __init__(self, *, names: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.names = names

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise ValidationError(f"expected a mapping, got {_kind(value)}")
        result = _lower_keys(value)
        name = result.get("name")
        if not isinstance(name, str) or not name:
            raise ValidationError({"name": [f"required; expected one of {', '.join(self.names)}"]})
        if name.lower() not in self.names:
            valid = ", ".join(self.names)
            raise ValidationError({"name": [f"unknown driver {name!r}; expected one of {valid}"]})
        result["name"] = name.lower()
        return result


def _lower_keys(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key).lower(): _lower_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_lower_keys(item) for item in value]
    return value


def _kind(value: Any) -> str:
    """A short description of a value's type for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__
