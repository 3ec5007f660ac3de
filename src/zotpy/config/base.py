"""The schema base class: case-insensitive keys, unknown keys refused with a suggestion."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, pre_load, validates_schema


class ZotSchema(Schema):
    """A config section whose keys match the declared field names case-insensitively, as zot's loader.

    Field names are zot's spellings (``rootDirectory``), so loaded data carries those keys. Unknown keys
    are reported by :meth:`_refuse_unknown_keys` (marshmallow's own check would drop the suggestion).
    """

    class Meta:
        unknown = EXCLUDE

    error_messages = {"type": "expected a mapping"}

    def _spellings(self) -> dict[str, str]:
        return {name.lower(): name for name in self.load_fields}

    @pre_load
    def _canonical_keys(self, data: Any, **kwargs: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        spellings = self._spellings()
        result: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                errors[str(key)] = ["key must be a string"]
                continue
            name = spellings.get(key.lower())
            if name is not None and name not in result:  # unknown and repeated keys: see the validator
                result[name] = value
        if errors:
            raise ValidationError(errors)
        return self.complete(result)

    def complete(self, data: dict[str, Any]) -> dict[str, Any]:
        """Hook for subclasses: adjust the canonical-key input before fields load it."""
        return data

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _refuse_unknown_keys(self, data: Any, original_data: Any, **kwargs: Any) -> None:
        if not isinstance(original_data, Mapping):
            return
        spellings = self._spellings()
        errors: dict[str, list[str]] = {}
        first: dict[str, str] = {}
        for key in original_data:
            if not isinstance(key, str):
                continue
            if key.lower() not in spellings:
                errors[key] = [unknown_key_message(key, spellings)]
            elif key.lower() in first:
                errors[key] = [f"repeats {first[key.lower()]!r} (keys are case-insensitive); remove one"]
            else:
                first[key.lower()] = key
        if errors:
            raise ValidationError(errors)


def unknown_key_message(key: str, spellings: Mapping[str, str]) -> str:
    """``unknown key``, with the nearest known key when one is close."""
    close = difflib.get_close_matches(key.lower(), list(spellings), n=1, cutoff=0.75)
    if close:
        return f"unknown key (did you mean {spellings[close[0]]!r}?)"
    return "unknown key"
