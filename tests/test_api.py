"""The Python API: ``xcaps_put`` / ``xcaps_get`` / ``xcaps_del`` with the HTTP semantics and bytes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from werkzeug.test import Client

from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI
from tests.test_notify import Recorder
from tests.test_paths import GLOBAL, below_a_document
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.api import Result, XCAPClient, XCAPRequestError
from xcap_wsgi.notify import NotifySettings
from xcap_wsgi.storage import Storage
from xcap_wsgi.storage.sqlite import SQLiteStorage

ALICE = "sip:alice@example.com"
ETAG = re.compile(r"^[0-9a-f]{32}$")
FRIENDS = RL_URI + "/~~/resource-lists/list%5B@name=%22friends%22%5D"
DAVE = FRIENDS + "/entry%5B@uri=%22sip:dave@example.com%22%5D"
ENTRY = b'<entry uri="sip:dave@example.com"/>'


@pytest.fixture
def middleware(tmp_path: Path) -> XCAPMiddleware:
    return XCAPMiddleware(None, storage=SQLiteStorage(str(tmp_path / "x.db")))


@pytest.fixture
def xcap(middleware: XCAPMiddleware) -> XCAPClient:
    return XCAPClient(middleware)


def raised(call: Callable[[], Result]) -> XCAPRequestError:
    with pytest.raises(XCAPRequestError) as info:
        call()
    return info.value


def test_xcaps_put_creates_then_replaces_with_a_new_etag_each_time(xcap: XCAPClient) -> None:
    created = xcap.xcaps_put(ALICE, RL_URI, RESOURCE_LISTS)
    replaced = xcap.xcaps_put(ALICE, RL_URI, RESOURCE_LISTS)
    assert (created.status, created.body, created.content_type) == (201, b"", None)
    assert (replaced.status, replaced.body, replaced.content_type) == (200, b"", None)
    assert ETAG.match(created.etag or "") and ETAG.match(replaced.etag or "") and created.etag != replaced.etag


def test_xcaps_get_returns_the_bytes_as_put_with_etag_and_mime_type(xcap: XCAPClient) -> None:
    etag = xcap.xcaps_put(ALICE, RL_URI, RESOURCE_LISTS).etag
    assert xcap.xcaps_get(ALICE, RL_URI) == Result(200, etag, RESOURCE_LISTS, RL_MIME)


def test_a_text_document_is_stored_as_utf8(xcap: XCAPClient) -> None:
    xcap.xcaps_put(ALICE, RL_URI, RESOURCE_LISTS.decode("utf-8"))
    assert xcap.xcaps_get(ALICE, RL_URI).body == RESOURCE_LISTS


def test_node_selectors_put_get_and_delete_elements_and_attributes(xcap: XCAPClient) -> None:
    xcap.xcaps_put(ALICE, RL_URI, RESOURCE_LISTS)
    element = xcap.xcaps_put(ALICE, DAVE, ENTRY)
    assert element.status == 201
    assert xcap.xcaps_get(ALICE, DAVE) == Result(200, element.etag, ENTRY, "application/xcap-el+xml")
    attribute = xcap.xcaps_put(ALICE, DAVE + "/@uri", '"sip:dave@example.com"')
    assert attribute.status == 200
    assert xcap.xcaps_get(ALICE, DAVE + "/@uri").body == b'"sip:dave@example.com"'
    deleted = xcap.xcaps_del(ALICE, DAVE)
    assert deleted.status == 200 and deleted.etag == xcap.xcaps_get(ALICE, RL_URI).etag != attribute.etag


def test_a_path_in_plain_characters_is_encoded_as_a_client_would(xcap: XCAPClient) -> None:
    xcap.xcaps_put(ALICE, RL_URI, RESOURCE_LISTS)
    plain = RL_URI + '/~~/resource-lists/list[@name="friends"]/entry[@uri="sip:bob@example.com"]/display-name'
    assert xcap.xcaps_get(ALICE, plain).body == "<display-name>Bob Müller</display-name>".encode()


def test_xcaps_del_removes_the_document(xcap: XCAPClient) -> None:
    xcap.xcaps_put(ALICE, RL_URI, RESOURCE_LISTS)
    assert xcap.xcaps_del(ALICE, RL_URI) == Result(200, None)
    error = raised(lambda: xcap.xcaps_get(ALICE, RL_URI))
    assert (error.status, error.condition, error.phrase, error.body) == (404, None, "no such document", b"no such document\n")


def test_preconditions_are_those_of_the_headers(xcap: XCAPClient) -> None:
    etag = xcap.xcaps_put(ALICE, RL_URI, RESOURCE_LISTS).etag
    assert xcap.xcaps_get(ALICE, RL_URI, if_none_match=etag) == Result(304, etag)
    assert xcap.xcaps_get(ALICE, RL_URI, if_match=f'"{etag}"').status == 200
    stale = raised(lambda: xcap.xcaps_put(ALICE, RL_URI, RESOURCE_LISTS, if_match='"0123", "4567"'))
    assert (stale.status, stale.phrase) == (412, "If-Match failed: the document has changed (its ETag differs)")
    exists = raised(lambda: xcap.xcaps_put(ALICE, RL_URI, RESOURCE_LISTS, if_none_match="*"))
    assert (exists.status, exists.phrase) == (412, "If-None-Match failed: the document exists")
    assert xcap.xcaps_del(ALICE, RL_URI, if_match=etag).status == 200


def test_a_409_carries_the_xcap_error_document_its_condition_and_phrase(xcap: XCAPClient) -> None:
    error = raised(lambda: xcap.xcaps_put(ALICE, RL_URI, b"<resource-lists"))
    assert (error.status, error.content_type, error.condition) == (409, "application/xcap-error+xml", "not-well-formed")
    assert error.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<xcap-error')
    assert error.phrase in error.body.decode() and str(error) == f"409 {error.phrase}"


def test_u10_is_refused_as_over_http(xcap: XCAPClient) -> None:
    xcap.xcaps_put(None, GLOBAL + "index", RESOURCE_LISTS)
    error = raised(lambda: xcap.xcaps_put(None, GLOBAL + "index/inner", RESOURCE_LISTS))
    assert (error.status, error.condition, error.body) == (409, "no-parent", below_a_document("index", "index/inner", GLOBAL))


def test_a_document_over_buf_size_is_413(tmp_path: Path) -> None:
    xcap = XCAPClient(XCAPMiddleware(None, storage=SQLiteStorage(str(tmp_path / "x.db")), buf_size=100))
    error = raised(lambda: xcap.xcaps_put(ALICE, RL_URI, RESOURCE_LISTS))
    assert (error.status, error.phrase) == (413, "request body too large: the limit (buf_size) is 100 bytes")


@pytest.mark.parametrize(("uri", "path", "status"), [
    pytest.param("sip:bob@example.com", RL_URI, 403, id="another-users-document"),
    pytest.param("sip:alice@example.com", GLOBAL + "index", 403, id="user-writing-the-global-tree"),
    pytest.param("sips:alice@EXAMPLE.com;transport=tls", RL_URI, 201, id="owner-compared-canonically"),
    pytest.param(None, RL_URI, 201, id="administrator-in-a-users-home"),
    pytest.param(None, GLOBAL + "index", 201, id="administrator-in-the-global-tree"),
])
def test_uri_names_who_acts_and_none_is_an_administrator(xcap: XCAPClient, uri: str | None, path: str, status: int) -> None:
    try:
        assert xcap.xcaps_put(uri, path, RESOURCE_LISTS).status == status
    except XCAPRequestError as error:
        assert error.status == status


def test_a_write_is_announced_to_the_notify_targets(tmp_path: Path) -> None:
    recorder = Recorder()
    middleware = XCAPMiddleware(None, storage=SQLiteStorage(str(tmp_path / "x.db")),
                                notify=NotifySettings(targets=(recorder,), poll_interval=0.02))
    try:
        created = XCAPClient(middleware, base_url="https://xcap.example.com:8443").xcaps_put(ALICE, RL_URI, RESOURCE_LISTS)
        [event] = recorder.wait(1)
    finally:
        assert middleware.notifier is not None
        middleware.notifier.stop()
    assert (event.action, event.doc_uri, event.new_etag, event.xcap_root_url) == (
        "created", RL_URI, created.etag, "https://xcap.example.com:8443/xcap-root/")


@pytest.mark.parametrize("base_url", ["ftp://host", "http://", "http://host/xcap-root/", "http://host?x=1"])
def test_a_bad_base_url_is_refused_at_construction(middleware: XCAPMiddleware, base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url must be http"):
        XCAPClient(middleware, base_url=base_url)


# -- the same bytes as over HTTP ------------------------------------------------------------------

@pytest.fixture
def both(storage: Storage) -> Iterator[tuple[XCAPClient, Client]]:
    """The API and an HTTP client on one middleware (every backend), alice's index stored."""
    middleware = XCAPMiddleware(None, storage=storage)
    http = Client(middleware)
    assert http.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME).status == "201 Created"
    yield XCAPClient(middleware), http


