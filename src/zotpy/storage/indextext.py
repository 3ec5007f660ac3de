"""index.json as bytes to append to: what it names, followed across appends without reparsing.

Pushing a new manifest under new tags is the common write; zotpy records it by appending its
descriptor to the bytes of index.json instead of decoding and re-encoding the whole document. To know
that a digest and its tags are new without searching the bytes, a repository's last seen index.json
is kept with the digests and tags it names; when the file on disk has only grown by appended entries
(another worker's pushes), just the appended part is parsed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from zotpy.storage import layout

_END = b"]}"


@dataclass
class IndexText:
    """Compact index.json bytes and the digests and tags its entries name."""

    raw: bytes
    digests: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, raw: bytes, known: IndexText | None = None) -> IndexText | None:
        """The text of ``raw``, reusing ``known`` when ``raw`` only appends to it; None if not compact."""
        if not (raw.startswith(layout.COMPACT_INDEX_PREFIX) and raw.endswith(_END)):
            return None
        if known is not None:
            if raw == known.raw:
                return known
            base = known.raw[:-len(_END)]
            if len(raw) > len(known.raw) and raw.startswith(base):
                appended = raw[len(base):-len(_END)].lstrip(b",")
                try:
                    entries = json.loads(b"[" + appended + b"]")
                except ValueError:
                    entries = None
                if isinstance(entries, list):
                    known.raw = raw
                    known._name(entries)
                    return known
        try:
            doc = layout.decode_index(raw)
        except ValueError:
            return None
        text = cls(raw)
        text._name(doc["manifests"])
        return text

    def _name(self, entries: Iterable[Any]) -> None:
        for entry in entries:
            if isinstance(entry, dict):
                self.digests.add(str(entry.get("digest")))
                tag = layout.tag_of(entry)
                if tag is not None:
                    self.tags.add(tag)

    def names_any(self, digest: str, tags: Iterable[str]) -> bool:
        return digest in self.digests or any(tag in self.tags for tag in tags)

    def append(self, entries: list[dict[str, Any]]) -> None:
        """Append ``entries`` (new digests under new tags).

        The object changes in place (copying the name sets would cost as much as reparsing); a
        text whose bytes never reach disk is harmless, since ``read`` only trusts what matches disk.
        """
        body = self.raw[:-len(_END)]
        joined = b",".join(layout.encode_entry(entry) for entry in entries)
        self.raw = body + (b"" if body.endswith(b"[") else b",") + joined + _END
        self._name(entries)
