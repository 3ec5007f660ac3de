"""Helpers shared by zotpy's tests: OCI layouts, a raw registry client, live servers and real clients."""
