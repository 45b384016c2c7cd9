"""The XCAP methods: GET/HEAD, PUT, DELETE on documents and their nodes (RFC 4825 §7, §8).

Pure request semantics over a :class:`~xcap_wsgi.storage.Storage`: a parsed URI,
preconditions and a body go in, a :class:`Response` comes out, failures are raised as
:mod:`xcap_wsgi.errors` exceptions. A document GET is one indexed read and no XML
parsing; an element, attribute or namespace GET parses a document at most once per
ETag (:mod:`xcap_wsgi.parsecache`); every write is one atomic storage update whose
``change`` function evaluates the preconditions against the row it has locked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal
from urllib.parse import quote

from xcap_wsgi.conditions import Preconditions
from xcap_wsgi.errors import (
    MethodNotAllowed,
    NoParent,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from xcap_wsgi.generated import generated, is_rls_global_index
from xcap_wsgi.nodes import Tree, delete_node_tree, get_node, is_one_element, put_node_tree
from xcap_wsgi.nodes import parse as parse_tree
from xcap_wsgi.notify.events import Action, ChangeEvent
from xcap_wsgi.parsecache import ParseCache
from xcap_wsgi.selector import (
    AttributeSelector,
    NamespaceSelector,
    NodeSelector,
    parse_node_selector,
    parse_xmlns_query,
)
from xcap_wsgi.storage import DocKey, Document, Storage
from xcap_wsgi.storage.base import Describe
from xcap_wsgi.uri import XCAPURI
from xcap_wsgi.usages import ValidationContext
from xcap_wsgi.usages.simservs import FirstRead
from xcap_wsgi.xmlcheck import parse_document

#: Content types that urllib-based clients send by default: treated as unspecified (PD5).
UNSPECIFIED_CONTENT_TYPES = {"", "application/x-www-form-urlencoded"}
DOCUMENT_METHODS = ("GET", "HEAD", "PUT", "DELETE")
READ_METHODS = ("GET", "HEAD")
NO_CACHE = ("Cache-Control", "no-cache")  # C1
EL_MIME = "application/xcap-el+xml"
ATT_MIME = "application/xcap-att+xml"
QUERY_SAFE = "()=:/;@!$&'*+,-._~"


@dataclass(slots=True)
class Response:
    status: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    #: a GET stored the document it answers (SS40): the middleware wakes the notifier
    stored: bool = False


def quoted(etag: str) -> str:
    return f'"{etag}"'


def media_type(content_type: str | None) -> str:
    """The bare media type, lower-cased, parameters (charset) dropped."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_content_type(content_type: str | None, expected: str) -> None:
    """PD5/PE7/PA2: 415 unless the body is labelled with the expected type (or not at all)."""
    got = media_type(content_type)
    if got not in UNSPECIFIED_CONTENT_TYPES and got != expected:
        raise UnsupportedMediaType(f"Content-Type must be {expected}, got {got}")


def document_key(uri: XCAPURI) -> DocKey:
    return DocKey(uri.doc_uri, uri.username, uri.domain, uri.usage.doc_type)


def parse_selector(uri: XCAPURI) -> NodeSelector | None:
    """The node selector of ``uri`` with prefixes bound by its ``xmlns()`` query (U15-U17, N9),
    marked ``rootless`` when the usage has ``rootless_selectors`` (SS31a)."""
    if uri.node_selector is None:
        return None
    return _selector(uri.node_selector, uri.query, uri.usage.namespace, uri.usage.rootless_selectors)


@lru_cache(maxsize=4096)
def _selector(text: str, query: str, namespace: str, rootless: bool = False) -> NodeSelector:
    """Parsed selectors are immutable and clients repeat them: remembered (refusals are not)."""
    return parse_node_selector(text, parse_xmlns_query(query), namespace, rootless=rootless)


def validation_context(storage: Storage, uri: XCAPURI) -> ValidationContext:
    """What a usage's constraints may look at beyond the document (RS3 reads the others)."""
    tree: Literal["users", "global"] = "users" if uri.tree == "users" else "global"
    return ValidationContext(uri.xcap_root, uri.auid, tree, uri.xui, uri.doc_uri, storage.documents,
                             lambda uris: storage.services_taken(uris, uri.doc_uri))


