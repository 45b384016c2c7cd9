"""The xcap-diff builder (RFC 5874 §4) and xcap-wsgi's xcap-diff schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

import xcap_wsgi
from xcap_wsgi.notify.events import Action, ChangeEvent, NodeKind
from xcap_wsgi.notify.xcapdiff import build_xcap_diff
from xcap_wsgi.uri import XCAPRoot, parse_xcap_path
from xcap_wsgi.usages import get_usage

SCHEMA = etree.XMLSchema(etree.parse(str(Path(xcap_wsgi.__file__).parent / "schemas" / "xcap-diff.xsd")))
ROOT_URL = "http://xcap.example.com/xcap-root/"
ALICE_RULES = "pres-rules/users/sip:alice@example.com/index"
BOB_LISTS = "resource-lists/users/sip:bob@example.com/index"
RL = "urn:ietf:params:xml:ns:resource-lists"
OTHER = "urn:example:other"
HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n'
OPEN = b'<xcap-diff xmlns="urn:ietf:params:xml:ns:xcap-diff" xcap-root="http://xcap.example.com/xcap-root/"'


def change(
    selector: str = ALICE_RULES,
    action: Action = "replaced",
    previous: str | None = "e1",
    new: str | None = "e2",
    *,
    node: str | None = None,
    kind: NodeKind | None = None,
    namespaces: dict[str, str] | None = None,
    root_url: str = ROOT_URL,
) -> ChangeEvent:
    """One committed change of ``selector`` (``auid/users/xui/document``)."""
    auid, tree, xui, _document = selector.split("/", 3)
    username, _, domain = xui.removeprefix("sip:").partition("@")
    usage = get_usage(auid)
    assert usage is not None
    return ChangeEvent(
        auid=auid, tree=tree, xui=xui, username=username, domain=domain, doc_uri=f"/xcap-root/{selector}",
        doc_type=usage.doc_type, document_selector=selector, action=action, previous_etag=previous, new_etag=new,
        xcap_root_url=root_url, node_selector=node, node_kind=kind, namespaces=namespaces or {},
    )


def node_change(node: str, action: Action = "replaced", *, namespaces: dict[str, str] | None = None) -> ChangeEvent:
    """An element or attribute PUT/DELETE in Bob's resource list (the document stays)."""
    kind: NodeKind = "attribute" if node.rsplit("/", 1)[-1].startswith("@") else "element"
    return change(BOB_LISTS, action, "e1", "e2", node=node, kind=kind, namespaces=namespaces or {"rl": RL})


def expected(*entries: str, declarations: str = ' xmlns:rl="urn:ietf:params:xml:ns:resource-lists"') -> bytes:
    """A whole xcap-diff document: prolog, root, one entry a line."""
    return HEAD + OPEN + declarations.encode() + b">\n" + b"".join(f"  {e}\n".encode() for e in entries) + b"</xcap-diff>\n"


def build(events: list[ChangeEvent], xcap_root_url: str | None = None) -> bytes:
    """build_xcap_diff, asserting that what it built is valid against the schema."""
    body = build_xcap_diff(events, xcap_root_url)
    assert SCHEMA.validate(etree.fromstring(body)), SCHEMA.error_log
    return body


BOB_DOCUMENT = f'<document sel="{BOB_LISTS}" previous-etag="e1" new-etag="e2"/>'
BOB_NODE = f"{BOB_LISTS}/~~/rl:resource-lists/rl:list%5B@name=%22friends%22%5D"


def test_document_replaced_is_reported_with_both_etags_in_exact_bytes() -> None:
    assert build([change()]) == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<xcap-diff xmlns="urn:ietf:params:xml:ns:xcap-diff" xcap-root="http://xcap.example.com/xcap-root/">\n'
        b'  <document sel="pres-rules/users/sip:alice@example.com/index" previous-etag="e1" new-etag="e2"/>\n'
        b"</xcap-diff>\n"
    )


