"""MySQL / MariaDB through PyMySQL or mysqlclient, writing exactly Kamailio's (or OpenSIPS's) ``xcap`` table.

::

    storage = MySQLStorage("mysql://xcap:secret@127.0.0.1/kamailio")                    # XCAP_MYSQL_DRIVER, auto
    storage = MySQLStorage("mysql://xcap:secret@127.0.0.1/kamailio", driver="pymysql")  # this one, always
    storage = MySQLStorage("mysql://xcap:secret@127.0.0.1/opensips", schema="opensips") # OpenSIPS's layout (.dialects)

Kamailio's presence (``integrated_xcap_server=1``) and RLS modules read the rows this
backend writes (kamailio-compat.md): ``doc_uri`` the decoded absolute path, owner in
``username``/``domain``, the usage's ``doc_type``, ``etag`` unquoted, ``source`` and
``port`` 0. Writes run in READ COMMITTED transactions that lock the row with
``SELECT ... FOR UPDATE``; two writers creating the same document race on the unique
key (``doc_uri``; OpenSIPS's: owner, doc_type and doc_uri) and the loser replays its
transaction, now seeing the row.

Galera multi-master (issue 11): a writer overtaken by another node's commit gets 1213 at
any statement, COMMIT included, its transaction rolled back; it is replayed whole like a
deadlock, so If-Match stays exact across nodes. ``?wsrep_sync_wait=1`` in the URL makes
every read wait for the commits the cluster has (read-your-writes across nodes).

Every wait is bounded, so that a database which accepts connections and never answers
is a 503 with ``Retry-After`` (:class:`StorageUnavailable`) within 10 s, well inside
gunicorn's worker timeout (issue 9):

- ``CONNECT_TIMEOUT_S`` = 2 s for the TCP connect (a host that drops the SYN);
- ``READ_TIMEOUT_S`` = 7 s for each read, the handshake's included (a silent server);
- ``WRITE_TIMEOUT_S`` = 7 s for each write (a server that stopped reading a document);
- ``LOCK_WAIT_TIMEOUT_S`` = 5 s for ``innodb_lock_wait_timeout``: a writer queued behind
  a row lock waits this long, then the server answers 1205; the read timeout stays 2 s
  above it so the client hears that answer instead of cutting the connection.

A timeout (or a 1205) is never replayed on a new connection (:class:`TimedOut`), so a
database that stops answering costs a call at most one connect and one read timeout:
2 + 7 = 9 s.

Two drivers, one behaviour. ``driver`` (default ``XCAP_MYSQL_DRIVER``, default ``auto``)
is ``pymysql`` (pure Python, always installed), ``mysqlclient`` (the C client library,
``pip install 'xcap-wsgi[mysqlclient]'``: less CPU per query) or ``auto``, mysqlclient when
it imports; a ``mysql+pymysql://`` URL names PyMySQL. mysqlclient is made to answer as
PyMySQL does (:class:`_MySQLdb`), so logs, the CLI and every bound read the same on both;
only its handshake is bounded by the connect timeout (2 s) instead of the read timeout.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from xcap_wsgi.storage import sql
from xcap_wsgi.storage.base import StorageUnavailable
from xcap_wsgi.storage.dbapi import DBAPIStorage, Retry, TimedOut, unique_keys
from xcap_wsgi.storage.dialects import Dialect

log = logging.getLogger("xcap_wsgi.storage")

#: Server-side errors that mean "lost a race": duplicate key, deadlock.
RACE_ERRORS = {1062, 1213}
#: lock wait timeout: the full wait is over
LOCK_WAIT_TIMEOUT = 1205
#: too many connections, server shutting down / read-only
BUSY_ERRORS = {1040, 1053, 1290, 1836}
DUPLICATE_INDEX = 1061
CONNECT_TIMEOUT_S = 2
READ_TIMEOUT_S = 7
WRITE_TIMEOUT_S = 7
LOCK_WAIT_TIMEOUT_S = 5
DRIVERS = ("auto", "pymysql", "mysqlclient")
#: client errors: cannot connect (Unix socket, TCP, unknown host), server gone, connection lost
CANNOT_CONNECT = {2002, 2003, 2005}
SERVER_GONE = 2006
SERVER_LOST = 2013
#: a call that failed after this share of its timeout ran out of time
TIMED_OUT_SHARE = 0.9


def parse_mysql_url(url: str) -> dict[str, Any]:
    """``mysql://user:pass@host[:port]/db[?unix_socket=...][&wsrep_sync_wait=N]`` → the drivers'
    connect arguments; ``wsrep_sync_wait`` (Galera, 0-15) is not one: :class:`MySQLStorage` sets it
    on each connection, so that reads wait for what other nodes committed (table-dialects.md §5)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mysql+pymysql"):
        raise ValueError(f"not a MySQL URL: {url!r}")
    database = parts.path.lstrip("/")
    if not database or "/" in database:
        raise ValueError(f"the MySQL URL must name one database: mysql://user:pass@host/dbname, got {url!r}")
    args: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": parts.port or 3306,
        "user": unquote(parts.username or "root"),
        "password": unquote(parts.password or ""),
        "database": unquote(database),
    }
    query = parse_qs(parts.query)
    if "unix_socket" in query:
        args["unix_socket"] = query["unix_socket"][0]
    if "wsrep_sync_wait" in query:
        args["wsrep_sync_wait"] = _sync_wait(query["wsrep_sync_wait"][0])
    unknown = set(query) - {"unix_socket", "wsrep_sync_wait"}
    if unknown:
        raise ValueError(f"unsupported MySQL URL parameter(s): {', '.join(sorted(unknown))}")
    return args


