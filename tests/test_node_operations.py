"""Element, attribute and namespace operations over HTTP, on both backends (RFC 4825 §7.4-7.10, §8).

The selector engine itself is tested byte by byte in test_nodes.py; these tests check
what a client sees: status, headers, bodies, ETags and the stored bytes afterwards.
"""

from __future__ import annotations

import re

import pytest
from werkzeug.test import Client

from tests.docs import PRES_RULES, PRES_RULES_URI, RL_MIME, RL_URI
from tests.test_documents import xcap_error

EL = "application/xcap-el+xml"
ATT = "application/xcap-att+xml"
DOC = (
    b"<?xml version='1.0' encoding='UTF-8'?>\n"
    b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists" xmlns:x="urn:example:ext">\n'
    b'  <list name="friends">\n'
    b'    <entry uri="sip:bob@example.com"><display-name>Bob</display-name></entry>\n'
    b"    <entry uri='sip:carol@example.com'/>\n"
    b"  </list>\n"
    b"</resource-lists>"
)
FRIENDS = RL_URI + "/~~/resource-lists/list%5B@name=%22friends%22%5D"
BOB = FRIENDS + "/entry%5B@uri=%22sip:bob@example.com%22%5D"
CR = "xmlns(cr=urn:ietf:params:xml:ns:common-policy)"
X = "xmlns(x=urn:example:ext)"


@pytest.fixture
def etag(client: Client) -> str:
    resp = client.put(RL_URI, data=DOC, content_type=RL_MIME)
    assert resp.status == "201 Created"
    return str(resp.headers["ETag"])


def stored(client: Client) -> bytes:
    return bytes(client.get(RL_URI).data)


# -- GET -----------------------------------------------------------------------------------

def test_get_element_returns_its_original_bytes(client: Client, etag: str) -> None:
    resp = client.get(BOB)
    assert resp.status == "200 OK"
    headers = dict(resp.headers)
    assert re.fullmatch("[0-9a-f]{12}", headers.pop("X-Request-ID"))
    assert headers == {"Content-Type": EL, "ETag": etag, "Cache-Control": "no-cache", "Content-Length": "73"}
    assert resp.data == b'<entry uri="sip:bob@example.com"><display-name>Bob</display-name></entry>'


def test_get_element_by_position_keeps_its_single_quotes(client: Client, etag: str) -> None:
    resp = client.get(FRIENDS + "/entry%5B2%5D")
    assert (resp.status, resp.data) == ("200 OK", b"<entry uri='sip:carol@example.com'/>")


def test_get_attribute_returns_its_att_value(client: Client, etag: str) -> None:
    resp = client.get(BOB + "/@uri")
    assert (resp.status, resp.headers["Content-Type"], resp.headers["ETag"]) == ("200 OK", ATT, etag)
    assert resp.data == b'"sip:bob@example.com"'


def test_get_namespace_bindings(client: Client, etag: str) -> None:
    resp = client.get(FRIENDS + "/namespace::*")
    assert (resp.status, resp.headers["Content-Type"], resp.headers["ETag"]) == ("200 OK", "application/xcap-ns+xml", etag)
    assert resp.data == b'<list xmlns="urn:ietf:params:xml:ns:resource-lists" xmlns:x="urn:example:ext"/>'


def test_get_element_if_none_match_is_304(client: Client, etag: str) -> None:
    resp = client.get(BOB, headers={"If-None-Match": etag})
    assert (resp.status, resp.headers["ETag"], resp.data) == ("304 Not Modified", etag, b"")


def test_get_prefixed_selector_with_xmlns_query(client: Client) -> None:
    client.put(PRES_RULES_URI, data=PRES_RULES, content_type="application/auth-policy+xml")
    resp = client.get(PRES_RULES_URI + "/~~/cr:ruleset/cr:rule%5B@id=%22a%22%5D/cr:actions/sub-handling",
                      query_string=CR)
    assert (resp.status, resp.data) == ("200 OK", b"<sub-handling>allow</sub-handling>")


@pytest.mark.parametrize(
    ("selector", "status", "message"),
    [
        ("/~~/resource-lists/list%5B@name=%22nobody%22%5D", "404 Not Found", None),
        ("/~~/resource-lists/list/entry", "404 Not Found", None),  # two entries: not exactly one (N6)
        ("/~~/resource-lists/text()", "404 Not Found", None),  # unknown extension selector (U15)
        ("/~~/x:resource-lists", "400 Bad Request", None),  # prefix not bound (U16)
    ],
)
def test_get_selector_errors(client: Client, etag: str, selector: str, status: str, message: str | None) -> None:
    assert client.get(RL_URI + selector).status == status


def test_get_node_of_missing_document_is_404(client: Client) -> None:
    assert client.get(BOB).status == "404 Not Found"


# -- element PUT -----------------------------------------------------------------------------

