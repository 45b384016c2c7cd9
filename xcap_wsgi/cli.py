"""The ``xcap-wsgi`` command: ``serve`` runs the standalone server, ``initdb`` the table.

::

    xcap-wsgi serve                         # SQLite file ./xcap.db, http://127.0.0.1:8000/xcap-root/
    xcap-wsgi serve --db-url mysql://kamailio:secret@127.0.0.1/kamailio --workers 4
    xcap-wsgi initdb --db-url mysql://kamailio:secret@127.0.0.1/kamailio

Every flag defaults to its environment variable (see :mod:`xcap_wsgi.config`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from xcap_wsgi import __version__
from xcap_wsgi.config import ENVIRONMENT, settings_from_env
from xcap_wsgi.middleware import XCAPMiddleware
from xcap_wsgi.storage import DEFAULT_DB_URL, StorageUnavailable, open_storage

DEFAULT_BIND = "127.0.0.1:8000"


def _add_storage_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db-url", help=f"database URL (${ENVIRONMENT['db_url']}; default {DEFAULT_DB_URL})")
    parser.add_argument("--xcap-table", help=f"table name (${ENVIRONMENT['xcap_table']}; default xcap)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xcap-wsgi", description="XCAP server (RFC 4825) for WSGI stacks")
    parser.add_argument("--version", action="version", version=f"xcap-wsgi {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the standalone XCAP server under gunicorn")
    serve.add_argument("--bind", default=os.environ.get("XCAP_BIND", DEFAULT_BIND),
                       help=f"host:port to listen on ($XCAP_BIND; default {DEFAULT_BIND})")
    serve.add_argument("--workers", type=int, default=int(os.environ.get("XCAP_WORKERS", "2")),
                       help="worker processes ($XCAP_WORKERS; default 2)")
    serve.add_argument("--xcap-root", help=f"URL path served as XCAP (${ENVIRONMENT['xcap_root']}; default /xcap-root/)")
    serve.add_argument("--buf-size", type=int,
                       help=f"largest request body in bytes (${ENVIRONMENT['buf_size']}; default 1048576)")
    _add_storage_flags(serve)

    initdb = commands.add_parser("initdb", help="create the xcap table, its indexes and version row when missing")
    _add_storage_flags(initdb)
    return parser


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings = settings_from_env()
    for keyword in ENVIRONMENT:
        value = getattr(args, keyword, None)
        if value is not None:
            settings[keyword] = value
    return settings


def cmd_initdb(args: argparse.Namespace) -> int:
    settings = _settings(args)
    storage = open_storage(settings.get("db_url"), settings.get("xcap_table", "xcap"))
    storage.ensure_schema()
    storage.close()
    print(f"xcap-wsgi: table {settings.get('xcap_table', 'xcap')!r} ready in {storage.description}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    if args.workers < 1:
        raise ValueError("--workers must be at least 1")
    app = XCAPMiddleware(None, **_settings(args))
    app.storage.ensure_schema()
    app.storage.close()  # workers open their own connections after the fork

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", [args.bind])
            self.cfg.set("workers", args.workers)
            self.cfg.set("proc_name", "xcap-wsgi")
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 24; unused here
                self.cfg.set("control_socket_disable", True)

        def load(self) -> XCAPMiddleware:
            return app

    host = args.bind if not args.bind.startswith(("unix:", "fd://")) else "localhost"
    print(f"xcap-wsgi {__version__}: serving XCAP root http://{host}{app.root.path} "
          f"from {app.storage.description} with {args.workers} worker(s); Ctrl-C stops", flush=True)
    Server().run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(cmd_serve(args) if args.command == "serve" else cmd_initdb(args))
    except ValueError as exc:
        print(f"xcap-wsgi: configuration error: {exc}", file=sys.stderr)
        return 2
    except StorageUnavailable as exc:
        print(f"xcap-wsgi: database unavailable: {exc}", file=sys.stderr)
        return 1
