"""RFC 4826: resource-lists (§3) and rls-services (§4) (requirements RL1-RL6, RS1-RS6).

Beyond the schema, a resource list keeps the names, URIs, refs and anchors of
sibling elements unique (RL3-RL6), entry-refs relative and anchors absolute HTTP
URIs; an RLS service URI is unique on the whole server (RS3) and a
``<resource-list>`` points into the owner's own resource-lists documents under
the same XCAP root (RS4). The storage's service index (:mod:`xcap_wsgi.storage.services`)
keeps every service of every rls-services document as this module lists it, so RS3 is one
lookup and the global rls-services index (RS6) is assembled without parsing::

    body = rls_services_document(storage.indexed_services())
    body = rls_services_global_index(storage_rows_with_doc_type_8)  # a storage without the index
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from typing import NoReturn
from urllib.parse import unquote, urlsplit

from lxml import etree

from xcap_wsgi.errors import ConstraintFailure, UniquenessFailure, XCAPError
from xcap_wsgi.nodes import standalone_children
from xcap_wsgi.storage.services import Lookup, Service, ServiceIndexer, use
from xcap_wsgi.usages import ApplicationUsage, ValidationContext, register
from xcap_wsgi.usages.validation import (
    BUILTIN_SCHEMAS,
    decode_uri,
    field_selector,
    has_scheme,
    is_http_uri,
    parse_document,
)
from xcap_wsgi.xmlcheck import parser

RL_NS = "urn:ietf:params:xml:ns:resource-lists"
RLS_NS = "urn:ietf:params:xml:ns:rls-services"
RLS_DOC_TYPE = 8

#: Per child element: the attribute that must be unique among same-name siblings
#: (RFC 4826 §3.4.5) and whether it holds a URI (compared percent-decoded).
_UNIQUE_ATTRIBUTES = {
    f"{{{RL_NS}}}list": ("name", False),
    f"{{{RL_NS}}}entry": ("uri", True),
    f"{{{RL_NS}}}entry-ref": ("ref", True),
    f"{{{RL_NS}}}external": ("anchor", True),
}
_LIST_TAGS = (f"{{{RL_NS}}}list", f"{{{RLS_NS}}}list")
_SERVICE = f"{{{RLS_NS}}}service"
_IN_USE = "service URI already in use (RFC 4826 section 4.4.5)"


# --- resource lists (RL3-RL6, and RS5 for inline lists) -------------------------------


def _lists(root: etree._Element) -> Iterator[etree._Element]:
    """The root and every list of the document: the parents RL3-RL6 look into."""
    yield root
    yield from root.iter(*_LIST_TAGS)


def _duplicates(parent: etree._Element) -> Iterator[tuple[etree._Element, str]]:
    """(element, attribute) for each child repeating an earlier sibling's value."""
    seen: set[tuple[str, str]] = set()
    for child in parent.iterchildren(*_UNIQUE_ATTRIBUTES):
        attribute, is_uri = _UNIQUE_ATTRIBUTES[str(child.tag)]
        raw = child.get(attribute)
        if raw is None:
            continue
        key = (str(child.tag), decode_uri(raw) if is_uri else raw)
        if key in seen:
            yield child, attribute
        seen.add(key)


def _check_sibling_uniqueness(root: etree._Element, default_ns: str) -> None:
    """RL3-RL6: one ``<exists>`` per repeated name, uri, ref or anchor."""
    exists = [
        (field_selector(element, attribute, default_ns), ())
        for parent in _lists(root)
        for element, attribute in _duplicates(parent)
    ]
    if exists:
        raise UniquenessFailure(exists, "a sibling already uses this value (RFC 4826 section 3.4.5)")


def _check_references(root: etree._Element) -> None:
    """RL5: entry-ref is a relative-path reference; RL6: external is absolute HTTP."""
    for ref in root.iter(f"{{{RL_NS}}}entry-ref"):
        value = decode_uri(ref.get("ref", ""))
        if not value or has_scheme(value) or value.startswith("/"):
            raise ConstraintFailure(f"entry-ref {value!r} is not a relative-path reference (RFC 4826 section 3.4.5)")
    for external in root.iter(f"{{{RL_NS}}}external"):
        anchor = external.get("anchor")
        if anchor is not None and not is_http_uri(decode_uri(anchor)):
            raise ConstraintFailure(f"external anchor {anchor!r} is not an absolute HTTP URI (RFC 4826 section 3.4.5)")


