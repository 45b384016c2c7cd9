"""A health endpoint for load balancers and orchestrators: is the store answering?

::

    XCAPMiddleware(app, db_url=..., health_path="/healthz")
    # GET /healthz -> 200 "ok" when the database answers a trivial query within 2 s,
    #                 503 "database unavailable" (with Retry-After) otherwise

Never authenticated and never logged at INFO (probes come every few seconds). The query
runs in a thread of its own so that a stalled database costs the probe at most the
timeout; while one check is stuck, the next answers 503 at once instead of piling up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from xcap_wsgi.storage import DocKey, Storage

log = logging.getLogger("xcap_wsgi.health")

TIMEOUT_S = 2.0


#: what the check reads: no row, found through the table's unique key in either layout
PROBE = DocKey("", "", "", 0)


class HealthCheck:
    def __init__(self, storage: Storage, path: str, timeout: float = TIMEOUT_S) -> None:
        if not isinstance(path, str) or not path.startswith("/") or "?" in path:
            raise ValueError(f"health_path must be an absolute URL path, got {path!r}")
        self.storage = storage
        self.path = path
        self.timeout = timeout
        self._busy = threading.Lock()

    def healthy(self) -> bool:
        """Whether the store answered a trivial indexed query within the timeout."""
        if not self._busy.acquire(blocking=False):
            return False  # the previous check is still waiting for the database
        done = threading.Event()
        outcome: list[bool] = []

        def check() -> None:
            try:
                self.storage.get(PROBE)
                outcome.append(True)
            except Exception as exc:
                log.debug("health check failed: %s", exc)
                outcome.append(False)
            finally:
                self.storage.close()  # this thread's connection
                self._busy.release()
                done.set()

        threading.Thread(target=check, name="xcap-health", daemon=True).start()
        return done.wait(self.timeout) and outcome[0]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        if method not in ("GET", "HEAD"):
            status, body, extra = "405 Method Not Allowed", b"GET or HEAD\n", [("Allow", "GET, HEAD")]
        elif self.healthy():
            status, body, extra = "200 OK", b"ok\n", []
        else:
            status, body, extra = "503 Service Unavailable", b"database unavailable\n", [("Retry-After", "5")]
        log.debug("health %s -> %s", method, status)
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                                ("Cache-Control", "no-store"), *extra])
        return [b"" if method == "HEAD" else body]
