"""One auth table on the storage backends' connections (``sqlite:///path``, ``mysql://...``,
``postgresql://...``).

::

    table = SQLTable("mysql://kamailio:pw@127.0.0.1/kamailio", "subscriber", create=create_fn)
    row = table.run(lambda cursor: ...)

The per-thread (and per-process) connections, the replay of a unit of work on a dead
connection and the 503 on an unreachable database are the storage backends' own
(:class:`~xcap_wsgi.storage.dbapi.DBAPIStorage`); the ``xcap`` table is never touched.

The tables' statements come in two sets, MySQL's and SQLite's (``mysql`` tells which);
PostgreSQL runs SQLite's, but for the few it words otherwise
(:data:`~xcap_wsgi.storage.sql.POSTGRESQL_INSTEAD_OF_SQLITE`), which :meth:`SQLTable.sql`
and the cursor that creates the table put in their place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from xcap_wsgi.storage import open_storage, sql
from xcap_wsgi.storage.base import TABLE_NAME_RE
from xcap_wsgi.storage.dbapi import DBAPIStorage

T = TypeVar("T")


class SQLTable:
    """A validated, quoted table in the database at ``db_url``, created on first use.

    ``create(table, cursor)`` creates it (idempotently); statements are formatted with
    :meth:`sql`, whose ``{t}`` is the quoted name, ``{p}`` the placeholder and ``{n}`` the
    prefix that keeps SQLite index names (global per database) apart.
    """

    def __init__(self, db_url: str, table: str, create: Callable[[SQLTable, Any], None]) -> None:
        if not isinstance(table, str) or not TABLE_NAME_RE.match(table):
            raise ValueError(f"table name must match {TABLE_NAME_RE.pattern}, got {table!r}")
        storage = open_storage(db_url, table)
        if not isinstance(storage, DBAPIStorage):  # pragma: no cover  (every backend is DB-API)
            raise ValueError(f"{db_url!r} is not an SQL database")
        self.storage = storage
        self.table = table
        #: ``sqlite``, ``mysql`` or ``postgresql``
        self.backend = storage.backend
        self.mysql = self.backend == "mysql"
        self._create = create
        self._ready = False

    @property
    def description(self) -> str:
        return f"{self.storage.description} table {self.table}"

    def sql(self, template: str, **names: str) -> str:
        prefix = "" if self.mysql else self.table + "_"
        template = self._instead(template)
        return template.format(t=self.storage.quoted_table, p=self.storage.placeholder, n=prefix, **names)

    def run(self, work: Callable[..., T], *args: Any) -> T:
        """``work(cursor, *args)`` on this thread's connection (autocommit), table created first."""
        if not self._ready:
            self.storage.run(self._create_table)
            self._ready = True
        result: T = self.storage.run(work, *args)
        return result

    def _instead(self, statement: str) -> str:
        return sql.POSTGRESQL_INSTEAD_OF_SQLITE.get(statement, statement) if self.backend == "postgresql" else statement

    def _create_table(self, cursor: Any) -> None:
        if self.backend == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")  # serialise creation between worker processes
        self._create(self, _Instead(cursor, self._instead) if self.backend == "postgresql" else cursor)
        if self.backend == "sqlite":
            cursor.connection.commit()

    def close(self) -> None:
        self.storage.close()


class _Instead:
    """A cursor running PostgreSQL's statement where SQLite's is given (table creation)."""

    def __init__(self, cursor: Any, instead: Callable[[str], str]) -> None:
        self._cursor, self._instead = cursor, instead

    def execute(self, statement: str, params: Any = None) -> Any:
        return self._cursor.execute(self._instead(statement), params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)