def test_put_element_inserts_after_last_same_name_sibling(client: Client, etag: str) -> None:
    resp = client.put(FRIENDS + "/entry%5B@uri=%22sip:dave@example.com%22%5D",
                      data=b'<entry uri="sip:dave@example.com"/>', content_type=EL)
    assert resp.status == "201 Created"
    assert resp.headers["ETag"] not in (None, etag)
    assert (resp.data, resp.headers["Content-Length"]) == (b"", "0")
    assert stored(client) == DOC.replace(
        b"<entry uri='sip:carol@example.com'/>",
        b"<entry uri='sip:carol@example.com'/><entry uri=\"sip:dave@example.com\"/>")


def test_put_element_replaces_in_place_200(client: Client, etag: str) -> None:
    new = b'<entry uri="sip:bob@example.com" xmlns="urn:ietf:params:xml:ns:resource-lists"/>'
    resp = client.put(BOB, data=new, content_type=EL)
    assert resp.status == "200 OK"
    assert stored(client) == DOC.replace(
        b'<entry uri="sip:bob@example.com"><display-name>Bob</display-name></entry>', new)
    assert client.get(BOB).data == new  # PE17: its own redundant declaration stays


def test_put_element_changes_the_document_etag(client: Client, etag: str) -> None:
    new_etag = client.put(BOB + "/display-name", data=b"<display-name>Robert</display-name>",
                          content_type=EL).headers["ETag"]
    assert client.get(RL_URI).headers["ETag"] == new_etag != etag


@pytest.mark.parametrize("content_type", [RL_MIME, "", "application/xml"])
def test_put_element_needs_xcap_el_content_type(client: Client, etag: str, content_type: str) -> None:
    resp = client.put(BOB, data=b'<entry uri="sip:bob@example.com"/>', content_type=content_type)
    assert resp.status == "415 Unsupported Media Type"
    assert resp.data == f"Content-Type must be {EL}, got {content_type or 'none'}\n".encode()
    assert stored(client) == DOC


def test_put_element_without_parent_is_no_parent_with_ancestor(client: Client, etag: str) -> None:
    resp = client.put(RL_URI + "/~~/resource-lists/list%5B@name=%22work%22%5D/entry",
                      data=b'<entry uri="sip:x@example.com"/>', content_type=EL)
    assert (resp.status, resp.headers["Content-Type"]) == ("409 Conflict", "application/xcap-error+xml")
    assert resp.data == xcap_error(
        '<no-parent phrase="the parent of the node does not exist"><ancestor>'
        "/xcap-root/resource-lists/users/sip:alice@example.com/index/~~/resource-lists"
        "</ancestor></no-parent>")
    assert stored(client) == DOC


def test_put_element_on_missing_document_is_no_parent(client: Client) -> None:
    resp = client.put(BOB, data=b'<entry uri="sip:bob@example.com"/>', content_type=EL)
    assert (resp.status, resp.data) == (
        "409 Conflict", xcap_error('<no-parent phrase="the document of the parent does not exist"/>'))


def test_put_element_body_not_matching_selector_is_cannot_insert(client: Client, etag: str) -> None:
    # rcsjta quirk: single quotes, bare number while the URI selects the full tel: URI
    resp = client.put(FRIENDS + "/entry%5B@uri=%22tel:+33698765432%22%5D",
                      data=b"<entry uri='+33698765432'></entry>", content_type=EL)
    assert resp.status == "409 Conflict"
    assert b"<cannot-insert " in resp.data
    assert stored(client) == DOC


def test_put_element_positional_insert_past_the_end_is_cannot_insert(client: Client, etag: str) -> None:
    resp = client.put(FRIENDS + "/entry%5B4%5D", data=b'<entry uri="sip:x@example.com"/>', content_type=EL)
    assert resp.status == "409 Conflict"
    assert b"<cannot-insert " in resp.data
    assert stored(client) == DOC


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"just text", id="text"),
        pytest.param(b'<entry uri="a"/><entry uri="b"/>', id="two-elements"),
        pytest.param(b'<entry uri="x"/></list><list name="evil">', id="unbalanced-injection"),
    ],
)
def test_put_element_body_not_one_element_is_not_xml_frag(client: Client, etag: str, body: bytes) -> None:
    resp = client.put(FRIENDS + "/entry%5B3%5D", data=body, content_type=EL)
    assert resp.status == "409 Conflict"
    assert b"<not-xml-frag " in resp.data or b"<not-xml-frag/>" in resp.data
    assert stored(client) == DOC


def test_put_element_latin1_body_is_not_utf8(client: Client, etag: str) -> None:
    resp = client.put(BOB + "/display-name", data="<display-name>Müller</display-name>".encode("latin-1"),
                      content_type=EL)
    assert resp.status == "409 Conflict"
    assert b"<not-utf-8 " in resp.data
    assert stored(client) == DOC


