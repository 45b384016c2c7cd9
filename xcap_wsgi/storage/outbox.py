"""The notifier's outbox: change events stored beside the documents, per delivery target.

::

    storage.enable_outbox(["kamailio+http://127.0.0.1:5091/RPC"])
    storage.update(key, change, describe)        # the event row commits with the document
    rows = storage.outbox.pending("kamailio+http://127.0.0.1:5091/RPC", limit=200)
    storage.outbox.delivered([row.id for row in rows])

One row per (event, target), so a target that is down holds back only its own rows. A
lease row per target names the one process (of every worker on every host sharing the
database) that delivers to it; it is renewed while held and taken over when it expires
or when its holder, on this host, is dead. Every statement is in :mod:`.sql`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from xcap_wsgi.storage import sql

if TYPE_CHECKING:
    from xcap_wsgi.storage.dbapi import DBAPIStorage

T = TypeVar("T")
MAX_NAME = 255
MAX_ERROR = 255


@dataclass(frozen=True)
class OutboxRow:
    id: int
    doc_uri: str
    event: str
    attempts: int
    next_attempt: float


@dataclass(frozen=True)
class Backlog:
    """Rows of one target in one state; ``oldest`` is the earliest ``created`` time."""

    sink: str
    failed: bool
    count: int
    oldest: float


def row_name(name: str) -> str:
    """A target name as stored (the column holds 255 characters; longer names are hashed)."""
    if len(name) <= MAX_NAME:
        return name
    return name[: MAX_NAME - 41] + "#" + hashlib.sha1(name.encode()).hexdigest()  # noqa: S324  (a name, not a secret)


class Outbox:
    """The outbox and lease tables next to ``storage``'s xcap table."""

    def __init__(self, storage: DBAPIStorage, sinks: Sequence[str]) -> None:
        self.storage = storage
        self.sinks = tuple(row_name(s) for s in sinks)
        self.backend = storage.backend
        base = storage.table[: 64 - len("_outbox_lease")]
        mark = "`" if self.backend == "mysql" else '"'
        self.table = base + "_outbox"
        self._names = {"o": f"{mark}{self.table}{mark}", "l": f"{mark}{base}_outbox_lease{mark}", "p": storage.placeholder,
                       "n": "" if self.backend == "mysql" else base + "_"}

    def _sql(self, template: str, **extra: Any) -> str:
        return template.format(**self._names, **extra)

    def create(self, cursor: Any) -> None:
        """Both tables, when missing (idempotent)."""
        for statement in sql.CREATE_OUTBOX[self.backend]:
            cursor.execute(self._sql(statement))

    def record(self, cursor: Any, doc_uri: str, event: str) -> None:
        """Inside the writing transaction: one pending row per target."""
        now = time.time()
        statement = self._sql(sql.OUTBOX_INSERT)
        for sink in self.sinks:
            cursor.execute(statement, (sink, doc_uri, event, now, now))

    # -- delivery (autocommit statements on the delivering thread's connection) ------
    def pending(self, sink: str, limit: int) -> list[OutboxRow]:
        """The target's pending rows in commit order (id order), due or not."""
        def work(cursor: Any) -> list[OutboxRow]:
            cursor.execute(self._sql(sql.OUTBOX_SELECT_PENDING, limit=int(limit)), (row_name(sink),))
            return [OutboxRow(int(i), u, e, int(a), float(n)) for i, u, e, a, n in cursor.fetchall()]
        return self._run(work)

    def delivered(self, ids: Sequence[int]) -> None:
        """Delivered rows are pruned at once."""
        self._by_ids(sql.OUTBOX_DELETE, (), ids)

    def retry(self, ids: Sequence[int], attempts: int, next_attempt: float, error: str) -> None:
        self._by_ids(sql.OUTBOX_RETRY, (attempts, next_attempt, error[:MAX_ERROR]), ids)

    def fail(self, ids: Sequence[int], attempts: int, error: str) -> None:
        self._by_ids(sql.OUTBOX_FAIL, (attempts, error[:MAX_ERROR]), ids)

    def _by_ids(self, template: str, params: tuple[Any, ...], ids: Sequence[int]) -> None:
        if not ids:
            return
        self._execute(self._sql(template, ids=", ".join(str(int(i)) for i in ids)), params)

    def backlog(self) -> list[Backlog]:
        def work(cursor: Any) -> list[Backlog]:
            cursor.execute(self._sql(sql.OUTBOX_BACKLOG))
            return [Backlog(s, int(st) == sql.OUTBOX_FAILED, int(c), float(o)) for s, st, c, o in cursor.fetchall()]
        return self._run(work)

    def prune_failed(self, before: float) -> None:
        self._execute(self._sql(sql.OUTBOX_PRUNE_FAILED), (before,))

    # -- the lease: who delivers to a target -------------------------------------------
    def hold_lease(self, sink: str, owner: str, duration: float, holder_dead: Any = None) -> bool:
        """Take or renew the target's lease for ``duration`` seconds; True when held.

        ``holder_dead(owner)`` may say that the current holder is gone (a process of this
        host that no longer runs), so its lease is taken over before it expires.
        """
        name = row_name(sink)

        def work(cursor: Any) -> bool:
            now = time.time()
            cursor.execute(self._sql(sql.LEASE_INSERT[self.backend]), (name,))
            cursor.execute(self._sql(sql.LEASE_TAKE), (owner, now + duration, name, owner, now))
            if cursor.rowcount == 1:
                return True
            if holder_dead is None:
                return False
            cursor.execute(self._sql(sql.LEASE_READ), (name,))
            row = cursor.fetchone()
            if row is None or not holder_dead(row[0]):
                return False
            cursor.execute(self._sql(sql.LEASE_STEAL), (owner, now + duration, name, row[0]))
            return bool(cursor.rowcount == 1)
        return self._run(work)

    def release_lease(self, sink: str, owner: str) -> None:
        self._execute(self._sql(sql.LEASE_RELEASE), (row_name(sink), owner))

    def _execute(self, statement: str, params: tuple[Any, ...]) -> None:
        def work(cursor: Any) -> None:
            cursor.execute(statement, params)
        self._run(work)

    def _run(self, work: Callable[[Any], T]) -> T:
        self.storage.ensure_ready()
        result: T = self.storage.run(work)
        return result
