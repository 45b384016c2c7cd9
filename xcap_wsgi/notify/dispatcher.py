"""Background delivery of the outbox: one thread per target in each worker process.

Each thread competes for its target's lease; the holder (one process among all the
workers and hosts sharing the database) delivers, the others wait to take over. The
holder delivers the pending rows of each document in commit order, folded into one
notification; different documents go out in parallel (``Sink.parallel``). A document
whose oldest pending row is waiting out a backoff holds back its later rows, so the
order per document is kept. A target that cannot be reached pauses the whole target
(its other documents wait too, without spending attempts).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from xcap_wsgi.notify.events import ChangeEvent
from xcap_wsgi.notify.sinks.base import DeliveryError, Sink
from xcap_wsgi.storage import StorageUnavailable
from xcap_wsgi.storage.outbox import Outbox, OutboxRow

log = logging.getLogger("xcap_wsgi.notify")

#: How long a process waits before trying again for a lease another process holds; a
#: commit in the process tries sooner, but never more often than every LEASE_MIN_S.
LEASE_RETRY_S = 1.0
LEASE_MIN_S = 0.1
#: How long after a database error delivery is tried again.
DB_RETRY_S = 1.0


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int
    poll_interval: float
    lease_seconds: float
    backoff_base: float
    backoff_cap: float
    batch: int
    failed_retention: float

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt ``attempts + 1``: doubling from the base, capped."""
        return float(min(self.backoff_base * 2 ** max(attempts - 1, 0), self.backoff_cap))


def process_owner() -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


