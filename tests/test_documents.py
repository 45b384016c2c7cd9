"""Whole-document XCAP over HTTP, on both backends (RFC 4825 §7.1-7.3, §8; PD*, G1, D1, E*)."""

from __future__ import annotations

import re

import pytest
from werkzeug.test import Client

from tests.docs import (
    PRES_RULES,
    PRES_RULES_URI,
    RESOURCE_LISTS,
    RESOURCE_LISTS_PREFIXED,
    RESOURCE_LISTS_TABS,
    RL_MIME,
    RL_URI,
)
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.storage import Storage

ETAG = re.compile(r'^"[0-9a-f]{32}"$')


def xcap_error(inner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<xcap-error xmlns="urn:ietf:params:xml:ns:xcap-error">{inner}</xcap-error>\n'
    ).encode()


def put(client: Client, body: bytes = RESOURCE_LISTS, uri: str = RL_URI, **headers: str):
    content_type = headers.pop("content_type", RL_MIME)
    return client.put(uri, data=body, headers={"Content-Type": content_type, **headers} if content_type else headers)


def assert_no_body_with_etag(resp, status: str) -> str:
    assert resp.status == status
    etag = resp.headers["ETag"]
    assert ETAG.match(etag)
    assert sorted(resp.headers.keys()) == ["Content-Length", "ETag", "X-Request-ID"]
    assert resp.headers["Content-Length"] == "0"
    assert resp.data == b""
    return etag


# -- PUT / GET / DELETE -----------------------------------------------------------------

def test_put_creates_201_with_etag_and_no_body(client: Client) -> None:
    assert_no_body_with_etag(put(client), "201 Created")


def test_put_replaces_200_with_new_etag_and_no_body(client: Client) -> None:
    first = put(client).headers["ETag"]
    second = assert_no_body_with_etag(put(client, RESOURCE_LISTS_TABS), "200 OK")
    assert second != first


def test_put_identical_body_still_gets_a_new_etag(client: Client) -> None:
    etags = {put(client).headers["ETag"] for _ in range(3)}
    assert len(etags) == 3


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(RESOURCE_LISTS, id="double-quotes-nonascii"),
        pytest.param(RESOURCE_LISTS_PREFIXED, id="sipsimple-single-quotes-no-final-newline"),
        pytest.param(RESOURCE_LISTS_TABS, id="tabs-crlf-no-encoding"),
        pytest.param(b"\xef\xbb\xbf" + RESOURCE_LISTS, id="utf8-bom"),
    ],
)
def test_get_returns_stored_bytes_exactly(client: Client, body: bytes) -> None:
    etag = put(client, body).headers["ETag"]
    resp = client.get(RL_URI)
    assert resp.status == "200 OK"
    headers = dict(resp.headers)
    assert re.fullmatch("[0-9a-f]{12}", headers.pop("X-Request-ID"))
    assert headers == {
        "Content-Type": RL_MIME,
        "ETag": etag,
        "Cache-Control": "no-cache",
        "Content-Length": str(len(body)),
    }
    assert resp.data == body


def test_get_answers_with_the_usage_mime_type(client: Client) -> None:
    put(client, PRES_RULES, PRES_RULES_URI, content_type="application/auth-policy+xml")
    resp = client.get(PRES_RULES_URI)
    assert (resp.status, resp.headers["Content-Type"], resp.data) == ("200 OK", "application/auth-policy+xml", PRES_RULES)


def test_head_answers_like_get_without_body(client: Client) -> None:
    etag = put(client).headers["ETag"]
    resp = client.head(RL_URI)
    assert resp.status == "200 OK"
    assert resp.headers["ETag"] == etag
    assert resp.headers["Content-Length"] == str(len(RESOURCE_LISTS))
    assert resp.data == b""


def test_percent_encoded_uri_reaches_the_same_document(client: Client) -> None:
    put(client)
    resp = client.get("/xcap-root/resource-lists/users/sip%3Aalice%40example.com/index")
    assert (resp.status, resp.data) == ("200 OK", RESOURCE_LISTS)


def test_get_missing_document_is_404(client: Client) -> None:
    resp = client.get(RL_URI)
    assert (resp.status, resp.headers["Content-Type"], resp.data) == (
        "404 Not Found", "text/plain; charset=utf-8", b"no such document\n")


