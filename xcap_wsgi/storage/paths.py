"""A directory and a document never share a name (RFC 4825 §6.2, U10).

::

    storage.paths.write(cursor, key, current, etag)   # in DBAPIStorage._update: a creation is checked

``.../users/sip:alice@example.com/index`` and ``.../users/sip:alice@example.com/index/inner``
cannot both be stored, whichever comes first, at any depth and in the global tree alike: a new
document below a stored one is refused with 409 ``<no-parent>`` (the directory it would go
into cannot exist), a new document named like a directory that holds documents with 409
``<constraint-failure>`` (RFC 4825 gives no element for it). Replacing a stored document is
never refused, and deleting the last document below a directory frees its name at once.

**The xcap table is the truth.** A creation runs one indexed query in its transaction: the
owner's documents (``username``, ``domain``: an index of every layout, Kamailio's and OpenSIPS's)
whose ``doc_uri`` is a directory of the new one or lies below it. Documents other programs write
(Kamailio's xcap_server, an import) are seen as long as they fill ``username`` and ``domain`` as
Kamailio's presence modules read them; nothing here can go stale. Paths of two owners never
conflict: a prefix shared through a percent-encoded ``/`` in an XUI names two directories.

**The claims table only serialises the race.** ``<xcap>_paths`` holds one row per owner (the
SHA-256 of username and domain, lower-cased), written with a fresh value by every creation
before it queries: two owners' creations never wait for each other, while two of one owner's
serialise on the row, so the second one's query sees what the first committed (READ COMMITTED;
SQLite's writers queue anyway). The new value makes the claim a real write on Galera too, where
two nodes' claims fail certification and the loser is replayed. A row is a lock and nothing
else: rows are never deleted, and deleting any of them is harmless.

Cost: two statements per document creation (the claim and the query), none on a replace, a
delete or a read. :meth:`.DBAPIStorage.load` (import) restores documents as they were stored
and checks nothing. A storage that is not a :class:`.DBAPIStorage` does not check U10.

Each backend's statements are in :data:`CREATE` and :data:`CLAIM`, keyed by
``DBAPIStorage.backend``; the query is the same everywhere.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from xcap_wsgi.errors import ConstraintFailure, NoParent
from xcap_wsgi.storage.base import DocKey, Document

if TYPE_CHECKING:
    from xcap_wsgi.storage.dbapi import DBAPIStorage

_CREATE = "CREATE TABLE IF NOT EXISTS {c} (owner CHAR(64) NOT NULL PRIMARY KEY, etag VARCHAR(128) NOT NULL)"
_UPSERT = "INSERT INTO {c} (owner, etag) VALUES ({p}, {p}) ON CONFLICT (owner) DO UPDATE SET etag = excluded.etag"
#: ``{c}``: the claims table, ``{t}`` the xcap table, ``{p}`` the placeholder
CREATE = {"mysql": _CREATE + " ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin", "sqlite": _CREATE, "postgresql": _CREATE}
#: the claim: an upsert that locks the owner's row and always changes it
CLAIM = {
    "mysql": "INSERT INTO {c} (owner, etag) VALUES ({p}, {p}) ON DUPLICATE KEY UPDATE etag = VALUES(etag)",
    "sqlite": _UPSERT,
    "postgresql": _UPSERT,
}
#: one of the owner's documents that is a directory of the new one (``{m}``) or lies below it
#: (the first ``{n}`` characters are the new doc_uri and a ``/``)
CONFLICTING = (
    "SELECT doc_uri FROM {t} WHERE username = {p} AND domain = {p}"
    " AND (SUBSTR(doc_uri, 1, {n}) = {p} OR doc_uri IN ({m})) LIMIT 1"
)
SUFFIX = "_paths"


def directories(doc_uri: str) -> list[str]:
    """Every path ``doc_uri`` lies below, on whole segments (those above the document
    selector included: no document of the same owner is ever stored there)."""
    segments = doc_uri.split("/")
    return ["/".join(segments[:n]) for n in range(2, len(segments))]


def owner_hash(key: DocKey) -> str:
    """The claim row of ``key``'s owner; lower-cased, as a ``_ci`` table compares them."""
    return hashlib.sha256(f"{key.username.lower()}\0{key.domain.lower()}".encode()).hexdigest()


class PathClaims:
    """U10 for the creations of ``storage``'s xcap table."""

    def __init__(self, storage: DBAPIStorage) -> None:
        self.storage = storage
        self.backend = storage.backend
        self.table = storage.table[: 64 - len(SUFFIX)] + SUFFIX
        mark = "`" if self.backend == "mysql" else '"'
        self._names = {"c": f"{mark}{self.table}{mark}", "t": storage.quoted_table, "p": storage.placeholder}
        self._claim = CLAIM[self.backend].format(**self._names)

    def create(self, cursor: Any) -> None:
        """The claims table, when missing (ensure_schema)."""
        cursor.execute(CREATE[self.backend].format(**self._names))

    def write(self, cursor: Any, key: DocKey, current: Document | None, etag: str | None) -> None:
        """Inside the writing transaction, once the row is written: a creation (nothing stored
        before, a new ETag now) is refused when it would put a document and a directory of one
        name side by side. Replaces and deletes pass untouched."""
        if current is not None or etag is None:
            return
        cursor.execute(self._claim, (owner_hash(key), etag))
        above = directories(key.doc_uri)
        below = key.doc_uri + "/"
        marks = ", ".join([self.storage.placeholder] * len(above))
        cursor.execute(CONFLICTING.format(**self._names, n=len(below), m=marks),
                       (key.username, key.domain, below, *above))
        row = cursor.fetchone()
        if row is None:
            return
        found = str(row[0])
        if len(found) < len(below):  # above it, whatever the column's collation folds
            raise NoParent(f"{found} is a document, so no directory of that name can hold {key.doc_uri}"
                           " (RFC 4825 section 6.2)")
        raise ConstraintFailure(f"{key.doc_uri} is a directory holding {found}, so no document can have its name"
                                " (RFC 4825 section 6.2)")
