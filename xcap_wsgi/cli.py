"""The ``xcap-wsgi`` command: ``serve`` runs the standalone server, ``initdb`` the table,
``user`` manages accounts in Kamailio's ``subscriber`` table.

::

    xcap-wsgi serve                         # SQLite file ./xcap.db, http://127.0.0.1:8000/xcap-root/
    XCAP_AUTH_SECRET=... xcap-wsgi serve --auth digest --bind 0.0.0.0:8000 --workers 4 \\
        --db-url mysql://kamailio:secret@127.0.0.1/kamailio
    xcap-wsgi initdb --db-url mysql://kamailio:secret@127.0.0.1/kamailio
    xcap-wsgi user add sip:alice@example.com --password secret

Every flag defaults to its environment variable (see :mod:`xcap_wsgi.config`).
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import logging
import os
import secrets
import sys
from collections.abc import Sequence
from typing import Any

from xcap_wsgi import __version__, notify
from xcap_wsgi.auth import MODES, SubscriberStore
from xcap_wsgi.config import ENVIRONMENT, convert, settings_from_env
from xcap_wsgi.middleware import XCAPMiddleware
from xcap_wsgi.storage import DEFAULT_DB_URL, StorageUnavailable, open_storage
from xcap_wsgi.storage.dbapi import DBAPIStorage

DEFAULT_BIND = "127.0.0.1:8000"
log = logging.getLogger("xcap_wsgi")

#: serve flags that set a middleware keyword: flag -> (keyword, help)
SERVE_FLAGS = {
    "--xcap-root": ("xcap_root", "URL path served as XCAP (default /xcap-root/)"),
    "--buf-size": ("buf_size", "largest request body in bytes (default 1048576)"),
    "--auth": ("auth", f"authentication: {', '.join(MODES)} (default none)"),
    "--auth-secret": ("auth_secret", "secret that signs digest nonces; prefer $XCAP_AUTH_SECRET"),
    "--credentials-url": ("credentials_url", "database of the subscriber table (default: --db-url)"),
    "--trusted-peer": ("trusted_peers", "CIDR of servers that read without credentials (repeatable)"),
    "--trusted-proxy": ("trusted_proxies", "CIDR of proxies whose forwarding headers are believed (repeatable)"),
    "--admin": ("admins", "identity allowed to write the global tree, sip:user@domain (repeatable)"),
    "--upstream-header": ("upstream_header", "header naming the user in --auth upstream (default REMOTE_USER)"),
    "--nonce-lifetime": ("nonce_lifetime", "seconds a digest nonce stays fresh (default 300)"),
    "--digest-algorithms": ("digest_algorithms", "offered digest algorithms in order (default MD5,SHA-256)"),
    "--notify": ("notify", "announce every change to kamailio+http://host:port/RPC, opensips+http://host:port/mi"
                           " or sip:host[:port][;transport=udp|tcp] (repeatable)"),
    "--notify-max-attempts": ("notify_max_attempts", "delivery attempts before an event is marked failed (default 50)"),
}
_REPEATABLE = {"trusted_peers", "trusted_proxies", "admins", "notify"}


def _add_storage_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db-url", help=f"database URL (${ENVIRONMENT['db_url']}; default {DEFAULT_DB_URL})")
    parser.add_argument("--xcap-table", help=f"table name (${ENVIRONMENT['xcap_table']}; default xcap)")


def _add_serve(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the standalone XCAP server under gunicorn")
    serve.add_argument("--bind", default=os.environ.get("XCAP_BIND", DEFAULT_BIND),
                       help=f"host:port to listen on ($XCAP_BIND; default {DEFAULT_BIND})")
    serve.add_argument("--workers", type=int, default=int(os.environ.get("XCAP_WORKERS", "2")),
                       help="worker processes ($XCAP_WORKERS; default 2)")
    _add_storage_flags(serve)
    for flag, (keyword, text) in SERVE_FLAGS.items():
        action = "append" if keyword in _REPEATABLE else "store"
        serve.add_argument(flag, dest=keyword, action=action, help=f"{text} (${ENVIRONMENT[keyword]})")
    serve.add_argument("--allow-basic-over-http", dest="allow_basic_over_http", action="store_const", const="true",
                       help="accept Basic credentials over plain HTTP ($XCAP_ALLOW_BASIC_OVER_HTTP)")
    serve.add_argument("--allow-unauthenticated", action="store_true",
                       help="serve without authentication on an address other than loopback")


def _add_user(commands: Any) -> None:
    user = commands.add_parser("user", help="manage accounts in the subscriber table (digest and basic auth)")
    actions = user.add_subparsers(dest="action", required=True)
    for name, text in (("add", "create an account"), ("del", "delete an account"), ("passwd", "change a password")):
        action = actions.add_parser(name, help=text)
        action.add_argument("xui", help="the account, e.g. sip:alice@example.com")
        if name != "del":
            action.add_argument("--password", help="the password (asked for when omitted)")
            action.add_argument("--cleartext", action="store_true",
                                help="also store the cleartext password (default: HA1 hashes only)")
        action.add_argument("--db-url", help="database of the subscriber table ($XCAP_CREDENTIALS_URL, $XCAP_DB_URL)")
        action.add_argument("--table", default="subscriber", help="table name (default subscriber)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xcap-wsgi", description="XCAP server (RFC 4825) for WSGI stacks")
    parser.add_argument("--version", action="version", version=f"xcap-wsgi {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve(commands)
    initdb = commands.add_parser("initdb", help="create the xcap table, its indexes and version row when missing")
    _add_storage_flags(initdb)
    _add_user(commands)
    return parser


def flag_of(keyword: str) -> str:
    """The command-line flag that sets ``keyword`` (for error messages)."""
    return next((flag for flag, (k, _) in SERVE_FLAGS.items() if k == keyword), "--" + keyword.replace("_", "-"))


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Environment first, flags over it, each converted to its keyword's type."""
    settings = settings_from_env()
    for keyword in ENVIRONMENT:
        value = getattr(args, keyword, None)
        if value is None:
            continue
        if isinstance(value, list):
            settings[keyword] = [item for v in value for item in convert(keyword, v, flag_of(keyword))]
        else:
            settings[keyword] = convert(keyword, value, flag_of(keyword))
    return settings


