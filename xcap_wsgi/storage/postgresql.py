"""PostgreSQL through psycopg 3, writing Kamailio's (or OpenSIPS's) ``xcap`` table.

::

    storage = PostgreSQLStorage("postgresql://kamailio:secret@127.0.0.1/kamailio")
    storage = PostgreSQLStorage("postgres://opensips@db.example.com:5433/opensips", schema="opensips")

``pip install 'xcap-wsgi[postgresql]'`` installs psycopg (imported lazily: the package works
without it). The rows are those Kamailio's ``db_postgres`` reads (table-dialects.md): ``doc``
is ``BYTEA`` and always sent as a binary parameter (bytes), never as a text literal, so
Kamailio's ``PQunescapeBytea`` gives back the exact bytes. The table's layout is Kamailio's
or OpenSIPS's (:mod:`.dialects`), detected from the catalog, never from index names.

Writes run in READ COMMITTED transactions that lock the row with ``SELECT ... FOR UPDATE``;
two writers creating one document race on the unique key and the loser (23505) replays its
transaction, now seeing the row; a serialization failure or deadlock (40001, 40P01) replays
too, as MySQL's 1213 does.

Every wait is bounded, so that a database which accepts connections and never answers is a
503 with ``Retry-After`` (:class:`StorageUnavailable`) within 10 s (issue 9):

- ``CONNECT_TIMEOUT_S`` = 2 s for the connection, its handshake included (libpq's
  ``connect_timeout``; 2 s is its smallest);
- ``LOCK_TIMEOUT_S`` = 5 s for ``lock_timeout``: a writer queued behind a row lock waits
  this long, then the server answers 55P03;
- ``STATEMENT_TIMEOUT_S`` = 6 s for ``statement_timeout`` (57014): a statement the server
  works on for longer is cancelled by the server;
- ``READ_TIMEOUT_S`` = 7 s for each wait on the connection's socket (a silent server or
  network): the server's own answers come first.

A timeout is never replayed on a new connection, so a database that stops answering costs a
call at most one connect and one read timeout: 2 + 7 = 9 s.
"""

from __future__ import annotations

import functools
import logging
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from xcap_wsgi.storage import sql
from xcap_wsgi.storage.base import StorageUnavailable
from xcap_wsgi.storage.dbapi import DBAPIStorage, Retry, TimedOut, unique_keys
from xcap_wsgi.storage.dialects import Dialect

log = logging.getLogger("xcap_wsgi.storage")

SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_S = 2
LOCK_TIMEOUT_S = 5
STATEMENT_TIMEOUT_S = 6
READ_TIMEOUT_S = 7
#: unique violation, serialization failure, deadlock: the transaction lost a race; a table,
#: index or type another process created between ``IF NOT EXISTS`` and its own creation (two
#: workers making the schema of a new database at once)
RACE_STATES = {"23505", "40001", "40P01", "42P07", "42710"}
#: lock_timeout, statement_timeout (query_canceled): the full wait is over
TIMEOUT_STATES = {"55P03", "57014"}
#: read-only transaction (a standby), too many connections, shutting down, starting up
BUSY_STATES = {"25006", "53300", "57P01", "57P02", "57P03"}
#: libpq connection parameters a URL may carry as ``?name=value``
URL_PARAMETERS = ("sslmode", "sslrootcert", "host", "application_name")


def parse_postgresql_url(url: str) -> dict[str, Any]:
    """``postgresql://user[:pass]@host[:port]/db[?sslmode=...]`` (or ``postgres://``) → psycopg's
    connect arguments; ``?host=/var/run/postgresql`` names a Unix socket directory."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ValueError(f"the PostgreSQL URL must name one database: postgresql://user:pass@host/dbname, got {url!r}")
    args: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": parts.port or 5432,
        "user": unquote(parts.username or "postgres"),
        "dbname": database,
    }
    if parts.password:
        args["password"] = unquote(parts.password)
    query = parse_qs(parts.query)
    unknown = set(query) - set(URL_PARAMETERS)
    if unknown:
        raise ValueError(f"unsupported PostgreSQL URL parameter(s): {', '.join(sorted(unknown))}")
    args.update({name: values[0] for name, values in query.items()})
    return args


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise ValueError(f"a postgresql:// db_url needs psycopg, which cannot be imported ({exc}):"
                         " pip install 'xcap-wsgi[postgresql]'") from None
    return psycopg


class PostgreSQLStorage(DBAPIStorage):
    placeholder = "%s"
    backend = "postgresql"

    def __init__(self, url: str, xcap_table: str = "xcap", *, schema: str | None = None) -> None:
        self.connect_args = parse_postgresql_url(url)
        self._pg = _psycopg()
        self._connection_class = _bounded_connection_class(self._pg)
        super().__init__(xcap_table, schema=schema)
        a = self.connect_args
        self.description = f"postgresql://{a['user']}@{a['host']}:{a['port']}/{a['dbname']}"
        self.url = url

    @property
    def quoted_table(self) -> str:
        return f'"{self.table}"'

    def _connect(self) -> Any:
        options = (f"-c lock_timeout={LOCK_TIMEOUT_S * 1000} -c statement_timeout={STATEMENT_TIMEOUT_S * 1000}"
                   " -c default_transaction_isolation=read\\ committed")
        return self._connection_class.connect(**self.connect_args, connect_timeout=CONNECT_TIMEOUT_S,
                                              autocommit=True, options=options)

    def _begin(self, cursor: Any) -> None:
        cursor.execute("BEGIN ISOLATION LEVEL READ COMMITTED")

    def _classify(self, exc: Exception) -> type[Exception] | None:
        state = getattr(exc, "sqlstate", None)
        if state in RACE_STATES:
            return Retry
        if state in TIMEOUT_STATES or isinstance(exc, self._pg.errors._WaitTimeout):
            return TimedOut
        if state in BUSY_STATES or isinstance(exc, (self._pg.OperationalError, self._pg.InterfaceError, OSError)):
            return StorageUnavailable
        return None

    def table_exists(self, cursor: Any, name: str) -> bool:
        cursor.execute(sql.TABLE_EXISTS[self.backend], (f'"{name}"',))
        return bool(cursor.fetchone()[0])

    def _unique_keys(self, cursor: Any) -> list[tuple[str, ...]]:
        cursor.execute(sql.UNIQUE_KEYS[self.backend], (self.quoted_table,))
        return unique_keys(cursor.fetchall())

    def _create_schema(self, cursor: Any, dialect: Dialect, new: bool) -> None:
        if new:
            names = {"t": self.quoted_table, "n": self._index_prefix()}
            cursor.execute(sql.create_table(self.backend, dialect.name).format(**names))
            for statement in sql.INDEXES[dialect.name]:
                cursor.execute(statement.format(**names).replace("CREATE INDEX", "CREATE INDEX IF NOT EXISTS"))
            if dialect.name == "opensips":
                cursor.execute(sql.POSTGRESQL_OPENSIPS_SEQUENCE.format(q=f'"{self.table}_id_seq"'))
        cursor.execute(sql.CREATE_VERSION[self.backend, dialect.name])
        self._begin(cursor)


@functools.cache
def _bounded_connection_class(psycopg: Any) -> Any:
    """psycopg's connection with every wait on its socket bounded by ``READ_TIMEOUT_S``
    (psycopg raises its ``_WaitTimeout``, an OperationalError, when it runs out)."""

    class BoundedConnection(psycopg.Connection):  # type: ignore[misc]  # psycopg is optional
        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            return super().wait(gen, interval, READ_TIMEOUT_S if timeout is None else timeout)

    return BoundedConnection
