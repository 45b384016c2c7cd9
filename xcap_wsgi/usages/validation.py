"""The machinery every application usage validates with (RFC 4825 §8.2.5, V1-V5).

Pure helpers over bytes and lxml trees::

    root = parse_document(body)                  # hardened parser, 409s on bad input
    check_schema(root, BUILTIN_SCHEMAS)          # schema-validation-error
    field = field_selector(entry, "uri", RL_NS)  # <exists field=...> value (§10 item 7)

Schemas are compiled once per set of files and kept for the life of the process;
nothing here touches the network or the file system after the first compilation.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, unquote, urlsplit

from lxml import etree

from xcap_wsgi.errors import SchemaValidationError
from xcap_wsgi.xmlcheck import parse_document, parser

__all__ = ["parse_document"]  # re-exported for the usage modules

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
XML_NS = "http://www.w3.org/XML/1998/namespace"

#: Every schema shipped with the package. The built-in usages validate against their
#: union, so an element of any namespace the server advertises is checked wherever a
#: lax ``##other`` wildcard lets it appear (RFC 4825 §8.2.5, V3).
BUILTIN_SCHEMAS: tuple[str, ...] = tuple(sorted(p.name for p in SCHEMA_DIR.glob("*.xsd")))

#: Characters left as they are in a ``field`` path: RFC 3986 pchar and "/" minus
#: nothing the requirements forbid (``"``, ``[``, ``]`` and space are encoded).
_PATH_SAFE = "/:@!$&'()*+,;=-._~"

_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


_VALIDATE_LOCK = threading.Lock()


def schema_path(name: str) -> Path:
    """A bare file name is one of the package's schemas; anything else is a path."""
    path = Path(name)
    return path if path.is_absolute() else SCHEMA_DIR / path


@cache
def target_namespace(name: str) -> str | None:
    """The ``targetNamespace`` a schema file declares."""
    root = etree.parse(str(schema_path(name)), parser()).getroot()
    return root.get("targetNamespace")


@cache
def compiled_schema(names: tuple[str, ...]) -> etree.XMLSchema:
    """One XMLSchema for the union of ``names``, compiled on first use only."""
    xs = "http://www.w3.org/2001/XMLSchema"
    driver = etree.Element(f"{{{xs}}}schema", nsmap={"xs": xs})
    for name in names:
        etree.SubElement(
            driver, f"{{{xs}}}import",
            namespace=target_namespace(name) or "", schemaLocation=schema_path(name).as_uri(),
        )
    return etree.XMLSchema(driver)


def schema_namespaces(names: Sequence[str]) -> set[str]:
    """The XCAP namespaces a schema set validates (the xml: namespace is not one)."""
    found = {target_namespace(name) for name in names}
    return {ns for ns in found if ns and ns != XML_NS}


def check_schema(root: etree._Element, names: tuple[str, ...]) -> None:
    """RFC 4825 §8.2.5 (V1): the validator's first message becomes the phrase."""
    schema = compiled_schema(names)
    with _VALIDATE_LOCK:  # the schema's error_log is shared state
        valid = schema.validate(root)
        errors: list[Any] = list(cast(Iterable[Any], schema.error_log))  # lxml-stubs leave _ErrorLog empty
    if not valid:
        if not errors:
            raise SchemaValidationError("document does not match the schema")
        first = errors[0]
        raise SchemaValidationError(f"line {first.line}: {first.message}" if first.line else first.message)


def check_root(root: etree._Element, expected: str) -> None:
    """The document element must be the usage's root (Clark notation ``{ns}name``)."""
    if root.tag != expected:
        found = etree.QName(root)
        where = f"namespace {found.namespace}" if found.namespace else "no namespace"
        raise SchemaValidationError(
            f"root element is <{found.localname}> in {where}; this application usage needs {expected}"
        )


def field_selector(element: etree._Element, attribute: str | None, default_ns: str | None) -> str:
    """The ``field`` of an ``<exists>`` element (RFC 4825 §11.2, requirements §10 item 7).

    A positional node selector relative to the document, starting at the root
    element, percent-encoded, with an ``xmlns()`` query for every prefix it needs.
    Elements in the usage's default document namespace go unprefixed (U17).
    """
    prefixes: dict[str, str] = {}
    steps: list[str] = []
    node: etree._Element | None = element
    while node is not None:
        parent = node.getparent()
        name = _step_name(node, default_ns, prefixes)
        steps.append(name if parent is None else f"{name}[{_position(node)}]")
        node = parent
    path = "/".join(reversed(steps)) + (f"/@{attribute}" if attribute else "")
    query = "".join(f"xmlns({p}={ns})" for p, ns in sorted(prefixes.items()))
    encoded = quote(path, safe=_PATH_SAFE)
    return encoded + ("?" + quote(query, safe=_PATH_SAFE + "?") if query else "")


def _step_name(node: etree._Element, default_ns: str | None, prefixes: dict[str, str]) -> str:
    qname = etree.QName(node)
    if qname.namespace is None or qname.namespace == default_ns:
        return qname.localname
    prefix = next((p for p, ns in prefixes.items() if ns == qname.namespace), None)
    if prefix is None:
        prefix = node.prefix if node.prefix and node.prefix not in prefixes else f"ns{len(prefixes) + 1}"
        prefixes[prefix] = qname.namespace
    return f"{prefix}:{qname.localname}"


def _position(node: etree._Element) -> int:
    """1-based position among same-name element siblings (RFC 4825 §6.3, N4)."""
    return 1 + sum(1 for sibling in node.itersiblings(preceding=True) if sibling.tag == node.tag)


def decode_uri(value: str) -> str:
    """An anyURI value as the client meant it.

    sipsimple percent-encodes every anyURI it writes (``sip%3Abob%40example.com``);
    decoding once makes both spellings compare and check alike (fixtures README).
    """
    return unquote(value.strip())


def has_scheme(value: str) -> bool:
    """RFC 3986 §3.1: the reference starts with ``scheme ":"``."""
    return _SCHEME_RE.match(value) is not None


def is_http_uri(value: str) -> bool:
    """An absolute http or https URI with an authority."""
    parts = urlsplit(value)
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)