def cmd_initdb(args: argparse.Namespace) -> int:
    settings = _settings(args)
    storage = open_storage(settings.get("db_url"), settings.get("xcap_table", "xcap"))
    if isinstance(storage, DBAPIStorage):
        storage.enable_outbox(())  # the notifier's tables, ready for --notify
    storage.ensure_schema()
    storage.close()
    print(f"xcap-wsgi: table {settings.get('xcap_table', 'xcap')!r} ready in {storage.description}")
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    url = args.db_url or os.environ.get("XCAP_CREDENTIALS_URL") or os.environ.get("XCAP_DB_URL") or DEFAULT_DB_URL
    store = SubscriberStore(url, args.table)
    if args.action == "del":
        store.delete_user(args.xui)
        print(f"xcap-wsgi: deleted {args.xui}")
        return 0
    password = args.password or _ask_password()
    if args.action == "add":
        store.add_user(args.xui, password, store_cleartext=args.cleartext)
        print(f"xcap-wsgi: added {args.xui}")
    else:
        store.set_password(args.xui, password, store_cleartext=args.cleartext)
        print(f"xcap-wsgi: changed the password of {args.xui}")
    return 0


def _ask_password() -> str:
    first = getpass.getpass("password: ")
    if not first or first != getpass.getpass("again: "):
        raise ValueError("the passwords are empty or do not match")
    return first


def is_loopback(bind: str) -> bool:
    """Whether ``--bind`` listens only on this host (loopback or a unix socket)."""
    if bind.startswith(("unix:", "fd://")):
        return True
    host = bind.rsplit(":", 1)[0].strip("[]") if ":" in bind else bind
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(args: argparse.Namespace, settings: dict[str, Any]) -> None:
    """Without authentication, anyone who reaches the port reads and writes every document."""
    if settings.get("auth", "none") != "none":
        return
    if not is_loopback(args.bind) and not args.allow_unauthenticated:
        raise ValueError(f"refusing to serve {args.bind} without authentication: use --auth digest|basic|upstream,"
                         " bind to 127.0.0.1, or pass --allow-unauthenticated")
    log.warning("authentication is off: anyone who can reach %s reads and writes every document", args.bind)


def cmd_serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    if args.workers < 1:
        raise ValueError("--workers must be at least 1")
    settings = _settings(args)
    check_exposure(args, settings)
    if settings.get("auth") == "digest" and not settings.get("auth_secret"):
        settings["auth_secret"] = secrets.token_hex(32)
        log.warning("no XCAP_AUTH_SECRET: digest nonces are signed with a random secret and do not survive a"
                    " restart or reach other hosts")
    app = XCAPMiddleware(None, **settings)
    app.storage.ensure_schema()
    app.storage.close()  # workers open their own connections after the fork

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", [args.bind])
            self.cfg.set("workers", args.workers)
            self.cfg.set("proc_name", "xcap-wsgi")
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 24; unused here
                self.cfg.set("control_socket_disable", True)
            self.cfg.set("post_worker_init", notify.post_worker_init)
            self.cfg.set("worker_exit", notify.worker_exit)

        def load(self) -> XCAPMiddleware:
            return app

    host = args.bind if not args.bind.startswith(("unix:", "fd://")) else "localhost"
    print(f"xcap-wsgi {__version__}: serving XCAP root http://{host}{app.root.path} "
          f"from {app.storage.description} with {args.workers} worker(s); Ctrl-C stops", flush=True)
    if app.notifier is not None:
        print(f"xcap-wsgi: announcing every change to {', '.join(s.name for s in app.notifier.sinks)}", flush=True)
    Server().run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    commands = {"serve": cmd_serve, "initdb": cmd_initdb, "user": cmd_user}
    try:
        return commands[args.command](args)
    except (ValueError, LookupError) as exc:
        print(f"xcap-wsgi: {'configuration error: ' if args.command != 'user' else ''}{exc}", file=sys.stderr)
        return 2
    except StorageUnavailable as exc:
        print(f"xcap-wsgi: database unavailable: {exc}", file=sys.stderr)
        return 1
