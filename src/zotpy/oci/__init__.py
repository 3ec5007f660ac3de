"""OCI value types: digests, names and references, media types, manifest parsing."""