def test_delete_answers_200_then_404(client: Client) -> None:
    put(client)
    resp = client.delete(RL_URI)
    assert (resp.status, resp.data, resp.headers.get("ETag")) == ("200 OK", b"", None)
    assert client.get(RL_URI).status == "404 Not Found"
    again = client.delete(RL_URI)
    assert (again.status, again.data) == ("404 Not Found", b"no such document\n")


def test_documents_of_different_users_are_separate(client: Client) -> None:
    put(client)
    other = RL_URI.replace("alice", "bob")
    assert client.get(other).status == "404 Not Found"
    put(client, RESOURCE_LISTS_TABS, other)
    assert client.get(RL_URI).data == RESOURCE_LISTS


@pytest.mark.parametrize("method", ["POST", "PATCH", "OPTIONS"])
def test_other_methods_are_405_with_allow(client: Client, method: str) -> None:
    resp = client.open(RL_URI, method=method, data=b"x")
    assert resp.status == "405 Method Not Allowed"
    assert resp.headers["Allow"] == "GET, HEAD, PUT, DELETE"


def test_generated_usage_is_read_only(client: Client) -> None:
    resp = client.put("/xcap-root/xcap-caps/global/index", data=b"<x/>")
    assert resp.status == "405 Method Not Allowed"
    assert resp.headers["Allow"] == "GET, HEAD"


def test_global_tree_write_is_403(client: Client) -> None:
    resp = put(client, uri="/xcap-root/resource-lists/global/index")
    assert (resp.status, resp.data) == (
        "403 Forbidden", b"documents in the global tree can only be changed by an administrator\n")


# -- bodies that are refused --------------------------------------------------------------

def test_not_well_formed_is_409_with_parser_phrase(client: Client) -> None:
    resp = put(client, b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list></resource-lists>')
    assert resp.status == "409 Conflict"
    assert resp.headers["Content-Type"] == "application/xcap-error+xml"
    assert resp.data == xcap_error(
        '<not-well-formed phrase="Opening and ending tag mismatch: list line 1 and resource-lists, line 1, column 86"/>')
    assert client.get(RL_URI).status == "404 Not Found"


def test_phrase_is_xml_escaped(client: Client) -> None:
    resp = put(client, b"<a><b></a>")
    assert resp.status == "409 Conflict"
    assert b'phrase="Opening and ending tag mismatch: b line 1 and a' in resp.data


def test_empty_body_is_not_well_formed(client: Client) -> None:
    resp = put(client, b"")
    assert resp.status == "409 Conflict"
    assert resp.data.startswith(xcap_error("")[:-16])
    assert b"<not-well-formed phrase=" in resp.data


def test_latin1_declared_document_is_not_utf8(client: Client) -> None:
    body = '<?xml version="1.0" encoding="ISO-8859-1"?><resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"/>'
    resp = put(client, body.encode("latin-1"))
    assert (resp.status, resp.data) == ("409 Conflict", xcap_error(
        "<not-utf-8 phrase=\"the body declares encoding 'ISO-8859-1'; XCAP requires UTF-8\"/>"))


def test_latin1_bytes_declared_utf8_is_not_utf8(client: Client) -> None:
    # Jitsi's wire bytes: declared UTF-8, sent as ISO-8859-1 (fixture README)
    body = '<?xml version="1.0" encoding="UTF-8"?><resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">' \
           '<list name="Müller"/></resource-lists>'
    resp = put(client, body.encode("latin-1"))
    assert (resp.status, resp.data) == ("409 Conflict", xcap_error(
        "<not-utf-8 phrase=\"the body is not valid UTF-8 (byte 113: b'\\xfc')\"/>"))


def test_utf16_document_is_not_utf8(client: Client) -> None:
    resp = put(client, '<?xml version="1.0" encoding="UTF-16"?><a/>'.encode("utf-16"))
    assert resp.status == "409 Conflict"
    assert b"<not-utf-8 " in resp.data


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'<!DOCTYPE r [<!ENTITY x "y">]><resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"/>',
                     id="internal-entity"),
        pytest.param(b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>', id="xxe"),
        pytest.param(b'<!DOCTYPE r SYSTEM "http://example.com/r.dtd"><r/>', id="external-dtd"),
        pytest.param(b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><r>&b;</r>',
                     id="entity-bomb"),
    ],
)
def test_doctype_is_refused_never_stored(client: Client, body: bytes) -> None:
    resp = put(client, body)
    assert (resp.status, resp.data) == ("409 Conflict", xcap_error(
        '<not-well-formed phrase="DOCTYPE and entity declarations are not allowed in XCAP documents"/>'))
    assert client.get(RL_URI).status == "404 Not Found"