@pytest.mark.parametrize("path", [
    pytest.param(RL_URI, id="document"),
    pytest.param(FRIENDS, id="element"),
    pytest.param(FRIENDS + "/@name", id="attribute"),
    pytest.param(FRIENDS + "/namespace::*", id="namespace-bindings"),
    pytest.param("/xcap-root/xcap-caps/global/index", id="generated"),
    pytest.param("/xcap-root/org.openmobilealliance.xcap-directory/users/sip:alice@example.com/directory.xml",
                 id="generated-per-user"),
])
def test_reads_answer_the_bytes_of_http(both: tuple[XCAPClient, Client], path: str) -> None:
    xcap, http = both
    resp = http.get(path)
    assert resp.status == "200 OK"
    assert xcap.xcaps_get(None, path) == Result(200, resp.headers["ETag"].strip('"'), resp.data, resp.headers["Content-Type"])


@pytest.mark.parametrize(("method", "path", "body", "content_type"), [
    pytest.param("PUT", RL_URI, b"<resource-lists", RL_MIME, id="not-well-formed"),
    pytest.param("PUT", RL_URI, b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><x/></resource-lists>',
                 RL_MIME, id="schema"),
    pytest.param("PUT", FRIENDS + "/entry", b"<entry", "application/xcap-el+xml", id="not-xml-frag"),
    pytest.param("PUT", RL_URI + "/~~/resource-lists/nothing/entry", ENTRY, "application/xcap-el+xml", id="no-parent"),
    pytest.param("PUT", RL_URI + "/~~/resource-lists/list/namespace::*", b"", "", id="namespace-write"),
    pytest.param("GET", RL_URI + "/~~/resource-lists/x:list", b"", "", id="unbound-prefix"),
    pytest.param("GET", "/xcap-root/nope/users/sip:alice@example.com/index", b"", "", id="unknown-auid"),
    pytest.param("DELETE", RL_URI + "/~~/resource-lists/list%5B@name=%22nobody%22%5D", b"", "", id="missing-node"),
    pytest.param("PUT", "/xcap-root/xcap-caps/global/index", RESOURCE_LISTS, "application/xcap-caps+xml", id="read-only"),
    pytest.param("POST", RL_URI, b"", "", id="method"),
])
def test_failures_answer_the_bytes_of_http(both: tuple[XCAPClient, Client], method: str, path: str, body: bytes,
                                           content_type: str) -> None:
    xcap, http = both
    resp = http.open(path, method=method, data=body, content_type=content_type)
    error = raised(lambda: xcap.request(method, None, path, body))
    assert (error.status, error.content_type, error.body) == (resp.status_code, resp.headers["Content-Type"], resp.data)
    assert [h for h in error.headers if h[0] == "Allow"] == [h for h in resp.headers if h[0] == "Allow"]
