"""Nothing is lost (issue 8): a worker killed between commit and delivery, a target down
for a minute under writes, a database that goes away. Real processes where it matters."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from tests.conftest import MYSQL_URL, mysql_connect
from tests.docs import MINIMAL, RL_MIME, counter_doc
from tests.processes import kill_all, spawn
from tests.recording_rpc import RecordingRPCServer
from tests.tcpproxy import TCPProxy
from tests.test_cli import free_port, request
from tests.test_notify import Down
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.notify import NotifySettings
from xcap_wsgi.storage.mysql import MySQLStorage, parse_mysql_url
from xcap_wsgi.storage.sqlite import SQLiteStorage

RULES_MIME = "application/auth-policy+xml"
RULES = MINIMAL["pres-rules"][1]
#: How long the target stays down under writes (the issue asks for 60 s).
OUTAGE_S = float(os.environ.get("XCAP_TEST_OUTAGE_S", "60"))


def rules_uri(user: str) -> str:
    return f"/xcap-root/pres-rules/users/sip:{user}@example.com/index"


def pending(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT doc_uri, status FROM xcap_outbox ORDER BY id").fetchall()
    conn.close()
    return rows


def test_events_committed_before_every_process_is_sigkilled_are_delivered_after_restart(tmp_path: Path) -> None:
    rpc = RecordingRPCServer(error_style="kamailio")
    rpc.stop()  # the presence server is down: nothing can be delivered yet
    args = ("--workers", "2", "--notify", "kamailio+" + rpc.url)
    port, proc = spawn(tmp_path, *args)
    users = [f"user{n}" for n in range(5)]
    try:
        for user in users:
            assert request(port, "PUT", rules_uri(user), RULES, {"Content-Type": RULES_MIME})[0] == 201
    finally:
        kill_all(proc)
    assert pending(tmp_path / "xcap.db") == [(rules_uri(user), 0) for user in users]
    rpc.start()
    port, proc = spawn(tmp_path, *args)
    try:
        requests = rpc.wait_for(5, timeout=20)
        deadline = time.time() + 10
        while pending(tmp_path / "xcap.db") and time.time() < deadline:
            time.sleep(0.05)
        assert pending(tmp_path / "xcap.db") == []
    finally:
        kill_all(proc)
        rpc.stop()
    assert sorted(json.dumps(r.body["params"]) for r in requests) == sorted(
        json.dumps([f"sip:{user}@example.com", "presence"]) for user in users)
    assert {r.body["method"] for r in requests} == {"presence.updateWatchers"}


def test_gunicorn_with_the_deploy_conf_delivers_leftovers_before_any_request(tmp_path: Path) -> None:
    rpc = RecordingRPCServer(error_style="kamailio")
    rpc.stop()
    port, proc = spawn(tmp_path, "--notify", "kamailio+" + rpc.url)
    try:
        for user in ("left1", "left2"):
            assert request(port, "PUT", rules_uri(user), RULES, {"Content-Type": RULES_MIME})[0] == 201
    finally:
        kill_all(proc)
    rpc.start()
    conf = Path(__file__).resolve().parents[1] / "deploy" / "gunicorn.conf.py"
    env = {**os.environ, "XCAP_DB_URL": "sqlite:///xcap.db", "XCAP_NOTIFY": "kamailio+" + rpc.url,
           "XCAP_BIND": f"127.0.0.1:{free_port()}", "XCAP_WORKERS": "2", "XCAP_AUTH_SECRET": "s" * 32}
    with (tmp_path / "gunicorn.log").open("wb") as log:
        gunicorn = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(conf), "xcap_wsgi:create_app()"],
                                    cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        requests = rpc.wait_for(2, timeout=15)
    finally:
        kill_all(gunicorn)
        rpc.stop()
    assert sorted(r.body["params"][0] for r in requests) == ["sip:left1@example.com", "sip:left2@example.com"]


def test_four_workers_deliver_each_event_exactly_once(tmp_path: Path) -> None:
    rpc = RecordingRPCServer(error_style="kamailio")
    port, proc = spawn(tmp_path, "--workers", "4", "--notify", "kamailio+" + rpc.url)
    users = [f"user{n}" for n in range(40)]
    try:
        threads = [threading.Thread(target=request, args=(port, "PUT", rules_uri(u), RULES, {"Content-Type": RULES_MIME}))
                   for u in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rpc.wait_for(40, timeout=10)
        time.sleep(0.5)  # a second delivery would arrive now
    finally:
        kill_all(proc)
        rpc.stop()
    assert sorted(r.body["params"][0] for r in rpc.requests) == sorted(f"sip:{u}@example.com" for u in users)


def test_a_target_down_for_a_minute_under_writes_gets_every_event_in_order(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "xcap.db"))
    target = Down()
    rpc = RecordingRPCServer(error_style="kamailio")
    rpc.stop()
    # about 30 failed attempts in any outage (max_attempts is 50), and a catch-up after it within OUTAGE_S / 30
    settings = NotifySettings(targets=(target, "kamailio+" + rpc.url), backoff_cap=OUTAGE_S / 30, poll_interval=0.05)
    app = XCAPMiddleware(None, storage=storage, notify=settings)
    assert app.notifier is not None
    committed: dict[str, list[str]] = {}
    stop = threading.Event()

    def writer(user: str) -> None:
        client = Client(app)
        uri = f"/xcap-root/resource-lists/users/sip:{user}@example.com/index"
        n = 0
        while not stop.is_set():
            resp = client.put(uri, data=counter_doc(n), content_type=RL_MIME)
            assert resp.status in ("200 OK", "201 Created")
            committed.setdefault(uri, []).append(resp.headers["ETag"].strip('"'))
            n += 1
            time.sleep(0.05)

    writers = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(4)]
    for t in writers:
        t.start()
    time.sleep(OUTAGE_S)
    stop.set()
    for t in writers:
        t.join()
    target.up.set()
    rpc.start()
    try:
        outbox = app.notifier.outbox
        deadline = time.time() + 30
        while sum(b.count for b in outbox.backlog()) and time.time() < deadline:
            time.sleep(0.1)
        assert outbox.backlog() == []
    finally:
        app.notifier.stop()
        rpc.stop()
    for uri, etags in committed.items():
        got = [e for e in target.events if e.doc_uri == uri]
        assert [e.new_etag for e in got] == etags, uri
        assert [e.previous_etag for e in got] == [None, *etags[:-1]], uri
    presentities = {r.body["params"][0] for r in rpc.requests}
    assert presentities == {f"sip:w{i}@example.com" for i in range(4)}
    assert sum(len(e) for e in committed.values()) > 4 * OUTAGE_S  # the writes went on all along


@pytest.fixture
def proxied_mysql(mysql_table: str) -> Iterator[tuple[TCPProxy, str]]:
    mysql_connect().close()
    args = parse_mysql_url(MYSQL_URL)
    with TCPProxy((args["host"], args["port"])) as proxy:
        yield proxy, f"mysql://{args['user']}@127.0.0.1:{proxy.port}/{args['database']}"


@pytest.mark.mysql
def test_a_database_outage_loses_no_event_and_delivery_resumes(proxied_mysql: tuple[TCPProxy, str],
                                                              mysql_table: str) -> None:
    proxy, url = proxied_mysql
    storage = MySQLStorage(url, mysql_table)
    target = Down()
    app = XCAPMiddleware(None, storage=storage, notify=NotifySettings(targets=(target,), backoff_cap=0.5))
    assert app.notifier is not None
    storage.ensure_schema()
    conn = mysql_connect()
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM `{mysql_table}`")
        cur.execute(f"DELETE FROM `{mysql_table}_outbox`")
        cur.execute(f"DELETE FROM `{mysql_table}_outbox_lease`")
    conn.close()
    client = Client(app)
    try:
        before = [client.put(rules_uri(u), data=RULES, content_type=RULES_MIME) for u in ("a", "b")]
        assert [r.status for r in before] == ["201 Created", "201 Created"]
        proxy.cut()
        assert client.put(rules_uri("lost"), data=RULES, content_type=RULES_MIME).status == "503 Service Unavailable"
        target.up.set()
        time.sleep(1.5)  # delivery runs into the outage and waits
        assert target.events == []
        proxy.restore()
        assert client.put(rules_uri("c"), data=RULES, content_type=RULES_MIME).status == "201 Created"
        deadline = time.time() + 15
        while len({e.doc_uri for e in target.events}) < 3 and time.time() < deadline:
            time.sleep(0.05)
    finally:
        app.notifier.stop()
        storage.close()
    assert sorted({e.doc_uri for e in target.events}) == [rules_uri("a"), rules_uri("b"), rules_uri("c")]
