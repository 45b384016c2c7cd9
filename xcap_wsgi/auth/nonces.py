"""Digest nonces any worker accepts, and nonce-counts no worker accepts twice.

::

    signer = NonceSigner("long random secret", lifetime=300)
    nonce = signer.mint()                 # "65f0c1a2.9c1e5b7d20a4f3e8.<hmac>"
    signer.check(nonce)                   # "ok", "stale" (expired) or "bad" (forged)
    counter = SQLNonceCounter("mysql://...")          # or MemoryNonceCounter()
    counter.advance(nonce, nc=1, expires=signer.expires(nonce))   # True once per (nonce, nc)

A nonce is its issue time, a random part and an HMAC-SHA-256 over both with the
configured secret: stateless, so every gunicorn worker and every host sharing the secret
accepts it (RFC 7616 §3.3, §5.4).

Replay protection (RFC 7616 §3.4, §5.5) needs shared state: :class:`SQLNonceCounter` keeps
one row per nonce in use with the highest nonce-count accepted, in the credentials
database; one upsert raises it only when the new count is higher and its "rows
affected" says whether it did, atomically for all processes. Rows go once the nonce has
expired (it is refused as stale by then anyway). :class:`MemoryNonceCounter` is the same
per process, for an integrator without a database: exact with one worker, per worker
otherwise.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from xcap_wsgi.auth.sqldb import SQLTable
from xcap_wsgi.storage import sql

MIN_SECRET = 16
CLOCK_SKEW_S = 60
PURGE_EVERY_S = 60

Verdict = Literal["ok", "stale", "bad"]


class NonceSigner:
    """Mints and checks HMAC-signed nonces; ``opaque`` is a constant derived from the secret."""

    def __init__(self, secret: str, lifetime: int, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(secret, str) or len(secret) < MIN_SECRET:
            raise ValueError(f"the digest secret must be a string of at least {MIN_SECRET} characters")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime <= 0:
            raise ValueError(f"nonce_lifetime must be a positive number of seconds, got {lifetime!r}")
        self._key = hashlib.sha256(b"xcap-wsgi digest nonce\0" + secret.encode("utf-8")).digest()
        self.lifetime = lifetime
        self.clock = clock
        self.opaque = self._mac("opaque")[:32]

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode("ascii"), hashlib.sha256).hexdigest()

    def mint(self) -> str:
        issued = f"{int(self.clock()):x}.{secrets.token_hex(8)}"
        return f"{issued}.{self._mac(issued)[:32]}"

    def check(self, nonce: str) -> Verdict:
        """``bad`` when not ours (forged, altered, from the future), ``stale`` when expired."""
        issued = self.issued(nonce)
        if issued is None or issued > self.clock() + CLOCK_SKEW_S:
            return "bad"
        return "stale" if self.clock() > issued + self.lifetime else "ok"

    def issued(self, nonce: str) -> int | None:
        """The issue time of a nonce carrying our signature, else None."""
        stamp, dot, mac = nonce.rpartition(".")
        if not dot or not nonce.isascii() or not hmac.compare_digest(self._mac(stamp)[:32], mac):
            return None
        return int(stamp.split(".", 1)[0], 16)

    def expires(self, nonce: str) -> int:
        return (self.issued(nonce) or 0) + self.lifetime + CLOCK_SKEW_S


class NonceCounter(Protocol):
    def advance(self, nonce: str, nc: int, expires: int) -> bool:
        """Record ``nc`` for ``nonce``; False when a count at least as high was seen (a replay)."""


class MemoryNonceCounter:
    """Per-process nonce-counts (see the module docstring for when this is enough)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._seen: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self._purged = 0.0

    def advance(self, nonce: str, nc: int, expires: int) -> bool:
        with self._lock:
            now = self._clock()
            if now - self._purged > PURGE_EVERY_S:
                self._seen = {n: v for n, v in self._seen.items() if v[1] >= now}
                self._purged = now
            highest, _ = self._seen.get(nonce, (0, expires))
            if nc <= highest:
                return False
            self._seen[nonce] = (nc, expires)
            return True


class SQLNonceCounter:
    """Nonce-counts in a small table of the credentials database, shared by all workers."""

    def __init__(self, db_url: str, table: str = "xcap_auth_nonce", clock: Callable[[], float] = time.time) -> None:
        self.db = SQLTable(db_url, table, _create_nonce_table)
        self._advance = self.db.sql(sql.MYSQL_NONCE_ADVANCE if self.db.mysql else sql.SQLITE_NONCE_ADVANCE)
        self._purge = self.db.sql(sql.NONCE_PURGE)
        self._clock = clock
        self._purged = 0.0

    def advance(self, nonce: str, nc: int, expires: int) -> bool:
        return self.db.run(self._run, nonce, nc, expires)

    def _run(self, cursor: Any, nonce: str, nc: int, expires: int) -> bool:
        now = self._clock()
        if now - self._purged > PURGE_EVERY_S:
            cursor.execute(self._purge, (int(now),))
            self._purged = now
        cursor.execute(self._advance, (nonce, nc, expires))
        return bool(cursor.rowcount and cursor.rowcount > 0)

    def close(self) -> None:
        self.db.close()


def _create_nonce_table(db: SQLTable, cursor: Any) -> None:
    if db.mysql:
        cursor.execute(db.sql(sql.MYSQL_CREATE_NONCE))
    else:
        cursor.execute(db.sql(sql.SQLITE_CREATE_NONCE))
        cursor.execute(db.sql(sql.SQLITE_NONCE_INDEX))