def check_resource_lists(root: etree._Element, context: ValidationContext) -> None:
    """RFC 4826 §3.4.5 (RL3-RL6)."""
    _check_sibling_uniqueness(root, RL_NS)
    _check_references(root)


# --- rls-services (RS3-RS5) -----------------------------------------------------------


def check_inline_lists(root: etree._Element, context: ValidationContext) -> None:
    """RS5: a ``<list>`` inside a service obeys the resource-lists constraints."""
    _check_sibling_uniqueness(root, RLS_NS)
    _check_references(root)


def _service_uris(document: bytes) -> Iterator[str]:
    try:
        root = parse_document(document)
    except Exception:  # a stored document that no longer parses holds no services
        return
    for service in root.iter(_SERVICE):
        yield decode_uri(service.get("uri", ""))


def _is_global_index(doc_uri: str) -> bool:
    return doc_uri.rstrip("/").endswith("/rls-services/global/index")


def _taken_elsewhere(context: ValidationContext) -> set[str]:
    """Service URIs of every other rls-services document on the server (RS3), for a
    storage without the service index."""
    taken: set[str] = set()
    for doc_uri, document in context.documents(RLS_DOC_TYPE):
        if doc_uri != context.doc_uri and not _is_global_index(doc_uri):
            taken.update(_service_uris(document))
    return taken


def _alternatives(uri: str, mine: set[str], lookup: Lookup, count: int = 3) -> list[str]:
    """Free service URIs next to ``uri``: ``sip:friends@x`` → ``sip:friends-1@x`` ...,
    neither in this document nor held by another (looked up a batch at a time)."""
    match = re.match(r"^([^:]+:)?([^@;]*)(.*)$", uri)
    scheme, user, rest = match.groups() if match else ("", uri, "")
    candidates = (f"{scheme or ''}{user}-{n}{rest}" for n in itertools.count(1))
    free: list[str] = []
    while len(free) < count:
        batch = [c for c in itertools.islice(candidates, 2 * count) if c not in mine]
        taken = lookup(batch)
        free.extend(c for c in batch if c not in taken)
    return free[:count]


def _services_in(root: etree._Element) -> tuple[list[etree._Element], list[str]]:
    """The document's services and their URIs, percent-decoded."""
    services = list(root.iter(_SERVICE))
    return services, [decode_uri(s.get("uri", "")) for s in services]


def _refuse_taken(services: list[etree._Element], mine: list[str], taken: set[str], lookup: Lookup) -> None:
    """RS3: the 409 naming each service whose URI another document holds or an earlier
    sibling repeats, with alternatives free at this moment (V4)."""
    seen: set[str] = set()
    exists: list[tuple[str, list[str]]] = []
    for service, uri in zip(services, mine, strict=True):
        if uri in taken or uri in seen:
            exists.append((field_selector(service, "uri", RLS_NS), _alternatives(uri, set(mine), lookup)))
        seen.add(uri)
    if exists:
        raise UniquenessFailure(exists, _IN_USE)


def _lookup(context: ValidationContext, mine: list[str]) -> tuple[set[str], Lookup]:
    """Which of ``mine`` other documents hold, and how to ask about more: the storage's
    service index, or, without one, every other rls-services document read once."""
    taken = context.services_taken(mine)
    if taken is None:
        elsewhere = _taken_elsewhere(context)
        return elsewhere.intersection(mine), elsewhere.intersection
    return taken, lambda uris: context.services_taken(uris) or set()


def check_service_uniqueness(root: etree._Element, context: ValidationContext) -> None:
    """RS3: service/@uri unique across every rls-services document, with free alternatives."""
    services, mine = _services_in(root)
    if services:
        _refuse_taken(services, mine, *_lookup(context, mine))


def _refuse_write(document: bytes, taken: set[str], lookup: Lookup) -> NoReturn:
    """RS3 when the storage finds, writing ``document``, URIs that another document holds: a
    writer that raced another for one URI and lost (its transaction replayed), or one that
    did not validate."""
    _refuse_taken(*_services_in(parse_document(document)), taken, lookup)
    raise UniquenessFailure([("rls-services/service/@uri", [])], _IN_USE)  # not reached: the document holds them


def _normalise_root(xcap_root: str) -> str:
    return "/" + xcap_root.strip("/") + "/" if xcap_root.strip("/") else "/"


