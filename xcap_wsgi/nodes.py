"""The selector engine: read, put and delete the node a selector names (RFC 4825 §7.4-7.10, §8.2-8.4)::

    selector = parse_node_selector('resource-lists/list[@name="friends"]/entry[2]', {}, RL_NS)
    body, mime = get_node(document, selector)          # the element's own bytes
    document, created = put_node(document, selector, b'<entry uri="sip:b@x"/>', uri)
    document = delete_node(document, selector)
    is_one_element(b"<communication-diversion><cp:ruleset/></communication-diversion>")  # True

    tree = parse(document)                             # the index, reusable for this document
    body, mime = get_node(tree, selector)              # no parse: a lookup and a slice
    new_tree, created = put_node_tree(tree, selector, b'<entry uri="sip:b@x"/>', uri)

Documents are never re-serialised. One expat pass records every element's byte
range and in-scope namespace bindings; reads slice those bytes and writes splice
new bytes between them, so every byte outside the addressed node stays as it
was (N11, D4, pitfalls 11.1-11.3). After a splice the result is parsed again and
must select exactly the bytes that were put (PE15, PE16, PA6) or nothing at all
after a delete (D5); that parse is the new document's :class:`Tree`, so a caller
that keeps trees (:mod:`xcap_wsgi.parsecache`) never parses the result twice.
A tree is never changed once built, so threads may share it.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import quote
from xml.parsers import expat

from xcap_wsgi import errors
from xcap_wsgi.selector import (
    INVALID_XML_CHAR_RE,
    XML_NAMESPACE,
    AttributeSelector,
    NamespaceSelector,
    NodeSelector,
    Step,
    decode_att_value,
    split_segments,
)

ELEMENT_MIME = "application/xcap-el+xml"
ATTRIBUTE_MIME = "application/xcap-att+xml"
NAMESPACE_MIME = "application/xcap-ns+xml"
XMLNS_NAMESPACE = "http://www.w3.org/2000/xmlns/"

_SEPARATOR = "\x01"  # cannot occur in XML names or namespace URIs
_PCHAR_SAFE = "!$&'()*+,;=:@-._~"
_TAG_END_RE = re.compile(rb"(?:[^>\"']|\"[^\"]*\"|'[^']*')*>")
_TAG_NAME_RE = re.compile(rb"<([^ \t\r\n/>]+)")
_ATTRIBUTE_RE = re.compile(rb"[ \t\r\n]+([^ \t\r\n=/>]+)[ \t\r\n]*=[ \t\r\n]*(\"[^\"]*\"|'[^']*')")
_XML_DECLARATION_RE = re.compile(rb"<\?xml[ \t\r\n][^>]*\?>")
_ENCODING_RE = re.compile(rb"encoding[ \t\r\n]*=[ \t\r\n]*[\"']([^\"']*)[\"']")
_XML_SPACE = b" \t\r\n"
_ATT_VALUE_MARKUP_RE = re.compile("[\"'<&]")

Bindings = dict[str | None, str]
Name = tuple[str | None, str]


@dataclass(eq=False, slots=True)
class _Element:
    """An element's expanded name, prefix, byte range and in-scope bindings.

    ``by_name`` indexes the children by expanded name, built on first use, so that a
    selector step on a tree that is read again and again does not scan every child."""

    namespace: str | None
    local: str
    prefix: str | None
    bindings: Bindings
    attributes: dict[Name, str]
    start: int
    start_tag_end: int
    self_closing: bool
    content_end: int = 0
    end: int = 0
    children: list[_Element] = field(default_factory=list)
    by_name: dict[Name, list[_Element]] | None = None
    by_attribute: dict[tuple[Name, Name], dict[str, list[_Element]]] | None = None

    @property
    def name(self) -> Name:
        return self.namespace, self.local

    def named(self, name: Name) -> list[_Element]:
        """The children called ``name``, in document order."""
        index = self.by_name
        if index is None:
            index = {}
            for child in self.children:
                index.setdefault((child.namespace, child.local), []).append(child)
            self.by_name = index  # a benign race: two threads build equal indexes
        return index.get(name, [])

    def named_with(self, name: Name, attribute: Name, value: str) -> list[_Element]:
        """The children called ``name`` whose ``attribute`` is ``value``: the step
        ``entry[@uri="..."]`` in a list of thousands is a lookup once the tree is cached."""
        indexes = self.by_attribute
        if indexes is None:
            indexes = self.by_attribute = {}
        index = indexes.get((name, attribute))
        if index is None:
            index = {}
            for child in self.named(name):
                if (found := child.attributes.get(attribute)) is not None:
                    index.setdefault(found, []).append(child)
            indexes[(name, attribute)] = index
        return index.get(value, [])


@dataclass(frozen=True, slots=True)
class Tree:
    """A parsed document: its bytes and the element index of one expat pass."""

    document: bytes
    root: _Element


@dataclass(frozen=True)
class _RawAttribute:
    """An attribute as written: from its leading whitespace to its closing quote."""

    name: Name | None  # None for a namespace declaration (N5)
    start: int
    value_start: int
    end: int


@dataclass(frozen=True)
class _Fragment:
    text: bytes
    name: Name


class _TreeBuilder:
    """One expat pass that records the element tree with byte offsets."""

    def __init__(self, document: bytes) -> None:
        self.document = document
        self.parser = expat.ParserCreate(namespace_separator=_SEPARATOR)
        self.parser.namespace_prefixes = True
        self.parser.ordered_attributes = True
        self.parser.StartElementHandler = self.start
        self.parser.EndElementHandler = self.end
        self.parser.StartNamespaceDeclHandler = self.declare
        self.parser.EntityDeclHandler = self.refuse_entity
        self.pending: dict[str | None, str | None] = {}
        self.stack: list[_Element] = []
        self.roots: list[_Element] = []

    def parse(self) -> _Element:
        try:
            self.parser.Parse(self.document, True)
        except (expat.ExpatError, ValueError) as exc:
            raise errors.NotWellFormed(f"not well-formed XML: {exc}") from None
        return self.roots[0]

    def declare(self, prefix: str | None, uri: str | None) -> None:
        self.pending[prefix] = uri

    def refuse_entity(self, name: str, *_: object) -> None:
        """Entity expansion would detach byte offsets from the text (and invites entity bombs)."""
        raise errors.NotWellFormed(f"entity declarations are not supported (entity {name!r})")

    def start(self, qname: str, attributes: list[str]) -> None:
        # the hot loop of every parse: names are looked up in caches, nothing is sliced
        parent = self.stack[-1] if self.stack else None
        bindings = parent.bindings if parent else {}
        if self.pending:
            merged = {**bindings, **self.pending}
            bindings = {prefix: uri for prefix, uri in merged.items() if uri}
            self.pending = {}
        document = self.document
        start = self.parser.CurrentByteIndex
        tag = _TAG_END_RE.match(document, start)
        tag_end = tag.end() if tag else len(document)
        namespace, local, prefix = _split_name(qname)
        values = {_split_name(attributes[i])[:2]: attributes[i + 1] for i in range(0, len(attributes), 2)}
        self_closing = document.startswith(b"/>", tag_end - 2)
        element = _Element(namespace, local, prefix, bindings, values, start, tag_end, self_closing)
        (parent.children if parent else self.roots).append(element)
        self.stack.append(element)

    def end(self, qname: str) -> None:
        element = self.stack.pop()
        if element.self_closing:
            element.content_end = element.end = element.start_tag_end
        else:
            element.content_end = self.parser.CurrentByteIndex
            element.end = self.document.index(b">", element.content_end) + 1


@lru_cache(maxsize=4096)
def _split_name(qname: str) -> tuple[str | None, str, str | None]:
    """expat's ``uri SEP local [SEP prefix]`` into (namespace, local, prefix); the same few
    names recur in every document, so they are remembered."""
    parts = qname.split(_SEPARATOR)
    if len(parts) == 1:
        return None, parts[0], None
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _parse(document: bytes) -> _Element:
    """The root element; errors.NotWellFormed if the bytes are not well-formed XML."""
    return _TreeBuilder(document).parse()


def parse(document: bytes) -> Tree:
    """The element index of ``document``; errors.NotWellFormed if it is not well-formed."""
    return Tree(document, _parse(document))


def _tree(document: bytes | Tree) -> Tree:
    return document if isinstance(document, Tree) else parse(document)


def _children(parent: _Element | None, root: _Element, step: Step) -> list[_Element]:
    """The candidates of ``step`` below ``parent`` (None: the document itself), name test applied."""
    if parent is None:
        return [root] if step.local is None or root.name == (step.namespace, step.local) else []
    return parent.children if step.local is None else parent.named((step.namespace, step.local))


def _descend(root: _Element, steps: tuple[Step, ...]) -> tuple[_Element | None, int]:
    """The deepest element reached and how many steps selected exactly one element (N3, N6)."""
    current: _Element | None = None
    for depth, step in enumerate(steps):
        found = _candidates(current, root, step)
        if len(found) != 1:
            return current, depth
        current = found[0]
    return current, len(steps)


def _candidates(parent: _Element | None, root: _Element, step: Step) -> list[_Element]:
    """What ``step`` selects below ``parent`` (None: the document itself)."""
    if parent is not None and step.position is None and step.attr is not None and step.local is not None:
        return parent.named_with((step.namespace, step.local), (step.attr.namespace, step.attr.local), step.attr.value)
    return _filter(_children(parent, root, step), step)


def _filter(named: list[_Element], step: Step) -> list[_Element]:
    """Position, then attribute test, over candidates that passed the name test (N4, N9)."""
    if step.position is not None:
        named = named[step.position - 1 : step.position] if step.position >= 1 else []
    if step.attr is not None:
        wanted = (step.attr.namespace, step.attr.local)
        named = [c for c in named if c.attributes.get(wanted) == step.attr.value]
    return named


def _rooted(root: _Element, selector: NodeSelector) -> NodeSelector:
    """A ``rootless`` selector (SS31a) whose first step does not match the document element
    but does match a direct child of it, with the document element put in front; any
    other selector as it is (N3). The added step names the document element as the first
    step's prefix does when both are in one namespace, else it is ``*``."""
    first = selector.steps[0]
    if _candidates(None, root, first) or not _candidates(root, root, first):
        return selector
    if root.namespace == first.namespace and first.local is not None:
        name = split_segments(selector.text)[0].split("[", 1)[0]
        prefix = name.rpartition(":")[0]
        step, segment = Step(root.namespace, root.local, None, None), f"{prefix}:{root.local}" if prefix else root.local
    else:
        step, segment = Step(None, None, None, None), "*"
    return NodeSelector((step, *selector.steps), selector.terminal, f"{segment}/{selector.text}")