def get(storage: Storage, uri: XCAPURI, selector: NodeSelector | None, pre: Preconditions,
        base_url: str = "", cache: ParseCache | None = None, first_read: FirstRead | None = None,
        root_url: str | None = None) -> Response:
    """G1-G8, E8: the stored bytes as they were PUT with the usage's MIME type, or the
    selected element, attribute or namespace bindings (one parse at most, none when
    ``cache`` holds the document's tree for its ETag).
    ``base_url`` (scheme and host) prefixes the document URIs of the OMA directory.
    A missing document ``first_read`` has a default for is stored first (SS40), with a
    change event when ``root_url`` is given; the answer then says ``stored``."""
    doc = generated(storage, uri, base_url)
    if doc is None:
        doc = storage.get(document_key(uri))
    stored = False
    if doc is None and first_read is not None:
        default = first_read.document_for(uri.auid, uri.tree, uri.document)
        if default is not None:
            doc, stored = store_default(storage, uri, default, root_url)
    if doc is None:
        raise NotFound("no such document")
    etag = ("ETag", quoted(doc.etag))
    if not pre.empty and not pre.evaluate(doc.etag):
        return Response("304 Not Modified", [etag, NO_CACHE])
    if selector is None:
        body, mime_type = doc.doc, uri.usage.mime_type
    else:
        body, mime_type = get_node(doc.doc if cache is None else cache.tree(uri.doc_uri, doc), selector)
    return Response(
        "200 OK",
        [("Content-Type", mime_type), etag, NO_CACHE, ("Content-Length", str(len(body)))],
        body,
        stored,
    )


class _Present(Exception):
    """Inside :func:`store_default`'s transaction: the document exists, nothing is written."""

    def __init__(self, document: Document) -> None:
        super().__init__()
        self.document = document


def store_default(storage: Storage, uri: XCAPURI, default: bytes, root_url: str | None) -> tuple[Document, bool]:
    """SS40, SS44 (decided: store on the first GET): write ``default`` unless a document is
    there by the time the row is locked (a concurrent first GET or PUT won); return the
    stored document and whether this call stored it. Every first read of one document
    thus answers the same bytes and ETag, and the ETag stays until a change (E1-E3)."""

    def change(current: Document | None) -> bytes:
        if current is not None:
            raise _Present(current)
        return default

    describe = None if root_url is None else change_event(uri, None, root_url, [])
    try:
        result = storage.update(document_key(uri), change, describe)
    except _Present as exc:
        return exc.document, False
    assert result.etag is not None
    return Document(default, result.etag), True


def check_writable(uri: XCAPURI) -> None:
    """Generated documents are read-only for everyone (405 with ``Allow``). Who may write
    where is :func:`xcap_wsgi.auth.authorize`'s decision."""
    if uri.usage.generated or is_rls_global_index(uri):
        raise MethodNotAllowed(READ_METHODS, f"{uri.auid} documents are generated by the server and read-only")


def check_node_writable(selector: NodeSelector | None) -> None:
    """NS1: namespace bindings can only be read."""
    if selector is not None and isinstance(selector.terminal, NamespaceSelector):
        raise MethodNotAllowed(("GET",), "namespace bindings can only be read")


def body_content_type(selector: NodeSelector | None, document_type: str) -> str:
    """What a PUT body must be labelled (PD5, PE7, PA2)."""
    if selector is None:
        return document_type
    return ATT_MIME if isinstance(selector.terminal, AttributeSelector) else EL_MIME


def change_event(uri: XCAPURI, selector: NodeSelector | None, root_url: str,
                 node_action: list[Action]) -> Describe:
    """What the storage records in the outbox for this write (issue 8), once it knows the
    previous row and the new ETag. ``node_action`` is filled in by the node splice."""

    def describe(previous: Document | None, new_etag: str | None) -> str:
        if selector is None:
            action: Action = "deleted" if new_etag is None else ("replaced" if previous else "created")
        else:
            action = node_action[-1]
        return ChangeEvent(
            auid=uri.auid, tree=uri.tree, xui=uri.xui, username=uri.username, domain=uri.domain,
            doc_uri=uri.doc_uri, doc_type=uri.usage.doc_type, document_selector=uri.doc_uri[len(uri.xcap_root):],
            action=action, previous_etag=previous.etag if previous else None, new_etag=new_etag,
            xcap_root_url=root_url, node_selector=selector.text if selector else None,
            node_kind=None if selector is None else ("attribute" if isinstance(selector.terminal, AttributeSelector)
                                                     else "element"),
            namespaces=parse_xmlns_query(uri.query) if selector and uri.query else {},
            committed_at=time.time(),
        ).to_json()

    return describe


def tree_of(cache: ParseCache | None, uri: XCAPURI, document: Document) -> Tree:
    """The document's tree: from ``cache`` when it holds this ETag's, else parsed."""
    return parse_tree(document.doc) if cache is None else cache.tree(uri.doc_uri, document)


