"""The selector engine (RFC 4825 §7.4-7.10, §8.2-8.4, §10): exact bytes in, exact bytes out."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from xcap_wsgi import errors
from xcap_wsgi.nodes import delete_node, get_node, put_node
from xcap_wsgi.selector import NodeSelector, parse_node_selector, parse_xmlns_query

RL = "urn:ietf:params:xml:ns:resource-lists"
DOC_URI = "/xcap-root/resource-lists/users/sip:a@b/index"

# RFC 4825 §8.2.3, Figure 23 (the document of the insertion examples).
FIG23 = b"""<?xml version="1.0" encoding="UTF-8"?>
<root>
  <el1 att="first"/>
  <el1 att="second"/>
  <!-- comment -->
  <el2 att="first"/>
</root>
"""

# Default namespace, CRLF, comments and PIs inside elements, CDATA, non-ASCII names.
LISTS = (
    '<?xml version="1.0" encoding="UTF-8"?>\r\n'
    '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"\r\n'
    "    xmlns:x='urn:example:ext'>\r\n"
    ' <list name="friends">\r\n'
    "  <display-name xml:lang='de'>Freunde <!-- ü --> &amp; Müller</display-name>\r\n"
    '  <entry uri="sip:joe@example.com"><display-name>Joe</display-name></entry>\r\n'
    "  <?app keep?>\r\n"
    "  <entry uri='sip:nancy@example.com' x:tag=\"a&quot;b\" >\r\n"
    "   <display-name><![CDATA[<Nancy> & co]]></display-name>\r\n"
    "  </entry>\r\n"
    "  <x:note>山田 太郎</x:note>\r\n"
    " </list>\r\n"
    ' <list name="empty"/>\r\n'
    "</resource-lists>\r\n"
).encode()

# sipsimple style: single-quoted declaration, rl: prefixes only, one line, no final newline.
PREFIXED = (
    b"<?xml version='1.0' encoding='UTF-8'?>\n"
    b'<rl:resource-lists xmlns:rl="urn:ietf:params:xml:ns:resource-lists">'
    b'<rl:list name="oma_buddylist"><rl:entry uri="sip:bob@example.com"/></rl:list>'
    b'<rl:list name="oma_blockedcontacts"/></rl:resource-lists>'
)


def sel(text: str, default: str | None = RL, query: str = "") -> NodeSelector:
    return parse_node_selector(text, parse_xmlns_query(query), default)


def get(document: bytes, text: str, default: str | None = RL, query: str = "") -> bytes:
    body, _ = get_node(document, sel(text, default, query))
    return body


def put(document: bytes, text: str, body: bytes, default: str | None = RL, query: str = "") -> tuple[bytes, bool]:
    return put_node(document, sel(text, default, query), body, DOC_URI)


def fig23_with(old: bytes, new: bytes) -> bytes:
    assert FIG23.count(old) == 1
    return FIG23.replace(old, new)


# --- GET (§8.3) ---------------------------------------------------------------


def test_get_element_returns_its_original_bytes_without_inherited_declarations():
    # G3, G4: own quotes, whitespace, comments, PIs; no xmlns added.
    body, mime = get_node(LISTS, sel('resource-lists/list[@name="friends"]/entry[2]'))
    assert mime == "application/xcap-el+xml"
    assert body == (
        b"<entry uri='sip:nancy@example.com' x:tag=\"a&quot;b\" >\r\n"
        b"   <display-name><![CDATA[<Nancy> & co]]></display-name>\r\n"
        b"  </entry>"
    )


def test_get_element_keeps_comments_entities_and_non_ascii():
    # N10: comments are part of the selected element's content.
    assert get(LISTS, "resource-lists/list[1]/display-name") == (
        "<display-name xml:lang='de'>Freunde <!-- ü --> &amp; Müller</display-name>".encode()
    )


def test_get_element_by_attr_test_in_single_quotes():
    assert get(LISTS, "resource-lists/list[1]/entry[@uri='sip:joe@example.com']/display-name") == (
        b"<display-name>Joe</display-name>"
    )


def test_get_element_by_attr_test_with_entity_reference():
    # N2: the document's a&quot;b equals the selector's a&#34;b.
    assert get(LISTS, 'resource-lists/list[1]/entry[@x:tag="a&#34;b"]/display-name', query="xmlns(x=urn:example:ext)")
    query = "xmlns(x=urn:example:ext)"
    assert get(LISTS, "resource-lists/list[1]/entry[@x:tag='a\"b']/@x:tag", query=query) == b'"a&quot;b"'


def test_get_element_by_position_and_attr_test():
    assert get(LISTS, 'resource-lists/list[1]/entry[1][@uri="sip:joe@example.com"]').startswith(b'<entry uri="sip:joe')
    with pytest.raises(errors.NotFound):
        get(LISTS, 'resource-lists/list[1]/entry[2][@uri="sip:joe@example.com"]')


def test_get_wildcard_counts_elements_of_any_name():
    # N4: *[3] is the third element child whatever its name (comments and PIs do not count).
    assert get(LISTS, 'resource-lists/list[@name="friends"]/*[4]', query="") == "<x:note>山田 太郎</x:note>".encode()


def test_get_prefixed_element_bound_via_xmlns_query():
    note = get(LISTS, "resource-lists/list[1]/e:note", query="xmlns(e=urn:example:ext)")
    assert note == "<x:note>山田 太郎</x:note>".encode()


def test_get_selector_default_namespace_is_independent_of_the_documents():
    # U17: the document uses prefixes only, the URI uses the AU's default namespace.
    assert get(PREFIXED, 'resource-lists/list[@name="oma_buddylist"]/entry') == b'<rl:entry uri="sip:bob@example.com"/>'
    with pytest.raises(errors.NotFound):
        get(PREFIXED, "resource-lists/list", default="urn:other")


def test_get_namespaceless_document_with_null_default_namespace():
    assert get(FIG23, "root/el2", default=None) == b'<el2 att="first"/>'


def test_get_xmlns_attr_test_never_matches():
    # N5: namespace declarations are not attributes.
    with pytest.raises(errors.NotFound):
        get(LISTS, f'resource-lists[@xmlns="{RL}"]')
    with pytest.raises(errors.NotFound):
        get(LISTS, "resource-lists/@xmlns")


def test_get_several_matches_is_not_found():
    # N6: more than one element is an invalid selector.
    with pytest.raises(errors.NotFound):
        get(LISTS, "resource-lists/list")


def test_get_no_match_is_not_found():
    with pytest.raises(errors.NotFound):
        get(LISTS, 'resource-lists/list[@name="nope"]')


def test_get_attribute_returns_the_attvalue_as_written():
    # G5: the quoted AttValue with its own quote characters.
    body, mime = get_node(LISTS, sel('resource-lists/list[1]/entry[2]/@uri'))
    assert (body, mime) == (b"'sip:nancy@example.com'", "application/xcap-att+xml")
    assert get(LISTS, "resource-lists/list[1]/display-name/@xml:lang") == b"'de'"


def test_get_missing_attribute_is_not_found():
    with pytest.raises(errors.NotFound):
        get(LISTS, "resource-lists/list[1]/@nope")


def test_get_namespace_bindings_uses_the_documents_prefix():
    # §10, NB1, NB2: same prefix and local name as in the document, every in-scope binding.
    body, mime = get_node(PREFIXED, sel("resource-lists/list[1]/entry/namespace::*"))
    assert mime == "application/xcap-ns+xml"
    assert body == b'<rl:entry xmlns:rl="urn:ietf:params:xml:ns:resource-lists"/>'


def test_get_namespace_bindings_include_default_and_prefixes():
    assert get(LISTS, 'resource-lists/list[@name="empty"]/namespace::*') == (
        b'<list xmlns="urn:ietf:params:xml:ns:resource-lists" xmlns:x="urn:example:ext"/>'
    )


def test_get_namespace_bindings_honour_an_undeclared_default():
    document = b'<r xmlns="urn:a" xmlns:p="urn:p"><c xmlns=""/></r>'
    assert get(document, "r/*/namespace::*", default="urn:a") == b'<c xmlns:p="urn:p"/>'


# --- element PUT: RFC 4825 §8.2.3 examples (Figure 23) -------------------------


@pytest.mark.parametrize("selector", ['root/el1[@att="third"]', 'root/el1[3][@att="third"]', 'root/*[3][@att="third"]'])
def test_put_element_inserts_after_last_same_name_sibling(selector):
    # PE11 ("earliest last") and PE12 ("earliest nth").
    new, created = put(FIG23, selector, b'<el1 att="third"/>', default=None)
    assert created is True
    assert new == fig23_with(b'<el1 att="second"/>', b'<el1 att="second"/><el1 att="third"/>')


def test_put_element_without_same_name_siblings_appends_at_the_very_end():
    # PE10: after the trailing whitespace, right before the end tag.
    new, created = put(FIG23, "root/el3", b'<el3 att="first"/>', default=None)
    assert created is True
    assert new == fig23_with(b"\n</root>", b'\n<el3 att="first"/></root>')


@pytest.mark.parametrize("selector", ['root/el2[@att="2"]', 'root/el2[2][@att="2"]'])
def test_put_element_after_the_only_same_name_sibling(selector):
    new, _ = put(FIG23, selector, b'<el2 att="2"/>', default=None)
    assert new == fig23_with(b'<el2 att="first"/>', b'<el2 att="first"/><el2 att="2"/>')


def test_put_wildcard_position_counts_every_element_sibling():
    # PE12: *[2] goes directly after the first element child.
    new, _ = put(FIG23, 'root/*[2][@att="2"]', b'<el2 att="2"/>', default=None)
    assert new == fig23_with(b'<el1 att="first"/>', b'<el1 att="first"/><el2 att="2"/>')


def test_put_position_one_goes_before_the_first_same_name_sibling():
    # PE13
    new, _ = put(FIG23, 'root/el2[1][@att="2"]', b'<el2 att="2"/>', default=None)
    assert new == fig23_with(b'<el2 att="first"/>', b'<el2 att="2"/><el2 att="first"/>')


def test_put_wildcard_position_one_goes_before_the_first_element_child():
    new, _ = put(FIG23, 'root/*[1][@att="new"]', b'<el9 att="new"/>', default=None)
    assert new == fig23_with(b'<el1 att="first"/>', b'<el9 att="new"/><el1 att="first"/>')


@pytest.mark.parametrize(
    ("body", "after"),
    [
        pytest.param(b'<el1 att="2"/>', b'<el1 att="second"/>', id="after-last-el1"),
        pytest.param(b'<el2 att="2"/>', b'<el2 att="first"/>', id="after-last-el2"),
    ],
)
def test_put_wildcard_attr_test_inserts_after_last_sibling_named_like_the_body(body, after):
    # Requirements §10 item 4: "after the last same-name sibling".
    new, _ = put(FIG23, 'root/*[@att="2"]', body, default=None)
    assert new == fig23_with(after, after + body)


def test_put_wildcard_attr_test_with_a_new_name_appends_at_the_end():
    new, _ = put(FIG23, 'root/*[@att="2"]', b'<el3 att="2"/>', default=None)
    assert new == fig23_with(b"\n</root>", b'\n<el3 att="2"/></root>')


@pytest.mark.parametrize("selector", ['root/el1[4][@att="third"]', 'root/*[5][@att="third"]', 'root/el1[0][@att="x"]'])
def test_put_positional_insert_past_the_last_sibling_cannot_insert(selector):
    # Requirements §10 item 5: 409 cannot-insert, document unchanged.
    with pytest.raises(errors.CannotInsert):
        put(FIG23, selector, b'<el1 att="third"/>', default=None)


@pytest.mark.parametrize("selector", ['root/el1[@att="third"]', 'root/el1[3][@att="third"]', 'root/*[3][@att="third"]'])
def test_put_element_whose_attribute_differs_from_the_attr_test_cannot_insert(selector):
    # PE15: GET(PUT(x)) would not be x.
    with pytest.raises(errors.CannotInsert):
        put(FIG23, selector, b'<el1 att="fourth"/>', default=None)


def test_put_element_body_from_a_client_with_single_quotes_and_wrong_value_cannot_insert():
    # rcsjta quirk: body uri is a bare number, selector names the full tel: URI.
    with pytest.raises(errors.CannotInsert):
        put(LISTS, 'resource-lists/list[1]/entry[@uri="tel:+33698765432"]', b"<entry uri='+33698765432'></entry>")


# --- element PUT: replacement ------------------------------------------------------


@pytest.mark.parametrize("selector", ["root/el1[1]", "root/*[1]"])
def test_put_element_replaces_in_place(selector):
    # PE9: same position, surrounding whitespace kept.
    new, created = put(FIG23, selector, b'<el1 att="third"/>', default=None)
    assert created is False
    assert new == fig23_with(b'<el1 att="first"/>', b'<el1 att="third"/>')


@pytest.mark.parametrize("selector", ['root/el1[@att="first"]', 'root/el1[1][@att="first"]', 'root/*[1][@att="first"]'])
def test_put_replacement_that_changes_the_selected_attribute_cannot_insert(selector):
    # PE16
    with pytest.raises(errors.CannotInsert):
        put(FIG23, selector, b'<el1 att="third"/>', default=None)


def test_put_replacement_with_another_name_cannot_insert():
    with pytest.raises(errors.CannotInsert):
        put(FIG23, "root/el2", b"<el3/>", default=None)


def test_put_root_element_replacement():
    new, created = put(FIG23, "root", b"<root>\n</root>", default=None)
    assert (new, created) == (b'<?xml version="1.0" encoding="UTF-8"?>\n<root>\n</root>\n', False)


def test_put_second_root_element_cannot_insert():
    with pytest.raises(errors.CannotInsert):
        put(FIG23, "other", b"<other/>", default=None)


# --- element PUT: fragments (PE5, PE8, PE17) ----------------------------------------


def test_put_fragment_uses_the_documents_default_namespace():
    # PE8: an unprefixed <entry> lands in the resource-lists namespace.
    selector = 'resource-lists/list[@name="friends"]/entry[@uri="sip:new@x"]'
    new, created = put(LISTS, selector, b'<entry uri="sip:new@x"/>')
    assert created is True
    assert new == LISTS.replace(b"  </entry>\r\n", b'  </entry><entry uri="sip:new@x"/>\r\n')


def test_put_fragment_may_use_document_prefixes():
    # Requirements §10 item 8: a prefix bound only in the document.
    body = b'<rl:entry uri="sip:carol@example.com"/>'
    new, _ = put(PREFIXED, 'resource-lists/list[1]/entry[@uri="sip:carol@example.com"]', body)
    assert new == PREFIXED.replace(b'bob@example.com"/>', b'bob@example.com"/>' + body)


def test_put_fragment_keeps_redundant_namespace_declarations():
    # PE17, doubango quirk: every element redeclares the default namespace.
    body = (
        b'<list name="newlist" xmlns="urn:ietf:params:xml:ns:resource-lists">'
        b"<display-name>newlist</display-name></list>"
    )
    new, _ = put(LISTS, 'resource-lists/list[@name="newlist"]', body)
    assert get(new, 'resource-lists/list[@name="newlist"]') == body
    assert new == LISTS.replace(b'<list name="empty"/>', b'<list name="empty"/>' + body)


def test_put_into_an_empty_element_rewrites_only_that_tag():
    body = b'<rl:entry uri="sip:eve@example.com"/>'
    new, created = put(PREFIXED, 'resource-lists/list[@name="oma_blockedcontacts"]/entry', body)
    assert created is True
    assert new == PREFIXED.replace(
        b'<rl:list name="oma_blockedcontacts"/>', b'<rl:list name="oma_blockedcontacts">' + body + b"</rl:list>"
    )


def test_put_fragment_with_xml_declaration_and_whitespace_splices_only_the_element():
    body = (
        b"<?xml version='1.0' encoding='utf-8'?>\n"
        b'<entry uri="sip:alice@example.com">\n  <display-name>Alice</display-name>\n</entry>\n'
    )
    new, _ = put(LISTS, 'resource-lists/list[2]/entry[@uri="sip:alice@example.com"]', body)
    element = b'<entry uri="sip:alice@example.com">\n  <display-name>Alice</display-name>\n</entry>'
    assert new == LISTS.replace(b'<list name="empty"/>', b'<list name="empty">' + element + b"</list>")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"just text", id="text"),
        pytest.param(b"", id="empty"),
        pytest.param(b"<entry uri='a'/><entry uri='b'/>", id="two-elements"),
        pytest.param(b"<entry uri='x'>", id="unbalanced"),
        pytest.param(b'<entry uri="x"/></list><list>', id="tag-injection"),
        pytest.param(b"<entry uri='x'/></c><c>", id="context-escape"),
        pytest.param(b"text<entry uri='x'/>", id="leading-text"),
        pytest.param(b"<!-- c --><entry uri='x'/>", id="leading-comment"),
        pytest.param(b"<entry uri='x'/><?pi?>", id="trailing-pi"),
        pytest.param(b'<!DOCTYPE e [<!ENTITY a "b">]><entry uri="&a;"/>', id="doctype"),
        pytest.param(b"<entry uri='&bogus;'/>", id="undefined-entity"),
        pytest.param(b"<u:entry uri='x'/>", id="unbound-prefix"),
        pytest.param(b"<?xml version='1.0'?><?xml version='1.0'?><entry uri='x'/>", id="two-declarations"),
        pytest.param(b"<?xml nonsense?><entry uri='x'/>", id="bad-declaration"),
        pytest.param(b"<![CDATA[x]]>", id="cdata"),
    ],
)
def test_put_body_that_is_not_one_element_is_not_xml_frag(body):
    # PE5
    with pytest.raises(errors.NotXMLFrag):
        put(LISTS, 'resource-lists/list[@name="friends"]/entry[@uri="x"]', body)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("<entry uri='ü'/>".encode("latin-1"), id="latin-1-bytes"),
        pytest.param(b"<?xml version='1.0' encoding='ISO-8859-1'?><entry uri='x'/>", id="declared-latin-1"),
        pytest.param("<entry uri='x'/>".encode("utf-16"), id="utf-16-bom"),
        pytest.param("<entry uri='x'/>".encode("utf-16-le"), id="utf-16-no-bom"),
    ],
)
def test_put_body_that_is_not_utf8_is_not_utf8(body):
    # PE6
    with pytest.raises(errors.NotUTF8):
        put(LISTS, 'resource-lists/list[@name="friends"]/entry[@uri="x"]', body)


# --- element PUT: no-parent (PE2, PE3, requirements §10 item 6) -------------------


def test_put_missing_parent_names_the_closest_existing_ancestor():
    with pytest.raises(errors.NoParent) as info:
        put(LISTS, 'resource-lists/list[@name="friends"]/list[@name="a b"]/entry', b"<entry uri='x'/>")
    assert info.value.ancestor == DOC_URI + "/~~/resource-lists/list%5B@name=%22friends%22%5D"
    assert b"<ancestor>" + info.value.ancestor.encode() + b"</ancestor>" in info.value.body_bytes()


def test_put_missing_parent_percent_encodes_slashes_and_non_ascii():
    with pytest.raises(errors.NoParent) as info:
        put(LISTS, "resource-lists/list[@name='a/ü']/entry/display-name", b"<display-name/>")
    assert info.value.ancestor == DOC_URI + "/~~/resource-lists"
    with pytest.raises(errors.NoParent) as info:
        put(PREFIXED, "resource-lists/list[@name='oma_buddylist']/x/y", b"<y/>")
    assert info.value.ancestor == DOC_URI + "/~~/resource-lists/list%5B@name='oma_buddylist'%5D"


def test_put_when_not_even_the_root_matches_the_ancestor_is_the_document():
    with pytest.raises(errors.NoParent) as info:
        put(LISTS, "other-root/list", b"<list/>")
    assert info.value.ancestor == DOC_URI


def test_put_under_an_ambiguous_parent_is_no_parent():
    with pytest.raises(errors.NoParent):
        put(LISTS, "resource-lists/list/entry", b"<entry uri='y'/>")


# --- attribute PUT (PA1-PA6) -------------------------------------------------------


def test_put_attribute_creates_it_after_the_last_attribute():
    # PA4: a bare body gets double quotes with ", <, & escaped.
    new, created = put(LISTS, 'resource-lists/list[@name="empty"]/@kind', b'a"<&>b')
    assert created is True
    assert new == LISTS.replace(b'<list name="empty"/>', b'<list name="empty" kind="a&quot;&lt;&amp;>b"/>')
    assert get(new, 'resource-lists/list[@name="empty"]/@kind') == b'"a&quot;&lt;&amp;>b"'


def test_put_attribute_quoted_body_is_stored_as_sent():
    new, created = put(LISTS, "resource-lists/list[1]/entry[2]/@uri", b"'sip:n&amp;cy@example.com'")
    assert created is False
    assert new == LISTS.replace(b"'sip:nancy@example.com'", b"'sip:n&amp;cy@example.com'")


def test_put_attribute_with_prefix_uses_the_documents_prefix():
    new, created = put(LISTS, "resource-lists/list[1]/entry[1]/@e:tag", b'"v"', query="xmlns(e=urn:example:ext)")
    assert created is True
    assert new == LISTS.replace(b'<entry uri="sip:joe@example.com">', b'<entry uri="sip:joe@example.com" x:tag="v">')


def test_put_attribute_on_element_without_attributes():
    new, _ = put(FIG23, "root/@version", b"1", default=None)
    assert new == FIG23.replace(b"<root>", b'<root version="1">')


def test_put_attribute_selected_by_its_old_value_cannot_insert():
    # PA6
    with pytest.raises(errors.CannotInsert):
        put(LISTS, 'resource-lists/list[@name="empty"]/@name', b'"other"')


def test_put_attribute_with_the_same_value_keeps_the_selection():
    new, created = put(LISTS, 'resource-lists/list[@name="empty"]/@name', b"'empty'")
    assert created is False
    assert new == LISTS.replace(b'<list name="empty"/>', b"<list name='empty'/>")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'"a"b"', id="delimiter-inside"),
        pytest.param(b'"a<b"', id="raw-lt"),
        pytest.param(b'"a&b"', id="bare-ampersand"),
        pytest.param(b'"abc', id="unterminated"),
        pytest.param(b"'abc\"", id="mismatched-quotes"),
        pytest.param(b"a\x01b", id="control-char"),
    ],
)
def test_put_attribute_body_that_is_not_an_attvalue(body):
    # PA1
    with pytest.raises(errors.NotXMLAttValue):
        put(LISTS, 'resource-lists/list[@name="empty"]/@kind', body)


def test_put_attribute_body_that_is_not_utf8():
    # PA3
    with pytest.raises(errors.NotUTF8):
        put(LISTS, 'resource-lists/list[@name="empty"]/@kind', b'"\xff"')


def test_put_attribute_on_a_missing_element_is_no_parent():
    with pytest.raises(errors.NoParent) as info:
        put(LISTS, 'resource-lists/list[@name="nope"]/@kind', b'"x"')
    assert info.value.ancestor == DOC_URI + "/~~/resource-lists"


def test_put_xmlns_attribute_cannot_insert():
    with pytest.raises(errors.CannotInsert):
        put(LISTS, "resource-lists/@xmlns", b'"urn:other"')


def test_put_attribute_in_a_namespace_without_prefix_cannot_insert():
    with pytest.raises(errors.CannotInsert):
        put(LISTS, "resource-lists/@u:a", b'"v"', query="xmlns(u=urn:unbound)")


def test_put_and_delete_on_namespace_selector_are_method_not_allowed():
    # NS1
    with pytest.raises(errors.MethodNotAllowed) as info:
        put(LISTS, "resource-lists/namespace::*", b"<x/>")
    assert ("Allow", "GET") in info.value.extra_headers
    with pytest.raises(errors.MethodNotAllowed):
        delete_node(LISTS, sel("resource-lists/namespace::*"))


# --- DELETE (§8.4) -------------------------------------------------------------------


def test_delete_element_keeps_the_whitespace_around_it():
    # D3, D4
    new = delete_node(LISTS, sel('resource-lists/list[1]/entry[@uri="sip:joe@example.com"]'))
    assert new == LISTS.replace(b'<entry uri="sip:joe@example.com"><display-name>Joe</display-name></entry>', b"")


def test_delete_last_element_by_position_is_allowed():
    new = delete_node(FIG23, sel("root/el1[2]", default=None))
    assert new == fig23_with(b'<el1 att="second"/>', b"")


@pytest.mark.parametrize("selector", ["root/el1[1]", "root/*[1]", "root/*[2]"])
def test_delete_that_would_select_another_element_cannot_delete(selector):
    # D5
    with pytest.raises(errors.CannotDelete):
        delete_node(FIG23, sel(selector, default=None))


def test_delete_root_element_cannot_delete():
    with pytest.raises(errors.CannotDelete):
        delete_node(FIG23, sel("root", default=None))


def test_delete_attribute_removes_its_leading_whitespace():
    new = delete_node(LISTS, sel("resource-lists/list[1]/entry[2]/@x:tag", query="xmlns(x=urn:example:ext)"))
    assert new == LISTS.replace(b' x:tag="a&quot;b"', b"")


def test_delete_attribute_used_by_the_selector_succeeds():
    new = delete_node(LISTS, sel('resource-lists/list[@name="empty"]/@name'))
    assert new == LISTS.replace(b'<list name="empty"/>', b"<list/>")


def test_delete_missing_node_is_not_found():
    # D2, D9
    with pytest.raises(errors.NotFound):
        delete_node(LISTS, sel('resource-lists/list[@name="nope"]'))
    with pytest.raises(errors.NotFound):
        delete_node(LISTS, sel('resource-lists/list[@name="empty"]/@kind'))


def test_delete_in_prefixed_one_line_document():
    new = delete_node(PREFIXED, sel('resource-lists/list[@name="oma_buddylist"]/entry'))
    assert new == PREFIXED.replace(b'<rl:entry uri="sip:bob@example.com"/>', b"")


def test_document_with_entity_declarations_is_refused():
    document = b'<!DOCTYPE r [<!ENTITY e "<x/>">]><r>&e;</r>'
    with pytest.raises(errors.NotWellFormed):
        get(document, "r", default=None)


# --- fuzzing: nothing but errors.* escapes ------------------------------------------

_FUZZ_SELECTORS = [
    'resource-lists/list[@name="friends"]/entry[@uri="x"]',
    "resource-lists/list[1]/entry[3]",
    "resource-lists/list[2]/*",
    'resource-lists/list[@name="empty"]/@kind',
    "resource-lists/list[1]/entry[1]/@uri",
    "resource-lists",
    "other/x",
]
_fragment_alphabet = st.sampled_from(
    [b"<", b">", b"/", b"entry", b" uri=", b'"', b"'", b"x", b"&amp;", b"&", b"<!--", b"-->", b"<?xml version='1.0'?>",
     b"<![CDATA[", b"]]>", b"\xff", b"\x00", b"\xc3\xbc", b"</c>", b"<c>", b"xmlns=", b":", b"\n", b"<!DOCTYPE x>"]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(_FUZZ_SELECTORS), st.lists(_fragment_alphabet, max_size=12).map(b"".join) | st.binary())
def test_garbage_bodies_raise_only_xcap_errors(selector, body):
    try:
        new, _ = put(LISTS, selector, body)
    except errors.XCAPError:
        return
    assert get(new, selector)  # whatever was accepted reads back


@settings(max_examples=200)
@given(st.text(st.sampled_from(list("ab*[]@=\"'/12 .:()")), max_size=30))
def test_garbage_selectors_against_a_document_raise_only_xcap_errors(text):
    try:
        selector = parse_node_selector(text, {"a": RL}, RL)
        get_node(LISTS, selector)
        delete_node(LISTS, selector)
        put_node(LISTS, selector, b"<a/>", DOC_URI)
    except errors.XCAPError:
        pass


# --- properties over random resource-lists documents --------------------------------

_space = st.sampled_from(["", " ", "\n  ", "\r\n\t"])
_quote = st.sampled_from(['"', "'"])
_uri = st.from_regex(r"sip:[a-z]{1,4}@(ex|ü)\.com", fullmatch=True)


@st.composite
def _entry(draw: st.DrawFn, uri: str) -> str:
    q = draw(_quote)
    name = draw(st.sampled_from(["", "<display-name>Ä &amp; B</display-name>", "<!-- c -->", "<![CDATA[<x>]]>"]))
    return f"<entry uri={q}{uri}{q}/>" if not name else f"<entry uri={q}{uri}{q}>{name}</entry>"


@st.composite
def resource_lists(draw: st.DrawFn) -> tuple[bytes, list[list[str]]]:
    """A document plus, per list, the URIs of its entries."""
    lists = draw(st.lists(st.lists(_uri, max_size=4, unique=True), min_size=1, max_size=3))
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n<resource-lists xmlns="' + RL + '">']
    for index, uris in enumerate(lists):
        parts.append(draw(_space))
        if not uris and draw(st.booleans()):
            parts.append(f'<list name="l{index}"/>')
            continue
        body = "".join(draw(_space) + draw(_entry(uri)) for uri in uris) + draw(_space)
        parts.append(f'<list name="l{index}">{body}</list>')
    parts.append(draw(_space) + "</resource-lists>" + draw(st.sampled_from(["", "\n"])))
    return "".join(parts).encode(), lists


def _outside(document: bytes, inner: bytes) -> list[tuple[bytes, bytes]]:
    """Every (before, after) split of document around an occurrence of inner."""
    splits, start = [], document.find(inner)
    while start >= 0:
        splits.append((document[:start], document[start + len(inner) :]))
        start = document.find(inner, start + 1)
    return splits


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(resource_lists(), st.data())
def test_property_get_after_put_returns_exactly_what_was_put(generated, data):
    document, lists = generated
    index = data.draw(st.integers(0, len(lists) - 1))
    uri = data.draw(_uri)
    position = data.draw(st.sampled_from(["", "[1]", "[2]", "[3]"]))
    selector = f'resource-lists/list[@name="l{index}"]/entry{position}[@uri="{uri}"]'
    body = data.draw(_entry(uri)).encode()
    try:
        new, created = put(document, selector, body)
    except errors.CannotInsert:
        assume(False)
        return
    assert get(new, selector) == body
    if created:
        # Bytes outside the new element are the old document (an empty tag may open up).
        opened = document.replace(f'<list name="l{index}"/>'.encode(), f'<list name="l{index}"></list>'.encode())
        assert any(before + after in (document, opened) for before, after in _outside(new, body))
    else:
        old = get(document, selector)
        assert any(before + old + after == document for before, after in _outside(new, body))


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(resource_lists(), st.data())
def test_property_successful_delete_makes_the_selector_not_found(generated, data):
    document, lists = generated
    candidates = [(i, j) for i, uris in enumerate(lists) for j in range(len(uris))]
    assume(candidates)
    index, entry = data.draw(st.sampled_from(candidates))
    form = data.draw(st.sampled_from(["position", "attr", "wildcard"]))
    step = {
        "position": f"entry[{entry + 1}]",
        "attr": f'entry[@uri="{lists[index][entry]}"]',
        "wildcard": f"*[{entry + 1}]",
    }[form]
    selector = f"resource-lists/list[{index + 1}]/{step}"
    old = get(document, selector)
    try:
        new = delete_node(document, sel(selector))
    except errors.CannotDelete:
        assert form != "attr" and entry + 1 < len(lists[index])
        return
    with pytest.raises(errors.NotFound):
        get(new, selector)
    assert any(new == before + after for before, after in _outside(document, old))


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(resource_lists(), st.data())
def test_property_attribute_put_get_delete_round_trip(generated, data):
    document, lists = generated
    index = data.draw(st.integers(0, len(lists) - 1))
    value = data.draw(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=8))
    assume(value.strip(" ")[:1] not in ("'", '"'))  # a body opening with a quote is read as an AttValue
    selector = f'resource-lists/list[@name="l{index}"]/@kind'
    new, created = put(document, selector, value.encode())
    assert created is True
    stored = get(new, selector)
    assert parse_node_selector(f"a[@b={stored.decode()}]", {}, None).steps[0].attr.value == value
    assert delete_node(new, sel(selector)) == document
