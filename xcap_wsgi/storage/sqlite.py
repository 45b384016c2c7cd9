"""The embedded default: one SQLite file, safe for several worker processes on a host.

WAL journaling lets readers proceed while one writer commits; ``BEGIN IMMEDIATE``
takes the write lock before the row is read, which makes every
:meth:`~xcap_wsgi.storage.base.Storage.update` atomic across threads and processes;
the busy timeout makes concurrent writers queue instead of failing.

A writer waits at most ``BUSY_TIMEOUT_S`` (5 s) for the write lock; a database still
locked then is :class:`StorageUnavailable` (503 with ``Retry-After``) at once, not
retried on a new connection to wait again (issue 9).
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from xcap_wsgi.storage import sql
from xcap_wsgi.storage.base import StorageUnavailable
from xcap_wsgi.storage.dbapi import DBAPIStorage, TimedOut, unique_keys
from xcap_wsgi.storage.dialects import Dialect

BUSY_TIMEOUT_S = 5.0
#: SQLITE_BUSY, SQLITE_LOCKED (primary result codes): the busy timeout ran out
BUSY_CODES = {5, 6}


def is_busy(exc: sqlite3.Error) -> bool:
    """Whether the busy timeout ran out (``sqlite_errorcode`` is Python 3.11+)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is None:
        return "locked" in str(exc)
    return (code & 0xFF) in BUSY_CODES


class SQLiteStorage(DBAPIStorage):
    placeholder = "?"

    def __init__(self, path: str, xcap_table: str = "xcap", busy_timeout: float = BUSY_TIMEOUT_S, *,
                 schema: str | None = None) -> None:
        if not path or path == ":memory:":
            raise ValueError("SQLite storage needs a file path (an in-memory database is not shared between workers)")
        self.path = path
        self.busy_timeout = busy_timeout
        super().__init__(xcap_table, schema=schema)
        self.description = f"sqlite:///{path}"
        self.url = f"sqlite:///{path}"

    @property
    def quoted_table(self) -> str:
        return f'"{self.table}"'

    def _connect(self) -> Any:
        # one thread uses it; whichever thread drops it closes it (dbapi._Held)
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA synchronous=FULL")
        self._use_wal(conn)
        return conn

    def _use_wal(self, conn: sqlite3.Connection) -> None:
        """Switch a new database file to WAL (persistent, so this is a no-op afterwards).

        The switch needs an exclusive lock that the busy handler does not wait for, so
        several workers opening a fresh file at once retry for up to the busy timeout.
        """
        deadline = time.monotonic() + self.busy_timeout
        while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _begin(self, cursor: Any) -> None:
        cursor.execute("BEGIN IMMEDIATE")

    def _classify(self, exc: Exception) -> type[Exception] | None:
        if isinstance(exc, sqlite3.OperationalError):
            return TimedOut if is_busy(exc) else StorageUnavailable
        return StorageUnavailable if type(exc) is sqlite3.DatabaseError else None

    def _create_schema(self, cursor: Any, dialect: Dialect, new: bool) -> None:
        # index names are per database in SQLite: Kamailio's names for the default table
        names = {"t": self.quoted_table, "n": self._index_prefix()}
        cursor.execute("BEGIN IMMEDIATE")
        if new:
            cursor.execute(sql.create_table(self.backend, dialect.name).format(**names))
            for statement in sql.INDEXES[dialect.name]:
                cursor.execute(statement.format(**names).replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))
        cursor.execute(sql.CREATE_VERSION[self.backend, dialect.name])

    def _unique_keys(self, cursor: Any) -> list[tuple[str, ...]]:
        """From ``PRAGMA index_list`` (origin ``u``: a UNIQUE constraint, ``c``: CREATE UNIQUE INDEX)."""
        rows = []
        for _, name, unique, origin, *_ in cursor.execute(f"PRAGMA index_list({self.quoted_table})").fetchall():
            if unique and origin != "pk":
                quoted = '"' + name.replace('"', '""') + '"'
                rows += [(name, column, seq) for seq, _, column in cursor.execute(f"PRAGMA index_info({quoted})")]
        return unique_keys(rows)
