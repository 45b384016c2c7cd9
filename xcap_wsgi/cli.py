"""The ``xcap-wsgi`` command: ``serve`` runs the standalone server, ``initdb`` the table,
``user`` manages accounts in Kamailio's ``subscriber`` table, ``export``/``import`` move
every document with its ETag (:mod:`xcap_wsgi.transfer`), ``doc`` provisions one,
``reindex`` rebuilds the rls-services service index (:mod:`xcap_wsgi.storage.services`).

::

    xcap-wsgi serve                         # SQLite file ./xcap.db, http://127.0.0.1:8000/xcap-root/
    XCAP_AUTH_SECRET=... xcap-wsgi serve --auth digest --bind 0.0.0.0:8000 --workers 4 \\
        --db-url mysql://kamailio:secret@127.0.0.1/kamailio
    xcap-wsgi initdb --db-url mysql://kamailio:secret@127.0.0.1/kamailio
    xcap-wsgi initdb --db-url postgresql://opensips:secret@127.0.0.1/opensips --schema opensips
    xcap-wsgi user add sip:alice@example.com --password secret
    xcap-wsgi export --db-url sqlite:///xcap.db backup.jsonl
    xcap-wsgi import --db-url mysql://kamailio:secret@127.0.0.1/kamailio backup.jsonl
    xcap-wsgi import --from-openxcap mysql://opensips:pw@127.0.0.1/opensips --db-url ...
    xcap-wsgi doc put pres-rules/users/sip:alice@example.com/index --as sip:alice@example.com --file rules.xml
    xcap-wsgi reindex --db-url mysql://kamailio:secret@127.0.0.1/kamailio

Every flag defaults to its environment variable (see :mod:`xcap_wsgi.config`), read when
the command runs, so a bad value never breaks ``--help``. Every error is one line on
stderr naming the flag or variable at fault, exit status 2 (1: the database is
unreachable), printed before ``serve`` announces itself.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import getpass
import ipaddress
import logging
import os
import re
import secrets
import socket
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, Any, NoReturn

from xcap_wsgi import __version__, metrics, notify, transfer
from xcap_wsgi.access import configure_logging
from xcap_wsgi.auth import MODES, SubscriberStore
from xcap_wsgi.auth.credentials import parse_account
from xcap_wsgi.config import ENVIRONMENT, convert, named, positive_int, settings_from_env
from xcap_wsgi.middleware import XCAPMiddleware
from xcap_wsgi.storage import DEFAULT_DB_URL, StorageUnavailable, open_storage
from xcap_wsgi.storage.dbapi import DBAPIStorage
from xcap_wsgi.storage.dialects import SCHEMAS

DEFAULT_BIND = "127.0.0.1:8000"
log = logging.getLogger("xcap_wsgi")

#: serve flags that set a middleware keyword: flag -> (keyword, help)
SERVE_FLAGS = {
    "--xcap-root": ("xcap_root", "URL path served as XCAP (default /xcap-root/)"),
    "--buf-size": ("buf_size", "largest request body in bytes (default 4194304)"),
    "--auth": ("auth", f"authentication: {', '.join(MODES)} (default none)"),
    "--auth-secret": ("auth_secret", "secret that signs digest nonces; prefer $XCAP_AUTH_SECRET"),
    "--credentials-url": ("credentials_url", "database of the subscriber table (default: --db-url)"),
    "--trusted-peer": ("trusted_peers", "CIDR of servers that read without credentials (repeatable)"),
    "--trusted-proxy": ("trusted_proxies", "CIDR of proxies whose forwarding headers are believed (repeatable)"),
    "--admin": ("admins", "identity allowed to write the global tree, sip:user@domain (repeatable)"),
    "--upstream-header": ("upstream_header", "header naming the user in --auth upstream (default REMOTE_USER) or"
                                             " asserting it in --auth ims (default X-3GPP-Asserted-Identity and"
                                             " X-XCAP-Asserted-Identity)"),
    "--nonce-lifetime": ("nonce_lifetime", "seconds a digest nonce stays fresh (default 300)"),
    "--digest-algorithms": ("digest_algorithms", "offered digest algorithms in order (default MD5,SHA-256)"),
    "--realm": ("realm", "digest/basic realm of the global tree, the accounts' SIP domain (default: the subscriber"
                         " table's only domain)"),
    "--notify": ("notify", "announce every change to kamailio+http://host:port/RPC, opensips+http://host:port/mi"
                           " or sip:host[:port][;transport=udp|tcp] (repeatable)"),
    "--notify-max-attempts": ("notify_max_attempts", "delivery attempts before an event is marked failed (default 50)"),
    "--health-path": ("health_path", "URL path answering 200 while the database answers (default: off)"),
    "--metrics-path": ("metrics_path", "URL path of the Prometheus metrics (default: off; needs xcap-wsgi[metrics])"),
    "--log-format": ("log_format", "access lines as text or json (default text)"),
    "--cors-origin": ("cors_origins", "browser origin allowed to use XCAP, scheme://host[:port] (repeatable)"),
    "--node-cache-size": ("node_cache_size", "bytes of documents whose parsed element index each worker keeps"
                                             " (default 2097152; 0: off)"),
    "--simservs-template": ("simservs_template", "simservs.xml a user's first IMS Ut GET stores and returns"
                                                 " (default: the built-in one)"),
    "--ims-home-domain": ("ims_home_domain", "IMS home domain: tel:+E164 and sip:+E164@DOMAIN;user=phone address the"
                                             " documents of sip:+E164@DOMAIN, one subscriber (default: off)"),
    "--ut-decision-path": ("ut_decision_path", "URL path where trusted peers (SIP servers) ask what a user's IMS Ut"
                                               " settings decide for a call (default: off)"),
}
_REPEATABLE = {"trusted_peers", "trusted_proxies", "admins", "notify", "cors_origins"}
#: serve flags that set up the server, not the middleware: keyword -> (variable, default)
#: Two workers per CPU, as deploy/gunicorn.conf.py: a worker answers its kept-alive connections
#: one at a time under the GIL, and gunicorn's workers take new connections in a race the busy
#: one often wins, so with a worker per CPU a few busy clients can land on one worker and
#: leave a CPU idle (bench/operations.py: 2 workers on 2 CPUs 3.7k document GETs/s, 4 workers 5.4k).
DEFAULT_WORKERS = str(2 * (os.cpu_count() or 1))
SERVER_ENVIRONMENT = {"bind": ("XCAP_BIND", DEFAULT_BIND), "workers": ("XCAP_WORKERS", DEFAULT_WORKERS)}
#: how serve's gunicorn takes clients (issue 9, measured with tests/slowclients.py): a gthread
#: worker gives a connection one of its threads only while a request is read and answered (kept-alive
#: connections wait in its poller), so a slow client holds a thread, not the worker; 64 threads keep
#: serve answering while 50 connections trickle their requests, even when all reach one worker.
SERVER_MODEL = {"worker_class": "gthread", "threads": 64, "keepalive": 5, "timeout": 30, "graceful_timeout": 20}
BIND_FORMS = "host:port, [IPv6 address]:port, unix:/path or fd://N"
_HOST_PORT = re.compile(r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^\s:\[\]/]+)):(?P<port>[0-9]{1,5})")
#: where ``--bind`` listens, as gunicorn takes it: (host, port), a unix socket's path, an inherited fd
Address = tuple[str, int] | str | int


class CannotListen(Exception):
    """The address ``serve`` would listen on is taken or unusable (exit 2)."""


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")


def _add_storage_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db-url", help=f"database URL (${ENVIRONMENT['db_url']}; default {DEFAULT_DB_URL})")
    parser.add_argument("--xcap-table", help=f"table name (${ENVIRONMENT['xcap_table']}; default xcap)")


def _add_settings(parser: argparse.ArgumentParser, flags: Sequence[str]) -> None:
    """The :data:`SERVE_FLAGS` named by ``flags``, as serve has them."""
    for flag in flags:
        keyword, text = SERVE_FLAGS[flag]
        action = "append" if keyword in _REPEATABLE else "store"
        parser.add_argument(flag, dest=keyword, action=action, help=f"{text} (${ENVIRONMENT[keyword]})")


def _add_serve(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the standalone XCAP server under gunicorn")
    serve.add_argument("--bind", help=f"{BIND_FORMS} to listen on ($XCAP_BIND; default {DEFAULT_BIND})")
    serve.add_argument("--workers", help="worker processes ($XCAP_WORKERS; default two per CPU)")
    _add_storage_flags(serve)
    _add_settings(serve, list(SERVE_FLAGS))
    serve.add_argument("--allow-basic-over-http", dest="allow_basic_over_http", action="store_const", const="true",
                       help="accept Basic credentials over plain HTTP ($XCAP_ALLOW_BASIC_OVER_HTTP)")
    serve.add_argument("--global-auth", dest="global_auth", action="store_const", const="true",
                       help="ask for credentials to read the global tree too ($XCAP_GLOBAL_AUTH)")
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


def _add_transfer(commands: Any) -> None:
    export = commands.add_parser("export", help="write every document with its owner, doc_type and ETag to a file")
    export.add_argument("file", metavar="FILE", help="the export (JSON Lines, see xcap_wsgi.transfer); - for stdout")
    _add_storage_flags(export)
    load = commands.add_parser("import", help="store the documents of an export, or of an OpenXCAP database, ETags"
                                              " kept, no change events; all or nothing")
    load.add_argument("file", metavar="FILE", nargs="?", help="an export file; - for stdin")
    load.add_argument("--from-openxcap", metavar="URL", help="migrate OpenXCAP's documents from this database instead")
    load.add_argument("--openxcap-table", default="xcap", help="OpenXCAP's table ([Database] xcap_table; default xcap)")
    load.add_argument("--replace", action="store_true", help="overwrite stored documents (default: refuse, write nothing)")
    _add_storage_flags(load)
    _add_settings(load, ["--xcap-root"])


def _add_doc(commands: Any) -> None:
    doc = commands.add_parser("doc", help="get, put or delete one document as a user would over HTTP (validation,"
                                          " ETags, change events)")
    actions = doc.add_subparsers(dest="action", required=True)
    for name, text in (("get", "print a document (or node) on stdout"), ("put", "store a document (or node)"),
                       ("delete", "delete a document (or node)")):
        action = actions.add_parser(name, help=text)
        action.add_argument("path", metavar="PATH", help="the document URI's path: /xcap-root/pres-rules/users/"
                                                          "sip:alice@example.com/index, or the part after the root")
        action.add_argument("--as", dest="user", required=True, metavar="XUI",
                            help="the user making the request, sip:user@domain; authorized as over HTTP")
        if name == "put":
            action.add_argument("--file", required=True, help="the body; - for stdin")
            action.add_argument("--content-type", help="the body's type (default: the usage's, for a document)")
        action.add_argument("--base-url", default="http://localhost",
                            help="scheme://host[:port] clients use, for change events (default http://localhost)")
        _add_storage_flags(action)
        _add_settings(action, ["--xcap-root", "--buf-size", "--admin", "--notify", "--notify-max-attempts",
                               "--ims-home-domain"])


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="xcap-wsgi", description="XCAP server (RFC 4825) for WSGI stacks")
    parser.add_argument("--version", action="version", version=f"xcap-wsgi {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serve(commands)
    initdb = commands.add_parser("initdb", help="create the xcap table, its indexes and version row when missing")
    _add_storage_flags(initdb)
    initdb.add_argument("--schema", choices=SCHEMAS,
                        help="the table's layout: Kamailio's or OpenSIPS's (default: an existing table's, else kamailio);"
                             " an existing table of the other layout is refused")
    _add_user(commands)
    _add_transfer(commands)
    _add_doc(commands)
    reindex = commands.add_parser("reindex", help="rebuild the rls-services service index from the xcap table (after"
                                                  " another program wrote rls-services documents)")
    _add_storage_flags(reindex)
    return parser


def flag_of(keyword: str) -> str:
    """The command-line flag that sets ``keyword`` (for error messages)."""
    return next((flag for flag, (k, _) in SERVE_FLAGS.items() if k == keyword), "--" + keyword.replace("_", "-"))


def _settings(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """Environment first, flags over it, each converted to its keyword's type; and for
    every keyword the name the operator set it by (its variable or flag)."""
    settings = settings_from_env()
    names = {keyword: ENVIRONMENT[keyword] if keyword in settings else flag_of(keyword) for keyword in ENVIRONMENT}
    for keyword in ENVIRONMENT:
        value = getattr(args, keyword, None)
        if value is None:
            continue
        names[keyword] = flag = flag_of(keyword)
        if isinstance(value, list):
            settings[keyword] = [item for v in value for item in convert(keyword, v, flag)]
        else:
            settings[keyword] = convert(keyword, value, flag)
    return settings, names


def _server_option(args: argparse.Namespace, keyword: str) -> tuple[str, str]:
    """A :data:`SERVER_ENVIRONMENT` option's text and the flag or variable it came from."""
    flag = "--" + keyword
    variable, default = SERVER_ENVIRONMENT[keyword]
    if getattr(args, keyword) is not None:
        return getattr(args, keyword), flag
    value = os.environ.get(variable, "").strip()
    return (value, variable) if value else (default, flag)