@pytest.mark.parametrize(
    ("events", "entries"),
    [
        pytest.param([change(action="created", previous=None)], [f'<document sel="{ALICE_RULES}" new-etag="e2"/>'],
                     id="created-has-no-previous-etag"),
        pytest.param([change(action="deleted", new=None)], [f'<document sel="{ALICE_RULES}" previous-etag="e1"/>'],
                     id="deleted-has-no-new-etag"),
        pytest.param([change(), change(BOB_LISTS, previous="b1", new="b2")],
                     [f'<document sel="{ALICE_RULES}" previous-etag="e1" new-etag="e2"/>',
                      f'<document sel="{BOB_LISTS}" previous-etag="b1" new-etag="b2"/>'],
                     id="two-documents-in-order-of-first-appearance"),
        pytest.param([change(action="created", previous=None, new="e1"), change(previous="e1", new="e2"),
                      change(previous="e2", new="e3")],
                     [f'<document sel="{ALICE_RULES}" new-etag="e3"/>'],
                     id="three-changes-fold-into-one-created-document"),
        pytest.param([change(previous="e1", new="e2"), change(BOB_LISTS, previous="b1", new="b2"),
                      change(previous="e2", new="e3")],
                     [f'<document sel="{ALICE_RULES}" previous-etag="e1" new-etag="e3"/>',
                      f'<document sel="{BOB_LISTS}" previous-etag="b1" new-etag="b2"/>'],
                     id="interleaved-changes-fold-per-document"),
        pytest.param([change(previous="e1", new="e2"), change(action="deleted", previous="e2", new=None)],
                     [f'<document sel="{ALICE_RULES}" previous-etag="e1"/>'],
                     id="replaced-then-deleted-has-no-new-etag"),
    ],
)
def test_one_empty_document_element_per_changed_document(events: list[ChangeEvent], entries: list[str]) -> None:
    assert build(events) == expected(*entries, declarations="")


@pytest.mark.parametrize(
    ("event", "entry"),
    [
        pytest.param(node_change('rl:resource-lists/rl:list[@name="friends"]', "created"),
                     f'<element sel="{BOB_NODE}" exists="1"/>', id="element-put-created"),
        pytest.param(node_change('rl:resource-lists/rl:list[@name="friends"]', "replaced"),
                     f'<element sel="{BOB_NODE}" exists="1"/>', id="element-put-replaced"),
        pytest.param(node_change('rl:resource-lists/rl:list[@name="friends"]', "deleted"),
                     f'<element sel="{BOB_NODE}" exists="0"/>', id="element-delete"),
        pytest.param(node_change('rl:resource-lists/rl:list[@name="friends"]/@name', "created"),
                     f'<attribute sel="{BOB_NODE}/@name" exists="1"/>', id="attribute-put"),
        pytest.param(node_change('rl:resource-lists/rl:list[@name="friends"]/@name', "deleted"),
                     f'<attribute sel="{BOB_NODE}/@name" exists="0"/>', id="attribute-delete"),
        pytest.param(node_change('rl:resource-lists/rl:list[@name="friends"]/rl:entry[@uri="sip:bob@example.com"]'),
                     f'<element sel="{BOB_NODE}/rl:entry%5B@uri=%22sip:bob@example.com%22%5D" exists="1"/>',
                     id="sip-uri-predicate-keeps-colon-and-at"),
        pytest.param(node_change('rl:resource-lists/rl:list[@name="Jörg\'s friends"]'),
                     f'<element sel="{BOB_LISTS}/~~/rl:resource-lists/rl:list%5B@name=%22J%C3%B6rg\'s%20friends%22%5D"'
                     ' exists="1"/>', id="non-ascii-and-space-percent-encoded"),
        pytest.param(node_change('rl:resource-lists/rl:list[@name="a/b"]'),
                     f'<element sel="{BOB_LISTS}/~~/rl:resource-lists/rl:list%5B@name=%22a%2Fb%22%5D" exists="1"/>',
                     id="slash-inside-predicate-percent-encoded"),
        pytest.param(node_change('rl:resource-lists/rl:list[@name="50%"]'),
                     f'<element sel="{BOB_LISTS}/~~/rl:resource-lists/rl:list%5B@name=%2250%25%22%5D" exists="1"/>',
                     id="percent-sign-percent-encoded"),
    ],
)
def test_node_change_adds_entry_saying_whether_node_exists(event: ChangeEvent, entry: str) -> None:
    assert build([event]) == expected(BOB_DOCUMENT, entry)


def test_prefixes_of_the_selector_are_declared_on_the_root() -> None:
    event = node_change("rl:resource-lists/x:ext/@x:flag", namespaces={"rl": RL, "x": OTHER})
    body = build([event])
    assert body == expected(
        BOB_DOCUMENT, f'<attribute sel="{BOB_LISTS}/~~/rl:resource-lists/x:ext/@x:flag" exists="1"/>',
        declarations=f' xmlns:rl="{RL}" xmlns:x="{OTHER}"',
    )
    attribute = etree.fromstring(body)[1]
    assert attribute.nsmap == {None: "urn:ietf:params:xml:ns:xcap-diff", "rl": RL, "x": OTHER}