@pytest.mark.parametrize("content_type", ["application/xml", "text/xml", "application/auth-policy+xml"])
def test_wrong_content_type_is_415(client: Client, content_type: str) -> None:
    resp = put(client, content_type=content_type)
    assert (resp.status, resp.data) == (
        "415 Unsupported Media Type",
        f"Content-Type must be application/resource-lists+xml, got {content_type}\n".encode())


@pytest.mark.parametrize(
    "content_type",
    ["", "application/x-www-form-urlencoded", "application/resource-lists+xml; charset=utf-8",
     "Application/Resource-Lists+XML"],
)
def test_unspecified_or_parameterised_content_type_is_accepted(client: Client, content_type: str) -> None:
    assert put(client, content_type=content_type).status == "201 Created"


# -- buf_size ---------------------------------------------------------------------------

def big_document(size: int) -> bytes:
    head = b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">'
    tail = b"</resource-lists>"
    return head + b" " * (size - len(head) - len(tail)) + tail


@pytest.fixture
def small_app(storage: Storage) -> XCAPMiddleware:
    return XCAPMiddleware(None, storage=storage, buf_size=1000)


def test_body_of_exactly_buf_size_is_accepted(small_app: XCAPMiddleware) -> None:
    body = big_document(1000)
    assert put(Client(small_app), body).status == "201 Created"
    assert Client(small_app).get(RL_URI).data == body


def test_body_over_buf_size_is_413(small_app: XCAPMiddleware) -> None:
    resp = put(Client(small_app), big_document(1001))
    assert (resp.status, resp.data) == (
        "413 Request Entity Too Large", b"request body too large: the limit (buf_size) is 1000 bytes\n")
    assert Client(small_app).get(RL_URI).status == "404 Not Found"


def test_chunked_body_over_buf_size_is_413_without_reading_it_all(small_app: XCAPMiddleware) -> None:
    class Endless:
        read_bytes = 0

        def read(self, n: int = -1) -> bytes:
            self.read_bytes += n
            return b" " * n

    stream = Endless()
    environ = {
        "REQUEST_METHOD": "PUT", "PATH_INFO": RL_URI, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "CONTENT_TYPE": RL_MIME, "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": stream,
    }
    statuses: list[str] = []
    body = b"".join(small_app(environ, lambda status, headers: statuses.append(status)))
    assert statuses == ["413 Request Entity Too Large"]
    assert body == b"request body too large: the limit (buf_size) is 1000 bytes\n"
    assert stream.read_bytes == 1001


def test_chunked_body_within_buf_size_is_stored(client: Client) -> None:
    import io

    environ_overrides = {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True}
    resp = client.put(RL_URI, input_stream=io.BytesIO(RESOURCE_LISTS), content_type=RL_MIME,
                      environ_overrides=environ_overrides)
    assert resp.status == "201 Created"
    assert client.get(RL_URI).data == RESOURCE_LISTS


def test_invalid_content_length_is_400(client: Client) -> None:
    resp = client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME, environ_overrides={"CONTENT_LENGTH": "x"})
    assert (resp.status, resp.data) == ("400 Bad Request", b"invalid Content-Length 'x'\n")


# -- conditional requests -----------------------------------------------------------------

@pytest.mark.parametrize("form", ["{}", '"{}"', '"nope", "{}"'])
def test_put_if_match_current_etag_replaces(client: Client, form: str) -> None:
    etag = put(client).headers["ETag"].strip('"')
    resp = put(client, RESOURCE_LISTS_TABS, **{"If-Match": form.format(etag)})
    assert resp.status == "200 OK"
    assert client.get(RL_URI).data == RESOURCE_LISTS_TABS


@pytest.mark.parametrize("form", ['"stale"', 'W/"{}"'])
def test_put_if_match_other_etag_is_412_and_no_change(client: Client, form: str) -> None:
    etag = put(client).headers["ETag"]
    resp = put(client, RESOURCE_LISTS_TABS, **{"If-Match": form.format(etag.strip('"'))})
    assert (resp.status, resp.data) == (
        "412 Precondition Failed", b"If-Match failed: the document has changed (its ETag differs)\n")
    after = client.get(RL_URI)
    assert (after.data, after.headers["ETag"]) == (RESOURCE_LISTS, etag)