@contextlib.contextmanager
def storage_errors_reported_once() -> Iterator[None]:
    """The storage layer logs a warning with each StorageUnavailable it raises (in a running
    server the log is where an outage shows), and a command reports the error in its own
    line: while the command uses the database the layer's records are held, and those that
    repeat the error ending the command are dropped."""
    storage_log = logging.getLogger("xcap_wsgi.storage")
    held: list[logging.LogRecord] = []
    failure: str | None = None

    def hold(record: logging.LogRecord) -> bool:
        held.append(record)
        return False

    storage_log.addFilter(hold)
    try:
        yield
    except StorageUnavailable as exc:
        failure = str(exc)
        raise
    finally:
        storage_log.removeFilter(hold)
        for record in held:
            if failure is None or failure not in record.getMessage():
                storage_log.handle(record)


def cmd_initdb(args: argparse.Namespace) -> int:
    settings, names = _settings(args)
    table = settings.get("xcap_table", "xcap")
    with named(names):
        storage = open_storage(settings.get("db_url"), table, schema=args.schema)
    try:
        with storage_errors_reported_once():
            if isinstance(storage, DBAPIStorage):
                storage.enable_outbox(())  # the notifier's tables, ready for --notify
            storage.ensure_schema()
    finally:
        storage.close()
    print(f"xcap-wsgi: table {table!r} ready in {storage.description}")
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    url, source = next((value, name) for value, name in (
        (args.db_url, "--db-url"), (os.environ.get("XCAP_CREDENTIALS_URL"), "XCAP_CREDENTIALS_URL"),
        (os.environ.get("XCAP_DB_URL"), "XCAP_DB_URL"), (DEFAULT_DB_URL, "--db-url")) if value)
    with named({"db_url": source, "table name": "--table"}):
        store = SubscriberStore(url, args.table)
    try:
        with storage_errors_reported_once():
            print(_change_account(store, args))
    finally:
        store.close()
    return 0


