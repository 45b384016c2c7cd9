"""The per-usage quirk switches of ApplicationUsage (issue 12, simservs.md §7), on a usage
registered here twice: ``com.example.lenient`` with every switch on and
``com.example.strict`` with none, over the same document, so each test shows both
what the switch accepts and that a usage without it still answers as RFC 4825 says.

``element_mime_aliases`` (SS3a, PE7), ``rootless_selectors`` (SS31a, N3),
``bare_attribute_values`` (SS35, PA1); element bodies take the prefixes in scope at the
insertion point for every usage (PE8, SS34).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from tests.test_documents import xcap_error
from xcap_wsgi import XCAPMiddleware, errors
from xcap_wsgi.nodes import _read_fragment, _rooted, is_one_element, parse
from xcap_wsgi.selector import Step, parse_node_selector
from xcap_wsgi.storage.sqlite import SQLiteStorage
from xcap_wsgi.usages import ApplicationUsage, register, unregister

NS = "urn:example:quirks"
POLICY = "urn:example:policy"
MIME = "application/vnd.example.quirks+xml"
ALIAS = "application/vnd.example.quirks+xml"
EL = "application/xcap-el+xml"
ATT = "application/xcap-att+xml"
P = f"xmlns(p={POLICY})"
DOC = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<root xmlns="urn:example:quirks" xmlns:p="urn:example:policy">\n'
    b'  <svc active="true"><p:set><p:rule id="a"/></p:set></svc>\n'
    b"  <other/>\n"
    b"  <dup/><dup/>\n"
    b"</root>\n"
)
USAGES = {
    "lenient": ApplicationUsage(auid="com.example.lenient", mime_type=MIME, namespace=NS, doc_type=4096,
                                element_mime_aliases=(ALIAS,), rootless_selectors=True, bare_attribute_values=True),
    "strict": ApplicationUsage(auid="com.example.strict", mime_type=MIME, namespace=NS, doc_type=4096),
}


def doc_uri(kind: str) -> str:
    return f"/xcap-root/com.example.{kind}/users/sip:alice@example.com/index"


@pytest.fixture(scope="module", autouse=True)
def usages() -> Iterator[None]:
    for usage in USAGES.values():
        register(usage)
    yield
    for usage in USAGES.values():
        unregister(usage.auid)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[Client]:
    storage = SQLiteStorage(str(tmp_path / "xcap.db"))
    client = Client(XCAPMiddleware(None, storage=storage))
    for kind in USAGES:
        assert client.put(doc_uri(kind), data=DOC, content_type=MIME).status == "201 Created"
    yield client
    storage.close()


def stored(client: Client, kind: str) -> bytes:
    return bytes(client.get(doc_uri(kind)).data)


def test_switches_are_off_unless_a_usage_turns_them_on() -> None:
    usage = ApplicationUsage(auid="com.example.plain", mime_type=MIME, namespace=NS, doc_type=4096)
    assert (usage.element_mime_aliases, usage.rootless_selectors, usage.bare_attribute_values) == ((), False, False)
    assert parse_node_selector("root/svc", {}, NS).rootless is False
    assert parse_node_selector("svc", {}, NS, rootless=True).rootless is True


# -- element_mime_aliases (SS3a) -----------------------------------------------------------------

@pytest.mark.parametrize("content_type", [ALIAS, "Application/Vnd.Example.Quirks+XML; charset=UTF-8"])
def test_element_put_with_an_alias_type_and_one_element_is_an_element_put(client: Client, content_type: str) -> None:
    resp = client.put(doc_uri("lenient") + "/~~/root/other", data=b'<other x="1"/>', content_type=content_type)
    assert (resp.status, resp.data) == ("200 OK", b"")
    assert stored(client, "lenient") == DOC.replace(b"<other/>", b'<other x="1"/>')


@pytest.mark.parametrize("body", [
    pytest.param(b"<other/><other/>", id="two-elements"),
    pytest.param(b"other", id="text"),
    pytest.param(b"<other>", id="unbalanced"),
    pytest.param(b"<other/><!-- c -->", id="comment-after"),
    pytest.param(b"\xff<other/>", id="not-utf8"),
    pytest.param(b"", id="empty"),
])
def test_element_put_with_an_alias_type_but_not_one_element_is_415(client: Client, body: bytes) -> None:
    resp = client.put(doc_uri("lenient") + "/~~/root/other", data=body, content_type=ALIAS)
    assert (resp.status, resp.data) == ("415 Unsupported Media Type", f"Content-Type must be {EL}, got {ALIAS}\n".encode())
    assert stored(client, "lenient") == DOC


def test_alias_type_is_not_accepted_for_an_attribute_put(client: Client) -> None:
    resp = client.put(doc_uri("lenient") + "/~~/root/svc/@active", data=b'"false"', content_type=ALIAS)
    assert (resp.status, resp.data) == ("415 Unsupported Media Type", f"Content-Type must be {ATT}, got {ALIAS}\n".encode())


def test_alias_type_is_415_for_a_usage_without_aliases(client: Client) -> None:
    resp = client.put(doc_uri("strict") + "/~~/root/other", data=b'<other x="1"/>', content_type=ALIAS)
    assert (resp.status, resp.data) == ("415 Unsupported Media Type", f"Content-Type must be {EL}, got {ALIAS}\n".encode())
    assert stored(client, "strict") == DOC


def test_alias_body_with_a_prefix_bound_only_at_the_insertion_point_is_accepted(client: Client) -> None:
    # MediaTek: the simservs type on an element PUT, and cp: used undeclared (SS3a + SS34)
    body = b'<svc active="false"><p:set/></svc>'
    resp = client.put(doc_uri("lenient") + "/~~/root/svc", data=body, content_type=ALIAS)
    assert resp.status == "200 OK"
    assert stored(client, "lenient") == DOC.replace(b'<svc active="true"><p:set><p:rule id="a"/></p:set></svc>', body)


@pytest.mark.parametrize(("body", "one"), [
    pytest.param(b"<a/>", True, id="empty-element"),
    pytest.param(b'<?xml version="1.0"?>\n<a><!-- c --><b/>t</a>\r\n', True, id="declaration-and-content"),
    pytest.param(b"<cp:a><cp:b/></cp:a>", True, id="unbound-prefix"),
    pytest.param(b"<a>&amp;</a>", True, id="predefined-entity"),
    pytest.param(b"<a>&x;</a>", False, id="undefined-entity"),
    pytest.param(b"<a/><b/>", False, id="two"),
    pytest.param(b"<a/>t", False, id="trailing-text"),
    pytest.param(b"<?pi?><a/>", False, id="leading-pi"),
    pytest.param(b"<a></b>", False, id="mismatched"),
    pytest.param(b"\xef\xbb\xbf<a/>", True, id="utf8-bom"),
    pytest.param("<a/>".encode("utf-16"), False, id="utf16"),
])
def test_is_one_element(body: bytes, one: bool) -> None:
    assert is_one_element(body) is one


_pieces = st.sampled_from([b"<", b">", b"/", b"a", b"p:", b"q:", b" x=", b'"', b"'", b"&amp;", b"&", b"<!--", b"-->",
                           b"<?xml version='1.0'?>", b"<![CDATA[", b"]]>", b"\xff", b"\n", b" xmlns:q=", b"t"])


@settings(max_examples=300)
@given(st.lists(_pieces, max_size=14).map(b"".join) | st.binary(max_size=30))
def test_every_body_an_element_put_takes_in_a_scope_is_one_element(body: bytes) -> None:
    # is_one_element never raises, and is never stricter than the parse at the insertion point (PE8)
    one = is_one_element(body)
    try:
        _read_fragment(body, {None: NS, "p": POLICY})
    except errors.XCAPError:
        return
    assert one


# -- rootless_selectors (SS31a) ------------------------------------------------------------------

def test_rootless_get_of_a_direct_child_of_the_root(client: Client) -> None:
    etag = client.get(doc_uri("lenient")).headers["ETag"]
    resp = client.get(doc_uri("lenient") + "/~~/svc")
    assert (resp.status, resp.headers["Content-Type"], resp.headers["ETag"]) == ("200 OK", EL, etag)
    assert resp.data == b'<svc active="true"><p:set><p:rule id="a"/></p:set></svc>'
    assert client.get(doc_uri("lenient") + "/~~/svc/@active").data == b'"true"'
    assert client.get(doc_uri("lenient") + "/~~/svc/p:set/p:rule%5b@id=%22a%22%5d", query_string=P).data == (
        b'<p:rule id="a"/>')
    assert client.get(doc_uri("lenient") + "/~~/q:other", query_string=f"xmlns(q={NS})").data == b"<other/>"


def test_rootless_selector_is_404_for_a_usage_without_the_switch(client: Client) -> None:
    resp = client.get(doc_uri("strict") + "/~~/svc")
    assert (resp.status, resp.data) == ("404 Not Found", b"the node selector selects no element (or several)\n")


@pytest.mark.parametrize("selector", [
    pytest.param("svc/set", id="only-the-first-step-is-lenient"),
    pytest.param("root/set", id="later-namespace-mismatch"),
    pytest.param("missing", id="no-such-child"),
    pytest.param("dup", id="two-children"),
    pytest.param("rule", id="grandchild"),
])
def test_rootless_selectors_stay_strict_elsewhere(client: Client, selector: str) -> None:
    assert client.get(doc_uri("lenient") + "/~~/" + selector).status == "404 Not Found"


def test_rootless_put_replaces_the_child_and_its_attribute(client: Client) -> None:
    uri = doc_uri("lenient")
    assert client.put(uri + "/~~/other", data=b"<other>x</other>", content_type=EL).status == "200 OK"
    assert client.put(uri + "/~~/svc/@active", data=b'"false"', content_type=ATT).status == "200 OK"
    assert client.put(uri + "/~~/svc/@new", data=b'"n"', content_type=ATT).status == "201 Created"
    assert stored(client, "lenient") == DOC.replace(b"<other/>", b"<other>x</other>").replace(
        b'<svc active="true">', b'<svc active="false" new="n">')


def test_rootless_put_creates_below_an_existing_child(client: Client) -> None:
    resp = client.put(doc_uri("lenient") + "/~~/svc/p:set/p:rule%5B@id=%22b%22%5D", query_string=P,
                      data=b'<p:rule id="b"/>', content_type=EL)
    assert resp.status == "201 Created"
    assert stored(client, "lenient") == DOC.replace(b'<p:rule id="a"/>', b'<p:rule id="a"/><p:rule id="b"/>')


def test_rootless_put_cannot_create_a_new_child_of_the_root(client: Client) -> None:
    # the first step matches no child: the selector is read as RFC 4825 says (N3)
    resp = client.put(doc_uri("lenient") + "/~~/extra", data=b"<extra/>", content_type=EL)
    assert (resp.status, resp.data) == ("409 Conflict", xcap_error(
        '<cannot-insert phrase="a document has exactly one root element; PUT the document instead"/>'))


def test_rootless_no_parent_names_the_ancestor_with_the_root_step(client: Client) -> None:
    resp = client.put(doc_uri("lenient") + "/~~/svc/p:set/p:rule%5B@id=%22x%22%5D/p:y", query_string=P,
                      data=b"<p:y/>", content_type=EL)
    assert (resp.status, resp.data) == ("409 Conflict", xcap_error(
        '<no-parent phrase="the parent of the node does not exist"><ancestor>'
        "/xcap-root/com.example.lenient/users/sip:alice@example.com/index/~~/root/svc/p:set"
        f"?{P}</ancestor></no-parent>"))


def test_rootless_delete_of_a_child_and_of_an_attribute(client: Client) -> None:
    uri = doc_uri("lenient")
    assert client.delete(uri + "/~~/other").status == "200 OK"
    assert client.delete(uri + "/~~/svc/@active").status == "200 OK"
    assert client.delete(uri + "/~~/other").status == "404 Not Found"
    assert stored(client, "lenient") == DOC.replace(b"<other/>", b"").replace(b'<svc active="true">', b"<svc>")


def test_rootless_selector_naming_the_root_is_unchanged(client: Client) -> None:
    assert client.get(doc_uri("lenient") + "/~~/root/other").data == b"<other/>"
    assert client.get(doc_uri("lenient") + "/~~/root").data == DOC[DOC.index(b"<root"):-1]


def test_rooted_step_is_a_wildcard_when_the_root_is_in_another_namespace(client: Client) -> None:
    other = b'<p:top xmlns:p="urn:example:policy" xmlns="urn:example:quirks"><svc/></p:top>'
    assert client.put(doc_uri("lenient"), data=other, content_type=MIME).status == "200 OK"
    assert client.get(doc_uri("lenient") + "/~~/svc").data == b"<svc/>"
    resp = client.put(doc_uri("lenient") + "/~~/svc/x/y", data=b"<y/>", content_type=EL)
    assert (resp.status, resp.data) == ("409 Conflict", xcap_error(
        '<no-parent phrase="the parent of the node does not exist"><ancestor>'
        "/xcap-root/com.example.lenient/users/sip:alice@example.com/index/~~/*/svc</ancestor></no-parent>"))


def test_rootless_steps_are_the_root_and_then_the_selector() -> None:
    rooted = _rooted(parse(DOC).root, parse_node_selector("q:svc/@active", {"q": NS}, NS, rootless=True))
    assert (rooted.steps[0], rooted.text, rooted.rootless) == (Step(NS, "root", None, None), "q:root/q:svc/@active", False)


# -- bare_attribute_values (SS35) ----------------------------------------------------------------

@pytest.mark.parametrize(("body", "lenient", "strict"), [
    pytest.param(b"false", b'"false"', b'"false"', id="bare"),
    pytest.param(b"false\r\n", b'"false"', b'"false&#13;&#10;"', id="bare-with-line-end"),
    pytest.param(b" \tfalse ", b'"false"', b'" &#9;false "', id="bare-with-spaces"),
    pytest.param(b"a&b", b'"a&amp;b"', b'"a&amp;b"', id="ampersand-escaped-as-for-every-usage"),
    pytest.param(b'"false"', b'"false"', b'"false"', id="quoted"),
    pytest.param(b" 'false'\n", b"'false'", b"'false'", id="single-quoted"),
])
def test_bare_attribute_values(client: Client, body: bytes, lenient: bytes, strict: bytes) -> None:
    for kind, value in (("lenient", lenient), ("strict", strict)):
        uri = doc_uri(kind) + "/~~/root/svc/@active"
        assert client.put(uri, data=body, content_type=ATT).status == "200 OK"
        assert client.get(uri).data == value
        assert stored(client, kind) == DOC.replace(b'active="true"', b"active=" + value)


@pytest.mark.parametrize("kind", USAGES)
@pytest.mark.parametrize("body", [b'"a"b"', b'"a<b"', b"'abc", b"a\x01b"])
def test_attribute_body_that_is_not_an_att_value_is_409_with_or_without_the_switch(
        client: Client, kind: str, body: bytes) -> None:
    resp = client.put(doc_uri(kind) + "/~~/root/svc/@active", data=body, content_type=ATT)
    assert (resp.status, b"<not-xml-att-value" in resp.data) == ("409 Conflict", True)
    assert stored(client, kind) == DOC


# -- PE8: in-scope prefixes, for every usage -----------------------------------------------------

@pytest.mark.parametrize("kind", USAGES)
def test_element_body_uses_the_prefixes_in_scope_at_the_insertion_point(client: Client, kind: str) -> None:
    body = b'<svc active="true"><p:set><p:rule id="z"/></p:set></svc>'
    assert client.put(doc_uri(kind) + "/~~/root/svc", data=body, content_type=EL).status == "200 OK"
    assert stored(client, kind) == DOC.replace(b'<p:rule id="a"/>', b'<p:rule id="z"/>')
    assert client.get(doc_uri(kind) + "/~~/root/svc/p:set/p:rule/@id", query_string=P).data == b'"z"'


@pytest.mark.parametrize("kind", USAGES)
def test_element_body_with_a_prefix_not_in_scope_is_409(client: Client, kind: str) -> None:
    resp = client.put(doc_uri(kind) + "/~~/root/svc", data=b"<svc><cp:set/></svc>", content_type=EL)
    assert (resp.status, resp.data) == ("409 Conflict", xcap_error(
        '<not-xml-frag phrase="body is not a well-balanced XML element: '
        'not well-formed XML: unbound prefix: line 1, column 64"/>'))  # the column counts the context element
    assert stored(client, kind) == DOC
