"""What the SQL backends share: per-thread connections, the atomic update loop, the
rls-services service index kept in it (:mod:`.services`), and the bulk paths of export and
import (:meth:`DBAPIStorage.dump`, :meth:`DBAPIStorage.load`)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from abc import abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from xcap_wsgi.storage import dialects, sql
from xcap_wsgi.storage.base import (
    XCAP_TABLE_VERSION,
    Change,
    Describe,
    DocKey,
    Document,
    Storage,
    StorageUnavailable,
    WriteResult,
    new_etag,
    validate_table_name,
)
from xcap_wsgi.storage.dialects import Dialect
from xcap_wsgi.storage.outbox import Outbox
from xcap_wsgi.storage.paths import PathClaims
from xcap_wsgi.storage.services import ServiceIndex

log = logging.getLogger("xcap_wsgi.storage")

#: How often a transaction that lost a race (duplicate key, deadlock) is replayed.
MAX_ATTEMPTS = 8


class Retry(Exception):
    """The transaction lost a race with another writer and is replayed from the start."""


class TimedOut(Exception):
    """The database was waited for as long as allowed (busy or lock wait, a read or write
    that never completed): unavailable at once, never replayed, so no call waits twice."""


class DocumentExists(Exception):
    """:meth:`DBAPIStorage.load` met a document that is stored already; nothing was written."""

    def __init__(self, doc_uri: str) -> None:
        super().__init__(f"{doc_uri} exists already")
        self.doc_uri = doc_uri


@dataclass(frozen=True)
class StoredRow:
    """One row as :meth:`DBAPIStorage.dump` reads it: its id, owner and type, bytes and ETag."""

    id: int
    key: DocKey
    document: Document


def _blob(value: Any) -> bytes:
    """A ``doc`` value as bytes (a foreign table may hold text)."""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _as_stored(doc_type: int, doc_uri: str) -> int:
    return doc_type


def unique_keys(rows: Iterable[tuple[Any, Any, Any]]) -> list[tuple[str, ...]]:
    """(key name, column, position) rows (:data:`~.sql.UNIQUE_KEYS`) → each key's columns in order."""
    keys: dict[str, list[tuple[int, str]]] = {}
    for name, column, position in rows:
        keys.setdefault(str(name), []).append((int(position), str(column)))
    return [tuple(column for _, column in sorted(columns)) for columns in keys.values()]


class _Held:
    """One thread's connection, closed explicitly when its thread ends or its storage is
    dropped: Python 3.13 warns about a connection left to the garbage collector."""

    __slots__ = ("__weakref__", "close", "conn", "pid")

    def __init__(self, conn: Any) -> None:
        self.conn, self.pid = conn, os.getpid()
        self.close = weakref.finalize(self, _close_quietly, conn)


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):  # already broken: nothing to release
        conn.close()