def remember(cache: ParseCache | None, uri: XCAPURI, etag: str | None, trees: list[Tree]) -> None:
    """After a node write commits, its result's tree is the document's for the new ETag."""
    if cache is not None:
        if etag is None:
            cache.discard(uri.doc_uri)
        elif trees:
            cache.store(uri.doc_uri, etag, trees[-1])


def put(storage: Storage, uri: XCAPURI, selector: NodeSelector | None, pre: Preconditions,
        content_type: str | None, body: bytes, limit: int, root_url: str | None = None,
        cache: ParseCache | None = None) -> Response:
    """PD1-PD9, PE1-PE18, PA1-PA7: create (201) or replace (200) a document, element or
    attribute; the node is spliced into the row locked by the storage transaction (into
    its cached tree when ``cache`` has it: the write parses only its result).
    With ``root_url`` (the absolute XCAP root) the write records a change event."""
    check_node_writable(selector)
    expected = body_content_type(selector, uri.usage.mime_type)
    context = validation_context(storage, uri)
    if selector is None:
        check_content_type(content_type, expected)
        uri.usage.validate(parse_document(body), context)
    elif media_type(content_type) != expected and not element_alias(uri, selector, content_type, body):
        raise UnsupportedMediaType(f"Content-Type must be {expected}, got {media_type(content_type) or 'none'}")

    def change(current: Document | None) -> bytes:
        pre.check_write(current.etag if current else None)
        if selector is None:
            return body
        if current is None:
            raise NoParent("the document of the parent does not exist")
        tree, created = put_node_in(uri, tree_of(cache, uri, current), selector, body)
        if len(tree.document) > limit:
            raise PayloadTooLarge(f"the document would grow past the limit (buf_size) of {limit} bytes")
        uri.usage.validate(tree.document, context)
        node_action.append("created" if created else "replaced")
        trees.append(tree)
        return tree.document

    node_action: list[Action] = []
    trees: list[Tree] = []
    describe = None if root_url is None else change_event(uri, selector, root_url, node_action)
    result = storage.update(document_key(uri), change, describe)
    assert result.etag is not None
    remember(cache, uri, result.etag, trees)
    created = node_action[-1] == "created" if node_action else result.created
    return Response("201 Created" if created else "200 OK", [("ETag", quoted(result.etag)), ("Content-Length", "0")])


def element_alias(uri: XCAPURI, selector: NodeSelector, content_type: str | None, body: bytes) -> bool:
    """SS3a: an element PUT labelled with one of the usage's ``element_mime_aliases`` is taken
    as ``application/xcap-el+xml`` when its body is one element (else 415, PE7)."""
    got = media_type(content_type)
    return (selector.terminal is None and any(got == alias.lower() for alias in uri.usage.element_mime_aliases)
            and is_one_element(body))


def put_node_in(uri: XCAPURI, tree: Tree, selector: NodeSelector, body: bytes) -> tuple[Tree, bool]:
    """:func:`nodes.put_node_tree` with the usage's ``bare_attribute_values`` (SS35), and the
    ``xmlns()`` query kept on the ``<ancestor>`` URI."""
    try:
        return put_node_tree(tree, selector, body, uri.document_url,
                             bare_attribute_values=uri.usage.bare_attribute_values)
    except NoParent as exc:
        if not uri.query or not exc.ancestor or "/~~/" not in exc.ancestor:
            raise
        raise NoParent(exc.phrase, exc.ancestor + "?" + quote(uri.query, safe=QUERY_SAFE)) from None


def delete(storage: Storage, uri: XCAPURI, selector: NodeSelector | None, pre: Preconditions,
           root_url: str | None = None, cache: ParseCache | None = None) -> Response:
    """D1-D9: remove the document, element or attribute (200); 404 when absent. After a
    node DELETE the document still exists and the 200 carries its new ETag (D8).
    With ``root_url`` the write records a change event."""
    check_node_writable(selector)

    def change(current: Document | None) -> bytes | None:
        pre.check_write(current.etag if current else None)
        if current is None:
            raise NotFound("no such document")
        if selector is None:
            return None
        tree = delete_node_tree(tree_of(cache, uri, current), selector)
        uri.usage.validate(tree.document, validation_context(storage, uri))  # V6, D6
        trees.append(tree)
        return tree.document

    trees: list[Tree] = []
    describe = None if root_url is None else change_event(uri, selector, root_url, ["deleted"])
    result = storage.update(document_key(uri), change, describe)
    remember(cache, uri, result.etag, trees)
    headers = [("Content-Length", "0")]
    if result.etag is not None:
        headers.insert(0, ("ETag", quoted(result.etag)))
    return Response("200 OK", headers)
