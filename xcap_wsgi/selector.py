"""The XCAP node-selector grammar (RFC 4825 §6.3) and its xmlns() query (§6.4)::

    namespaces = parse_xmlns_query('xmlns(rl=urn:ietf:params:xml:ns:resource-lists)')
    selector = parse_node_selector('rl:resource-lists/rl:list[@name="friends"]/@name',
                                   namespaces, default_namespace=None)
    selector.steps[1].attr      # AttrTest(namespace=None, local='name', value='friends')
    selector.terminal           # AttributeSelector(namespace=None, local='name')
    selector.parent().text      # 'rl:resource-lists/rl:list[@name="friends"]'

Both inputs arrive already percent-decoded (N1). Grammar errors answer 400, an
unbound prefix answers 400 (U16) and an extension selector, i.e. a segment the
grammar does not know, answers 404 (U15). The selector engine in
:mod:`xcap_wsgi.nodes` evaluates the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from xcap_wsgi import errors

MAX_SELECTOR_LENGTH = 8192
MAX_STEPS = 128
MAX_POSITION_DIGITS = 9
XML_NAMESPACE = "http://www.w3.org/XML/1998/namespace"

_NAME_START = (
    "A-Z_a-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d\u037f-\u1fff"
    "\u200c-\u200d\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd"
    "\U00010000-\U000effff"
)
_NAME_CHAR = _NAME_START + r"\-.0-9\u00b7\u0300-\u036f\u203f-\u2040"
NCNAME = f"[{_NAME_START}][{_NAME_CHAR}]*"
_QNAME = f"(?:({NCNAME}):)?({NCNAME})"

_NCNAME_RE = re.compile(NCNAME)
_STEP_RE = re.compile(rf"(?:{_QNAME}|(\*))(?:\[([0-9]+)\])?(?:\[@{_QNAME}=(\"[^\"]*\"|'[^']*')\])?")
_ATTRIBUTE_RE = re.compile(rf"@{_QNAME}")
_PREDICATED_RE = re.compile(rf"(?:{_QNAME}|\*)\[")
_REFERENCE_RE = re.compile(r"&(?:#([0-9]+)|#x([0-9a-fA-F]+)|([^;&#]*));")
INVALID_XML_CHAR_RE = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_PREDEFINED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "apos": "'", "quot": '"'}
_XPOINTER_PART_RE = re.compile(rf"[ \t\r\n]*((?:{NCNAME}:)?{NCNAME})\(")
_XMLNS_DATA_RE = re.compile(rf"[ \t\r\n]*({NCNAME})[ \t\r\n]*=[ \t\r\n]*(.*)", re.DOTALL)


@dataclass(frozen=True)
class AttrTest:
    """``[@name="value"]``: an attribute with this expanded name and exactly this value (N4)."""

    namespace: str | None
    local: str
    value: str


@dataclass(frozen=True)
class Step:
    """One location step; ``local`` None means ``*`` (N4, N9)."""

    namespace: str | None
    local: str | None
    position: int | None
    attr: AttrTest | None


@dataclass(frozen=True)
class AttributeSelector:
    """Terminal ``@name``; an unprefixed name is in no namespace (N7)."""

    namespace: str | None
    local: str


@dataclass(frozen=True)
class NamespaceSelector:
    """Terminal ``namespace::*``: the bindings in scope on the element (N8)."""


Terminal = AttributeSelector | NamespaceSelector


@dataclass(frozen=True)
class NodeSelector:
    """A parsed node selector; ``text`` is the decoded selector as received.

    ``rootless`` (the usage's ``rootless_selectors``, SS31a): a first step that does not
    match the document element but does match a direct child of it is evaluated below
    the document element, as if the selector began with it (:mod:`xcap_wsgi.nodes`).
    """

    steps: tuple[Step, ...]
    terminal: Terminal | None
    text: str
    rootless: bool = False

    def parent(self) -> NodeSelector | None:
        """The selector minus its last step or terminal (PE1); None above the root element."""
        if self.terminal is None and len(self.steps) <= 1:
            return None
        steps = self.steps if self.terminal is not None else self.steps[:-1]
        return NodeSelector(steps, None, "/".join(split_segments(self.text)[:-1]), self.rootless)


def split_segments(text: str) -> list[str]:
    """Split on ``/`` outside predicates and quoted values (N1, pitfall 11.4)."""
    segments: list[str] = []
    start = depth = 0
    quote = ""
    for index, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif depth and char in "\"'":
            quote = char
        elif char in "[]":
            depth = max(depth + (1 if char == "[" else -1), 0)
        elif char == "/" and not depth:
            segments.append(text[start:index])
            start = index + 1
    if quote or depth:
        raise errors.BadRequest("node selector has an unterminated '[' or quoted attribute value")
    segments.append(text[start:])
    return segments


def parse_node_selector(
    text: str, namespaces: Mapping[str, str], default_namespace: str | None, *, rootless: bool = False
) -> NodeSelector:
    """Parse a decoded node selector (RFC 4825 §6.3).

    Every segment is checked for grammar and extension selectors (404, U15)
    before any prefix is resolved (400, U16), the order of RFC 4825 §8.
    ``rootless`` marks the selector as :class:`NodeSelector` says (SS31a).
    """
    if len(text) > MAX_SELECTOR_LENGTH:
        raise errors.BadRequest("node selector is too long")
    segments = split_segments(text)
    if len(segments) > MAX_STEPS + 1:
        raise errors.BadRequest("node selector has too many steps")
    if any(not segment for segment in segments):
        raise errors.BadRequest("node selector has an empty step (leading, trailing or double '/')")
    terminal_match = _match_terminal(segments[-1])
    step_segments = segments if terminal_match is None else segments[:-1]
    if not step_segments:
        raise errors.BadRequest("node selector names no element before its terminal selector")
    step_matches = [_match_step(segment) for segment in step_segments]
    resolver = _Resolver(namespaces, default_namespace)
    steps = tuple(resolver.step(match) for match in step_matches)
    terminal = None if terminal_match is None else resolver.terminal(terminal_match)
    return NodeSelector(steps, terminal, text, rootless)


def _match_terminal(segment: str) -> re.Match[str] | NamespaceSelector | None:
    """A terminal selector (``@name`` or ``namespace::*``), None when the segment is a step."""
    if segment == "namespace::*":
        return NamespaceSelector()
    if not segment.startswith("@"):
        return None
    match = _ATTRIBUTE_RE.fullmatch(segment)
    if match is None:
        raise errors.NotFound(f"unsupported terminal selector {segment!r}")
    return match


def _match_step(segment: str) -> re.Match[str]:
    """A by-name/by-pos/by-attr/by-pos-attr step; else 400 (bad predicate) or 404 (extension)."""
    match = _STEP_RE.fullmatch(segment)
    if match is not None:
        return match
    if _PREDICATED_RE.match(segment):
        raise errors.BadRequest(
            f"malformed step {segment!r}: expected name[position][@attribute=\"value\"]"
        )
    raise errors.NotFound(f"unsupported extension selector {segment!r}")


class _Resolver:
    """Turns QNames into expanded names: elements take the default namespace (U17, N9)."""

    def __init__(self, namespaces: Mapping[str, str], default_namespace: str | None) -> None:
        self.namespaces = {"xml": XML_NAMESPACE, **namespaces}
        self.default_namespace = default_namespace

    def namespace(self, prefix: str | None, default: str | None) -> str | None:
        if prefix is None:
            return default
        if prefix not in self.namespaces:
            raise errors.BadRequest(f"namespace prefix {prefix!r} is not bound by an xmlns() query part")
        return self.namespaces[prefix]

    def step(self, match: re.Match[str]) -> Step:
        prefix, local, star, position, attr_prefix, attr_local, value = match.groups()
        if position is not None and len(position) > MAX_POSITION_DIGITS:
            raise errors.BadRequest("position in node selector is too large")
        attr = None
        if attr_local is not None:
            attr = AttrTest(self.namespace(attr_prefix, None), attr_local, decode_att_value(value))
        namespace = None if star else self.namespace(prefix, self.default_namespace)
        return Step(namespace, None if star else local, None if position is None else int(position), attr)

    def terminal(self, match: re.Match[str] | NamespaceSelector) -> Terminal:
        if isinstance(match, NamespaceSelector):
            return match
        prefix, local = match.groups()
        return AttributeSelector(self.namespace(prefix, None), local)


def decode_att_value(quoted: str) -> str:
    """Decode an XML AttValue (quotes included): references resolved (N2); 400 if malformed."""
    inner = quoted[1:-1]
    if "<" in inner or INVALID_XML_CHAR_RE.search(inner):
        raise errors.BadRequest("attribute value in node selector contains '<' or a non-XML character")
    decoded = _REFERENCE_RE.sub(_resolve_reference, inner)
    if "&" in _REFERENCE_RE.sub("", inner):
        raise errors.BadRequest("attribute value in node selector has a bare '&'")
    return decoded


def _resolve_reference(match: re.Match[str]) -> str:
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        if name not in _PREDEFINED_ENTITIES:
            raise errors.BadRequest(f"unknown entity reference &{name}; in node selector")
        return _PREDEFINED_ENTITIES[name]
    digits = decimal if decimal is not None else hexadecimal
    code = int(digits, 10 if decimal is not None else 16) if len(digits) <= 8 else -1
    char = chr(code) if 0 <= code <= 0x10FFFF else "\x00"
    if INVALID_XML_CHAR_RE.match(char):
        raise errors.BadRequest(f"character reference {match.group(0)} is not an XML character")
    return char


def parse_xmlns_query(query: str) -> dict[str, str]:
    """Prefix bindings from an XPointer framework query (RFC 4825 §6.4, N12, N13).

    Every part is ``scheme(data)`` with ``^`` escaping ``(``, ``)`` and ``^``;
    ``xmlns(prefix=uri)`` binds a prefix (a later part wins), other schemes are ignored.
    """
    if len(query) > MAX_SELECTOR_LENGTH:
        raise errors.BadRequest("query is too long")
    bindings: dict[str, str] = {}
    query = query.rstrip(" \t\r\n")
    position = 0
    while position < len(query):
        match = _XPOINTER_PART_RE.match(query, position)
        if match is None:
            raise errors.BadRequest("query is not an XPointer expression of scheme(data) parts")
        data, position = _scheme_data(query, match.end())
        if match.group(1) == "xmlns":
            prefix, uri = _xmlns_binding(data)
            bindings[prefix] = uri
    return bindings


def _scheme_data(query: str, start: int) -> tuple[str, int]:
    """Unescaped scheme data up to the balancing ``)`` and the index after it."""
    depth, chars, index = 1, [], start
    while index < len(query):
        char = query[index]
        if char == "^":
            if query[index + 1 : index + 2] not in ("(", ")", "^"):
                raise errors.BadRequest("bad '^' escape in XPointer query")
            chars.append(query[index + 1])
            index += 2
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return "".join(chars), index + 1
        chars.append(char)
        index += 1
    raise errors.BadRequest("unbalanced parenthesis in XPointer query")


def _xmlns_binding(data: str) -> tuple[str, str]:
    match = _XMLNS_DATA_RE.fullmatch(data)
    if match is None or not match.group(2):
        raise errors.BadRequest(f"xmlns() part {data!r} is not prefix=namespace-uri")
    return match.group(1), match.group(2)
