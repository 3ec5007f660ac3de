"""A live zotpy whose config also sets storage keys (gc, gcDelay, gcInterval, retention, subPaths)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from helpers.server import LiveServer, zot_config


class StorageConfiguredServer(LiveServer):
    """``LiveServer`` with ``storage`` keys merged into its config (and an optional audit log)."""

    def __init__(self, workdir: Path, *, storage: Mapping[str, Any], audit: bool = False,
                 **options: Any) -> None:
        super().__init__(workdir, **options)
        self.storage = json.loads(json.dumps(storage))
        self.audit_path = self.workdir / "audit.log" if audit else None

    def write_config(self) -> None:
        doc = zot_config(self.root, self.port, address=self.address, dedupe=self.dedupe,
                         log_level=self.log_level, extensions=self.extensions)
        doc["storage"].update(self.storage)
        if self.audit_path is not None:
            doc["log"]["audit"] = str(self.audit_path)
        self.config_path.write_text(json.dumps(doc, indent=2))

    def log_records(self) -> list[dict[str, Any]]:
        """Every JSON log line the server and its scheduler wrote so far."""
        out = []
        for path in self._log_paths():
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        continue
        return out
