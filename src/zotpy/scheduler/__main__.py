"""``python -m zotpy.scheduler CONFIG``: the scheduler process (what the gunicorn hook starts)."""

from __future__ import annotations

import os
import sys

from zotpy.scheduler.process import PARENT_ENV, main

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m zotpy.scheduler CONFIG")
    parent = os.environ.get(PARENT_ENV)
    if parent:
        # Descriptors inherited from the gunicorn master (its listening sockets among them) must not
        # outlive it here: the port would stay taken while the scheduler winds down.
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    sys.exit(main(sys.argv[1], int(parent) if parent else None))