def _select(root: _Element, steps: tuple[Step, ...]) -> _Element:
    element, depth = _descend(root, steps)
    if element is None or depth < len(steps):
        raise errors.NotFound("the node selector selects no element (or several)")
    return element


def _raw_attributes(document: bytes, element: _Element) -> Iterator[_RawAttribute]:
    """Tokenize the (well-formed) start tag for the attributes' byte offsets."""
    position = _name_end(document, element)
    while match := _ATTRIBUTE_RE.match(document, position, element.start_tag_end):
        raw = match.group(1).decode("utf-8")
        yield _RawAttribute(_attribute_name(raw, element.bindings), position, match.start(2), match.end())
        position = match.end()


def _name_end(document: bytes, element: _Element) -> int:
    name = _TAG_NAME_RE.match(document, element.start)
    return name.end() if name else element.start


def _attributes_end(document: bytes, element: _Element) -> int:
    """Just after the start tag's last attribute, where a new one goes (PA4)."""
    return max((a.end for a in _raw_attributes(document, element)), default=_name_end(document, element))


def _attribute_name(raw: str, bindings: Bindings) -> Name | None:
    """Expanded attribute name; unprefixed means no namespace (N7); None for xmlns (N5)."""
    prefix, _, local = raw.rpartition(":")
    if raw == "xmlns" or prefix == "xmlns":
        return None
    if not prefix:
        return None, raw
    return (XML_NAMESPACE if prefix == "xml" else bindings.get(prefix)), local


