"""Change events and the outbox (issue 8): one event per committed write, stored in the
write's own transaction, delivered in the background in commit order per document,
retried with backoff, never silently dropped. Runs on SQLite and MySQL."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from tests.docs import PRES_RULES, PRES_RULES_URI, RESOURCE_LISTS, RL_MIME, RL_URI, counter_doc
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.notify import ChangeEvent, DeliveryError, Notifier, NotifySettings
from xcap_wsgi.storage import Storage
from xcap_wsgi.storage.dbapi import DBAPIStorage
from xcap_wsgi.storage.outbox import Outbox

EL_MIME = "application/xcap-el+xml"
ATT_MIME = "application/xcap-att+xml"
LIST = RL_URI + "/~~/resource-lists/list%5B@name=%22friends%22%5D"
ROOT_URL = "http://localhost/xcap-root/"
FAST = {"poll_interval": 0.02, "backoff_base": 0.02, "backoff_cap": 0.1}


class Recorder:
    """A callable target: records every event; ``fail`` makes the next calls raise."""

    def __init__(self) -> None:
        self.events: list[ChangeEvent] = []
        self.calls = 0
        self.fail = 0
        self.lock = threading.Condition()

    def __call__(self, event: ChangeEvent) -> None:
        with self.lock:
            self.calls += 1
            if self.fail:
                self.fail -= 1
                raise RuntimeError("target says no")
            self.events.append(event)
            self.lock.notify_all()

    def wait(self, count: int, timeout: float = 5.0) -> list[ChangeEvent]:
        with self.lock:
            assert self.lock.wait_for(lambda: len(self.events) >= count, timeout), self.events
            return list(self.events)


def clear_outbox(outbox: Outbox) -> None:
    def work(cursor: Any) -> None:
        cursor.execute(f"DELETE FROM {outbox._names['o']}")
        cursor.execute(f"DELETE FROM {outbox._names['l']}")
    outbox._run(work)


def all_rows(outbox: Outbox) -> list[tuple[Any, ...]]:
    def work(cursor: Any) -> list[tuple[Any, ...]]:
        cursor.execute(f"SELECT id, sink, doc_uri, status, attempts, error FROM {outbox._names['o']} ORDER BY id")
        return [tuple(r) for r in cursor.fetchall()]
    return outbox._run(work)


def wait_rows(outbox: Outbox, predicate: Callable[[list[tuple[Any, ...]]], bool], timeout: float = 5.0) -> list[Any]:
    deadline = time.time() + timeout
    while not predicate(rows := all_rows(outbox)):
        assert time.time() < deadline, rows
        time.sleep(0.02)
    return rows


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_app(storage: Storage) -> Iterator[Callable[..., XCAPMiddleware]]:
    apps: list[XCAPMiddleware] = []

    def build(*targets: Any, **settings: Any) -> XCAPMiddleware:
        app = XCAPMiddleware(None, storage=storage, notify=NotifySettings(targets=targets, **{**FAST, **settings}))
        assert app.notifier is not None
        storage.ensure_schema()
        clear_outbox(app.notifier.outbox)
        apps.append(app)
        return app

    yield build
    for app in apps:
        if app.notifier is not None:
            app.notifier.stop()


def etag(resp: Any) -> str:
    return str(resp.headers["ETag"]).strip('"')


def test_document_put_creates_one_event_with_every_field(make_app: Any, recorder: Recorder) -> None:
    client = Client(make_app(recorder))
    before = time.time()
    resp = client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME)
    assert resp.status == "201 Created"
    [event] = recorder.wait(1)
    assert event.id > 0 and before <= event.committed_at <= time.time()
    assert event == ChangeEvent(
        auid="resource-lists", tree="users", xui="sip:alice@example.com", username="alice", domain="example.com",
        doc_uri=RL_URI, doc_type=4, document_selector="resource-lists/users/sip:alice@example.com/index",
        action="created", previous_etag=None, new_etag=etag(resp), xcap_root_url=ROOT_URL,
        committed_at=event.committed_at, id=event.id,
    )
    assert event.presentity == "sip:alice@example.com"


def test_replace_and_delete_carry_previous_and_new_etags(make_app: Any, recorder: Recorder) -> None:
    client = Client(make_app(recorder))
    first = etag(client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME))
    second = etag(client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME))
    assert client.delete(RL_URI).status == "200 OK"
    events = recorder.wait(3)
    assert [(e.action, e.previous_etag, e.new_etag) for e in events] == [
        ("created", None, first), ("replaced", first, second), ("deleted", second, None)]


@pytest.mark.parametrize(("method", "path", "mime", "body", "status", "action", "kind", "selector"), [
    pytest.param("PUT", LIST + "/entry%5B@uri=%22sip:dan@example.com%22%5D", EL_MIME, b'<entry uri="sip:dan@example.com"/>',
                 "201 Created", "created", "element",
                 'resource-lists/list[@name="friends"]/entry[@uri="sip:dan@example.com"]', id="element-created"),
    pytest.param("PUT", LIST + "/display-name", EL_MIME, b"<display-name>Pals</display-name>", "200 OK",
                 "replaced", "element", 'resource-lists/list[@name="friends"]/display-name', id="element-replaced"),
    pytest.param("DELETE", LIST + "/display-name", None, b"", "200 OK", "deleted", "element",
                 'resource-lists/list[@name="friends"]/display-name', id="element-deleted"),
    pytest.param("PUT", LIST + "/display-name/@xml:lang", ATT_MIME, b'"en"', "201 Created", "created", "attribute",
                 'resource-lists/list[@name="friends"]/display-name/@xml:lang', id="attribute-created"),
    pytest.param("PUT", LIST + "/entry%5B1%5D/@uri", ATT_MIME, b'"sip:bobby@example.com"', "200 OK", "replaced",
                 "attribute", 'resource-lists/list[@name="friends"]/entry[1]/@uri', id="attribute-replaced"),
    pytest.param("DELETE", LIST + "/@name", None, b"", "200 OK", "deleted", "attribute",
                 'resource-lists/list[@name="friends"]/@name', id="attribute-deleted"),
])
def test_node_writes_name_the_node_and_keep_the_document(make_app: Any, recorder: Recorder, method: str, path: str,
                                                         mime: str | None, body: bytes, status: str, action: str,
                                                         kind: str, selector: str) -> None:
    client = Client(make_app(recorder))
    first = etag(client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME))
    resp = client.open(path, method=method, data=body, content_type=mime)
    assert resp.status == status
    event = recorder.wait(2)[1]
    assert (event.action, event.node_kind, event.node_selector) == (action, kind, selector)
    assert (event.previous_etag, event.new_etag, event.doc_uri) == (first, etag(resp), RL_URI)


def test_prefixed_selector_event_carries_the_xmlns_bindings(make_app: Any, recorder: Recorder) -> None:
    client = Client(make_app(recorder))
    client.put(PRES_RULES_URI, data=PRES_RULES, content_type="application/auth-policy+xml")
    path = PRES_RULES_URI + "/~~/cr:ruleset/cr:rule%5B@id=%22a%22%5D/cr:actions/pr:sub-handling"
    query = "xmlns(cr=urn:ietf:params:xml:ns:common-policy)xmlns(pr=urn:ietf:params:xml:ns:pres-rules)"
    body = b'<pr:sub-handling xmlns:pr="urn:ietf:params:xml:ns:pres-rules">block</pr:sub-handling>'
    resp = client.put(path + "?" + query, data=body, content_type=EL_MIME)
    assert resp.status == "200 OK"
    event = recorder.wait(2)[1]
    assert event.namespaces == {"cr": "urn:ietf:params:xml:ns:common-policy", "pr": "urn:ietf:params:xml:ns:pres-rules"}
    assert (event.auid, event.doc_type, event.action) == ("pres-rules", 2, "replaced")


@pytest.mark.parametrize(("method", "headers", "body", "status"), [
    pytest.param("PUT", {"If-Match": '"stale"'}, RESOURCE_LISTS, "412 Precondition Failed", id="precondition"),
    pytest.param("PUT", {}, b"<resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'><entry/>", "409 Conflict",
                 id="not-well-formed"),
    pytest.param("PUT", {"Content-Type": "application/xml"}, RESOURCE_LISTS, "415 Unsupported Media Type", id="media-type"),
    pytest.param("DELETE", {"If-None-Match": "*"}, b"", "412 Precondition Failed", id="delete-precondition"),
])
def test_refused_writes_produce_no_event(make_app: Any, recorder: Recorder, method: str, headers: dict[str, str],
                                         body: bytes, status: str) -> None:
    app = make_app(recorder)
    client = Client(app)
    client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME)
    recorder.wait(1)
    headers = {"Content-Type": RL_MIME, **headers}
    assert client.open(RL_URI, method=method, data=body, headers=headers).status == status
    assert client.delete(RL_URI.replace("index", "missing")).status == "404 Not Found"
    time.sleep(0.2)
    assert len(recorder.events) == 1
    assert all_rows(app.notifier.outbox) == []


def test_without_notifiers_nothing_is_recorded(storage: Storage) -> None:
    app = XCAPMiddleware(None, storage=storage)
    assert app.notifier is None
    assert isinstance(storage, DBAPIStorage) and storage.outbox is None
    assert Client(app).put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME).status == "201 Created"


def test_event_row_commits_with_the_document_and_waits_for_delivery(make_app: Any, recorder: Recorder) -> None:
    """Nothing runs the delivery threads here: the row is in the outbox after the answer."""
    app = make_app(recorder)
    app.notifier.ensure_running = lambda: None  # a worker that died right after the commit
    resp = Client(app).put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME)
    [row] = all_rows(app.notifier.outbox)
    assert row[1:] == ("callable:tests.test_notify.Recorder", RL_URI, 0, 0, "")
    assert recorder.events == []
    restarted = Notifier(app.storage, app.notifier.settings)  # the next worker to run
    restarted.ensure_running()
    try:
        [event] = recorder.wait(1)
    finally:
        restarted.stop()
    assert (event.id, event.new_etag) == (row[0], etag(resp))
    wait_rows(app.notifier.outbox, lambda rows: rows == [])


def test_a_write_that_fails_validation_inside_the_transaction_stores_no_event(make_app: Any, recorder: Recorder) -> None:
    app = make_app(recorder)
    client = Client(app)
    client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME)
    dup = LIST + "/entry%5B@uri=%22sip:bob@example.com%22%5D"
    resp = client.put(dup.replace("bob", "dan"), data=b'<entry uri="sip:bob@example.com"/>', content_type=EL_MIME)
    assert resp.status == "409 Conflict"
    recorder.wait(1)
    time.sleep(0.2)
    assert len(recorder.events) == 1


def test_events_of_one_document_arrive_in_commit_order(make_app: Any, recorder: Recorder) -> None:
    client = Client(make_app(recorder))
    etags = [etag(client.put(RL_URI, data=counter_doc(n), content_type=RL_MIME)) for n in range(20)]
    events = recorder.wait(20)
    assert [e.new_etag for e in events] == etags
    assert [e.previous_etag for e in events] == [None, *etags[:-1]]


def test_failed_delivery_is_retried_with_backoff_until_it_succeeds(make_app: Any, recorder: Recorder,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    recorder.fail = 3
    app = make_app(recorder)
    with caplog.at_level(logging.WARNING, "xcap_wsgi.notify"):
        Client(app).put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME)
        [event] = recorder.wait(1)
    assert recorder.calls == 4
    retries = [r.getMessage() for r in caplog.records if "failed, next in" in r.getMessage()]
    assert len(retries) == 3
    assert retries[0] == (f"notify callable:tests.test_notify.Recorder: attempt 1 for event(s) {event.id} of {RL_URI}"
                          " failed, next in 0.02 s: callable:tests.test_notify.Recorder raised RuntimeError: target says no")
    wait_rows(app.notifier.outbox, lambda rows: rows == [])


def test_after_the_last_attempt_the_event_is_marked_failed_and_logged(make_app: Any, recorder: Recorder,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    recorder.fail = 100
    app = make_app(recorder, max_attempts=3)
    with caplog.at_level(logging.ERROR, "xcap_wsgi.notify"):
        Client(app).put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME)
        [row] = wait_rows(app.notifier.outbox, lambda rows: bool(rows) and rows[0][3] == 1)
        deadline = time.monotonic() + 5  # the row is committed just before the line is logged
        while not [r for r in caplog.records if r.levelno == logging.ERROR] and time.monotonic() < deadline:
            time.sleep(0.01)
    assert row[3:] == (1, 3, "callable:tests.test_notify.Recorder raised RuntimeError: target says no")
    assert recorder.calls == 3
    [message] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert message == (f"notify callable:tests.test_notify.Recorder: gave up on event(s) {row[0]} of {RL_URI} after 3"
                       " attempt(s): callable:tests.test_notify.Recorder raised RuntimeError: target says no")


class Permanent:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, event: ChangeEvent) -> None:
        self.calls += 1
        raise DeliveryError("module not loaded", retry=False)


def test_a_permanent_failure_is_not_retried(make_app: Any) -> None:
    target = Permanent()
    app = make_app(target)
    Client(app).put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME)
    [row] = wait_rows(app.notifier.outbox, lambda rows: bool(rows) and rows[0][3] == 1)
    assert row[4:] == (1, "module not loaded")
    time.sleep(0.2)
    assert target.calls == 1


def test_pending_changes_of_one_document_are_folded_for_a_url_target(storage: Storage) -> None:
    """The events reach a sink as one batch per document (the SIP and RPC sinks fold them)."""
    batches: list[list[int]] = []

    class Batching(Recorder):
        pass

    def deliver(events: Any) -> None:
        batches.append([e.id for e in events])

    app = XCAPMiddleware(None, storage=storage, notify=NotifySettings(targets=(Recorder(),), **FAST))
    assert app.notifier is not None
    storage.ensure_schema()
    clear_outbox(app.notifier.outbox)
    app.notifier.sinks[0].deliver = deliver  # type: ignore[method-assign]
    app.notifier.ensure_running = lambda: None  # type: ignore[method-assign]
    client = Client(app)
    for n in range(3):
        client.put(RL_URI, data=counter_doc(n), content_type=RL_MIME)
    client.put(PRES_RULES_URI, data=PRES_RULES, content_type="application/auth-policy+xml")
    ids = [row[0] for row in all_rows(app.notifier.outbox)]
    worker = Notifier(storage, app.notifier.settings)
    worker.sinks[0].deliver = deliver  # type: ignore[method-assign]
    worker.ensure_running()
    deadline = time.time() + 5
    while len(batches) < 2:
        assert time.time() < deadline
        time.sleep(0.02)
    worker.stop()
    assert batches == [ids[:3], ids[3:]]


def test_only_one_process_holds_a_targets_lease(storage: Storage, recorder: Recorder) -> None:
    app = XCAPMiddleware(None, storage=storage, notify=[recorder])
    assert app.notifier is not None
    outbox = app.notifier.outbox
    storage.ensure_schema()
    clear_outbox(outbox)
    name = app.notifier.sinks[0].name
    assert outbox.hold_lease(name, "host/1/a", 5.0)
    assert not outbox.hold_lease(name, "host/2/b", 5.0)
    assert outbox.hold_lease(name, "host/1/a", 5.0)  # renewal
    outbox.release_lease(name, "host/1/a")
    assert outbox.hold_lease(name, "host/2/b", 5.0)


def test_a_dead_holder_on_this_host_loses_its_lease_at_once(storage: Storage, recorder: Recorder) -> None:
    import multiprocessing
    import socket

    from xcap_wsgi.notify.dispatcher import holder_dead

    child = multiprocessing.get_context("fork").Process(target=time.sleep, args=(0,))
    child.start()
    child.join()
    dead = f"{socket.gethostname()}/{child.pid}/x"
    assert holder_dead(dead)
    assert not holder_dead(f"{socket.gethostname()}/1/x")  # pid 1 runs
    assert not holder_dead(f"elsewhere/{child.pid}/x")  # another host: wait for expiry
    app = XCAPMiddleware(None, storage=storage, notify=[recorder])
    assert app.notifier is not None
    storage.ensure_schema()
    clear_outbox(app.notifier.outbox)
    name = app.notifier.sinks[0].name
    assert app.notifier.outbox.hold_lease(name, dead, 60.0)
    assert app.notifier.outbox.hold_lease(name, "me/2/b", 60.0, holder_dead)


@pytest.mark.parametrize(("notify", "message"), [
    pytest.param(["http://x/RPC"], "unsupported notify target 'http://x/RPC'", id="bare-http"),
    pytest.param(["kamailio+ftp://x"], "unsupported notify target 'kamailio+ftp://x'", id="scheme"),
    pytest.param("kamailio+http://x/RPC", "notify takes a list of targets", id="string-not-list"),
    pytest.param(["kamailio+http://x/RPC", "kamailio+http://x/RPC"], "notify target(s) given twice", id="twice"),
    pytest.param([42], "notify target 42 is neither a URL nor callable", id="not-callable"),
])
def test_bad_notify_targets_are_refused_at_construction(storage: Storage, notify: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        XCAPMiddleware(None, storage=storage, notify=notify)


def test_notify_max_attempts_must_be_positive(storage: Storage) -> None:
    with pytest.raises(ValueError, match="notify_max_attempts must be a positive integer, got 0"):
        XCAPMiddleware(None, storage=storage, notify=["kamailio+http://127.0.0.1:5091/RPC"], notify_max_attempts=0)


class Down:
    """A target that cannot be reached until ``up`` is set."""

    def __init__(self) -> None:
        self.up = threading.Event()
        self.events: list[ChangeEvent] = []

    def __call__(self, event: ChangeEvent) -> None:
        if not self.up.is_set():
            raise DeliveryError("connection refused", target_down=True)
        self.events.append(event)


def test_a_target_that_is_down_is_probed_with_one_document_only(make_app: Any) -> None:
    target = Down()
    app = make_app(target, backoff_base=0.05, backoff_cap=0.05)
    app.notifier.ensure_running = lambda: None
    client = Client(app)
    uris = [RL_URI.replace("alice", user) for user in ("a", "b", "c")]
    for uri in uris:
        client.put(uri, data=RESOURCE_LISTS, content_type=RL_MIME)
    worker = Notifier(app.storage, app.notifier.settings)
    worker.ensure_running()
    try:
        rows = wait_rows(app.notifier.outbox, lambda rows: rows[0][4] >= 3)
        assert [(uri, attempts) for _, _, uri, _, attempts, _ in rows[1:]] == [(uris[1], 0), (uris[2], 0)]
        target.up.set()
        wait_rows(app.notifier.outbox, lambda rows: rows == [])
    finally:
        worker.stop()
    assert [e.doc_uri for e in target.events] == uris


def test_observe_counts_each_outcome_per_target(make_app: Any, recorder: Recorder) -> None:
    counts: list[tuple[str, str, int]] = []
    recorder.fail = 1
    app = make_app(recorder, observe=lambda sink, outcome, n: counts.append((sink, outcome, n)))
    Client(app).put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME)
    recorder.wait(1)
    deadline = time.time() + 5
    while len(counts) < 2 and time.time() < deadline:
        time.sleep(0.01)
    name = "callable:tests.test_notify.Recorder"
    assert counts == [(name, "retried", 1), (name, "delivered", 1)]
