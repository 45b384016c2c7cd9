"""MySQL / MariaDB through PyMySQL, writing exactly Kamailio's ``xcap`` table.

Kamailio's presence (``integrated_xcap_server=1``) and RLS modules read the rows this
backend writes (kamailio-compat.md): ``doc_uri`` the decoded absolute path, owner in
``username``/``domain``, the usage's ``doc_type``, ``etag`` unquoted, ``source`` and
``port`` 0. Writes run in READ COMMITTED transactions that lock the row with
``SELECT ... FOR UPDATE``; two writers creating the same document race on the unique
``doc_uri`` index and the loser replays its transaction, now seeing the row.

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
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from xcap_wsgi.storage import sql
from xcap_wsgi.storage.base import StorageUnavailable
from xcap_wsgi.storage.dbapi import DBAPIStorage, Retry, TimedOut

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


def parse_mysql_url(url: str) -> dict[str, Any]:
    """``mysql://user:pass@host[:port]/db[?unix_socket=...]`` → PyMySQL connect arguments."""
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
    unknown = set(query) - {"unix_socket"}
    if unknown:
        raise ValueError(f"unsupported MySQL URL parameter(s): {', '.join(sorted(unknown))}")
    return args


def timed_out(exc: BaseException) -> bool:
    """Whether a socket timeout lies under ``exc``: PyMySQL reports a read or write that
    ran out of time as "lost connection" (2013) or "gone away" (2006), the connect as 2003,
    with the ``TimeoutError`` as the exception's context."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, TimeoutError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


class MySQLStorage(DBAPIStorage):
    placeholder = "%s"
    select_for_update = sql.SELECT_DOC_FOR_UPDATE

    def __init__(self, url: str, xcap_table: str = "xcap") -> None:
        import pymysql  # imported lazily: SQLite users need no driver

        self._pymysql = pymysql
        self.connect_args = parse_mysql_url(url)
        super().__init__(xcap_table)
        a = self.connect_args
        self.description = f"mysql://{a['user']}@{a['host']}:{a['port']}/{a['database']}"
        self.url = url

    @property
    def quoted_table(self) -> str:
        return f"`{self.table}`"

    def _connect(self) -> Any:
        conn = self._pymysql.connect(
            **self.connect_args,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=CONNECT_TIMEOUT_S,
            read_timeout=READ_TIMEOUT_S,
            write_timeout=WRITE_TIMEOUT_S,
            init_command=f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_TIMEOUT_S}",
        )
        with conn.cursor() as cursor:
            cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
        return conn

    def _begin(self, cursor: Any) -> None:
        cursor.execute("START TRANSACTION")

    def _classify(self, exc: Exception) -> type[Exception] | None:
        err = self._pymysql.err
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        if code in RACE_ERRORS:
            return Retry
        if code == LOCK_WAIT_TIMEOUT or timed_out(exc):
            return TimedOut
        if code in BUSY_ERRORS or isinstance(exc, err.OperationalError | err.InterfaceError | OSError):
            return StorageUnavailable
        return None

    def _create_schema(self, cursor: Any) -> None:
        cursor.execute(sql.MYSQL_TABLE_EXISTS, (self.table,))
        if cursor.fetchone()[0] == 0:
            names = {"t": self.quoted_table, "n": ""}
            cursor.execute(sql.MYSQL_CREATE_TABLE.format(**names))
            for statement in sql.INDEXES:
                try:
                    cursor.execute(statement.format(**names))
                except self._pymysql.err.OperationalError as exc:
                    if exc.args[0] != DUPLICATE_INDEX:  # another process created it first
                        raise
        cursor.execute(sql.MYSQL_CREATE_VERSION)
        self._check_collation(cursor)
        cursor.execute("START TRANSACTION")

    def _check_collation(self, cursor: Any) -> None:
        """Paths are case-sensitive; a ``_ci`` doc_uri column (Kamailio's tables take the
        server default) would fold ``/index`` and ``/INDEX`` into one row."""
        cursor.execute(sql.MYSQL_DOC_URI_COLLATION, (self.table,))
        row = cursor.fetchone()
        if row and row[0] and not str(row[0]).endswith("_bin"):
            log.warning(
                "%s.doc_uri has collation %s: document URIs that differ only in case share one row;"
                " ALTER TABLE %s MODIFY doc_uri VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
                " makes them distinct", self.table, row[0], self.quoted_table)