def _find_attribute(document: bytes, element: _Element, terminal: AttributeSelector) -> _RawAttribute | None:
    wanted = (terminal.namespace, terminal.local)
    return next((a for a in _raw_attributes(document, element) if a.name == wanted), None)


def get_node(parsed: bytes | Tree, selector: NodeSelector) -> tuple[bytes, str]:
    """The selected element, attribute or namespace bindings and its MIME type (§8.3).

    An element is answered as its original bytes (G3, G4), an attribute as its
    AttValue with its own quotes (G5), ``namespace::*`` per §10 (G6, NB1, NB2).
    Several matches are as absent as none (N6): errors.NotFound. Given a :class:`Tree`,
    nothing is parsed.
    """
    tree = _tree(parsed)
    document = tree.document
    if selector.rootless:
        selector = _rooted(tree.root, selector)
    element = _select(tree.root, selector.steps)
    terminal = selector.terminal
    if terminal is None:
        return document[element.start : element.end], ELEMENT_MIME
    if isinstance(terminal, NamespaceSelector):
        return _namespace_body(element), NAMESPACE_MIME
    attribute = _find_attribute(document, element, terminal)
    if attribute is None:
        raise errors.NotFound("the element has no such attribute")
    return document[attribute.value_start : attribute.end], ATTRIBUTE_MIME


