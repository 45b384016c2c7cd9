"""The storage contract every backend fulfils (one ``xcap`` table, Kamailio's or OpenSIPS's
layout: :mod:`.dialects`).

A backend stores whole documents keyed by ``doc_uri`` and offers exactly two ways in:
a plain indexed read (:meth:`Storage.get`, the hot path of a document GET) and an atomic
read-modify-write (:meth:`Storage.update`) in which the caller's ``change`` function sees
the current row under a write lock and decides the new bytes. Preconditions, node
splicing and validation all run inside ``change``, so no concurrent writer can slip in
between the check and the write (RFC 4825 §7.11, issue: no lost update).
"""

from __future__ import annotations

import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

TABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")

#: Kamailio's table version for ``xcap`` (kamailio-compat.md).
XCAP_TABLE_VERSION = 4


class StorageUnavailable(Exception):
    """The database cannot be reached or is busy; nothing was written."""


@dataclass(frozen=True)
class Document:
    doc: bytes
    etag: str


@dataclass(frozen=True)
class DocKey:
    """Where a document lives and who owns it, as Kamailio's columns describe it."""

    doc_uri: str
    username: str
    domain: str
    doc_type: int


@dataclass(frozen=True)
class WriteResult:
    """Outcome of :meth:`Storage.update`: ``etag`` is None when the document was deleted."""

    created: bool
    etag: str | None


#: ``change(current) -> new bytes`` (write) or ``None`` (delete); raising aborts with no write.
Change = Callable[[Document | None], bytes | None]
#: ``describe(previous, new_etag) -> change event`` (JSON text), called inside the writing
#: transaction once the new row is written; stored in the outbox when one is enabled.
Describe = Callable[[Document | None, str | None], str]


def new_etag() -> str:
    """A fresh strong entity tag: unique per write, even for identical bytes (req. §10.3)."""
    return secrets.token_hex(16)


def validate_table_name(name: str) -> str:
    if not isinstance(name, str) or not TABLE_NAME_RE.match(name):
        raise ValueError(f"xcap_table must match {TABLE_NAME_RE.pattern}, got {name!r}")
    return name


class Storage(ABC):
    """One table of XCAP documents."""

    #: the db_url this storage was opened from, without password (for logs and banners)
    description: str = ""
    #: the db_url itself (other tables of the same database, e.g. subscriber, use it)
    url: str = ""

    @abstractmethod
    def get(self, key: DocKey | str) -> Document | None:
        """The stored document, or None; one indexed read by ``key``. A bare doc_uri is indexed
        in Kamailio's layout only (OpenSIPS's indexes the whole key: :mod:`.dialects`)."""

    @abstractmethod
    def update(self, key: DocKey, change: Change, describe: Describe | None = None) -> WriteResult:
        """Atomically read the row for ``key.doc_uri``, apply ``change``, write the result.

        ``change`` returning bytes inserts or replaces the row with a new ETag;
        returning None deletes it. An exception from ``change`` leaves the row untouched
        and propagates. With an outbox enabled, ``describe``'s change event is stored in
        the same transaction, so it exists exactly when the write committed.
        """

    @abstractmethod
    def documents(self, doc_type: int) -> Iterator[tuple[str, bytes]]:
        """Every stored (doc_uri, doc) of one Kamailio doc_type, in doc_uri order."""

    def services_taken(self, uris: Collection[str], doc_uri: str) -> set[str] | None:
        """RS3: which of ``uris`` (rls-services service URIs, percent-decoded) stored documents
        other than ``doc_uri`` hold, from an index of them; None when this backend keeps none
        (the default), and the usage scans :meth:`documents` instead."""
        return None

    def indexed_services(self) -> list[tuple[str, bytes]] | None:
        """RS6: (doc_uri, standalone ``<service>`` element) of every rls-services document, in
        doc_uri and then document order, from an index; None when this backend keeps none
        (the default), and the global index parses :meth:`documents` instead."""
        return None

    @abstractmethod
    def owned(self, username: str, domain: str) -> list[tuple[str, str, int]]:
        """(doc_uri, etag, size) of every document of one owner, in doc_uri order."""

    @abstractmethod
    def ensure_schema(self) -> None:
        """Create the table, its indexes and the ``version`` row when missing (idempotent)."""

    def close(self) -> None:  # noqa: B027  (optional hook: embedded stores hold nothing)
        """Release this thread's connection (a new one is opened on next use)."""