def _sync_wait(value: str) -> int:
    """Galera's causality checks, a bitmask: 1 reads, 2 updates and deletes, 4 inserts, 8 SHOW."""
    if not (value.isascii() and value.isdigit() and int(value) <= 15):
        raise ValueError(f"wsrep_sync_wait in the MySQL URL must be 0-15, got {value!r}")
    return int(value)


def choose_driver(driver: str | None = None, *, url: str = "") -> str:
    """The driver to use: ``driver`` (None: ``XCAP_MYSQL_DRIVER``, unset: ``auto``), where
    ``auto`` is mysqlclient when it imports and a ``mysql+pymysql://`` URL means PyMySQL."""
    name = os.environ.get("XCAP_MYSQL_DRIVER", "auto") if driver is None else driver
    if name not in DRIVERS:
        raise ValueError(f"the MySQL driver (XCAP_MYSQL_DRIVER) must be auto, pymysql or mysqlclient, got {name!r}")
    if url.startswith("mysql+pymysql:"):
        if name == "mysqlclient":
            raise ValueError("a mysql+pymysql:// URL names PyMySQL, but the MySQL driver (XCAP_MYSQL_DRIVER) is mysqlclient")
        return "pymysql"
    if name == "auto":
        try:
            import MySQLdb  # noqa: F401
        except ImportError:
            return "pymysql"
        return "mysqlclient"
    return name