def _change_account(store: SubscriberStore, args: argparse.Namespace) -> str:
    if args.action == "del":
        store.delete_user(args.xui)
        return f"xcap-wsgi: deleted {args.xui}"
    password = args.password or _ask_password()
    if args.action == "add":
        store.add_user(args.xui, password, store_cleartext=args.cleartext)
        return f"xcap-wsgi: added {args.xui}"
    store.set_password(args.xui, password, store_cleartext=args.cleartext)
    return f"xcap-wsgi: changed the password of {args.xui}"


def _ask_password() -> str:
    """Asked twice on a terminal; otherwise the first line of standard input (a script's
    ``printf '%s\n' "$PASSWORD" | xcap-wsgi user add ...``), never echoed into a process list."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise ValueError("no password: give --password, or the password as the first line of standard input")
        return line
    first = getpass.getpass("password: ")
    if not first or first != getpass.getpass("again: "):
        raise ValueError("the passwords are empty or do not match")
    return first


def _progress(line: str) -> None:
    print(f"xcap-wsgi: {line}", file=sys.stderr, flush=True)


def _table(args: argparse.Namespace, existing: bool = False) -> tuple[DBAPIStorage, dict[str, Any], dict[str, str]]:
    """The xcap table of ``--db-url``/``--xcap-table`` and the settings it came from."""
    settings, names = _settings(args)
    with named(names):
        opener = transfer.existing_table if existing else transfer.open_table
        return opener(settings.get("db_url"), settings.get("xcap_table", "xcap")), settings, names


@contextlib.contextmanager
def _output(file: str) -> Iterator[IO[bytes]]:
    """stdout for ``-``; else a file that appears, whole, only once the export is done."""
    if file == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path, temporary = os.path.abspath(file), ""
    try:
        with tempfile.NamedTemporaryFile(dir=os.path.dirname(path), prefix=".xcap-export-", delete=False) as out:
            temporary = out.name
            yield out
        os.replace(temporary, path)
    except OSError as exc:
        raise transfer.TransferError(f"cannot write {file}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            if temporary:
                os.unlink(temporary)


def cmd_export(args: argparse.Namespace) -> int:
    storage, _, _ = _table(args, existing=True)
    try:
        with storage_errors_reported_once(), _output(args.file) as out:
            count = transfer.export_documents(storage, out, _progress)
    finally:
        storage.close()
    _progress(f"exported {transfer.plural(count)} from {storage.description}")
    return 0


@contextlib.contextmanager
def _incoming(args: argparse.Namespace, settings: dict[str, Any], names: dict[str, str]) -> Iterator[Iterable[transfer.Incoming]]:
    """The documents to import: an export file's, or OpenXCAP's table's."""
    if args.from_openxcap is None:
        if args.file == "-":
            yield transfer.read_export(sys.stdin.buffer)
            return
        try:
            stream = open(args.file, "rb")  # noqa: SIM115  (closed below)
        except OSError as exc:
            raise transfer.TransferError(f"cannot read {args.file}: {exc.strerror}") from None
        with stream:
            yield transfer.read_export(stream)
        return
    with named({**names, "db_url": "--from-openxcap", "xcap_table": "--openxcap-table"}):
        source = transfer.existing_table(args.from_openxcap, args.openxcap_table)
        rows = transfer.OpenXCAPRows(source, settings.get("xcap_root", "/xcap-root/"), _progress)
    try:
        yield rows
    finally:
        source.close()