def _resource_list_problem(value: str, context: ValidationContext) -> str | None:
    """Why a ``<resource-list>`` value breaks RS4, or None when it is fine."""
    text = value.strip() if is_http_uri(value.strip()) else decode_uri(value)
    if not is_http_uri(text):
        return "is not an absolute HTTP URI"
    path = urlsplit(text.split("/~~/", 1)[0]).path
    root = _normalise_root(context.xcap_root)
    if not path.startswith(root):
        return f"is not under this document's XCAP root {root}"
    segments = [unquote(s) for s in path[len(root):].split("/")]
    if segments[0] != "resource-lists":
        return "does not point into the resource-lists application usage"
    if context.tree == "users" and (len(segments) < 3 or segments[1:3] != ["users", context.xui]):
        return f"does not point into the home directory of {context.xui}"
    return None


def check_resource_list_references(root: etree._Element, context: ValidationContext) -> None:
    """RS4: a ``<resource-list>`` names a resource-lists document of the same user and root."""
    for element in root.iter(f"{{{RLS_NS}}}resource-list"):
        value = element.text or ""
        problem = _resource_list_problem(value, context)
        if problem:
            raise ConstraintFailure(f"resource-list {value.strip()!r} {problem} (RFC 4826 section 4.4.5)")


RESOURCE_LISTS = register(ApplicationUsage(
    auid="resource-lists",
    mime_type="application/resource-lists+xml",
    namespace=RL_NS,
    doc_type=4,
    root=f"{{{RL_NS}}}resource-lists",
    schemas=BUILTIN_SCHEMAS,
    constraints=(check_resource_lists,),
))

RLS_SERVICES = register(ApplicationUsage(
    auid="rls-services",
    mime_type="application/rls-services+xml",
    namespace=RLS_NS,
    doc_type=RLS_DOC_TYPE,
    root=f"{{{RLS_NS}}}rls-services",
    schemas=BUILTIN_SCHEMAS,
    constraints=(check_inline_lists, check_resource_list_references, check_service_uniqueness),
))


# --- the global index (RS6) -----------------------------------------------------------


def _is_user_index(doc_uri: str) -> bool:
    """``.../rls-services/users/<xui>/index``: only documents named index count (RS6)."""
    segments = doc_uri.split("/")
    return len(segments) >= 4 and segments[-1] == "index" and segments[-3] == "users" and segments[-4] == "rls-services"


def _services_of(document: bytes) -> list[bytes]:
    """Each ``<service>`` of a stored document, byte for byte, standing alone."""
    try:
        return standalone_children(document, RLS_NS, "service")
    except XCAPError:  # a stored document that no longer parses contributes nothing
        return []


def _uri_of(service: bytes) -> str:
    try:
        return decode_uri(etree.fromstring(service, parser()).get("uri", ""))
    except etree.XMLSyntaxError:  # another program's document (an undeclared entity): no URI
        return ""


def indexed_services(doc_uri: str, document: bytes) -> list[Service]:
    """What the storage's service index keeps of a stored document: each service's URI
    (RS3) and element standing alone (RS6); the generated global index holds none."""
    if _is_global_index(doc_uri):
        return []
    return [Service(_uri_of(service), service) for service in _services_of(document)]


def rls_services_document(services: Iterable[tuple[str, bytes]]) -> bytes:
    """RFC 4826 §4.4.8 (RS6): the global index from ``(doc_uri, service)`` rows in
    ``doc_uri`` and then document order, as the storage's service index lists them;
    documents not named ``index`` directly in a user's home directory are left out."""
    parts = [b'<?xml version="1.0" encoding="UTF-8"?>\n', f'<rls-services xmlns="{RLS_NS}">'.encode()]
    parts.extend(b"\n" + service for doc_uri, service in services if _is_user_index(doc_uri))
    parts.append(b"\n</rls-services>\n")
    return b"".join(parts)


def rls_services_global_index(docs: Iterable[tuple[str, bytes]]) -> bytes:
    """RS6 from ``(doc_uri, doc)`` rows of rls-services documents (a storage without the
    service index): :func:`rls_services_document` of their services, ordered by ``doc_uri``
    and then document order, so it is deterministic."""
    ordered = sorted(docs, key=lambda row: row[0])
    return rls_services_document((uri, s) for uri, doc in ordered if _is_user_index(uri) for s in _services_of(doc))


use(ServiceIndexer(RLS_DOC_TYPE, indexed_services, _refuse_write))
