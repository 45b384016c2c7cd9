"""The health endpoint (issue 9, observability): 200 while the store answers within 2 s,
503 otherwise; never authenticated, never logged at INFO."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest
from werkzeug.test import Client

from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.storage import Storage
from xcap_wsgi.storage.sqlite import SQLiteStorage


class Stalled(SQLiteStorage):
    """A database that accepts the query and answers only when released."""

    release = threading.Event()

    def get(self, key: object) -> Any:
        self.release.wait(10)
        return None


def test_healthy_store_answers_200_ok_without_credentials(storage: Storage, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "xcap_wsgi")
    app = XCAPMiddleware(None, storage=storage, health_path="/healthz", auth="digest", auth_secret="s" * 32)
    resp = Client(app).get("/healthz")
    assert (resp.status, resp.data) == ("200 OK", b"ok\n")
    assert dict(resp.headers) == {"Content-Type": "text/plain; charset=utf-8", "Content-Length": "3",
                                  "Cache-Control": "no-store"}
    head = Client(app).head("/healthz")
    assert (head.status, head.data, head.headers["Content-Length"]) == ("200 OK", b"", "3")
    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []


def test_only_get_and_head(storage: Storage) -> None:
    resp = Client(XCAPMiddleware(None, storage=storage, health_path="/healthz")).post("/healthz")
    assert (resp.status, resp.headers["Allow"], resp.data) == ("405 Method Not Allowed", "GET, HEAD", b"GET or HEAD\n")


def test_a_stalled_database_is_unhealthy_within_two_seconds_and_checks_do_not_pile_up(tmp_path: Any) -> None:
    Stalled.release.clear()
    client = Client(XCAPMiddleware(None, storage=Stalled(str(tmp_path / "x.db")), health_path="/healthz"))
    try:
        started = time.monotonic()
        resp = client.get("/healthz")
        first = time.monotonic() - started
        again = client.get("/healthz")
        second = time.monotonic() - started - first
    finally:
        Stalled.release.set()
    assert (resp.status, resp.headers["Retry-After"], resp.data) == ("503 Service Unavailable", "5",
                                                                     b"database unavailable\n")
    assert again.status == "503 Service Unavailable"
    assert 1.9 < first < 3.0 and second < 0.5


def test_an_unreachable_database_is_unhealthy() -> None:
    app = XCAPMiddleware(None, db_url="mysql://root@127.0.0.1:1/test", health_path="/healthz")
    assert Client(app).get("/healthz").status == "503 Service Unavailable"


def test_the_health_path_is_off_unless_set(storage: Storage) -> None:
    assert Client(XCAPMiddleware(None, storage=storage)).get("/healthz").status == "404 Not Found"


@pytest.mark.parametrize("path", ["healthz", "/health?x", ""])
def test_a_bad_health_path_is_refused(storage: Storage, path: str) -> None:
    with pytest.raises(ValueError, match="health_path must be an absolute URL path"):
        XCAPMiddleware(None, storage=storage, health_path=path)
