"""The node-selector grammar (RFC 4825 §6.3, §6.4; requirements N1-N14, U15-U17)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xcap_wsgi import errors
from xcap_wsgi.selector import (
    MAX_SELECTOR_LENGTH,
    MAX_STEPS,
    XML_NAMESPACE,
    AttributeSelector,
    AttrTest,
    NamespaceSelector,
    Step,
    parse_node_selector,
    parse_xmlns_query,
)

RL = "urn:ietf:params:xml:ns:resource-lists"
CP = "urn:ietf:params:xml:ns:common-policy"


def parse(text: str, namespaces: dict[str, str] | None = None, default: str | None = RL):
    return parse_node_selector(text, namespaces or {}, default)


def test_by_name_steps_take_the_default_document_namespace():
    # U17, N9: unprefixed element names in the URI use the AU's namespace.
    selector = parse("resource-lists/list")
    assert selector.steps == (Step(RL, "resource-lists", None, None), Step(RL, "list", None, None))
    assert selector.terminal is None
    assert selector.text == "resource-lists/list"


def test_without_default_namespace_unprefixed_names_are_in_no_namespace():
    assert parse("root/el1", default=None).steps[1] == Step(None, "el1", None, None)


def test_by_position_step():
    assert parse("resource-lists/list[2]").steps[1] == Step(RL, "list", 2, None)


def test_attr_test_with_double_quotes_decodes_entity_references():
    # N2: the value is an XML AttValue.
    step = parse('resource-lists/list[@name="a&amp;b&lt;&quot;&apos;&gt;"]').steps[1]
    assert step.attr == AttrTest(None, "name", "a&b<\"'>")


def test_attr_test_with_single_quotes_decodes_character_references():
    step = parse("resource-lists/list[@name='&#77;&#x61;x \"q\"']").steps[1]
    assert step.attr == AttrTest(None, "name", 'Max "q"')


def test_by_position_and_attr_test_step():
    step = parse('resource-lists/list/entry[3][@uri="sip:bob@example.com"]').steps[2]
    assert step == Step(RL, "entry", 3, AttrTest(None, "uri", "sip:bob@example.com"))


def test_wildcard_step_has_no_name_and_no_namespace():
    assert parse("resource-lists/*[2]").steps[1] == Step(None, None, 2, None)
    assert parse('resource-lists/*[@name="x"]').steps[1] == Step(None, None, None, AttrTest(None, "name", "x"))


def test_prefixed_names_use_bindings_from_the_xmlns_query():
    namespaces = parse_xmlns_query(f"xmlns(cp={CP})xmlns(rl={RL})")
    selector = parse('cp:ruleset/cp:rule[@id="a"]/rl:x', namespaces, "urn:ietf:params:xml:ns:pres-rules")
    assert [(s.namespace, s.local) for s in selector.steps] == [(CP, "ruleset"), (CP, "rule"), (RL, "x")]


def test_unprefixed_attribute_names_are_in_no_namespace_even_with_a_default():
    # N7: the default document namespace never applies to attributes.
    selector = parse('resource-lists/list[@name="x"]/@name')
    assert selector.steps[1].attr == AttrTest(None, "name", "x")
    assert selector.terminal == AttributeSelector(None, "name")


def test_prefixed_attribute_names_in_tests_and_terminals():
    selector = parse('resource-lists/list[@e:kind="x"]/@e:kind', {"e": "urn:ext"})
    assert selector.steps[1].attr == AttrTest("urn:ext", "kind", "x")
    assert selector.terminal == AttributeSelector("urn:ext", "kind")


def test_xml_prefix_is_always_bound():
    selector = parse("resource-lists/list/display-name/@xml:lang")
    assert selector.terminal == AttributeSelector(XML_NAMESPACE, "lang")


def test_namespace_selector_terminal():
    selector = parse("resource-lists/list/namespace::*")
    assert selector.terminal == NamespaceSelector()
    assert len(selector.steps) == 2


def test_xmlns_attr_test_parses_as_an_ordinary_attribute_test():
    # N5: it parses, but the engine never matches it (see test_nodes).
    assert parse('resource-lists[@xmlns="urn:x"]').steps[0].attr == AttrTest(None, "xmlns", "urn:x")


def test_slash_inside_a_quoted_attribute_value_does_not_split_steps():
    # N1 / pitfall 11.4: %2F arrives decoded as "/".
    selector = parse("resource-lists/list[@name=\"a/b]\"]/entry[@uri='http://x/y[1]']")
    assert [s.local for s in selector.steps] == ["resource-lists", "list", "entry"]
    assert selector.steps[1].attr == AttrTest(None, "name", "a/b]")
    assert selector.steps[2].attr == AttrTest(None, "uri", "http://x/y[1]")


def test_non_ascii_names_and_values():
    step = parse('resource-lists/list[@name="Müller 山田"]/entrée').steps
    assert step[1].attr == AttrTest(None, "name", "Müller 山田")
    assert step[2].local == "entrée"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("resource-lists/text()", id="xpath-node-test"),
        pytest.param("resource-lists/comment()", id="comment-test"),
        pytest.param("resource-lists/list/..", id="parent-axis"),
        pytest.param("resource-lists/rl:*", id="prefixed-wildcard"),
        pytest.param("resource-lists/list/@@name", id="bad-attribute-terminal"),
        pytest.param("resource-lists/@name/list", id="attribute-in-the-middle"),
        pytest.param("resource-lists/namespace::x", id="other-namespace-axis"),
    ],
)
def test_extension_selector_is_not_found(text):
    # U15: a segment the grammar does not know is an extension selector -> 404.
    with pytest.raises(errors.NotFound):
        parse(text)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("p:resource-lists", id="step"),
        pytest.param('resource-lists/list[@p:name="x"]', id="attr-test"),
        pytest.param("resource-lists/@p:name", id="attribute-selector"),
    ],
)
def test_unbound_prefix_is_bad_request(text):
    # U16: a prefix the query's xmlns() parts do not define -> 400.
    with pytest.raises(errors.BadRequest, match="prefix 'p'"):
        parse(text)


def test_extension_selector_is_reported_before_an_unbound_prefix():
    # RFC 4825 §8 processing order: extension (3) before the prefix check (6).
    with pytest.raises(errors.NotFound):
        parse("p:resource-lists/text()")


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("/resource-lists", id="leading-slash"),
        pytest.param("resource-lists/", id="trailing-slash"),
        pytest.param("resource-lists//list", id="double-slash"),
        pytest.param("resource-lists/list[", id="open-bracket"),
        pytest.param('resource-lists/list[@name="x]', id="unterminated-quote"),
        pytest.param("resource-lists/list[@name=x]", id="unquoted-value"),
        pytest.param("resource-lists/list[name]", id="predicate-not-attr"),
        pytest.param('resource-lists/list[@name="x"][2]', id="attr-before-position"),
        pytest.param("resource-lists/list[ 2 ]", id="spaces-in-predicate"),
        pytest.param("resource-lists/list[-1]", id="negative-position"),
        pytest.param("resource-lists/list[12345678901]", id="huge-position"),
        pytest.param('resource-lists/list[@name="<"]', id="raw-lt-in-value"),
        pytest.param('resource-lists/list[@name="a&b"]', id="bare-ampersand"),
        pytest.param('resource-lists/list[@name="&nbsp;"]', id="unknown-entity"),
        pytest.param('resource-lists/list[@name="&#0;"]', id="non-xml-char-ref"),
        pytest.param('resource-lists/list[@name="&#x110000;"]', id="char-ref-out-of-range"),
        pytest.param("@name", id="terminal-without-element"),
    ],
)
def test_syntax_errors_are_bad_request(text):
    with pytest.raises(errors.BadRequest):
        parse(text)


def test_selector_length_is_bounded():
    with pytest.raises(errors.BadRequest, match="too long"):
        parse("a" * (MAX_SELECTOR_LENGTH + 1))


def test_step_count_is_bounded():
    with pytest.raises(errors.BadRequest, match="too many steps"):
        parse("/".join(["a"] * (MAX_STEPS + 2)))


def test_parent_drops_the_last_step():
    # PE1: parent = request URI minus its last step.
    parent = parse('resource-lists/list[@name="a/b"]/entry[2]').parent()
    assert parent is not None
    assert parent.text == 'resource-lists/list[@name="a/b"]'
    assert parent.steps == parse('resource-lists/list[@name="a/b"]').steps
    assert parent.terminal is None


def test_parent_of_a_terminal_is_its_element():
    parent = parse("resource-lists/list/@name").parent()
    assert parent is not None
    assert (parent.text, parent.terminal, len(parent.steps)) == ("resource-lists/list", None, 2)


def test_parent_of_the_root_step_is_none():
    assert parse("resource-lists").parent() is None


def test_xmlns_query_binds_prefixes():
    # N12
    assert parse_xmlns_query(f"xmlns(rl={RL}) xmlns( cp = {CP})") == {"rl": RL, "cp": CP}


def test_xmlns_query_ignores_other_schemes():
    # N13: parts of other schemes are skipped, even with nested parentheses.
    assert parse_xmlns_query("element(/1/2)xpointer(id('a(b)'))xmlns(a=urn:a)") == {"a": "urn:a"}


def test_xmlns_query_unescapes_circumflex_escapes():
    assert parse_xmlns_query("xmlns(a=urn:x^(1^)^^)") == {"a": "urn:x(1)^"}


def test_xmlns_query_later_binding_wins():
    assert parse_xmlns_query("xmlns(a=urn:1)xmlns(a=urn:2)") == {"a": "urn:2"}


def test_empty_query_binds_nothing():
    assert parse_xmlns_query("") == {}


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("rl=urn:x", id="not-xpointer"),
        pytest.param("xmlns(rl=urn:x", id="unbalanced"),
        pytest.param("xmlns(rl)", id="no-equals"),
        pytest.param("xmlns(1a=urn:x)", id="bad-prefix"),
        pytest.param("xmlns(a=)", id="empty-uri"),
        pytest.param("xmlns(a=urn:^x)", id="bad-escape"),
        pytest.param("xmlns(a=urn:x))", id="extra-paren"),
    ],
)
def test_malformed_xmlns_query_is_bad_request(query):
    with pytest.raises(errors.BadRequest):
        parse_xmlns_query(query)


_selector_chars = st.sampled_from(list("ab:*@[]=\"'/&;#x0129 ()<>.-_é山\\"))


@given(st.text(_selector_chars, max_size=60) | st.text(max_size=60))
def test_garbage_selectors_raise_only_xcap_errors(text):
    with contextlib.suppress(errors.XCAPError):
        parse(text, {"a": "urn:a"})


@given(st.text(st.sampled_from(list("xmlns()=a:^ e/1'\"")), max_size=60) | st.text(max_size=60))
def test_garbage_queries_raise_only_xcap_errors(query):
    with contextlib.suppress(errors.XCAPError):
        parse_xmlns_query(query)


_names = st.from_regex(r"[a-z][a-z0-9\-]{0,6}", fullmatch=True)
_values = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12)


def _quote_value(value: str, quote: str) -> str:
    escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace(quote, f"&#{ord(quote)};")
    return quote + escaped + quote


@given(
    st.lists(
        st.tuples(
            _names, st.none() | st.integers(1, 99), st.none() | st.tuples(_names, _values, st.sampled_from("\"'"))
        ),
        min_size=1,
        max_size=6,
    )
)
def test_generated_steps_parse_back_to_their_parts(parts):
    texts = []
    for name, position, attr in parts:
        text = name + ("" if position is None else f"[{position}]")
        if attr is not None:
            text += f"[@{attr[0]}={_quote_value(attr[1], attr[2])}]"
        texts.append(text)
    selector = parse("/".join(texts))
    expected = tuple(
        Step(RL, name, position, None if attr is None else AttrTest(None, attr[0], attr[1]))
        for name, position, attr in parts
    )
    assert selector.steps == expected