def standalone_children(document: bytes, namespace: str | None, local: str) -> list[bytes]:
    """The root's child elements of one expanded name, each as its original bytes with the
    namespace declarations it inherits added to its start tag, so that it stands alone
    (how the rls-services global index copies each user's services, RS6)."""
    root = _parse(document)
    return [_standalone(document, child, root.bindings) for child in root.children if child.name == (namespace, local)]


def _standalone(document: bytes, element: _Element, inherited: Bindings) -> bytes:
    own = {_declared_prefix(document, a) for a in _raw_attributes(document, element) if a.name is None}
    extra = {prefix: uri for prefix, uri in inherited.items() if prefix not in own}
    cut = _name_end(document, element)
    return document[element.start : cut] + _declarations(extra).encode() + document[cut : element.end]


def _declared_prefix(document: bytes, attribute: _RawAttribute) -> str | None:
    """The prefix an ``xmlns`` / ``xmlns:p`` attribute declares (None: the default namespace)."""
    raw = document[attribute.start : attribute.value_start].decode("utf-8").strip().rstrip("=").strip()
    return raw.partition(":")[2] or None


def _namespace_body(element: _Element) -> bytes:
    """One empty element named as in the document, declaring every in-scope binding (§10)."""
    qname = element.local if element.prefix is None else f"{element.prefix}:{element.local}"
    return f"<{qname}{_declarations(element.bindings)}/>".encode()


def _declarations(bindings: Bindings) -> str:
    """``xmlns`` / ``xmlns:p`` attributes declaring every binding."""
    return "".join(
        f' xmlns="{_escape(uri)}"' if prefix is None else f' xmlns:{prefix}="{_escape(uri)}"'
        for prefix, uri in bindings.items()
    )


def _escape(value: str) -> str:
    """Escape text for a double-quoted AttValue, keeping tab/CR/LF through re-parsing."""
    for char, reference in (("&", "&amp;"), ("<", "&lt;"), ('"', "&quot;"),
                            ("\t", "&#9;"), ("\n", "&#10;"), ("\r", "&#13;")):
        value = value.replace(char, reference)
    return value


def put_node(document: bytes, selector: NodeSelector, body: bytes, document_uri: str, *,
             bare_attribute_values: bool = False) -> tuple[bytes, bool]:
    """Create or replace the selected element or attribute; returns (new document, created?).

    RFC 4825 §8.2: the parent must exist (no-parent, PE3), the body must be a
    fragment (PE5) or AttValue (PA1), and afterwards the request URI must select
    exactly the body (cannot-insert, PE15, PE16, PA6). ``namespace::*`` is read-only (NS1).
    ``bare_attribute_values`` is the usage's switch of that name (SS35, see :func:`_att_value`).
    """
    tree, created = put_node_tree(parse(document), selector, body, document_uri,
                                  bare_attribute_values=bare_attribute_values)
    return tree.document, created