def timed_out(exc: BaseException) -> bool:
    """Whether a socket timeout lies under ``exc``: PyMySQL (and mysqlclient, made to answer
    alike) reports a read or write that ran out of time as "lost connection" (2013) or "gone
    away" (2006), the connect as 2003, with the ``TimeoutError`` as the exception's context."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, TimeoutError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class _PyMySQL:
    """PyMySQL, imported lazily: SQLite users need no driver."""

    name = "pymysql"

    def __init__(self) -> None:
        import pymysql

        self.connect: Callable[..., Any] = pymysql.connect
        self.error: type[Exception] = pymysql.err.MySQLError
        self.unavailable = (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError)


class _MySQLdb:
    """mysqlclient, answering as PyMySQL does where libmariadb would not.

    ``localhost`` is TCP (libmariadb takes it for the Unix socket) and ``unix_socket`` is used
    whatever the host. A client error carries PyMySQL's code and words, and a ``TimeoutError``
    underneath when the wait ran out: libmariadb says "lost connection" alike for a read that
    timed out and for a connection the server closed, so how long the call waited tells them
    apart. Why a connection was refused, which libmariadb misreports ("(115)"), is asked of
    the socket module, as PyMySQL does.
    """

    name = "mysqlclient"

    def __init__(self) -> None:
        try:
            import MySQLdb
        except ImportError as exc:
            raise ValueError(f"the MySQL driver (XCAP_MYSQL_DRIVER) mysqlclient cannot be imported ({exc}):"
                             " pip install 'xcap-wsgi[mysqlclient]', or use pymysql") from None
        self.error = MySQLdb.MySQLError
        self.unavailable = (MySQLdb.OperationalError, MySQLdb.InterfaceError, OSError)
        self._connection_class = _mysqldb_connection_class()

    def connect(self, **args: Any) -> Any:
        host = "localhost" if "unix_socket" in args else "127.0.0.1" if args["host"] == "localhost" else args["host"]
        return _answer_as_pymysql(functools.partial(self._connection_class, **{**args, "host": host}),
                                  CONNECT_TIMEOUT_S, connect=args)


@functools.cache
def _mysqldb_connection_class() -> Callable[..., Any]:
    """mysqlclient's connection, its statements and commits answering as PyMySQL's."""
    from MySQLdb import connections, cursors

    within = min(READ_TIMEOUT_S, WRITE_TIMEOUT_S)

    class Cursor(cursors.Cursor):  # type: ignore[misc]  # an untyped driver
        def execute(self, query: Any, args: Any = None) -> Any:
            return _answer_as_pymysql(functools.partial(super().execute, query, args), within)

        def executemany(self, query: Any, args: Any) -> Any:
            return _answer_as_pymysql(functools.partial(super().executemany, query, args), within)

    class Connection(connections.Connection):  # type: ignore[misc]
        default_cursor = Cursor

        def commit(self) -> None:
            _answer_as_pymysql(super().commit, within)

    return Connection


def _answer_as_pymysql(call: Callable[[], Any], timeout: float, connect: dict[str, Any] | None = None) -> Any:
    """``call()``, a client error raised as PyMySQL words it (:class:`_MySQLdb`); ``connect``
    holds the connect arguments when it connects."""
    start = time.monotonic()
    try:
        return call()
    except Exception as exc:
        code = exc.args[0] if exc.args else None
        if code not in (*CANNOT_CONNECT, SERVER_GONE, SERVER_LOST) or exc.__cause__ is not None:
            raise  # a server's error, or worded already (by the execute of an executemany)
        waited = time.monotonic() - start
        reason: BaseException | None = TimeoutError("timed out") if waited >= TIMED_OUT_SHARE * timeout else None
        if code in CANNOT_CONNECT and connect is not None:
            reason = reason or _why_not_connected(connect)
            code, message = 2003, f"Can't connect to MySQL server on {connect['host']!r} ({reason or exc.args[-1]})"
        elif code == SERVER_GONE:
            message = "MySQL server has gone away" + (f" ({reason!r})" if reason else "")
        else:
            message = "Lost connection to MySQL server during query" + (f" ({reason})" if reason else "")
        raise type(exc)(code, message) from reason or exc


def _why_not_connected(args: dict[str, Any]) -> OSError | None:
    """What the socket module says on connecting where ``args`` point, as PyMySQL connects."""
    try:
        if "unix_socket" in args:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(CONNECT_TIMEOUT_S)
                sock.connect(args["unix_socket"])
        else:
            socket.create_connection((args["host"], args["port"]), CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        return exc
    return None


class MySQLStorage(DBAPIStorage):
    placeholder = "%s"
    backend = "mysql"

    def __init__(self, url: str, xcap_table: str = "xcap", *, driver: str | None = None,
                 schema: str | None = None) -> None:
        self.connect_args = parse_mysql_url(url)
        self._driver = _MySQLdb() if choose_driver(driver, url=url) == "mysqlclient" else _PyMySQL()
        #: the driver in use: ``pymysql`` or ``mysqlclient``
        self.driver = self._driver.name
        super().__init__(xcap_table, schema=schema)
        a = self.connect_args
        self.description = f"mysql://{a['user']}@{a['host']}:{a['port']}/{a['database']}"
        self.url = url
        log.debug("%s through %s", self.description, self.driver)

    @property
    def quoted_table(self) -> str:
        return f"`{self.table}`"

    def _connect(self) -> Any:
        args = dict(self.connect_args)
        session = f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_TIMEOUT_S}"
        if "wsrep_sync_wait" in args:
            session += f", SESSION wsrep_sync_wait = {args.pop('wsrep_sync_wait')}"
        conn = self._driver.connect(
            **args,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            write_timeout=WRITE_TIMEOUT_S,
            init_command=session,
        )
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return conn

    def _begin(self, cursor: Any) -> None:
        cursor.execute("START TRANSACTION")

    def _classify(self, exc: Exception) -> type[Exception] | None:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        if code in RACE_ERRORS:
            return Retry
        if code == LOCK_WAIT_TIMEOUT or timed_out(exc):
            return TimedOut
        if code in BUSY_ERRORS or isinstance(exc, self._driver.unavailable):
            return StorageUnavailable
        return None

    def _create_schema(self, cursor: Any, dialect: Dialect, new: bool) -> None:
        if new:
            names = {"t": self.quoted_table, "n": ""}
            cursor.execute(sql.create_table(self.backend, dialect.name).format(**names))
            for statement in sql.INDEXES[dialect.name]:
                try:
                    cursor.execute(statement.format(**names))
                except self._driver.error as exc:
                    if exc.args[0] != DUPLICATE_INDEX:  # another process created it first
                        raise
        cursor.execute(sql.CREATE_VERSION[self.backend, dialect.name])
        self._check_collation(cursor, dialect)
        cursor.execute("START TRANSACTION")

    def _unique_keys(self, cursor: Any) -> list[tuple[str, ...]]:
        cursor.execute(sql.UNIQUE_KEYS[self.backend], (self.table,))
        return unique_keys(cursor.fetchall())

    def _check_collation(self, cursor: Any, dialect: Dialect) -> None:
        """Paths are case-sensitive; a ``_ci`` doc_uri column (Kamailio's tables take the
        server default) would fold ``/index`` and ``/INDEX`` into one row."""
        cursor.execute(sql.MYSQL_DOC_URI_COLLATION, (self.table,))
        row = cursor.fetchone()
        if row and row[0] and not str(row[0]).endswith("_bin"):
            log.warning(
                "%s.doc_uri has collation %s: document URIs that differ only in case share one row;"
                " ALTER TABLE %s MODIFY doc_uri %s(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
                " makes them distinct", self.table, row[0], self.quoted_table,
                "CHAR" if dialect.name == "opensips" else "VARCHAR")
