"""The WSGI application a gunicorn worker loads (``deploy/gunicorn.py`` names ``zotpy.wsgi:app``).

It reads the config named by ``ZOTPY_CONFIG`` (default ``conf/config.json``) in the worker; the
one-time startup work has already run in the gunicorn master (:mod:`zotpy.server`).
"""

from __future__ import annotations

from zotpy.app import create_app
from zotpy.logs import configure_logging
from zotpy.server import config_path, load_runnable

config = load_runnable(config_path())
# Workers forked by zotpy's master inherit its logging; this covers a bare `gunicorn zotpy.wsgi:app`.
configure_logging(config.log)
app = create_app(config)