def test_put_element_if_match_stale_is_412(client: Client, etag: str) -> None:
    resp = client.put(BOB, data=b'<entry uri="sip:bob@example.com"/>', content_type=EL,
                      headers={"If-Match": '"stale"'})
    assert resp.status == "412 Precondition Failed"
    assert stored(client) == DOC


def test_put_element_if_none_match_star_always_fails(client: Client, etag: str) -> None:
    # E7: the precondition is evaluated against the document, which exists
    resp = client.put(FRIENDS + "/entry%5B3%5D", data=b'<entry uri="sip:x@example.com"/>', content_type=EL,
                      headers={"If-None-Match": "*"})
    assert resp.status == "412 Precondition Failed"


def test_put_element_if_match_current_succeeds(client: Client, etag: str) -> None:
    resp = client.put(BOB, data=b'<entry uri="sip:bob@example.com"/>', content_type=EL, headers={"If-Match": etag})
    assert resp.status == "200 OK"


def test_put_element_growing_past_buf_size_is_413(storage) -> None:  # type: ignore[no-untyped-def]
    from xcap_wsgi import XCAPMiddleware

    client = Client(XCAPMiddleware(None, storage=storage, buf_size=len(DOC) + 10))
    client.put(RL_URI, data=DOC, content_type=RL_MIME)
    resp = client.put(FRIENDS + "/entry%5B@uri=%22sip:dave@example.com%22%5D",
                      data=b'<entry uri="sip:dave@example.com"/>', content_type=EL)
    assert (resp.status, resp.data) == (
        "413 Request Entity Too Large",
        f"the document would grow past the limit (buf_size) of {len(DOC) + 10} bytes\n".encode())
    assert stored(client) == DOC


def test_put_prefixed_element_into_pres_rules(client: Client) -> None:
    client.put(PRES_RULES_URI, data=PRES_RULES, content_type="application/auth-policy+xml")
    rule = b'<cr:rule id="b"><cr:actions><sub-handling>block</sub-handling></cr:actions></cr:rule>'
    resp = client.put(PRES_RULES_URI + "/~~/cr:ruleset/cr:rule%5B@id=%22b%22%5D", data=rule,
                      content_type=EL, query_string=CR)
    assert resp.status == "201 Created"
    doc = client.get(PRES_RULES_URI).data
    assert doc == PRES_RULES.replace(b"</cr:rule>\n", b"</cr:rule>" + rule + b"\n")


# -- attribute PUT ------------------------------------------------------------------------------

def test_put_attribute_creates_201(client: Client, etag: str) -> None:
    resp = client.put(FRIENDS + "/@x:tag", data=b'"Friends &amp; family"', content_type=ATT, query_string=X)
    assert resp.status == "201 Created"
    assert stored(client) == DOC.replace(b'<list name="friends">', b'<list name="friends" x:tag="Friends &amp; family">')
    assert client.get(FRIENDS + "/@x:tag", query_string=X).data == b'"Friends &amp; family"'


def test_put_attribute_bare_value_is_quoted(client: Client, etag: str) -> None:
    assert client.put(FRIENDS + "/@x:tag", data=b"Friends", content_type=ATT, query_string=X).status == "201 Created"
    assert client.get(FRIENDS + "/@x:tag", query_string=X).data == b'"Friends"'


def test_put_attribute_replaces_200(client: Client, etag: str) -> None:
    resp = client.put(BOB + "/display-name/@xml:lang", data=b'"en"', content_type=ATT)
    assert resp.status == "201 Created"
    resp = client.put(BOB + "/display-name/@xml:lang", data=b'"de"', content_type=ATT)
    assert resp.status == "200 OK"
    assert b'<display-name xml:lang="de">Bob</display-name>' in stored(client)


def test_put_attribute_that_selected_its_element_is_cannot_insert(client: Client, etag: str) -> None:
    resp = client.put(BOB + "/@uri", data=b'"sip:robert@example.com"', content_type=ATT)
    assert resp.status == "409 Conflict"
    assert b"<cannot-insert " in resp.data
    assert stored(client) == DOC


@pytest.mark.parametrize("body", [b'"a<b"', b'"a&b"', b"\"a\"b'", b'"unterminated'])
def test_put_attribute_invalid_value_is_not_xml_att_value(client: Client, etag: str, body: bytes) -> None:
    resp = client.put(FRIENDS + "/@x:tag", data=body, content_type=ATT, query_string=X)
    assert resp.status == "409 Conflict"
    assert b"<not-xml-att-value" in resp.data
    assert stored(client) == DOC


def test_put_attribute_needs_xcap_att_content_type(client: Client, etag: str) -> None:
    resp = client.put(FRIENDS + "/@x:tag", data=b'"x"', content_type=EL, query_string=X)
    assert (resp.status, resp.data) == ("415 Unsupported Media Type", f"Content-Type must be {ATT}, got {EL}\n".encode())