def holder_dead(owner: str) -> bool:
    """Whether a lease holder is a process of this host that has gone (SIGKILLed worker)."""
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    try:  # a killed worker may linger as a zombie until its new parent reaps it
        with open(f"/proc/{pid_text}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[-1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


class SinkWorker(threading.Thread):
    """Delivers one target's outbox rows while this process holds its lease."""

    def __init__(self, sink: Sink, outbox: Outbox, policy: DeliveryPolicy, owner: str,
                 observe: Callable[[str, str, int], None] | None = None) -> None:
        super().__init__(name=f"xcap-notify {sink.name}", daemon=True)
        self.sink = sink
        self.outbox = outbox
        self.policy = policy
        self.owner = owner
        self.observe = observe
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._lease_until = 0.0
        self._pruned = 0.0
        self._executor: ThreadPoolExecutor | None = None
        self._wakeable = False
        self._lease_tried = 0.0
        self._db_down = False

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            self._wakeable = False
            try:
                delay = self._step()
                if self._db_down:
                    self._db_down = False
                    log.info("notify %s: the database is back, delivery resumes", self.sink.name)
            except StorageUnavailable as exc:
                if not self._db_down:  # once per outage, not once a second
                    log.warning("notify %s: database unavailable, delivery resumes when it is back: %s",
                                self.sink.name, exc)
                self._db_down = True
                self._lease_until = 0.0
                delay = DB_RETRY_S
            except Exception:
                log.exception("notify %s: delivery loop failed; trying again", self.sink.name)
                delay = DB_RETRY_S
            if self._wakeable:  # a local commit cuts the wait short
                self._wake.wait(delay)
                self._wake.clear()
            else:  # waiting for the lease, a target that is down, the database: writes do not hurry it
                self._stopping.wait(delay)
        self._last_pass()
        self._release()

    def _last_pass(self) -> None:
        """On a graceful stop, the holder delivers what is due once more (the rest waits
        in the outbox for the next process)."""
        if self._lease_until > time.time():
            try:
                self._step()
            except Exception as exc:
                log.debug("notify %s: last pass failed: %s", self.sink.name, exc)

    def _release(self) -> None:
        if self._lease_until > time.time():
            try:
                self.outbox.release_lease(self.sink.name, self.owner)
            except Exception as exc:  # the database is gone: the lease simply expires
                log.debug("notify %s: lease not released: %s", self.sink.name, exc)
        if self._executor is not None:
            self._executor.shutdown()
        self.sink.close()
        self.outbox.storage.close()  # this thread's connection

    def _holding(self) -> bool:
        """Renew the lease when a third of it is used; False when another process has it."""
        now = time.time()
        if self._lease_until - now > self.policy.lease_seconds * 2 / 3:
            return True
        if not self._lease_until and now - self._lease_tried < LEASE_MIN_S:
            return False
        self._lease_tried = now
        if self.outbox.hold_lease(self.sink.name, self.owner, self.policy.lease_seconds, holder_dead):
            self._lease_until = now + self.policy.lease_seconds
            return True
        self._lease_until = 0.0
        return False

    def _step(self) -> float:
        """One pass over the pending rows; returns how long to wait before the next.

        The first due document is delivered alone, as a probe: when the target is down
        only it spends an attempt. The others follow ``sink.parallel`` at a time, and the
        delivered rows are deleted in one statement.
        """
        if not self._holding():
            self._wakeable = True  # a commit here tries for the lease (its holder may be gone)
            return LEASE_RETRY_S
        self._prune()
        rows = self.outbox.pending(self.sink.name, self.policy.batch)
        groups: dict[str, list[OutboxRow]] = {}
        for row in rows:
            groups.setdefault(row.doc_uri, []).append(row)
        now, wait = time.time(), self.policy.poll_interval
        due = []
        for group in groups.values():
            if group[0].next_attempt > now:
                wait = min(wait, group[0].next_attempt - now)
            else:
                due.append(group)
        if not due:
            self._wakeable = True
            return wait
        outcomes = [self._attempt(due[0])]
        if (outcomes[0][1] is None or not outcomes[0][1].target_down) and self._holding():
            outcomes += self._pool().map(self._attempt, due[1:]) if len(due) > 2 else map(self._attempt, due[1:])
        self.outbox.delivered([row.id for group, error in outcomes if error is None for row in group])
        self._count("delivered", sum(len(group) for group, error in outcomes if error is None))
        pauses = [pause for group, error in outcomes if error is not None
                  if (pause := self._failed(group, error)) is not None]
        if pauses:
            return min(pauses)
        self._wakeable = True
        return 0.0 if len(rows) >= self.policy.batch else wait

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.sink.parallel, thread_name_prefix=f"xcap-notify {self.sink.name}")
        return self._executor

    def _attempt(self, group: list[OutboxRow]) -> tuple[list[OutboxRow], DeliveryError | None]:
        """Deliver one document's rows: None, or the failure."""
        events = [ChangeEvent.from_json(row.event, row.id) for row in group]
        try:
            self.sink.deliver(events)
        except DeliveryError as exc:
            return group, exc
        except Exception as exc:  # a sink bug must not stop delivery to the others
            log.exception("notify %s: delivery raised", self.sink.name)
            return group, DeliveryError(f"{exc.__class__.__name__}: {exc}")
        return group, None

    def _failed(self, group: list[OutboxRow], exc: DeliveryError) -> float | None:
        """Record a failed delivery; a pause (seconds) when the target is down."""
        done, rest = group[: exc.delivered], group[exc.delivered:]
        self.outbox.delivered([row.id for row in done])
        self._count("delivered", len(done))
        if not rest:
            return None
        ids = [row.id for row in rest]
        attempts = max(row.attempts for row in rest) + 1
        if not exc.retry or attempts >= self.policy.max_attempts:
            self.outbox.fail(ids, attempts, str(exc))
            self._count("failed", len(rest))
            log.error("notify %s: gave up on event(s) %s of %s after %d attempt(s): %s",
                      self.sink.name, ",".join(map(str, ids)), rest[0].doc_uri, attempts, exc)
            return None
        backoff = self.policy.backoff(attempts)
        self.outbox.retry(ids, attempts, time.time() + backoff, str(exc))
        self._count("retried", len(rest))
        log.warning("notify %s: attempt %d for event(s) %s of %s failed, next in %.2f s: %s",
                    self.sink.name, attempts, ",".join(map(str, ids)), rest[0].doc_uri, backoff, exc)
        return backoff if exc.target_down else None

    def _prune(self) -> None:
        now = time.time()
        if now - self._pruned > 3600:
            self._pruned = now
            self.outbox.prune_failed(now - self.policy.failed_retention)

    def _count(self, outcome: str, n: int) -> None:
        if n and self.observe is not None:
            self.observe(self.sink.name, outcome, n)