def cmd_import(args: argparse.Namespace) -> int:
    if (args.file is None) == (args.from_openxcap is None):
        raise ValueError("import reads FILE or --from-openxcap URL: give one of them")
    storage, settings, names = _table(args)
    try:
        with storage_errors_reported_once(), _incoming(args, settings, names) as documents:
            imported = transfer.import_documents(storage, documents, replace=args.replace, report=_progress)
    finally:
        storage.close()
    summary = f"imported {transfer.plural(imported.created + imported.replaced)} into {storage.description}"
    if imported.replaced:
        summary += f" ({imported.replaced} replaced)"
    if isinstance(documents, transfer.OpenXCAPRows) and documents.skipped:
        summary += f"; skipped {transfer.plural(documents.skipped, 'OpenXCAP row')}"
    _progress(summary)
    return 0


def cmd_doc(args: argparse.Namespace) -> int:
    try:
        parse_account(args.user)
    except ValueError:
        raise ValueError(f"--as must be an identity sip:user@domain, got {args.user!r}") from None
    settings, names = _settings(args)
    if args.action == "get":
        settings.pop("notify", None)  # a read announces nothing: no delivery to start
    body = _body(args.file) if args.action == "put" else b""
    with named({**names, "base URL": "--base-url"}):
        transfer.check_base_url(args.base_url)
        app = transfer.provisioning_app(settings)
    logging.getLogger("xcap_wsgi.access").setLevel(logging.WARNING)  # one request: its answer says it all
    try:
        answer = transfer.request(app, args.action.upper(), args.path, user=args.user, body=body,
                                  content_type=getattr(args, "content_type", None), base_url=args.base_url,
                                  answered=_show)
    finally:
        app.storage.close()
    if answer.delivered is False:
        _progress(f"the change event is not delivered after {transfer.NOTIFY_WAIT_S:g} s; it waits in the outbox"
                  " for the next process that delivers (xcap-wsgi serve --notify)")
    return 0 if answer.ok else 1


