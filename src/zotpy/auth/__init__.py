"""Authentication backends and per-repository access control (zot's ``http.auth`` and ``accessControl``)."""
