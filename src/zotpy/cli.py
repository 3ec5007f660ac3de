"""The ``zotpy`` command: ``serve`` and ``verify`` a config, ``--version``.

Modules are imported inside each command: ``serve`` must patch with gevent before gunicorn's master
imports libraries that hold references to ``ssl`` classes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from zotpy import DIST_SPEC_VERSION, __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zotpy", description="An OCI-native container image registry.")
    parser.add_argument(
        "--version", action="version", version=f"zotpy {__version__} (distribution-spec {DIST_SPEC_VERSION})"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the registry with gunicorn and gevent workers")
    serve.add_argument("config", metavar="CONFIG", help="zot-format config file (JSON or YAML)")
    serve.set_defaults(run=_serve)

    verify = commands.add_parser("verify", help="check a config file and report what is wrong")
    verify.add_argument("config", metavar="CONFIG", help="zot-format config file (JSON or YAML)")
    verify.set_defaults(run=_verify)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from gevent import monkey

    monkey.patch_all()
    from zotpy.server import serve

    serve(args.config)
    return 0


def _verify(args: argparse.Namespace) -> int:
    """Exit 0 with ``config OK`` for a valid config, 1 with the error naming the key otherwise.

    Like zot's ``verify`` it only validates; what ``serve`` would still refuse (features not built yet)
    is reported as a warning.
    """
    from zotpy.config import check_runnable, load
    from zotpy.errors import ConfigError

    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        check_runnable(config)
    except ConfigError as exc:
        print(f"warning: `zotpy serve` would not start with this config: {exc}", file=sys.stderr)
    print("config OK")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