def cmd_reindex(args: argparse.Namespace) -> int:
    storage, _, _ = _table(args, existing=True)
    try:
        with storage_errors_reported_once():
            done = storage.services.reindex()
    finally:
        storage.close()
    summary = (f"xcap-wsgi: indexed {transfer.plural(done.services, 'service')} of"
               f" {transfer.plural(done.documents, 'rls-services document')} in {storage.description}")
    if done.repeated:
        summary += f"; services repeating a URI that an earlier document keeps: {done.repeated}"
    print(summary)
    return 0


def _show(answer: transfer.Answer) -> None:
    """The status line and ETag on stderr, then the body: on stdout when it is what was
    asked for, on stderr when it says what went wrong."""
    print(f"HTTP/1.1 {answer.status}", file=sys.stderr)
    if (etag := answer.header("ETag")) is not None:
        print(f"ETag: {etag}", file=sys.stderr)
    if not answer.ok:
        text = answer.body.decode("utf-8", "replace")
        print(text, end="" if text.endswith("\n") else "\n", file=sys.stderr)
    elif answer.body:
        sys.stdout.buffer.write(answer.body)
        sys.stdout.buffer.flush()


def _body(file: str) -> bytes:
    if file == "-":
        return sys.stdin.buffer.read()
    try:
        with open(file, "rb") as stream:
            return stream.read()
    except OSError as exc:
        raise ValueError(f"cannot read --file {file}: {exc.strerror}") from None


