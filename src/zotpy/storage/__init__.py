"""Storage: byte-level drivers and the OCI-aware image store above them."""
