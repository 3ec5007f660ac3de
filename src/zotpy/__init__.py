"""zotpy: an OCI-native container image registry following the design of zot."""

__version__ = "0.1.0"
DIST_SPEC_VERSION = "1.1.1"
