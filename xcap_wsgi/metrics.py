"""Prometheus metrics at ``metrics_path``, aggregated over every worker process.

::

    pip install 'xcap-wsgi[metrics]'
    xcap-wsgi serve --metrics-path /metrics      # sets up prometheus_client's multiprocess mode

Exposed: ``xcap_requests_total{method,auid,status}``, ``xcap_request_duration_seconds``
(histogram, by method), ``xcap_db_errors_total``, ``xcap_notifications_total{sink,outcome}``
(delivered, retried, failed) and ``xcap_outbox_events{sink,state}`` (pending, failed; read
from the outbox at scrape time). Under gunicorn the counters of every worker are summed
when ``PROMETHEUS_MULTIPROC_DIR`` names a directory shared by the workers (``serve`` makes
one); otherwise each process reports its own. When authentication is on, only trusted
peers and proxies may read the metrics (403 for anyone else).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from xcap_wsgi.storage.outbox import Outbox

log = logging.getLogger("xcap_wsgi.metrics")

#: request durations: an XCAP request takes a millisecond or two, a slow database seconds
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _prometheus(module: str = "prometheus_client") -> Any:
    """The optional driver, imported lazily (typed as Any: it may not be installed)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError("metrics_path needs prometheus_client: pip install 'xcap-wsgi[metrics]'") from None


class Metrics:
    def __init__(self, path: str, allowed: Callable[[dict[str, Any]], bool]) -> None:
        if not isinstance(path, str) or not path.startswith("/") or "?" in path:
            raise ValueError(f"metrics_path must be an absolute URL path, got {path!r}")
        prom = _prometheus()
        self.path = path
        self.allowed = allowed
        self.outbox: Outbox | None = None
        self._prom = prom
        self._registry = prom.CollectorRegistry(auto_describe=True)
        self.requests = prom.Counter("xcap_requests", "XCAP requests answered", ["method", "auid", "status"],
                                     registry=self._registry)
        self.duration = prom.Histogram("xcap_request_duration_seconds", "Time to answer an XCAP request",
                                       ["method"], buckets=BUCKETS, registry=self._registry)
        self.db_errors = prom.Counter("xcap_db_errors", "Requests answered 503: the database was unavailable",
                                      registry=self._registry)
        self.notifications = prom.Counter("xcap_notifications", "Change events by delivery outcome",
                                          ["sink", "outcome"], registry=self._registry)

    def request(self, method: str, auid: str, status: str, seconds: float) -> None:
        self.requests.labels(method, auid, status.split(" ", 1)[0]).inc()
        self.duration.labels(method).observe(seconds)

    def notification(self, sink: str, outcome: str, count: int) -> None:
        """``NotifySettings.observe``."""
        self.notifications.labels(sink, outcome).inc(count)

    def exposition(self) -> bytes:
        """The text format: every worker's counters when in multiprocess mode, plus the backlog."""
        prom = self._prom
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = prom.CollectorRegistry()
            _prometheus("prometheus_client.multiprocess").MultiProcessCollector(registry)
        else:
            registry = prom.CollectorRegistry()
            registry.register(self._registry)
        if self.outbox is not None:
            registry.register(_Backlog(self.outbox))
        data: bytes = prom.generate_latest(registry)
        return data

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not self.allowed(environ):
            body = b"metrics are for trusted peers and proxies\n"
            start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8"),
                                             ("Content-Length", str(len(body)))])
            return [body]
        body = self.exposition()
        start_response("200 OK", [("Content-Type", self._prom.CONTENT_TYPE_LATEST), ("Content-Length", str(len(body))),
                                  ("Cache-Control", "no-store")])
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]


class _Backlog:
    """``xcap_outbox_events{sink,state}``, read from the outbox when scraped."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def collect(self) -> Iterator[Any]:
        family = _prometheus("prometheus_client.core").GaugeMetricFamily(
            "xcap_outbox_events", "Change events waiting in the outbox", labels=["sink", "state"])
        try:
            for row in self.outbox.backlog():
                family.add_metric([row.sink, "failed" if row.failed else "pending"], row.count)
        except Exception as exc:  # a database outage must not break the scrape
            log.debug("outbox backlog not read: %s", exc)
        yield family


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: a finished worker's live gauges leave the multiprocess files."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _prometheus("prometheus_client.multiprocess").mark_process_dead(worker.pid)
