"""MySQL / MariaDB through PyMySQL, writing exactly Kamailio's ``xcap`` table.

Kamailio's presence (``integrated_xcap_server=1``) and RLS modules read the rows this
backend writes (kamailio-compat.md): ``doc_uri`` the decoded absolute path, owner in
``username``/``domain``, the usage's ``doc_type``, ``etag`` unquoted, ``source`` and
``port`` 0. Writes run in READ COMMITTED transactions that lock the row with
``SELECT ... FOR UPDATE``; two writers creating the same document race on the unique
``doc_uri`` index and the loser replays its transaction, now seeing the row.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from xcap_wsgi.storage import sql
from xcap_wsgi.storage.base import StorageUnavailable
from xcap_wsgi.storage.dbapi import DBAPIStorage, Retry

log = logging.getLogger("xcap_wsgi.storage")

#: Server-side errors that mean "lost a race": duplicate key, deadlock.
RACE_ERRORS = {1062, 1213}
#: lock wait timeout, too many connections, server shutting down / read-only
BUSY_ERRORS = {1205, 1040, 1053, 1290, 1836}
DUPLICATE_INDEX = 1061
CONNECT_TIMEOUT_S = 3
LOCK_WAIT_TIMEOUT_S = 10


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