class DBAPIStorage(Storage):
    """A DB-API 2 backend: one connection per thread (and per process after a fork).

    ``schema`` is the table's layout (:mod:`.dialects`): ``kamailio`` or ``opensips`` creates
    that layout when the table is missing and refuses an existing table of the other; None
    (the default) takes an existing table's as it is and creates Kamailio's.
    """

    placeholder = "?"
    #: which statements of :mod:`.sql` this backend runs: ``sqlite``, ``mysql`` or ``postgresql``
    backend = "sqlite"

    def __init__(self, xcap_table: str = "xcap", *, schema: str | None = None) -> None:
        self.table = validate_table_name(xcap_table)
        self.wanted = dialects.dialect_named(schema)
        #: the table's layout, known once the schema is ensured (or the table read, :meth:`dump`)
        self.dialect: Dialect | None = None
        self._local = threading.local()
        self._schema_ready = False
        #: the notifier's outbox, when delivery targets are configured (:meth:`enable_outbox`)
        self.outbox: Outbox | None = None
        #: the rls-services service URIs of every document, kept with each write (RS3, RS6)
        self.services = ServiceIndex(self)
        #: a directory and a document never share a name (U10)
        self.paths = PathClaims(self)
        self._sql: dict[str, str] = {}
        self._by_uri = True

    def _use(self, dialect: Dialect) -> Dialect:
        """Take ``dialect`` as the table's and prepare its statements."""
        self._sql = {
            name: template.replace("{where}", dialect.where).format(t=self.quoted_table, p=self.placeholder,
                                                                     by_uri=sql.BY_URI[self.backend])
            for name, template in (
                ("get", sql.SELECT_ROW),
                ("get_uri", sql.SELECT_DOC),
                ("lock", sql.LOCK_ROW[self.backend]),
                ("by_type", sql.SELECT_BY_TYPE),
                ("owned", sql.SELECT_OWNED),
                ("insert", sql.INSERT_DOC),
                ("update", sql.UPDATE_ROW),
                ("delete", sql.DELETE_ROW),
                ("version", sql.SELECT_VERSION),
                ("add_version", sql.INSERT_VERSION),
            )
        }
        self.dialect = dialect
        #: Kamailio's layout finds a row by doc_uri alone (its unique key), the hot path's statement
        self._by_uri = dialect.unique_key == ("doc_uri",)
        return dialect

    @property
    @abstractmethod
    def quoted_table(self) -> str: ...

    @abstractmethod
    def _connect(self) -> Any: ...

    @abstractmethod
    def _begin(self, cursor: Any) -> None: ...

    @abstractmethod
    def _classify(self, exc: Exception) -> type[Exception] | None:
        """Retry for a lost race, TimedOut for a wait that ran out, StorageUnavailable for
        a dead or busy database, None otherwise."""

    @abstractmethod
    def _create_schema(self, cursor: Any, dialect: Dialect, new: bool) -> None:
        """The ``version`` table when missing and, when ``new``, the table in ``dialect``'s layout
        with its indexes; then a transaction is open for the version row."""

    @abstractmethod
    def _unique_keys(self, cursor: Any) -> list[tuple[str, ...]]:
        """The column lists of the table's unique, non-primary keys, each in key order."""

    def _index_prefix(self) -> str:
        """``{n}``: what keeps this table's index names apart in the database (none in MySQL)."""
        return "" if self.backend == "mysql" or (self.table == "xcap" and self.backend == "sqlite") else self.table + "_"

    # -- connections ---------------------------------------------------------------
    def _connection(self) -> tuple[Any, bool]:
        """This thread's connection and whether it was just opened."""
        held = getattr(self._local, "held", None)
        if held is not None and held.pid == os.getpid():
            return held.conn, False
        try:
            conn = self._connect()
        except Exception as exc:
            if self._classify(exc) is None:
                raise
            log.warning("cannot connect to %s: %s", self.description, exc)
            raise StorageUnavailable(str(exc)) from exc
        self._local.held = _Held(conn)
        return conn, True

    def close(self) -> None:
        """Close this thread's connection now; another thread's closes when that thread
        ends or this storage is dropped (:class:`_Held`)."""
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            held.close()

    def run(self, work: Any, *args: Any) -> Any:
        """Run ``work(cursor, *args)`` on this thread's connection.

        Replays the whole unit on a lost race, and once on a reused connection that
        turns out dead (the database restarted while it was idle); never after a
        timeout, which took its full wait already (issue 9).
        """
        for attempt in range(MAX_ATTEMPTS):
            conn, fresh = self._connection()
            try:
                cursor = conn.cursor()
                try:
                    return work(cursor, *args)
                finally:
                    cursor.close()
            except Exception as exc:
                kind = self._classify(exc)
                self._rollback(conn)
                if kind is Retry:
                    continue
                if kind is None:
                    raise
                self.close()
                if kind is StorageUnavailable and not fresh and attempt == 0 and not getattr(exc, "after_commit", False):
                    continue
                log.warning("database %s unavailable: %s", self.description, exc)
                raise StorageUnavailable(str(exc)) from exc
        raise StorageUnavailable(f"gave up after {MAX_ATTEMPTS} conflicting attempts")

    @staticmethod
    def _rollback(conn: Any) -> None:
        with contextlib.suppress(Exception):  # connection already gone: nothing was committed
            conn.rollback()

    # -- the contract --------------------------------------------------------------
    def enable_outbox(self, sinks: Sequence[str]) -> Outbox:
        """Write a change event for each of ``sinks`` with every committed write (issue 8);
        the outbox tables are created with the schema. An empty list creates the tables only."""
        self.outbox = Outbox(self, sinks)
        self._schema_ready = False
        return self.outbox

    def get(self, key: DocKey | str) -> Document | None:
        self.ensure_ready()
        row = self.run(self._get, key)
        return None if row is None else Document(_blob(row[0]), row[1])

    def _get(self, cursor: Any, key: DocKey | str) -> Any:
        if isinstance(key, str):
            cursor.execute(self._sql["get_uri"], (key,))
        elif self._by_uri:
            cursor.execute(self._sql["get_uri"], (key.doc_uri,))
        else:
            cursor.execute(self._sql["get"], self._key_params(key))
        return cursor.fetchone()

    def _key_params(self, key: DocKey) -> tuple[object, ...]:
        assert self.dialect is not None
        return self.dialect.key_params(self.dialect.stored(key))

    def update(self, key: DocKey, change: Change, describe: Describe | None = None) -> WriteResult:
        self.ensure_ready()
        result: WriteResult = self.run(self._update, key, change, describe)
        return result

    def _update(self, cursor: Any, key: DocKey, change: Change, describe: Describe | None) -> WriteResult:
        self._begin(cursor)
        where = self._key_params(key)
        cursor.execute(self._sql["lock"], where)
        row = cursor.fetchone()
        current = None if row is None else Document(_blob(row[0]), row[1])
        self._local.writing = cursor  # what change's validation looks up sees this transaction
        try:
            new = change(current)
        finally:
            self._local.writing = None
        etag: str | None = None
        if new is None:
            if current is not None:
                cursor.execute(self._sql["delete"], where)
        else:
            etag = new_etag()
            self._write_row(cursor, key, current is None, new, etag, where)
        self.services.write(cursor, key, new, etag)
        self.paths.write(cursor, key, current, etag)
        if describe is not None and self.outbox is not None and self.outbox.sinks and (current or new) is not None:
            self.outbox.record(cursor, key.doc_uri, describe(current, etag))
        self._commit(cursor.connection)
        return WriteResult(created=current is None and new is not None, etag=etag)

    def _write_row(self, cursor: Any, key: DocKey, new_row: bool, doc: bytes, etag: str,
                   where: tuple[object, ...]) -> None:
        """Insert or replace the row of ``key`` (doc_type as the dialect stores it)."""
        assert self.dialect is not None
        stored = self.dialect.stored(key)
        if new_row:
            cursor.execute(self._sql["insert"], (stored.username, stored.domain, doc,
                                                 stored.doc_type, etag, stored.doc_uri))
        else:
            cursor.execute(self._sql["update"], (doc, etag, stored.username, stored.domain,
                                                 stored.doc_type, *where))

    @staticmethod
    def _commit(conn: Any) -> None:
        try:
            conn.commit()
        except Exception as exc:
            exc.after_commit = True  # type: ignore[attr-defined]  # outcome unknown: never replay
            raise

    def services_taken(self, uris: Collection[str], doc_uri: str) -> set[str] | None:
        """RS3 from the service index, in the writing transaction when ``update``'s change asks."""
        if self.services.indexer is None:
            return None
        writing = getattr(self._local, "writing", None)
        if writing is not None:
            return self.services.taken(writing, uris, doc_uri)
        self.ensure_ready()
        taken: set[str] = self.run(self.services.taken, uris, doc_uri)
        return taken

    def indexed_services(self) -> list[tuple[str, bytes]] | None:
        if self.services.indexer is None:
            return None
        self.ensure_ready()
        return self.services.listing()

    def documents(self, doc_type: int) -> Iterator[tuple[str, bytes]]:
        self.ensure_ready()
        rows = self.run(self._documents, doc_type)
        return iter(rows)

    def _documents(self, cursor: Any, doc_type: int) -> list[tuple[str, bytes]]:
        cursor.execute(self._sql["by_type"], (doc_type,))
        return [(uri, _blob(doc)) for uri, doc in cursor.fetchall()]

    def owned(self, username: str, domain: str) -> list[tuple[str, str, int]]:
        self.ensure_ready()
        rows: list[tuple[str, str, int]] = self.run(self._owned, username, domain)
        return rows

    def _owned(self, cursor: Any, username: str, domain: str) -> list[tuple[str, str, int]]:
        cursor.execute(self._sql["owned"], (username, domain))
        return [(uri, etag, int(size)) for uri, etag, size in cursor.fetchall()]

    def dump(self) -> Iterator[StoredRow]:
        """Every row as stored, ETags included, in id order, read :data:`~.sql.DUMP_BATCH`
        at a time: memory stays flat and no lock is held, so this is not a snapshot (a
        document written meanwhile is read as its batch finds it). Nothing is created:
        LookupError when the table is missing (it may be another program's, e.g. OpenXCAP's);
        doc_types in Kamailio's codes (:meth:`.Dialect.canonical`), as stored in a table of
        neither layout."""
        try:
            canonical = self.read_dialect().canonical
        except ValueError:  # another program's layout: its rows as they are
            canonical = _as_stored
        statement = sql.SELECT_DUMP.format(t=self.quoted_table, p=self.placeholder)
        after = -(2**63)
        while rows := self.run(self._dump, statement, after, canonical):
            yield from rows
            after = rows[-1].id

    def read_dialect(self) -> Dialect:
        """The dialect of the existing table, creating nothing: LookupError when the table is
        missing (it may be another program's, e.g. OpenXCAP's), ValueError for another layout."""
        if self.dialect is None:
            if not self.run(self._table_exists):
                raise LookupError(f"no table {self.table!r} in {self.description}")
            self._use(self.run(self._detect))
        assert self.dialect is not None
        return self.dialect

    def _detect(self, cursor: Any) -> Dialect:
        return dialects.check(self.table, dialects.detect(self.table, self._unique_keys(cursor)), self.wanted)

    def _table_exists(self, cursor: Any) -> bool:
        return self.table_exists(cursor, self.table)

    def table_exists(self, cursor: Any, name: str) -> bool:
        """Whether the table ``name`` exists in this database (its schema, PostgreSQL)."""
        cursor.execute(sql.TABLE_EXISTS[self.backend], (name,))
        return bool(cursor.fetchone()[0])

    @staticmethod
    def _dump(cursor: Any, statement: str, after: int, canonical: Callable[[int, str], int]) -> list[StoredRow]:
        cursor.execute(statement, (after,))
        return [StoredRow(int(i), DocKey(uri, user, domain, canonical(int(doc_type), uri)), Document(_blob(doc), etag))
                for i, uri, user, domain, doc_type, etag, doc in cursor.fetchall()]

    def load(self, documents: Iterable[tuple[DocKey, Document]], *, replace: bool = False) -> tuple[int, int]:
        """Store every document with the ETag it comes with, in one transaction: all or none.

        Returns (created, replaced). A document already stored raises DocumentExists
        unless ``replace``; an exception from ``documents`` aborts the import. No change
        event is recorded: the rows are restored, not changed by a client; the service index
        follows them, without RS3 (a service URI held already stays its holder's). ``documents``
        is read once, so a transaction that fails after reading it is not replayed
        (StorageUnavailable: run the import again).
        """
        self.ensure_ready()
        source = iter(documents)
        begun = False

        def work(cursor: Any) -> tuple[int, int]:
            nonlocal begun
            self._begin(cursor)
            if begun:
                raise StorageUnavailable("the import was interrupted (a concurrent writer or a lost connection);"
                                         " nothing was written")
            begun = True
            return self._load(cursor, source, replace)

        result: tuple[int, int] = self.run(work)
        return result

    def _load(self, cursor: Any, documents: Iterator[tuple[DocKey, Document]], replace: bool) -> tuple[int, int]:
        created = replaced = 0
        for key, document in documents:
            where = self._key_params(key)
            cursor.execute(self._sql["lock"], where)
            new_row = cursor.fetchone() is None
            if not (new_row or replace):
                raise DocumentExists(key.doc_uri)
            self._write_row(cursor, key, new_row, document.doc, document.etag, where)
            created, replaced = created + new_row, replaced + (not new_row)
            self.services.restore(cursor, key, document)
        self._commit(cursor.connection)
        return created, replaced

    def ensure_schema(self) -> None:
        """The xcap table as the contract says, and the service index's tables: built when
        new, else checked against the xcap table (:meth:`.ServiceIndex.prepare`)."""
        self.run(self._ensure_schema)
        self.services.prepare()
        self._schema_ready = True

    def _ensure_schema(self, cursor: Any) -> None:
        if self.outbox is not None:
            self.outbox.create(cursor)
        self.paths.create(cursor)
        new = not self._table_exists(cursor)
        dialect = self._use((self.wanted or dialects.DIALECTS[dialects.KAMAILIO]) if new else self._detect(cursor))
        self._create_schema(cursor, dialect, new)
        cursor.execute(self._sql["version"], (self.table,))
        row = cursor.fetchone()
        if row is None:
            cursor.execute(self._sql["add_version"], (self.table, XCAP_TABLE_VERSION))
        elif int(row[0]) != XCAP_TABLE_VERSION:
            log.warning("table %s has version %s in table 'version'; xcap-wsgi writes version %s",
                        self.table, row[0], XCAP_TABLE_VERSION)
        cursor.connection.commit()

    def ensure_ready(self) -> None:
        """Create the schema on first use in this process, so a fresh database just works."""
        if not self._schema_ready:
            self.ensure_schema()
