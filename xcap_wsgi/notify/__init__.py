"""Keeping the presence server in step: change events, the outbox, and their delivery.

::

    from xcap_wsgi.notify import Notifier, NotifySettings

    notifier = Notifier(storage, NotifySettings(targets=("kamailio+http://127.0.0.1:5091/RPC",)))
    notifier.ensure_running()   # in each worker process, after the fork (cheap when running)
    notifier.wake()             # after a committed write: deliver now, not at the next poll

The middleware does all of this when given ``notify=``: every committed write stores a
:class:`~xcap_wsgi.notify.events.ChangeEvent` per target in the outbox, in the write's own
transaction, and a background thread per target delivers it (at least once, in commit
order per document). Targets: ``kamailio+http(s)://host:port/RPC`` (Kamailio jsonrpcs),
``opensips+http(s)://host:port/mi`` (OpenSIPS mi_http), ``sip:host[:port][;transport=udp|tcp]``
(PUBLISH of xcap-diff, RFC 5874) or a Python callable taking the event. Under gunicorn,
:func:`post_worker_init` and :func:`worker_exit` (``deploy/gunicorn.conf.py`` and
``xcap-wsgi serve`` use them) start delivery with each worker and stop it cleanly.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union

from xcap_wsgi.notify.dispatcher import DeliveryPolicy, SinkWorker, process_owner
from xcap_wsgi.notify.events import ChangeEvent
from xcap_wsgi.notify.sinks.base import DeliveryError, Sink
from xcap_wsgi.storage import Storage
from xcap_wsgi.storage.dbapi import DBAPIStorage

__all__ = ["ChangeEvent", "DeliveryError", "Notifier", "NotifySettings", "Sink", "Target", "make_sink",
           "post_worker_init", "worker_exit"]

log = logging.getLogger("xcap_wsgi.notify")

Target = Union[str, Callable[[ChangeEvent], object]]  # noqa: UP007  (a runtime alias, Python 3.10)
TARGET_FORMS = "kamailio+http://host:port/RPC, opensips+http://host:port/mi, sip:host[:port][;transport=udp|tcp] or a callable"


@dataclass(frozen=True)
class NotifySettings:
    """Where change events go and how hard delivery tries.

    ``max_attempts`` tries (with backoff doubling from ``backoff_base`` up to
    ``backoff_cap`` seconds) before an event is marked failed: the defaults keep trying
    for about 20 minutes. ``poll_interval`` bounds the latency of events committed by
    other processes; ``timeout`` bounds each request to a target.
    """

    targets: tuple[Target, ...] = ()
    max_attempts: int = 50
    timeout: float = 5.0
    poll_interval: float = 0.1
    lease_seconds: float = 10.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    batch: int = 200
    failed_retention: float = 7 * 86400.0
    #: called as ``observe(sink_name, outcome, count)``, outcome delivered/retried/failed
    observe: Callable[[str, str, int], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.targets, (str, bytes)) or callable(self.targets):
            raise ValueError("notify takes a list of targets")
        object.__setattr__(self, "targets", tuple(self.targets))
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"notify_max_attempts must be a positive integer, got {self.max_attempts!r}")
        for name in ("timeout", "poll_interval", "lease_seconds", "backoff_base", "backoff_cap"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"notify {name} must be a positive number of seconds, got {value!r}")

    def policy(self) -> DeliveryPolicy:
        return DeliveryPolicy(self.max_attempts, self.poll_interval, self.lease_seconds, self.backoff_base,
                              self.backoff_cap, self.batch, self.failed_retention)


def make_sink(target: Target, timeout: float = 5.0) -> Sink:
    """The sink for one ``--notify`` value; ValueError for anything else."""
    if not isinstance(target, str):
        from xcap_wsgi.notify.sinks.function import CallableSink

        return CallableSink(target)
    if target.startswith(("kamailio+http://", "kamailio+https://")):
        from xcap_wsgi.notify.sinks.kamailio import KamailioSink

        return KamailioSink(target, timeout)
    if target.startswith(("opensips+http://", "opensips+https://")):
        from xcap_wsgi.notify.sinks.opensips import OpenSIPSSink

        return OpenSIPSSink(target, timeout)
    if target.lower().startswith("sip:"):
        from xcap_wsgi.notify.sinks.sip import SIPPublishSink

        return SIPPublishSink(target, timeout=timeout)
    raise ValueError(f"unsupported notify target {target!r}: use {TARGET_FORMS}")


class Notifier:
    """The outbox of ``storage`` and one delivery thread per target in each process."""

    def __init__(self, storage: Storage, settings: NotifySettings) -> None:
        if not settings.targets:
            raise ValueError("a notifier needs at least one target")
        if not isinstance(storage, DBAPIStorage):
            raise ValueError("notify needs an SQL storage backend (sqlite:// or mysql://) for its outbox")
        self.sinks = [make_sink(t, settings.timeout) for t in settings.targets]
        names = [s.name for s in self.sinks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"notify target(s) given twice: {', '.join(duplicates)}")
        self.settings = settings
        self.outbox = storage.enable_outbox(names)
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._workers: list[SinkWorker] = []

    def ensure_running(self) -> None:
        """Start the delivery threads in this process if they are not running (after a fork
        the parent's threads do not exist in the child)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            owner = process_owner()
            policy = self.settings.policy()
            self._workers = [SinkWorker(s, self.outbox, policy, owner, self.settings.observe) for s in self.sinks]
            for worker in self._workers:
                worker.start()
            self._pid = os.getpid()

    def wake(self) -> None:
        """A write committed here: deliver now rather than at the next poll."""
        for worker in self._workers:
            worker.wake()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop delivery in this process (pending events stay in the outbox)."""
        with self._lock:
            workers, self._workers, self._pid = self._workers, [], None
        for worker in workers:
            worker.stop()
        for worker in workers:
            worker.join(timeout)


def post_worker_init(worker: Any) -> None:
    """gunicorn hook: start delivering as soon as a worker is up, not at its first request
    (so that events left by a crashed worker go out even when no client calls)."""
    notifier = getattr(getattr(worker, "wsgi", None), "notifier", None)
    if isinstance(notifier, Notifier):
        notifier.ensure_running()


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: stop delivering cleanly (one last pass; the rest stays in the outbox)."""
    notifier = getattr(getattr(worker, "wsgi", None), "notifier", None)
    if isinstance(notifier, Notifier):
        notifier.stop()
