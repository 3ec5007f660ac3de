"""Restore: fill the placeholders of a store whose dedupe was turned off (zot's restore pass).

On a driver without hard links (S3), dedupe leaves later copies of a blob as empty placeholders read
through the storage index (``blobcopies``). They stay readable with dedupe off, so the pass is not
needed for correctness; it makes every repository own its bytes again, as a store that never
deduplicated would. A one-shot job at scheduler start, one placeholder per step, each replaced by a
server-side copy of a real copy under the digest's blob lock. Finding them costs one HEAD per blob
object of the store at each start while dedupe stays off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING

from zotpy.errors import DigestInvalid, PathNotFound
from zotpy.oci.digest import Digest

if TYPE_CHECKING:
    from zotpy.storage.imagestore import ImageStore

log = logging.getLogger(__name__)


class RestorePass:
    """Materialises the placeholders of every store that has them and dedupe off."""

    def __init__(self, stores: Sequence[ImageStore]) -> None:
        self.stores = [store for store in stores if store.copies.placeholders and not store.dedupe]

    def steps(self) -> Iterator[Callable[[], None]]:
        """One callable per placeholder found, which replaces it by the blob's bytes."""
        for store in self.stores:
            for repo in sorted(store.scan()):
                for digest, path in list(store.blob_locations(repo)):
                    try:
                        parsed = Digest.parse(digest)
                        if store.copies.is_placeholder(parsed, store.driver.stat(path)):
                            yield partial(self.restore, store, parsed, path)
                    except (DigestInvalid, PathNotFound):
                        continue

    def restore(self, store: ImageStore, digest: Digest, path: str) -> None:
        """Fill one placeholder (nothing happens when it went, was filled, or no real copy backs it)."""
        with store.blob_lock(digest):
            done = store.copies.materialise(digest, path)
        if done:
            log.info("placeholder restored", extra={"digest": str(digest), "path": path})
