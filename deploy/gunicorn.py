"""gunicorn configuration for zotpy.

    ZOTPY_CONFIG=/etc/zotpy/config.json gunicorn -c /opt/zotpy/deploy/gunicorn.py

The bind address, TLS and log settings come from the zotpy config named by ZOTPY_CONFIG (default
conf/config.json under the current directory); ZOTPY_WORKERS, ZOTPY_WORKER_CONNECTIONS and
ZOTPY_GRACEFUL_TIMEOUT override the worker count, connections per worker and shutdown grace period.
"""

# Patch the master before anything imports ssl-using libraries (urllib3, botocore): workers fork from
# it and patch again, and gevent cannot patch modules that already hold references to ssl classes.
from gevent import monkey

monkey.patch_all()

from zotpy.server import WSGI_APP, config_path, settings_or_exit

# gunicorn reads its settings from this module's globals.
_config, _settings = settings_or_exit(config_path())
globals().update(_settings)
wsgi_app = WSGI_APP