def test_prefix_bound_to_another_namespace_is_redeclared_on_its_entry() -> None:
    first = node_change("rl:resource-lists/rl:list")
    second = node_change("rl:resource-lists/rl:other", namespaces={"rl": OTHER})
    body = build([first, second])
    assert body == expected(
        BOB_DOCUMENT,
        f'<element sel="{BOB_LISTS}/~~/rl:resource-lists/rl:list" exists="1"/>',
        f'<element sel="{BOB_LISTS}/~~/rl:resource-lists/rl:other" exists="1" xmlns:rl="{OTHER}"/>',
    )
    assert [entry.nsmap["rl"] for entry in list(etree.fromstring(body))[1:]] == [RL, OTHER]


@pytest.mark.parametrize(
    "namespaces",
    [
        pytest.param({"": OTHER}, id="empty-prefix"),
        pytest.param({"xml": OTHER}, id="xml-prefix"),
        pytest.param({"xmlns": OTHER}, id="xmlns-prefix"),
        pytest.param({"1bad": OTHER}, id="not-an-ncname"),
        pytest.param({"x": ""}, id="empty-namespace"),
    ],
)
def test_bindings_xml_cannot_declare_are_left_out(namespaces: dict[str, str]) -> None:
    assert build([node_change("resource-lists", namespaces=namespaces)]) == expected(
        BOB_DOCUMENT, f'<element sel="{BOB_LISTS}/~~/resource-lists" exists="1"/>', declarations=""
    )


def test_same_node_selector_lists_only_its_last_state_at_its_first_position() -> None:
    events = [node_change("rl:resource-lists/rl:list"), node_change("rl:resource-lists/rl:list/@name"),
              node_change("rl:resource-lists/rl:list", "deleted")]
    assert build(events) == expected(
        BOB_DOCUMENT,
        f'<element sel="{BOB_LISTS}/~~/rl:resource-lists/rl:list" exists="0"/>',
        f'<attribute sel="{BOB_LISTS}/~~/rl:resource-lists/rl:list/@name" exists="1"/>',
    )


def test_node_entries_follow_their_own_document() -> None:
    events = [node_change("rl:resource-lists/rl:list"), change()]
    assert build(events) == expected(
        BOB_DOCUMENT, f'<element sel="{BOB_LISTS}/~~/rl:resource-lists/rl:list" exists="1"/>',
        f'<document sel="{ALICE_RULES}" previous-etag="e1" new-etag="e2"/>',
    )


@pytest.mark.parametrize(
    "document_change",
    [
        pytest.param(change(BOB_LISTS, previous="e2", new="e3"), id="document-put"),
        pytest.param(change(BOB_LISTS, "deleted", previous="e2", new=None), id="document-delete"),
    ],
)
def test_document_put_or_delete_drops_the_node_entries_before_it(document_change: ChangeEvent) -> None:
    body = build([node_change("rl:resource-lists/rl:list"), document_change])
    assert b"<element" not in body
    assert body.count(b"<document ") == 1


def test_node_change_after_a_document_put_is_listed() -> None:
    events = [change(BOB_LISTS, previous="e1", new="e2"), node_change("rl:resource-lists/rl:list")]
    assert build(events) == expected(
        BOB_DOCUMENT, f'<element sel="{BOB_LISTS}/~~/rl:resource-lists/rl:list" exists="1"/>'
    )


def test_attribute_values_are_xml_escaped() -> None:
    event = change(previous='a"<&>', new="tab\there")
    assert build([event]) == expected(
        f'<document sel="{ALICE_RULES}" previous-etag="a&quot;&lt;&amp;>" new-etag="tab&#9;here"/>', declarations=""
    )


def test_document_selector_is_percent_encoded_keeping_colon_and_at() -> None:
    selector = "resource-lists/users/sip:bob@example.com/my list ü.xml"
    body = build([change(selector)])
    assert b'sel="resource-lists/users/sip:bob@example.com/my%20list%20%C3%BC.xml"' in body


@pytest.mark.parametrize(
    ("root_url", "expected_root"),
    [
        pytest.param("https://xcap.example.com:8443/", b"https://xcap.example.com:8443/", id="plain"),
        pytest.param('http://h/a b"c/', b"http://h/a%20b%22c/", id="space-and-quote"),
        pytest.param("http://h/%7Eroot/", b"http://h/%7Eroot/", id="existing-escape-kept"),
        pytest.param("http://h/wurzel-ä/", b"http://h/wurzel-%C3%A4/", id="non-ascii"),
    ],
)
def test_xcap_root_argument_wins_and_is_percent_encoded(root_url: str, expected_root: bytes) -> None:
    assert b' xcap-root="' + expected_root + b'">' in build([change()], root_url)