def put_node_tree(tree: Tree, selector: NodeSelector, body: bytes, document_uri: str, *,
                  bare_attribute_values: bool = False) -> tuple[Tree, bool]:
    """:func:`put_node` on a parsed document; returns the new document's tree."""
    terminal = selector.terminal
    if isinstance(terminal, NamespaceSelector):
        raise errors.MethodNotAllowed(["GET"])
    document, root = tree.document, tree.root
    if selector.rootless:
        selector = _rooted(root, selector)
    if terminal is None:
        new, created, expected = _put_element(document, root, selector, body, document_uri)
    else:
        new, created, expected = _put_attribute(document, root, selector, terminal, body, document_uri,
                                                bare_attribute_values)
    return _check_selects(new, selector, expected), created


def _existing_parent(root: _Element, selector: NodeSelector, steps: tuple[Step, ...], document_uri: str) -> _Element:
    """The element ``steps`` select, else errors.NoParent naming the closest ancestor (PE3)."""
    element, depth = _descend(root, steps)
    if element is None or depth < len(steps):
        ancestor = _ancestor_uri(document_uri, selector, depth)
        raise errors.NoParent("the parent of the node does not exist", ancestor=ancestor)
    return element


def _ancestor_uri(document_uri: str, selector: NodeSelector, depth: int) -> str:
    """Absolute path of the closest existing ancestor, selector percent-encoded (requirements §10.6)."""
    if depth == 0:
        return document_uri
    segments = split_segments(selector.text)[:depth]
    return document_uri + "/~~/" + "/".join(quote(segment, safe=_PCHAR_SAFE) for segment in segments)


def _put_element(
    document: bytes, root: _Element, selector: NodeSelector, body: bytes, document_uri: str
) -> tuple[bytes, bool, bytes]:
    """Replace in place (PE9) or insert where §8.2.3 says (PE10-PE13)."""
    *parent_steps, last = selector.steps
    parent = _existing_parent(root, selector, tuple(parent_steps), document_uri) if parent_steps else None
    fragment = _read_fragment(body, parent.bindings if parent else {})
    matches = _candidates(parent, root, last)
    if len(matches) == 1:
        return _splice(document, matches[0].start, matches[0].end, fragment.text), False, fragment.text
    if parent is None:
        raise errors.CannotInsert("a document has exactly one root element; PUT the document instead")
    offset = _insertion_offset(parent, last, fragment.name)  # also rejects impossible positions
    if parent.self_closing:
        return _expand_empty(document, parent, fragment.text), True, fragment.text
    return _splice(document, offset, offset, fragment.text), True, fragment.text


def _insertion_offset(parent: _Element, step: Step, name: Name) -> int:
    """Where a new child goes (RFC 4825 §8.2.3).

    Without a position: right after the last same-name sibling (PE11; for a
    wildcard the body's name decides, requirements §10.4), else at the very end
    of the parent's content (PE10). With ``[n]``: directly after the (n-1)-th
    same-name sibling (any element for ``*``), before the first one for n = 1
    (PE12, PE13); too few siblings cannot be satisfied (requirements §10.5).
    """
    same = [c for c in parent.children if c.name == (name if step.local is None else (step.namespace, step.local))]
    if step.position is None:
        return same[-1].end if same else parent.content_end
    ordered = parent.children if step.local is None else same
    if not 1 <= step.position <= len(ordered) + 1:
        raise errors.CannotInsert(f"cannot create element number {step.position}: too few siblings")
    if step.position == 1:
        return ordered[0].start if ordered else parent.content_end
    return ordered[step.position - 2].end


def _expand_empty(document: bytes, parent: _Element, text: bytes) -> bytes:
    """Rewrite only the empty-element tag ``<p/>`` into ``<p>text</p>``."""
    tag = document[parent.start : parent.end]
    name = _TAG_NAME_RE.match(tag)
    closing = b"</" + (name.group(1) if name else b"") + b">"
    return _splice(document, parent.start, parent.end, tag[:-2] + b">" + text + closing)


def _splice(document: bytes, start: int, end: int, text: bytes) -> bytes:
    return document[:start] + text + document[end:]


