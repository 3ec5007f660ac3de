"""The ``zotpy`` command: ``serve`` and ``verify`` a config, ``--version``.

Modules are imported inside each command: ``serve`` must patch with gevent before gunicorn's master
imports libraries that hold references to ``ssl`` classes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from zotpy import DIST_SPEC_VERSION, __version__

if TYPE_CHECKING:
    from zotpy.config import Config


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

    scrub = commands.add_parser("scrub", help="check every stored image offline (the server must be stopped)")
    scrub.add_argument("config", metavar="CONFIG", help="zot-format config file (JSON or YAML)")
    scrub.add_argument("--force", action="store_true", help="run even though a server answers at the address")
    scrub.set_defaults(run=_scrub)

    gc = commands.add_parser("gc", help="run garbage collection and retention once and print what went")
    gc.add_argument("config", metavar="CONFIG", help="zot-format config file (JSON or YAML)")
    gc.add_argument("--dry-run", action="store_true", help="only print what would be removed")
    gc.set_defaults(run=_gc)

    scheduler = commands.add_parser("scheduler", help="run the background jobs (GC...) as their own process")
    scheduler.add_argument("config", metavar="CONFIG", help="zot-format config file (JSON or YAML)")
    scheduler.set_defaults(run=_scheduler)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from gevent import monkey

    monkey.patch_all()
    from zotpy.server import serve

    serve(args.config)
    return 0


def _load_config(path: str) -> Config | None:
    """The validated config, or None after printing the error that names the key."""
    from zotpy.config import load
    from zotpy.errors import ConfigError

    try:
        return load(path)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _verify(args: argparse.Namespace) -> int:
    """Exit 0 with ``config OK`` for a valid config, 1 with the error naming the key otherwise.

    Like zot's ``verify`` it only validates; what ``serve`` would still refuse (features not built yet)
    is reported as a warning.
    """
    from zotpy.config import check_runnable
    from zotpy.errors import ConfigError

    config = _load_config(args.config)
    if config is None:
        return 1
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    try:
        check_runnable(config)
    except ConfigError as exc:
        print(f"warning: `zotpy serve` would not start with this config: {exc}", file=sys.stderr)
    print("config OK")
    return 0


def _scrub(args: argparse.Namespace) -> int:
    """Print a table of every image's verdict; exit 1 when any is affected, 2 when scrub cannot run."""
    from zotpy.app import build_registry
    from zotpy.extensions.scrub import server_listening
    from zotpy.scheduler.process import RootLocks
    from zotpy.storage.scrub import ScrubPass, format_table

    config = _load_config(args.config)
    if config is None:
        return 2
    # Two signs of a live server, as zot checks the first: something answers at its address, or a
    # scheduler holds the root (held here in turn, so none starts GC while scrub reads).
    roots = [config.storage.root_directory, *(s.root_directory for s in config.storage.sub_paths.values())]
    locks = RootLocks(roots)
    listening = server_listening(config)
    busy = f"a server is listening at {listening}" if listening else None
    if not locks.try_acquire():
        busy = busy or "a scheduler holds the storage root (" + ", ".join(locks.paths) + ")"
    if busy and not args.force:
        locks.release()
        print(f"error: {busy} and may be changing the storage; stop it or pass --force", file=sys.stderr)
        return 2
    try:
        registry, _ = build_registry(config)
        scrub = ScrubPass(registry.stores.all(), registry.stores.for_repo)
        results = [result for store, repo in scrub.targets() for result in scrub.scrub(store, repo)]
    finally:
        locks.release()
    print(format_table(results))
    return 1 if any(result.affected for result in results) else 0


def _gc(args: argparse.Namespace) -> int:
    """Collect every store once (also those with ``gc`` off); one line per removal."""
    import dataclasses

    from zotpy.logs import configure_logging
    from zotpy.meta.db import close_if_open
    from zotpy.scheduler.jobs import collectors
    from zotpy.scheduler.process import build_registry_with_hooks

    config = _load_config(args.config)
    if config is None:
        return 2
    # The report goes to stdout; log lines (and the audit log) go where configured, else to stderr.
    configure_logging(dataclasses.replace(config.log, output=config.log.output or "/dev/stderr"))
    registry, indexes, meta, _ = build_registry_with_hooks(config)
    try:
        for label, _settings, collector in collectors(config, registry, meta, dry_run=args.dry_run):
            reports = collector.run()
            verb = "would be removed" if collector.dry_run else "removed"
            print(f"store {label}: {sum(len(r.lines()) for r in reports)} item(s) {verb}")
            for report in reports:
                for line in report.lines():
                    print(f"  {line}")
    finally:
        for index in indexes:
            close_if_open(index.db)
    return 0


def _scheduler(args: argparse.Namespace) -> int:
    """Run the scheduler in the foreground (for its own service; set ZOTPY_SCHEDULER=external on gunicorn)."""
    from zotpy.errors import ConfigError
    from zotpy.scheduler.process import main as run_scheduler

    try:
        return run_scheduler(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