def parse_bind(bind: str, source: str = "--bind") -> Address:
    """The address gunicorn listens on for ``bind`` (``source`` names it in the error)."""
    if bind.startswith("unix:"):
        if path := re.sub(r"^unix:(//)?", "", bind):
            return path
    elif bind.startswith("fd://"):
        if re.fullmatch("[0-9]+", bind[5:]):
            return int(bind[5:])
    elif (match := _HOST_PORT.fullmatch(bind)) and 0 < int(match["port"]) < 65536:
        if match["host"] is not None:
            return match["host"], int(match["port"])
        with contextlib.suppress(ValueError):
            return str(ipaddress.IPv6Address(match["v6"])), int(match["port"])
    raise ValueError(f"{source} must be {BIND_FORMS}, got {bind!r}")


def check_listen(bind: str, address: Address) -> None:
    """Bind ``address`` as gunicorn will, then let go, so a taken or unusable address is one
    line before the banner (gunicorn logs five failed attempts after it, then exits 1)."""
    try:
        if isinstance(address, int):
            if not stat.S_ISSOCK(os.fstat(address).st_mode):
                raise OSError(errno.ENOTSOCK, f"file descriptor {address} is not a socket")
        elif isinstance(address, str):
            _check_unix(address)
        else:
            with socket.socket(socket.AF_INET6 if ":" in address[0] else socket.AF_INET) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn: TIME_WAIT is free
                probe.bind(address)
    except OSError as exc:
        raise CannotListen(f"cannot listen on {bind}: {exc.strerror or exc}") from None


