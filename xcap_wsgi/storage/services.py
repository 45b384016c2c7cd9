"""The rls-services service index: every service URI beside the xcap table (RS3, RS6).

::

    storage.services_taken(["sip:friends@example.com"], doc_uri)  # RS3: one indexed lookup
    storage.indexed_services()                                   # RS6: the global index's rows
    storage.services.reindex()                                   # xcap-wsgi reindex

Two tables beside the xcap table, written in the transaction that writes the document
(:meth:`~.DBAPIStorage.update`, :meth:`~.DBAPIStorage.load`). ``<xcap>_rls_services``
holds each ``<service>`` of every rls-services document: its percent-decoded URI, its
position and the standalone element the global index copies, with a unique key on the URI,
so two documents taking one URI at the same instant cannot both commit. The loser's
transaction replays, finds the URI taken and answers 409 uniqueness-failure (RS3).
``<xcap>_rls_documents`` holds the (doc_uri, etag) indexed for each document, so a document
another program (Kamailio) wrote, changed or deleted shows up as a row without its twin: the
server counts those when it starts and, at most once a minute, when the global index is read,
and logs a warning naming ``xcap-wsgi reindex``, which rebuilds both tables in one transaction.

What a service is inside a document is the rls-services usage's to say: it registers a
:class:`ServiceIndexer` with :func:`use` as it registers its AUID, so storage parses nothing.
Every statement is in :mod:`.sql`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from xcap_wsgi.storage import sql
from xcap_wsgi.storage.base import DocKey, Document

if TYPE_CHECKING:
    from xcap_wsgi.storage.dbapi import DBAPIStorage

log = logging.getLogger("xcap_wsgi.storage")

#: seconds between two staleness checks made by reads of the global index
CHECK_INTERVAL_S = 60.0
#: the most URIs one statement looks up (SQLite before 3.32 allows 999 parameters)
LOOKUP_BATCH = 500

#: ``lookup(uris)``: which of these service URIs documents other than the one written hold
Lookup = Callable[[Collection[str]], set[str]]


@dataclass(frozen=True)
class Service:
    """One service of a stored document: its URI percent-decoded (RS3 compares these) and
    its element standing alone, as the global index copies it (RS6)."""

    uri: str
    element: bytes


@dataclass(frozen=True)
class ServiceIndexer:
    """What the rls-services usage tells the index.

    ``services(doc_uri, doc)`` lists the services of a stored document (none for one that
    does not parse, or that is not a user's document); ``refuse(doc, taken, lookup)`` raises
    the 409 for a write whose services ``taken`` other documents hold, with alternatives
    checked through ``lookup``.
    """

    doc_type: int
    services: Callable[[str, bytes], list[Service]]
    refuse: Callable[[bytes, set[str], Lookup], NoReturn]


_indexers: list[ServiceIndexer] = []


def use(indexer: ServiceIndexer) -> ServiceIndexer:
    """Index the documents of ``indexer.doc_type`` with ``indexer`` (the last one registered wins)."""
    _indexers.append(indexer)
    return indexer


@dataclass(frozen=True)
class Reindexed:
    """What :meth:`ServiceIndex.reindex` found: documents, services, and the services whose URI
    an earlier document holds already (another program broke RS3; the earlier one keeps it)."""

    documents: int
    services: int
    repeated: int


def uri_hash(uri: str) -> str:
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()


def _duplicate(doc_uri: str, position: int) -> int:
    """The key of a row repeating a held URI: its own, positive (0 is the holder's)."""
    return 1 + int(hashlib.sha256(f"{position}:{doc_uri}".encode()).hexdigest()[:15], 16)


def _batches(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), LOOKUP_BATCH):
        yield items[start:start + LOOKUP_BATCH]


class ServiceIndex:
    """The service tables next to ``storage``'s xcap table."""

    def __init__(self, storage: DBAPIStorage) -> None:
        self.storage = storage
        self.mysql = storage.backend == "mysql"
        base = storage.table[: 64 - len("_rls_documents")]
        self.tables = (base + "_rls_services", base + "_rls_documents")
        mark = "`" if self.mysql else '"'
        self._names = {"t": storage.quoted_table, "s": mark + self.tables[0] + mark, "d": mark + self.tables[1] + mark,
                       "p": storage.placeholder, "n": "" if self.mysql else base + "_"}
        self._checked = -math.inf

    @property
    def _by_owner(self) -> bool:
        """Whether the index rows carry username and domain (OpenSIPS's layout: :mod:`.dialects`)."""
        return self.storage.read_dialect().keyed_by_owner

    @property
    def indexer(self) -> ServiceIndexer | None:
        return _indexers[-1] if _indexers else None

    def _sql(self, template: str, count: int = 0, **extra: str) -> str:
        assert self.indexer is not None
        dialect, k, p = self.storage.read_dialect(), int(self.indexer.doc_type), self.storage.placeholder
        owner = dialect.keyed_by_owner
        names = {"k": str(k), "m": ", ".join([p] * count), "js": dialect.join("s", k), "jd": dialect.join("d", k),
                 "oc": ", username, domain" if owner else "", "ov": f", {p}, {p}" if owner else "",
                 "owner": sql.SERVICES_OWNER_COLUMNS.format(username="", domain="") if owner else ""}
        return template.format(**self._names, **{**names, **extra})

    # -- schema ------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the tables when missing, index every document when they are new, else check
        for documents written by another program (ensure_schema, after the xcap table exists)."""
        if self.indexer is None:
            return
        if self.storage.run(self._create):
            done = self.reindex()
            if done.documents:
                log.info("indexed the rls-services documents of table %s: %d documents, %d services",
                         self.storage.table, done.documents, done.services)
        else:
            self.storage.run(self.check)

    def _create(self, cursor: Any) -> bool:
        """Both tables, when missing; True when they were."""
        created = not self.storage.table_exists(cursor, self.tables[1])
        types = self._join_types(cursor) if self.mysql else {}
        owner = sql.SERVICES_OWNER_COLUMNS.format(username=types.get("username", ""), domain=types.get("domain", ""))
        for statement in sql.CREATE_SERVICES[self.storage.backend]:
            cursor.execute(self._sql(statement, doc_uri=types.get("doc_uri", ""), etag=types.get("etag", ""),
                                     owner=owner if self._by_owner else ""))
        if self.mysql:
            self._match_join_columns(cursor)
        return created

    def _join_columns(self, cursor: Any) -> dict[tuple[str, str], tuple[str, str, int]]:
        cursor.execute(sql.MYSQL_JOIN_COLUMNS, (self.storage.table, *self.tables))
        return {(table, column): (charset, collation, int(length))
                for table, column, charset, collation, length in cursor.fetchall()}

    def _join_types(self, cursor: Any) -> dict[str, str]:
        """The xcap table's character set and collation of the joined columns (doc_uri, etag, and
        username and domain in OpenSIPS's layout), as column options:
        a join between columns of different collations is an error in MySQL, and one in the
        xcap table's own collation uses its index (Kamailio's tables take the server's default)."""
        columns = self._join_columns(cursor)
        return {column: f" CHARACTER SET {charset} COLLATE {collation}"
                for (table, column), (charset, collation, _) in columns.items() if table == self.storage.table}

    def _match_join_columns(self, cursor: Any) -> None:
        """An index table made before the xcap table's collation changed follows it."""
        columns = self._join_columns(cursor)
        for (table, column), (charset, collation, length) in columns.items():
            theirs = columns.get((self.storage.table, column))
            if table != self.storage.table and theirs is not None and theirs[:2] != (charset, collation):
                cursor.execute(sql.MYSQL_ALTER_JOIN_COLUMN.format(table=f"`{table}`", column=column, length=length,
                                                                  charset=theirs[0], collation=theirs[1]))

    # -- inside the writing transaction ----------------------------------------------
    def write(self, cursor: Any, key: DocKey, doc: bytes | None, etag: str | None) -> None:
        """The document's rows replaced by those of ``doc`` (None: removed). URIs that another
        stored document holds make the usage refuse the write (RS3)."""
        indexer = self.indexer
        if indexer is None or key.doc_type != indexer.doc_type:
            return
        self._remove(cursor, key.doc_uri)
        if doc is None or etag is None:
            return
        services = indexer.services(key.doc_uri, doc)
        taken, _ = self._holders(cursor, [s.uri for s in services])
        if taken:
            indexer.refuse(doc, taken, lambda uris: self.taken(cursor, uris, key.doc_uri))
        self._insert(cursor, key, etag, services, set())

    def restore(self, cursor: Any, key: DocKey, document: Document) -> int:
        """As :meth:`write`, for a document imported as it was stored: a URI held already is
        kept by its holder and repeated here unclaimed. Returns how many repeat one."""
        indexer = self.indexer
        if indexer is None or key.doc_type != indexer.doc_type:
            return 0
        self._remove(cursor, key.doc_uri)
        services = indexer.services(key.doc_uri, document.doc)
        _, claimed = self._holders(cursor, [s.uri for s in services])
        return self._insert(cursor, key, document.etag, services, claimed)

    def _remove(self, cursor: Any, doc_uri: str) -> None:
        cursor.execute(self._sql(sql.SERVICES_DELETE), (doc_uri,))
        cursor.execute(self._sql(sql.SERVICES_DELETE_DOCUMENT), (doc_uri,))

    def _holders(self, cursor: Any, uris: Sequence[str]) -> tuple[set[str], set[str]]:
        """The URIs of ``uris`` other stored documents hold, and the hashes of those claimed.
        Rows of documents gone from the xcap table (deleted by another program) are dropped
        on the way, so they free their URIs."""
        by_hash = {uri_hash(u): u for u in uris}
        held: set[str] = set()
        claimed: set[str] = set()
        gone: set[tuple[str, str]] = set()
        for batch in _batches(list(by_hash)):
            cursor.execute(self._sql(sql.SERVICES_HOLDERS, len(batch)), tuple(batch))
            for digest, duplicate, doc_uri, etag, stored in cursor.fetchall():
                if stored is None:
                    gone.add((doc_uri, etag))
                    continue
                held.add(by_hash[digest])
                if int(duplicate) == 0:
                    claimed.add(digest)
        self._drop(cursor, sorted(gone))
        return held, claimed

    def _drop(self, cursor: Any, versions: list[tuple[str, str]]) -> None:
        """The rows of these (doc_uri, etag), exactly: a writer that re-creates the document
        meanwhile keeps the rows it writes."""
        if versions:
            for statement in sql.SERVICES_DROP_VERSION:
                cursor.executemany(self._sql(statement), versions)

    def _insert(self, cursor: Any, key: DocKey, etag: str, services: list[Service], claimed: set[str]) -> int:
        """The document's rows; a URI whose hash is in ``claimed`` (which grows) is repeated
        without holding it. Returns how many are."""
        doc_uri, owner = key.doc_uri, (key.username, key.domain) if self._by_owner else ()
        rows: list[tuple[object, ...]] = []
        repeated = 0
        for position, service in enumerate(services):
            digest = uri_hash(service.uri)
            repeated += digest in claimed
            duplicate = _duplicate(doc_uri, position) if digest in claimed else 0
            rows.append((digest, duplicate, doc_uri, etag, position, service.uri, service.element, *owner))
            claimed.add(digest)
        cursor.execute(self._sql(sql.SERVICES_INSERT_DOCUMENT), (doc_uri, etag, *owner))
        if rows:
            cursor.executemany(self._sql(sql.SERVICES_INSERT), rows)
        return repeated

    # -- reads -------------------------------------------------------------------------
    def taken(self, cursor: Any, uris: Collection[str], doc_uri: str) -> set[str]:
        """RS3: which of ``uris`` stored documents other than ``doc_uri`` hold."""
        by_hash = {uri_hash(u): u for u in uris}
        found: set[str] = set()
        for batch in _batches(list(by_hash)):
            cursor.execute(self._sql(sql.SERVICES_TAKEN, len(batch)), (*batch, doc_uri))
            found.update(by_hash[digest] for (digest,) in cursor.fetchall())
        return found

    def listing(self) -> list[tuple[str, bytes]]:
        """RS6: (doc_uri, service) of every stored document, in doc_uri and then document order."""
        if time.monotonic() - self._checked >= CHECK_INTERVAL_S:
            self.storage.run(self.check)
        rows: list[tuple[str, int, bytes]] = self.storage.run(self._listing)
        rows.sort(key=lambda row: (row[0], row[1]))  # code point order, whatever the column's collation
        return [(doc_uri, service) for doc_uri, _, service in rows]

    def _listing(self, cursor: Any) -> list[tuple[str, int, bytes]]:
        """Two passes, no lookup per row: the documents still stored, and every row."""
        cursor.execute(self._sql(sql.SERVICES_STORED))
        stored = {doc_uri for (doc_uri,) in cursor.fetchall()}
        cursor.execute(self._sql(sql.SERVICES_LISTING))
        return [(doc_uri, int(position), bytes(service)) for doc_uri, position, service in cursor.fetchall()
                if doc_uri in stored]

    def check(self, cursor: Any) -> None:
        """Compare the index with the xcap table: the rows of documents another program
        deleted are dropped, documents it wrote or changed are warned about (they need
        parsing: ``xcap-wsgi reindex``)."""
        self._checked = time.monotonic()
        cursor.execute(self._sql(sql.SERVICES_GONE))
        gone = [(doc_uri, etag) for doc_uri, etag in cursor.fetchall()]
        if gone:
            self._drop(cursor, gone)
            log.info("dropped the service index rows of %d rls-services documents deleted from table %s",
                     len(gone), self.storage.table)
        cursor.execute(self._sql(sql.SERVICES_UNINDEXED))
        unindexed = int(cursor.fetchone()[0])
        if unindexed:
            log.warning("%d rls-services documents of table %s are not in the service index as stored (written by"
                        " another program?): service URI uniqueness and the global index miss them until"
                        " `xcap-wsgi reindex` rebuilds the index", unindexed, self.storage.table)

    # -- xcap-wsgi reindex -------------------------------------------------------------
    def reindex(self) -> Reindexed:
        """Rebuild the index from every rls-services document of the xcap table, in one
        transaction; a URI repeated by another program's documents stays the earliest's.
        LookupError when the xcap table is missing (nothing is created then)."""
        if self.indexer is None:
            raise LookupError("no application usage indexes rls-services documents")
        self.storage.read_dialect()  # LookupError when the table is missing
        self.storage.run(self._create)
        result: Reindexed = self.storage.run(self._reindex)
        self._checked = time.monotonic()
        return result

    def _reindex(self, cursor: Any) -> Reindexed:
        assert self.indexer is not None
        self.storage._begin(cursor)
        for statement in sql.SERVICES_CLEAR:
            cursor.execute(self._sql(statement))
        claimed: set[str] = set()
        documents = services = repeated = 0
        after = -(2**63)
        while True:
            cursor.execute(self._sql(sql.SERVICES_SOURCE), (after,))
            rows = cursor.fetchall()
            if not rows:
                break
            for _, doc_uri, etag, doc, username, domain in rows:
                found = self.indexer.services(doc_uri, doc.encode() if isinstance(doc, str) else bytes(doc))
                key = DocKey(doc_uri, username, domain, self.indexer.doc_type)
                repeated += self._insert(cursor, key, etag, found, claimed)
                documents, services = documents + 1, services + len(found)
            after = rows[-1][0]
        self.storage._commit(cursor.connection)
        return Reindexed(documents, services, repeated)

