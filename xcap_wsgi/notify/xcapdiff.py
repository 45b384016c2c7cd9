"""xcap-diff documents (RFC 5874): which documents and nodes a batch of changes touched::

    from xcap_wsgi.notify.xcapdiff import CONTENT_TYPE, build_xcap_diff

    body = build_xcap_diff(events)  # send with Content-Type: CONTENT_TYPE
    # <?xml version="1.0" encoding="UTF-8"?>
    # <xcap-diff xmlns="urn:ietf:params:xml:ns:xcap-diff" xcap-root="http://xcap.example.com/xcap-root/">
    #   <document sel="pres-rules/users/sip:alice@example.com/index" previous-etag="e1" new-etag="e2"/>
    # </xcap-diff>

Each changed document gets one empty ``<document>`` carrying the ETag it had before the
batch and the one it has after (RFC 5874 §4): we compute no patches, and an empty
document element tells the subscriber to fetch the document. Element and attribute
PUTs and DELETEs add an ``<element>`` / ``<attribute>`` entry saying whether the node
exists now (§4); its content is not in the event, so the entry carries none.

``sel`` values are URIs relative to the XCAP root, percent-encoded as in a request URI
(RFC 4825 §6). Prefixes in a node selector are bound by ``xmlns:`` declarations in scope
(§4): the root declares each prefix's first binding; an entry whose request bound the
prefix to another namespace re-declares it on itself. The schema is
``xcap_wsgi/schemas/xcap-diff.xsd``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import quote

from xcap_wsgi.notify.events import ChangeEvent, fold
from xcap_wsgi.selector import INVALID_XML_CHAR_RE, NCNAME, split_segments

XCAP_DIFF_NAMESPACE = "urn:ietf:params:xml:ns:xcap-diff"
CONTENT_TYPE = "application/xcap-diff+xml"

#: RFC 3986 pchar besides unreserved letters and digits (``quote`` keeps those).
_PCHAR_SAFE = "!$&'()*+,;=:@-._~"
#: An absolute URI keeps its delimiters and existing escapes; anything else is escaped.
_URI_SAFE = _PCHAR_SAFE + "/?#[]%"
_NCNAME_RE = re.compile(NCNAME)
_ATTVALUE_ESCAPES = (("&", "&amp;"), ("<", "&lt;"), ('"', "&quot;"), ("\t", "&#9;"), ("\n", "&#10;"), ("\r", "&#13;"))


def build_xcap_diff(events: Sequence[ChangeEvent], xcap_root_url: str | None = None) -> bytes:
    """The xcap-diff document (RFC 5874 §4) reporting ``events``, given in commit order.

    One ``<document>`` per ``doc_uri`` in order of first appearance, with the first
    event's previous ETag and the last one's new ETag (:func:`fold`); each absent ETag
    (document created / deleted) is omitted. After it come the document's node entries
    (see :func:`_current_nodes`). ``xcap_root_url`` defaults to the first event's;
    ValueError when ``events`` is empty or no root URL is known.
    """
    if not events:
        raise ValueError("no change events to report in an xcap-diff document")
    root_url = xcap_root_url or events[0].xcap_root_url
    if not root_url:
        raise ValueError("no XCAP root URL: pass xcap_root_url or set it on the events")
    by_document: dict[str, list[ChangeEvent]] = {}
    for event in events:
        by_document.setdefault(event.doc_uri, []).append(event)
    root_bindings: dict[str, str] = {}
    entries: list[str] = []
    for changes in by_document.values():
        entries.append(_document_entry(fold(changes)))
        entries.extend(_node_entry(event, root_bindings) for event in _current_nodes(changes))
    head = f'<xcap-diff xmlns="{XCAP_DIFF_NAMESPACE}"{_attr("xcap-root", _uri(root_url))}{_declarations(root_bindings)}>'
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', head, *(f"  {entry}" for entry in entries), "</xcap-diff>", ""]
    return "\n".join(lines).encode("utf-8")


def _document_entry(event: ChangeEvent) -> str:
    """``<document>`` with ``previous-etag`` unless created, ``new-etag`` unless deleted."""
    etags = (("previous-etag", event.previous_etag), ("new-etag", event.new_etag))
    attributes = _attr("sel", _document_sel(event)) + "".join(_attr(name, etag) for name, etag in etags if etag is not None)
    return f"<document{attributes}/>"


def _current_nodes(changes: Sequence[ChangeEvent]) -> list[ChangeEvent]:
    """The last event of each node selector, in order of first appearance.

    A document-level PUT or DELETE replaces or removes every node, so it forgets the
    node changes before it: what they said about the nodes may no longer hold.
    """
    latest: dict[str, ChangeEvent] = {}
    for event in changes:
        if event.node_selector is None or event.node_kind is None:
            latest.clear()
        else:
            latest[event.node_selector] = event
    return list(latest.values())


def _node_entry(event: ChangeEvent, root_bindings: dict[str, str]) -> str:
    """``<element>`` / ``<attribute>`` with ``exists`` (§4); records the prefixes it needs.

    A prefix the root already binds to another namespace is declared on the entry.
    """
    own = {}
    for prefix, uri in _declarable(event.namespaces):
        if root_bindings.setdefault(prefix, uri) != uri:
            own[prefix] = uri
    sel = f"{_document_sel(event)}/~~/{_node_path(event.node_selector or '')}"
    exists = "0" if event.action == "deleted" else "1"
    return f"<{event.node_kind}{_attr('sel', sel)}{_attr('exists', exists)}{_declarations(own)}/>"


def _declarable(namespaces: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    """Bindings an ``xmlns:prefix`` can declare: ``xml``/``xmlns`` are fixed by XML Namespaces §3."""
    for prefix, uri in namespaces.items():
        if _NCNAME_RE.fullmatch(prefix) and prefix not in ("xml", "xmlns") and uri and not INVALID_XML_CHAR_RE.search(uri):
            yield prefix, uri


def _document_sel(event: ChangeEvent) -> str:
    return quote(event.document_selector, safe="/" + _PCHAR_SAFE)


def _node_path(node_selector: str) -> str:
    """Each step percent-encoded on its own, so a ``/`` inside a predicate becomes ``%2F``."""
    return "/".join(quote(step, safe=_PCHAR_SAFE) for step in split_segments(node_selector))


def _uri(url: str) -> str:
    """``url`` with spaces, quotes, non-ASCII and the like percent-encoded (RFC 3986 §2.1)."""
    return quote(url, safe=_URI_SAFE)


def _declarations(bindings: Mapping[str, str]) -> str:
    return "".join(_attr(f"xmlns:{prefix}", uri) for prefix, uri in bindings.items())


def _attr(name: str, value: str) -> str:
    """`` name="value"`` with the value escaped for a double-quoted AttValue."""
    for char, reference in _ATTVALUE_ESCAPES:
        value = value.replace(char, reference)
    return f' {name}="{value}"'