@pytest.mark.parametrize("form", ["*", '"*"', '"abc"'])
def test_put_if_match_on_missing_document_is_412(client: Client, form: str) -> None:
    resp = put(client, **{"If-Match": form})
    assert (resp.status, resp.data) == ("412 Precondition Failed", b"If-Match failed: the document does not exist\n")
    assert client.get(RL_URI).status == "404 Not Found"


def test_put_if_match_star_on_existing_document_replaces(client: Client) -> None:
    put(client)
    assert put(client, RESOURCE_LISTS_TABS, **{"If-Match": "*"}).status == "200 OK"


def test_put_if_none_match_star_creates_only(client: Client) -> None:
    assert put(client, **{"If-None-Match": "*"}).status == "201 Created"
    resp = put(client, RESOURCE_LISTS_TABS, **{"If-None-Match": "*"})
    assert (resp.status, resp.data) == ("412 Precondition Failed", b"If-None-Match failed: the document exists\n")
    assert client.get(RL_URI).data == RESOURCE_LISTS


def test_get_if_none_match_current_is_304_with_etag(client: Client) -> None:
    etag = put(client).headers["ETag"]
    for header in (etag, "W/" + etag, "*", f'"x", {etag}'):
        resp = client.get(RL_URI, headers={"If-None-Match": header})
        assert resp.status == "304 Not Modified"
        assert (resp.headers["ETag"], resp.headers["Cache-Control"], resp.data) == (etag, "no-cache", b"")


def test_head_if_none_match_current_is_304(client: Client) -> None:
    etag = put(client).headers["ETag"]
    assert client.head(RL_URI, headers={"If-None-Match": etag}).status == "304 Not Modified"


def test_get_if_none_match_stale_is_200(client: Client) -> None:
    put(client)
    resp = client.get(RL_URI, headers={"If-None-Match": '"stale"'})
    assert (resp.status, resp.data) == ("200 OK", RESOURCE_LISTS)


def test_get_if_match_stale_is_412(client: Client) -> None:
    put(client)
    assert client.get(RL_URI, headers={"If-Match": '"stale"'}).status == "412 Precondition Failed"


def test_delete_if_match_stale_is_412_and_keeps_document(client: Client) -> None:
    put(client)
    assert client.delete(RL_URI, headers={"If-Match": '"stale"'}).status == "412 Precondition Failed"
    assert client.get(RL_URI).data == RESOURCE_LISTS


def test_delete_if_match_current_deletes(client: Client) -> None:
    etag = put(client).headers["ETag"]
    assert client.delete(RL_URI, headers={"If-Match": etag}).status == "200 OK"
    assert client.get(RL_URI).status == "404 Not Found"


def test_delete_missing_with_if_match_is_412(client: Client) -> None:
    assert client.delete(RL_URI, headers={"If-Match": "*"}).status == "412 Precondition Failed"


def test_etag_changes_on_every_write_and_get_carries_the_latest(client: Client) -> None:
    seen = []
    for _ in range(3):
        seen.append(put(client).headers["ETag"])
        assert client.get(RL_URI).headers["ETag"] == seen[-1]
    assert len(set(seen)) == 3


def test_a_4_mb_address_book_is_stored_and_read_back_whole_with_the_default_buf_size(client: Client) -> None:
    """Issue 10: the default buf_size (4 MiB) holds a 4 MB document, and its elements are
    addressable (one parse: it is larger than the default parse cache bound)."""
    head = b'<?xml version="1.0" encoding="UTF-8"?>\n<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">\n'
    entries = b"".join(b'<list name="l%d"><entry uri="sip:user%d@example.com"/></list>\n' % (i, i)
                       for i in range(60_000))
    document = head + entries + b"</resource-lists>\n"
    assert 4_000_000 < len(document) <= 4 * 1024 * 1024
    put = client.put(RL_URI, data=document, content_type=RL_MIME)
    assert put.status == "201 Created"
    got = client.get(RL_URI)
    assert (got.status, got.headers["ETag"], got.data) == ("200 OK", put.headers["ETag"], document)
    element = client.get(RL_URI + "/~~/resource-lists/list%5B@name=%22l59999%22%5D/entry/@uri")
    assert (element.status, element.data) == ("200 OK", b'"sip:user59999@example.com"')