def _check_unix(path: str) -> None:
    """gunicorn replaces an existing socket file, even one a live server listens on."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        with socket.socket(socket.AF_UNIX) as probe:
            probe.bind(path)
        os.unlink(path)
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
    with socket.socket(socket.AF_UNIX) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            return  # left by a server that is gone
        except TimeoutError:
            pass  # a server too busy to accept
    raise OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))


def is_loopback(address: Address) -> bool:
    """Whether the server listens only on this host (loopback or a unix socket)."""
    if not isinstance(address, tuple) or address[0] == "localhost":
        return True
    try:
        return ipaddress.ip_address(address[0]).is_loopback
    except ValueError:
        return False


def check_exposure(bind: str, address: Address, settings: dict[str, Any], allow_unauthenticated: bool) -> list[str]:
    """Without authentication anyone who reaches the address reads and writes every user's
    documents (the global tree needs an administrator): refused off loopback unless allowed."""
    if settings.get("auth", "none") != "none":
        return []
    if not is_loopback(address) and not allow_unauthenticated:
        raise ValueError(f"refusing to serve {bind} without authentication: use --auth digest|basic|upstream|ims,"
                         " bind to 127.0.0.1, or pass --allow-unauthenticated")
    return [f"authentication is off: anyone who can reach {bind} reads and writes every user's documents"]


def default_secret(settings: dict[str, Any]) -> list[str]:
    """Digest without a configured secret signs nonces with a random one."""
    if settings.get("auth") != "digest" or settings.get("auth_secret"):
        return []
    settings["auth_secret"] = secrets.token_hex(32)
    return ["no XCAP_AUTH_SECRET: digest nonces are signed with a random secret and do not survive a"
            " restart or reach other hosts"]


def shared_metrics_dir() -> None:
    """prometheus_client's multiprocess mode: every worker writes its counters into one
    directory, set before the library is first imported (a fresh one unless given)."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="xcap-wsgi-metrics-")


def cmd_serve(args: argparse.Namespace) -> int:
    from gunicorn.app.base import BaseApplication

    bind, bind_source = _server_option(args, "bind")
    address = parse_bind(bind, bind_source)
    processes = positive_int(*_server_option(args, "workers"))
    settings, names = _settings(args)
    warnings = check_exposure(bind, address, settings, args.allow_unauthenticated) + default_secret(settings)
    if settings.get("metrics_path"):
        shared_metrics_dir()
    configure_logging(str(settings.get("log_format", "text")))
    with named(names):
        app = XCAPMiddleware(None, **settings)
    check_listen(bind, address)
    with storage_errors_reported_once():
        app.storage.ensure_schema()
    app.storage.close()  # workers open their own connections after the fork
    for warning in warnings:
        log.warning("%s", warning)

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", [bind])
            self.cfg.set("workers", processes)
            self.cfg.set("proc_name", "xcap-wsgi")
            for name, value in SERVER_MODEL.items():
                self.cfg.set(name, value)
            if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 24; unused here
                self.cfg.set("control_socket_disable", True)
            self.cfg.set("post_worker_init", notify.post_worker_init)
            self.cfg.set("worker_exit", notify.worker_exit)
            if app.metrics is not None:
                self.cfg.set("child_exit", metrics.child_exit)

        def load(self) -> XCAPMiddleware:
            return app

    host = bind if isinstance(address, tuple) else "localhost"
    print(f"xcap-wsgi {__version__}: serving XCAP root http://{host}{app.root.path} "
          f"from {app.storage.description} with {processes} worker(s); Ctrl-C stops", flush=True)
    if app.notifier is not None:
        print(f"xcap-wsgi: announcing every change to {', '.join(s.name for s in app.notifier.sinks)}", flush=True)
    Server().run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    commands = {"serve": cmd_serve, "initdb": cmd_initdb, "user": cmd_user, "export": cmd_export,
                "import": cmd_import, "doc": cmd_doc, "reindex": cmd_reindex}
    try:
        return commands[args.command](args)
    except CannotListen as exc:
        message, status = str(exc), 2
    except transfer.TransferError as exc:
        message, status = f"{exc}{'; nothing was imported' if args.command == 'import' else ''}", 2
    except (ValueError, LookupError) as exc:
        message, status = f"{'configuration error: ' if args.command != 'user' else ''}{exc}", 2
    except StorageUnavailable as exc:
        message, status = f"database unavailable: {exc}", 1
    print(f"xcap-wsgi: {message}", file=sys.stderr)
    return status
