"""Signals the registry sends after a change lands; extensions and metadata hooks subscribe."""

from blinker import Namespace

_signals = Namespace()

manifest_pushed = _signals.signal("manifest-pushed")
"""Sent with repo, digest, manifest (zotpy.oci.manifest.Manifest) and tags."""

manifest_deleted = _signals.signal("manifest-deleted")
"""Sent with repo, digest and reference."""

manifest_pulled = _signals.signal("manifest-pulled")
"""Sent with repo, digest and reference on GET (not HEAD)."""

blob_uploaded = _signals.signal("blob-uploaded")
"""Sent with repo, digest and size."""