def _read_fragment(body: bytes, scope: Bindings) -> _Fragment:
    """Exactly one well-balanced element, parsed inside the insertion point's bindings (PE5, PE8).

    The context element declares every in-scope prefix, so the fragment may use
    them; its own declarations stay as sent (PE17).
    """
    text = _fragment_text(body)
    context = f"<c{_declarations(scope)}>".encode()
    try:
        wrapper = _parse(context + text + b"</c>")
    except errors.NotWellFormed as exc:
        raise errors.NotXMLFrag(f"body is not a well-balanced XML element: {exc.description}") from None
    children = wrapper.children
    if len(children) != 1 or (children[0].start, children[0].end) != (len(context), len(context) + len(text)):
        raise errors.NotXMLFrag("body must be exactly one element and nothing else")
    return _Fragment(text, children[0].name)


def is_one_element(body: bytes) -> bool:
    """Whether ``body`` is one well-balanced UTF-8 element and nothing else, its prefixes
    not resolved (they may be bound only at the insertion point, PE8). An element PUT
    labelled with one of the usage's ``element_mime_aliases`` is taken as
    ``application/xcap-el+xml`` only then (SS3a)."""
    try:
        text = _fragment_text(body)
    except errors.Conflict:
        return False
    return _TopLevel().count(b"<c>" + text + b"</c>") == 1


class _TopLevel:
    """Counts the elements directly inside a wrapper element, without namespace processing;
    -1 when the bytes are not well-formed or hold anything else (text, comments, PIs) there."""

    def __init__(self) -> None:
        self.parser = expat.ParserCreate()
        self.parser.StartElementHandler = self.start
        self.parser.EndElementHandler = self.end
        self.parser.CharacterDataHandler = self.parser.CommentHandler = self.other
        self.parser.ProcessingInstructionHandler = self.parser.EntityDeclHandler = self.other
        self.depth = self.elements = 0
        self.mixed = False

    def count(self, wrapped: bytes) -> int:
        try:
            self.parser.Parse(wrapped, True)
        except expat.ExpatError:
            return -1
        return -1 if self.mixed else self.elements

    def start(self, *_: object) -> None:
        self.elements += self.depth == 1
        self.depth += 1

    def end(self, *_: object) -> None:
        self.depth -= 1

    def other(self, *_: object) -> None:
        self.mixed = self.mixed or self.depth <= 1


def _fragment_text(body: bytes) -> bytes:
    """The body without BOM, XML declaration and surrounding whitespace (PE5, PE6)."""
    if b"\x00" in body or body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise errors.NotUTF8("body is not UTF-8 (looks like UTF-16 or UTF-32)")
    _require_utf8(body)
    text = body.removeprefix(codecs.BOM_UTF8)
    declaration = _XML_DECLARATION_RE.match(text)
    if declaration is not None:
        _check_declaration(declaration.group())
        text = text[declaration.end() :]
    text = text.strip(_XML_SPACE)
    if not text:
        raise errors.NotXMLFrag("body holds no element")
    return text


def _require_utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.NotUTF8("body is not valid UTF-8") from None


def _check_declaration(declaration: bytes) -> None:
    """A leading XML declaration must be well-formed and declare UTF-8 if anything (PE6)."""
    encoding = _ENCODING_RE.search(declaration)
    if encoding is not None and encoding.group(1).lower() not in (b"utf-8", b"utf8"):
        raise errors.NotUTF8(f"body declares encoding {encoding.group(1).decode('ascii', 'replace')!r}")
    try:
        _parse(declaration + b"<x/>")
    except errors.NotWellFormed:
        raise errors.NotXMLFrag("body starts with a malformed XML declaration") from None


def _put_attribute(
    document: bytes, root: _Element, selector: NodeSelector, terminal: AttributeSelector,
    body: bytes, document_uri: str, bare_values: bool,
) -> tuple[bytes, bool, bytes]:
    """Create (PA4) or replace (PA5) the attribute's AttValue in the start tag."""
    element = _existing_parent(root, selector, selector.steps, document_uri)
    value = _att_value(body, bare_values)
    if terminal.namespace == XMLNS_NAMESPACE or (terminal.namespace, terminal.local) == (None, "xmlns"):
        raise errors.CannotInsert("namespace declarations are not attributes and cannot be put (N5)")
    attribute = _find_attribute(document, element, terminal)
    if attribute is not None:
        return _splice(document, attribute.value_start, attribute.end, value), False, value
    offset = _attributes_end(document, element)
    qname = _attribute_qname(element, terminal).encode()
    return _splice(document, offset, offset, b" " + qname + b"=" + value), True, value


