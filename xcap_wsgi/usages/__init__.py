"""The registry of XCAP application usages (RFC 4825 §5, requirements M1, U13, U17).

Each usage family lives in its own module and declares its AUIDs with their default
document namespace, MIME type and the ``doc_type`` code Kamailio's presence and RLS
modules read from the ``xcap`` table (kamailio-compat.md). An integrator adds a usage
of their own with :func:`register`::

    from xcap_wsgi.usages import ApplicationUsage, register

    register(ApplicationUsage(
        auid="com.example.notes",
        mime_type="application/vnd.example.notes+xml",
        namespace="urn:example:notes",
        doc_type=4096,  # a code no SIP server reads (kamailio-compat.md)
        root="{urn:example:notes}notes",
        schemas=("/etc/xcap/notes.xsd",),
    ))

The middleware validates every tentative result (RFC 4825 §8.2.5) with
``usage.validate(document, context)``, which raises the matching
:mod:`xcap_wsgi.errors` 409 for the first failure: the document element, then the
schema, then each constraint of the usage in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Literal

from lxml import etree

from xcap_wsgi.usages.validation import check_root, check_schema, parse_document

AUID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _no_documents(doc_type: int) -> Iterable[tuple[str, bytes]]:
    return ()


def _no_index(uris: Collection[str]) -> set[str] | None:
    return None


@dataclass(frozen=True)
class ValidationContext:
    """Where the document being validated lives, and a view of its neighbours.

    ``doc_uri`` is the percent-decoded absolute path of the document including the
    XCAP root (the Kamailio ``doc_uri`` column). ``documents(doc_type)`` yields
    ``(doc_uri, doc)`` for every stored document of that Kamailio ``doc_type``; a
    usage that reads it (rls-services, RS3) skips the one whose ``doc_uri`` equals
    this context's, since its new content is the document being validated.
    ``services_taken(uris)`` says which of these rls-services service URIs (percent-decoded)
    documents other than this one hold, from the storage's index (one lookup, RS3); None
    when the storage keeps no index, and RS3 reads ``documents``.
    """

    xcap_root: str
    auid: str
    tree: Literal["users", "global"]
    xui: str | None
    doc_uri: str
    documents: Callable[[int], Iterable[tuple[str, bytes]]] = _no_documents
    services_taken: Callable[[Collection[str]], set[str] | None] = _no_index


#: A check beyond the schema (RFC 4825 §8.2.5, V4/V5): raises an errors.Conflict.
Constraint = Callable[[etree._Element, ValidationContext], None]


@dataclass(frozen=True)
class ApplicationUsage:
    """One AUID: what documents under it are, how they are stored and validated.

    ``generated`` usages (xcap-caps, the OMA directory) are computed by the server
    and never written by clients. ``root`` is the required document element in
    Clark notation, ``schemas`` the XSD files (names of the package's schemas or
    absolute paths) whose union validates the document, ``constraints`` the
    usage's further checks, run in order after the schema.

    Three switches, all off by default, let one usage accept what its clients send where
    RFC 4825 is strict (the simservs usage turns them on, simservs.md §7):
    ``element_mime_aliases`` are media types also accepted on an element PUT whose body
    is one element (SS3a; PE7 answers 415 otherwise); with ``rootless_selectors`` a node
    selector whose first step names a direct child of the document element, not the
    document element itself, is evaluated below it (SS31a; N3 answers 404 otherwise);
    with ``bare_attribute_values`` an attribute PUT body without quotes, ``<`` or ``&``
    is the value without the whitespace around it (SS35; see
    :func:`xcap_wsgi.nodes.put_node`). Element bodies use the prefixes in scope at the
    insertion point for every usage (PE8).
    """

    auid: str
    mime_type: str
    namespace: str
    doc_type: int
    generated: bool = False
    root: str | None = None
    schemas: tuple[str, ...] = ()
    constraints: tuple[Constraint, ...] = field(default=(), compare=False)
    element_mime_aliases: tuple[str, ...] = ()
    rootless_selectors: bool = False
    bare_attribute_values: bool = False

    def __post_init__(self) -> None:
        if not AUID_RE.match(self.auid):
            raise ValueError(f"invalid AUID {self.auid!r} (RFC 4825 §5.1: a token or a reverse-domain name)")
        if "/" not in self.mime_type:
            raise ValueError(f"invalid MIME type {self.mime_type!r} for AUID {self.auid!r}")

    def validate(self, document: bytes | etree._Element, context: ValidationContext) -> None:
        """Raise the 409 for the first way ``document`` (bytes, or a root element
        already parsed by :func:`xcap_wsgi.xmlcheck.parse_document`) breaks this usage (V1-V5)."""
        root = parse_document(document) if isinstance(document, bytes) else document
        if self.root is not None:
            check_root(root, self.root)
        if self.schemas:
            check_schema(root, self.schemas)
        for constraint in self.constraints:
            constraint(root, context)


_REGISTRY: dict[str, ApplicationUsage] = {}
_generation = [0]


def register(usage: ApplicationUsage) -> ApplicationUsage:
    """Add (or replace) the usage for ``usage.auid``; returns it."""
    _REGISTRY[usage.auid] = usage
    _generation[0] += 1
    return usage


def unregister(auid: str) -> None:
    """Remove the usage for ``auid`` (its documents then answer 404, U13)."""
    _REGISTRY.pop(auid, None)
    _generation[0] += 1


def generation() -> int:
    """Changes whenever the registry does (caches of parsed URIs key on it)."""
    return _generation[0]


def get_usage(auid: str) -> ApplicationUsage | None:
    """The usage registered for ``auid``, or None (the caller answers 404, U13)."""
    return _REGISTRY.get(auid)


def all_usages() -> list[ApplicationUsage]:
    """Every registered usage, sorted by AUID."""
    return sorted(_REGISTRY.values(), key=lambda u: u.auid)


from xcap_wsgi.usages import caps, dialog_rules, oma, pidf, pres_rules, resource_lists, simservs, watchers  # noqa: E402,F401  (registers)
from xcap_wsgi.usages.caps import xcap_caps_document  # noqa: E402
from xcap_wsgi.usages.oma import DirectoryEntry, xcap_directory_document  # noqa: E402
from xcap_wsgi.usages.resource_lists import rls_services_global_index  # noqa: E402

__all__ = [
    "AUID_RE",
    "ApplicationUsage",
    "Constraint",
    "DirectoryEntry",
    "ValidationContext",
    "all_usages",
    "get_usage",
    "register",
    "rls_services_global_index",
    "unregister",
    "xcap_caps_document",
    "xcap_directory_document",
]