def test_xcap_root_defaults_to_the_first_events() -> None:
    events = [change(root_url="http://first.example.com/"), change(BOB_LISTS, root_url="http://second.example.com/")]
    assert b' xcap-root="http://first.example.com/">' in build(events)


@pytest.mark.parametrize(
    ("events", "message"),
    [
        pytest.param([], "no change events", id="no-events"),
        pytest.param([change(root_url="")], "no XCAP root URL", id="no-root-url"),
    ],
)
def test_nothing_to_report_or_no_root_is_value_error(events: list[ChangeEvent], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_xcap_diff(events)


@given(st.text(st.characters(exclude_categories=("Cs", "Cc"), exclude_characters='"<&'), max_size=30))
def test_node_sel_parses_back_to_the_same_selector_as_a_request_uri(value: str) -> None:
    selector = f'rl:resource-lists/rl:list[@name="{value}"]'
    sel = etree.fromstring(build_xcap_diff([node_change(selector)]))[1].get("sel")
    assert sel is not None
    parsed = parse_xcap_path("/xcap-root/" + sel, "", XCAPRoot("/xcap-root/"))
    assert (parsed.doc_uri, parsed.node_selector) == (f"/xcap-root/{BOB_LISTS}", selector)


XD = 'xmlns="urn:ietf:params:xml:ns:xcap-diff"'


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(f'<xcap-diff {XD} xcap-root="http://h/"/>', id="no-entries"),
        pytest.param(f'<xcap-diff {XD} xcap-root="http://h/"><document sel="a/global/i"><body-not-changed/></document>'
                     "</xcap-diff>", id="body-not-changed"),
        pytest.param(f'<xcap-diff {XD} xcap-root="http://h/"><document sel="a/global/i" previous-etag="1" new-etag="2">'
                     '<add sel="r" pos="prepend"><x/>text</add><replace sel="r/y/@n">v</replace><remove sel="r/z" ws="after"/>'
                     "</document></xcap-diff>", id="patch-operations"),
        pytest.param(f'<xcap-diff {XD} xcap-root="http://h/"><element sel="a/global/i/~~/r" exists="true"><r/></element>'
                     '<attribute sel="a/global/i/~~/r/@n">v</attribute><o:x xmlns:o="urn:o"/></xcap-diff>',
                     id="element-content-attribute-value-and-extension"),
        pytest.param(f'<xcap-diff {XD} xmlns:o="urn:o" xcap-root="http://h/" o:a="1">'
                     '<document sel="a/global/i" o:b="2"/></xcap-diff>', id="extension-attributes"),
    ],
)
def test_schema_accepts_rfc_5874_shapes(document: str) -> None:
    assert SCHEMA.validate(etree.fromstring(document)), SCHEMA.error_log


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(f'<xcap-diff {XD}><document sel="a/global/i"/></xcap-diff>', id="no-xcap-root"),
        pytest.param(f'<xcap-diff {XD} xcap-root="http://h/"><documents sel="a/global/i"/></xcap-diff>',
                     id="unknown-child-element"),
        pytest.param(f'<xcap-diff {XD} xcap-root="http://h/"><document/></xcap-diff>', id="document-without-sel"),
        pytest.param(f'<xcap-diff {XD} xcap-root="http://h/"><element sel="a/global/i/~~/r" exists="yes"/></xcap-diff>',
                     id="exists-not-boolean"),
        pytest.param(f'<xcap-diff {XD} xcap-root="http://h/"><attribute sel="s"><x/></attribute></xcap-diff>',
                     id="attribute-with-element-content"),
        pytest.param(f'<xcap-diff {XD} xcap-root="http://h/"><document sel="a/global/i"><body-not-changed/>'
                     '<remove sel="r"/></document></xcap-diff>', id="body-not-changed-with-patch"),
        pytest.param(f'<xcap-diff {XD} xcap-root="http://h/"><o:x xmlns:o="urn:o"/><document sel="a/global/i"/>'
                     "</xcap-diff>", id="entry-after-extension-element"),
        pytest.param('<xcap-diff xcap-root="http://h/"/>', id="no-namespace"),
    ],
)
def test_schema_rejects(document: str) -> None:
    assert not SCHEMA.validate(etree.fromstring(document))