# -- DELETE ---------------------------------------------------------------------------------------

def test_delete_element_removes_exactly_it_and_returns_new_etag(client: Client, etag: str) -> None:
    resp = client.delete(BOB)
    assert resp.status == "200 OK"
    new_etag = resp.headers["ETag"]
    assert new_etag != etag
    assert client.get(RL_URI).headers["ETag"] == new_etag
    assert stored(client) == DOC.replace(
        b'<entry uri="sip:bob@example.com"><display-name>Bob</display-name></entry>', b"")
    assert client.get(BOB).status == "404 Not Found"


def test_delete_element_that_would_still_match_is_cannot_delete(client: Client, etag: str) -> None:
    resp = client.delete(FRIENDS + "/entry%5B1%5D")
    assert resp.status == "409 Conflict"
    assert b"<cannot-delete " in resp.data or b"<cannot-delete/>" in resp.data
    assert stored(client) == DOC


def test_delete_last_element_by_position_is_allowed(client: Client, etag: str) -> None:
    assert client.delete(FRIENDS + "/entry%5B2%5D").status == "200 OK"
    assert b"carol" not in stored(client)


def test_delete_attribute_removes_it(client: Client, etag: str) -> None:
    assert client.delete(FRIENDS + "/@name").status == "200 OK"
    assert stored(client) == DOC.replace(b'<list name="friends">', b"<list>")


def test_delete_missing_node_is_404(client: Client, etag: str) -> None:
    assert client.delete(FRIENDS + "/@nothing").status == "404 Not Found"
    assert client.delete(RL_URI + "/~~/resource-lists/list%5B9%5D").status == "404 Not Found"


def test_delete_element_if_match_stale_is_412(client: Client, etag: str) -> None:
    assert client.delete(BOB, headers={"If-Match": '"stale"'}).status == "412 Precondition Failed"
    assert stored(client) == DOC


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_namespace_selector_cannot_be_written(client: Client, etag: str, method: str) -> None:
    resp = client.open(FRIENDS + "/namespace::*", method=method, data=b"<x/>", content_type=EL)
    assert (resp.status, resp.headers["Allow"]) == ("405 Method Not Allowed", "GET")
    assert stored(client) == DOC


def test_a_node_put_lands_on_the_document_as_locked_when_it_changed_since_it_was_read(
    client: Client, etag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The splice is worked out on the row read before the transaction; a writer that
    slips in between is not lost: the splice is done again on the row as locked."""
    storage = client.application.storage  # type: ignore[attr-defined]
    real_update = storage.update
    calls: list[str] = []

    def update_after_another_writer(key: object, change: object, describe: object = None) -> object:
        if not calls:
            calls.append("other")
            assert client.put(BOB + "/display-name", data=b"<display-name>Robert</display-name>",
                              content_type=EL).status == "200 OK"
        calls.append("ours")
        return real_update(key, change, describe)

    monkeypatch.setattr(storage, "update", update_after_another_writer)
    resp = client.put(FRIENDS + "/entry%5B@uri=%22sip:dave@example.com%22%5D",
                      data=b'<entry uri="sip:dave@example.com"/>', content_type=EL)
    assert resp.status == "201 Created"
    assert calls == ["other", "ours", "ours"]
    assert client.get(RL_URI).data == DOC.replace(b"<display-name>Bob<", b"<display-name>Robert<").replace(
        b"    <entry uri='sip:carol@example.com'/>\n",
        b"    <entry uri='sip:carol@example.com'/><entry uri=\"sip:dave@example.com\"/>\n")


def test_a_node_put_refused_on_the_document_as_read_succeeds_if_the_locked_row_allows_it(
    client: Client, etag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 409 worked out ahead is raised only when the locked row is the row it came from."""
    storage = client.application.storage  # type: ignore[attr-defined]
    real_update = storage.update

    def update_after_the_list_appears(key: object, change: object, describe: object = None) -> object:
        monkeypatch.setattr(storage, "update", real_update)
        assert client.put(RL_URI + '/~~/resource-lists/list%5B@name=%22work%22%5D', data=b'<list name="work"/>',
                          content_type=EL).status == "201 Created"
        return real_update(key, change, describe)

    monkeypatch.setattr(storage, "update", update_after_the_list_appears)
    resp = client.put(RL_URI + '/~~/resource-lists/list%5B@name=%22work%22%5D/entry',
                      data=b'<entry uri="sip:eve@example.com"/>', content_type=EL)
    assert resp.status == "201 Created"
    assert client.get(RL_URI + '/~~/resource-lists/list%5B@name=%22work%22%5D').data == (
        b'<list name="work"><entry uri="sip:eve@example.com"/></list>')
