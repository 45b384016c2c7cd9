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
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from xcap_wsgi.storage import sql
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
from xcap_wsgi.storage.outbox import Outbox
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
    """A DB-API 2 backend: one connection per thread (and per process after a fork)."""

    placeholder = "?"
    select_for_update = sql.SELECT_DOC

    def __init__(self, xcap_table: str = "xcap") -> None:
        self.table = validate_table_name(xcap_table)
        self._local = threading.local()
        self._schema_ready = False
        #: the notifier's outbox, when delivery targets are configured (:meth:`enable_outbox`)
        self.outbox: Outbox | None = None
        #: the rls-services service URIs of every document, kept with each write (RS3, RS6)
        self.services = ServiceIndex(self)
        self._sql = {
            name: template.format(t=self.quoted_table, p=self.placeholder)
            for name, template in (
                ("get", sql.SELECT_DOC),
                ("lock", self.select_for_update),
                ("by_type", sql.SELECT_BY_TYPE),
                ("owned", sql.SELECT_OWNED),
                ("insert", sql.INSERT_DOC),
                ("update", sql.UPDATE_DOC),
                ("delete", sql.DELETE_DOC),
                ("dump", sql.SELECT_DUMP),
                ("version", sql.SELECT_VERSION),
                ("add_version", sql.INSERT_VERSION),
            )
        }

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
    def _create_schema(self, cursor: Any) -> None: ...

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

    def get(self, doc_uri: str) -> Document | None:
        self.ensure_ready()
        row = self.run(self._get, doc_uri)
        return None if row is None else Document(bytes(row[0]), row[1])

    def _get(self, cursor: Any, doc_uri: str) -> Any:
        cursor.execute(self._sql["get"], (doc_uri,))
        return cursor.fetchone()

    def update(self, key: DocKey, change: Change, describe: Describe | None = None) -> WriteResult:
        self.ensure_ready()
        result: WriteResult = self.run(self._update, key, change, describe)
        return result

    def _update(self, cursor: Any, key: DocKey, change: Change, describe: Describe | None) -> WriteResult:
        self._begin(cursor)
        cursor.execute(self._sql["lock"], (key.doc_uri,))
        row = cursor.fetchone()
        current = None if row is None else Document(bytes(row[0]), row[1])
        self._local.writing = cursor  # what change's validation looks up sees this transaction
        try:
            new = change(current)
        finally:
            self._local.writing = None
        etag: str | None = None
        if new is None:
            if current is not None:
                cursor.execute(self._sql["delete"], (key.doc_uri,))
        else:
            etag = new_etag()
            if current is None:
                cursor.execute(self._sql["insert"], (key.username, key.domain, new, key.doc_type, etag, key.doc_uri))
            else:
                cursor.execute(self._sql["update"], (new, etag, key.username, key.domain, key.doc_type, key.doc_uri))
        self.services.write(cursor, key, new, etag)
        if describe is not None and self.outbox is not None and self.outbox.sinks and (current or new) is not None:
            self.outbox.record(cursor, key.doc_uri, describe(current, etag))
        self._commit(cursor.connection)
        return WriteResult(created=current is None and new is not None, etag=etag)

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
        return [(uri, bytes(doc)) for uri, doc in cursor.fetchall()]

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
        LookupError when the table is missing (it may be another program's, e.g. OpenXCAP's)."""
        if not self.run(self._table_exists):
            raise LookupError(f"no table {self.table!r} in {self.description}")
        after = -(2**63)
        while rows := self.run(self._dump, after):
            yield from rows
            after = rows[-1].id

    def _table_exists(self, cursor: Any) -> bool:
        mysql = self.placeholder == "%s"  # as the outbox tells the dialects apart
        cursor.execute(sql.MYSQL_TABLE_EXISTS if mysql else sql.SQLITE_TABLE_EXISTS, (self.table,))
        return bool(cursor.fetchone()[0])

    def _dump(self, cursor: Any, after: int) -> list[StoredRow]:
        cursor.execute(self._sql["dump"], (after,))
        return [StoredRow(int(i), DocKey(uri, user, domain, int(doc_type)), Document(_blob(doc), etag))
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
            cursor.execute(self._sql["lock"], (key.doc_uri,))
            if cursor.fetchone() is None:
                cursor.execute(self._sql["insert"], (key.username, key.domain, document.doc, key.doc_type,
                                                     document.etag, key.doc_uri))
                created += 1
            elif replace:
                cursor.execute(self._sql["update"], (document.doc, document.etag, key.username, key.domain,
                                                     key.doc_type, key.doc_uri))
                replaced += 1
            else:
                raise DocumentExists(key.doc_uri)
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
        self._create_schema(cursor)
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
