"""Hostile input: every attack gets a clear 4xx, quickly, and leaves the stored document alone.

Requirements §3.1 and issue 5. The time bound here is a hang guard (a generous ceiling
that only a pathological parse would cross), not a speed measurement; speed is measured
by the benchmarks under bench/.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from werkzeug.test import Client

from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI
from xcap_wsgi import DEFAULT_BUF_SIZE, XCAPMiddleware

HANG_GUARD_S = 5.0
EL = "application/xcap-el+xml"
LIST = RL_URI + "/~~/resource-lists/list%5B@name=%22friends%22%5D"


@pytest.fixture
def stored(client: Client) -> Iterator[Client]:
    etag = client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME).headers["ETag"]
    yield client
    after = client.get(RL_URI)
    assert (after.status, after.data, after.headers["ETag"]) == ("200 OK", RESOURCE_LISTS, etag), "document changed"


def timed(request: Callable[[], Any]) -> Any:
    start = time.monotonic()
    resp = request()
    assert time.monotonic() - start < HANG_GUARD_S
    return resp


def error_element(resp: Any) -> bytes:
    assert resp.headers["Content-Type"] == "application/xcap-error+xml"
    return bytes(resp.data.split(b'xcap-error">', 1)[1].split(b" ", 1)[0])


BOMB = (b'<!DOCTYPE lolz [<!ENTITY lol "lol">' + b"".join(
    f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'.encode() for i in range(1, 10))
    + b']><resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="&lol9;"/></resource-lists>')


@pytest.mark.parametrize(
    ("body", "element"),
    [
        pytest.param(BOMB, b"<not-well-formed", id="billion-laughs"),
        pytest.param(b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                     b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="&x;"/></resource-lists>',
                     b"<not-well-formed", id="xxe-file"),
        pytest.param(b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/evil.dtd"> %p;]><r/>',
                     b"<not-well-formed", id="xxe-parameter-entity-network"),
        pytest.param(b"<a>" * 100_000 + b"</a>" * 100_000, b"<not-well-formed", id="100000-deep"),
        pytest.param(b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="\xff\xfe"/></resource-lists>',
                     b"<not-utf-8", id="invalid-utf8"),
        pytest.param(b"\x00" * 1000, b"<not-well-formed", id="nul-bytes"),
    ],
)
def test_hostile_document_is_refused(stored: Client, body: bytes, element: bytes) -> None:
    resp = timed(lambda: stored.put(RL_URI, data=body, content_type=RL_MIME))
    assert resp.status == "409 Conflict"
    assert error_element(resp) == element


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'<!DOCTYPE e [<!ENTITY x "y">]><entry uri="sip:x@example.com"/>', id="doctype-in-fragment"),
        pytest.param(b"<e>" * 100_000 + b"</e>" * 100_000, id="100000-deep-fragment"),
        pytest.param(b'<entry uri="&x;"/>', id="undeclared-entity"),
    ],
)
def test_hostile_fragment_is_refused(stored: Client, body: bytes) -> None:
    resp = timed(lambda: stored.put(LIST + "/entry%5B@uri=%22sip:x@example.com%22%5D", data=body, content_type=EL))
    assert resp.status == "409 Conflict"
    assert error_element(resp) in (b"<not-xml-frag", b"<not-well-formed", b"<cannot-insert",
                                   b"<schema-validation-error")


class EndlessStream:
    """A 50 MB body that is never actually produced: reading it all would show as a hang."""

    def __init__(self) -> None:
        self.read_total = 0

    def read(self, n: int = -1) -> bytes:
        n = 65536 if n is None or n < 0 else min(n, 65536)
        self.read_total += n
        return b" " * n


def put_stream(client: Client, stream: EndlessStream, **environ: str) -> str:
    """PUT straight through the WSGI interface (the test client would buffer the body)."""
    statuses: list[str] = []
    env = {"REQUEST_METHOD": "PUT", "SCRIPT_NAME": "", "PATH_INFO": RL_URI, "QUERY_STRING": "",
           "CONTENT_TYPE": RL_MIME, "wsgi.input": stream, **environ}
    b"".join(client.application(env, lambda status, headers: statuses.append(status)))
    return statuses[0]


def test_50_mb_body_with_content_length_is_413_without_reading(stored: Client) -> None:
    stream = EndlessStream()
    status = timed(lambda: put_stream(stored, stream, CONTENT_LENGTH=str(50 * 1024 * 1024)))
    assert (status, stream.read_total) == ("413 Request Entity Too Large", 0)


def test_50_mb_chunked_body_is_413_after_buf_size(stored: Client) -> None:
    stream = EndlessStream()
    status = timed(lambda: put_stream(stored, stream, HTTP_TRANSFER_ENCODING="chunked"))
    assert status == "413 Request Entity Too Large"
    assert stream.read_total == DEFAULT_BUF_SIZE + 1


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param(RL_URI.replace("alice", "al%ZZice"), "400 Bad Request", id="malformed-percent"),
        pytest.param(RL_URI + "/~~/" + "/".join(["resource-lists"] * 10_000), "400 Bad Request", id="huge-selector"),
        pytest.param(RL_URI + "/~~/resource-lists/list%5B" + "9" * 5000 + "%5D", "400 Bad Request", id="huge-position"),
        pytest.param(RL_URI + "/~~/resource-lists/list%5B@name=%22" + "x" * 100_000 + "%22%5D", "400 Bad Request",
                     id="huge-attribute-test"),
        pytest.param(RL_URI + "/~~/resource-lists/list%5B@name=%22a" + "%5B" * 5000, "400 Bad Request",
                     id="unbalanced-brackets"),
    ],
)
def test_hostile_uri_is_refused(stored: Client, path: str, status: str) -> None:
    resp = timed(lambda: stored.get(path))
    assert resp.status == status
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"


def test_percent_encoded_invalid_utf8_is_400(stored: Client) -> None:
    # as gunicorn passes it: PATH_INFO is the latin-1 text of the decoded octets
    raw = RL_URI.replace("alice", "al%C3ice")
    statuses: list[str] = []
    env = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": RL_URI.replace("alice", "al\xc3ice"),
           "RAW_URI": raw, "QUERY_STRING": "", "wsgi.input": io.BytesIO()}
    body = b"".join(stored.application(env, lambda status, headers: statuses.append(status)))
    assert (statuses, body) == (["400 Bad Request"], b"the path is not UTF-8 after percent-decoding\n")


def test_encoded_crlf_in_uri_cannot_inject_headers(stored: Client) -> None:
    resp = stored.get(RL_URI.replace("alice", "a%0D%0ASet-Cookie:%20x=1%0D%0A"))
    assert resp.status == "404 Not Found"
    assert "Set-Cookie" not in resp.headers
    assert all("\r" not in v and "\n" not in v for _, v in resp.headers.items())


def test_hostile_requests_leave_the_server_serving(storage: Any) -> None:
    app = XCAPMiddleware(None, storage=storage)
    client = Client(app)
    client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME)
    for body in (BOMB, b"<a>" * 100_000, b"\xff" * 1000):
        client.put(RL_URI, data=body, content_type=RL_MIME)
    client.open(RL_URI, method="PUT", input_stream=io.BytesIO(b"x" * 100), content_type=RL_MIME,
                headers={"Content-Length": "nonsense"})
    assert client.get(RL_URI).data == RESOURCE_LISTS
