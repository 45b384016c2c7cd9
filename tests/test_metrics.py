"""Prometheus metrics (issue 9, observability): request counts and durations, database
errors, notification outcomes and the outbox backlog; trusted readers only under auth."""

from __future__ import annotations

import time
from typing import Any

import pytest
from werkzeug.test import Client

from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI
from tests.test_access import Broken
from tests.test_notify import Down, Recorder
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.notify import NotifySettings
from xcap_wsgi.storage import Storage, StorageUnavailable

pytest.importorskip("prometheus_client")  # the [metrics] extra; the test extra installs it


def scrape(client: Client, **environ: str) -> str:
    resp = client.get("/metrics", environ_base=environ or None)
    assert resp.status == "200 OK", resp.data
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    return resp.data.decode()


def test_requests_are_counted_by_method_auid_and_status(storage: Storage) -> None:
    client = Client(XCAPMiddleware(None, storage=storage, metrics_path="/metrics"))
    client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME)
    client.get(RL_URI)
    client.get(RL_URI)
    client.get(RL_URI.replace("index", "missing"))
    client.get("/xcap-root/no-such-auid/users/sip:a@b/index")
    text = scrape(client)
    for line in ('xcap_requests_total{auid="resource-lists",method="PUT",status="201"} 1.0',
                 'xcap_requests_total{auid="resource-lists",method="GET",status="200"} 2.0',
                 'xcap_requests_total{auid="resource-lists",method="GET",status="404"} 1.0',
                 'xcap_requests_total{auid="",method="GET",status="404"} 1.0',
                 'xcap_request_duration_seconds_count{method="GET"} 4.0',
                 "xcap_db_errors_total 0.0"):
        assert line in text.splitlines(), line


def test_database_errors_are_counted() -> None:
    client = Client(XCAPMiddleware(None, storage=Broken(StorageUnavailable("gone")), metrics_path="/metrics"))  # type: ignore[arg-type]
    assert client.get(RL_URI).status == "503 Service Unavailable"
    text = scrape(client)
    assert "xcap_db_errors_total 1.0" in text.splitlines()
    assert 'xcap_requests_total{auid="resource-lists",method="GET",status="503"} 1.0' in text.splitlines()


def test_notification_outcomes_and_the_outbox_backlog(storage: Storage) -> None:
    recorder, down = Recorder(), Down()
    settings = NotifySettings(targets=(recorder, down), poll_interval=0.02, backoff_base=5.0)
    app = XCAPMiddleware(None, storage=storage, metrics_path="/metrics", notify=settings)
    assert app.notifier is not None
    storage.ensure_schema()
    from tests.test_notify import clear_outbox

    clear_outbox(app.notifier.outbox)
    client = Client(app)
    try:
        client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME)
        recorder.wait(1)
        deadline = time.time() + 5
        while 'outcome="delivered"' not in (text := scrape(client)) or 'outcome="retried"' not in text:
            assert time.time() < deadline, text
            time.sleep(0.02)
    finally:
        app.notifier.stop()
    lines = text.splitlines()
    assert 'xcap_notifications_total{outcome="delivered",sink="callable:tests.test_notify.Recorder"} 1.0' in lines
    assert 'xcap_notifications_total{outcome="retried",sink="callable:tests.test_notify.Down"} 1.0' in lines
    assert 'xcap_outbox_events{sink="callable:tests.test_notify.Down",state="pending"} 1.0' in lines


def test_under_authentication_only_trusted_peers_and_proxies_read_metrics(storage: Storage) -> None:
    app = XCAPMiddleware(None, storage=storage, metrics_path="/metrics", auth="upstream",
                         trusted_proxies=["127.0.0.1"], trusted_peers=["10.1.0.0/16"])
    client = Client(app)
    refused = client.get("/metrics", environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert (refused.status, refused.data) == ("403 Forbidden", b"metrics are for trusted peers and proxies\n")
    scrape(client, REMOTE_ADDR="10.1.2.3")
    scrape(client, REMOTE_ADDR="127.0.0.1")


def test_without_prometheus_client_metrics_path_is_a_clear_error(storage: Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def missing(name: str, *args: Any) -> Any:
        if name.startswith("prometheus_client"):
            raise ImportError(name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(ValueError, match=r"metrics_path needs prometheus_client: pip install 'xcap-wsgi\[metrics\]'"):
        XCAPMiddleware(None, storage=storage, metrics_path="/metrics")