def _attribute_qname(element: _Element, terminal: AttributeSelector) -> str:
    """The attribute name to write, with a prefix bound at the element for its namespace."""
    if terminal.namespace is None:
        return terminal.local
    if terminal.namespace == XML_NAMESPACE:
        return "xml:" + terminal.local
    for prefix, uri in element.bindings.items():
        if prefix is not None and uri == terminal.namespace:
            return f"{prefix}:{terminal.local}"
    raise errors.CannotInsert("no prefix is declared for the attribute's namespace on this element")


def _att_value(body: bytes, bare_values: bool = False) -> bytes:
    """The AttValue to store: a quoted body as sent, a bare one double-quoted and escaped
    (PA1, requirements §10 item 1).

    With ``bare_values`` (the usage's ``bare_attribute_values``, SS35) a bare body that
    holds no quote, ``<`` or ``&`` is the value between the quotes without the XML
    whitespace around it: MediaTek's ``true`` (or ``true`` and a line end) is ``"true"``.
    """
    text = _require_utf8(body)
    stripped = text.strip(" \t\r\n")
    if bare_values and not _ATT_VALUE_MARKUP_RE.search(stripped) and not INVALID_XML_CHAR_RE.search(stripped):
        return f'"{_escape(stripped)}"'.encode()
    if stripped[:1] in ("'", '"'):
        quote_char = stripped[0]
        if len(stripped) < 2 or stripped[-1] != quote_char or quote_char in stripped[1:-1]:
            raise errors.NotXMLAttValue("body is not an XML AttValue")
        try:
            decode_att_value(stripped)
        except errors.BadRequest as exc:
            raise errors.NotXMLAttValue(f"body is not an XML AttValue: {exc.description}") from None
        return stripped.encode()
    if INVALID_XML_CHAR_RE.search(text):
        raise errors.NotXMLAttValue("body holds a character XML does not allow")
    return f'"{_escape(text)}"'.encode()


def _check_selects(document: bytes, selector: NodeSelector, expected: bytes) -> Tree:
    """After a PUT the request URI must select exactly what was put (I1, PE15, PE16, PA6);
    the new document's tree."""
    selected: bytes | None = None
    try:
        tree = parse(document)
        selected = get_node(tree, selector)[0]
    except (errors.NotFound, errors.NotWellFormed):
        pass
    if selected != expected:
        raise errors.CannotInsert("afterwards the request URI would not select the body that was put")
    return tree


def delete_node(document: bytes, selector: NodeSelector) -> bytes:
    """Remove exactly the element (D3, D4) or the attribute with its leading whitespace (§8.4).

    errors.CannotDelete when the request URI would still select something (D5).
    """
    return delete_node_tree(parse(document), selector).document


def delete_node_tree(tree: Tree, selector: NodeSelector) -> Tree:
    """:func:`delete_node` on a parsed document; returns the new document's tree."""
    terminal = selector.terminal
    if isinstance(terminal, NamespaceSelector):
        raise errors.MethodNotAllowed(["GET"])
    document = tree.document
    if selector.rootless:
        selector = _rooted(tree.root, selector)
    element = _select(tree.root, selector.steps)
    start, end = element.start, element.end
    if terminal is not None:
        attribute = _find_attribute(document, element, terminal)
        if attribute is None:
            raise errors.NotFound("the element has no such attribute")
        start, end = attribute.start, attribute.end
    new = _splice(document, start, end, b"")
    try:
        after = parse(new)
        get_node(after, selector)
    except errors.NotFound:
        return after
    except errors.NotWellFormed:
        raise errors.CannotDelete("the root element cannot be deleted; DELETE the document instead") from None
    raise errors.CannotDelete("afterwards the request URI would still select a node")
