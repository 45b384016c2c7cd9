"""RFC 4825 §12: the server capabilities usage, ``xcap-caps`` (K1-K8).

The one instance, ``/xcap-caps/global/index`` (K2), is generated::

    body = xcap_caps_document(all_usages())
"""

from __future__ import annotations

from collections.abc import Iterable
from xml.sax.saxutils import escape

from xcap_wsgi.usages import ApplicationUsage, register
from xcap_wsgi.usages.validation import BUILTIN_SCHEMAS, schema_namespaces

XCAP_CAPS_NS = "urn:ietf:params:xml:ns:xcap-caps"

XCAP_CAPS = register(ApplicationUsage(
    auid="xcap-caps",
    mime_type="application/xcap-caps+xml",
    namespace=XCAP_CAPS_NS,
    doc_type=32,
    generated=True,
    root=f"{{{XCAP_CAPS_NS}}}xcap-caps",
    schemas=BUILTIN_SCHEMAS,
))


def _items(parent: str, child: str, values: Iterable[str]) -> str:
    inner = "".join(f"\n    <{child}>{escape(value)}</{child}>" for value in values)
    return f"\n  <{parent}>{inner}\n  </{parent}>"


def xcap_caps_document(usages: Iterable[ApplicationUsage]) -> bytes:
    """The capabilities document: every AUID and every namespace validated (K3-K5, K8).

    ``xcap-caps`` and its namespace are always listed (K4). A namespace is listed
    when one of the usages' schemas defines it, so every advertised namespace is
    one the server validates (RFC 4825 §8.2.5, V3); this includes the pres-rules
    extension namespaces (RFC 5025 §8, K8). Sorted, so the output is deterministic.
    """
    chosen = list(usages)
    auids = {usage.auid for usage in chosen} | {XCAP_CAPS.auid}
    namespaces = {XCAP_CAPS_NS}
    for usage in chosen:
        namespaces |= schema_namespaces(usage.schemas)
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<xcap-caps xmlns="{XCAP_CAPS_NS}">'
        + _items("auids", "auid", sorted(auids))
        + _items("namespaces", "namespace", sorted(namespaces))
        + "\n</xcap-caps>\n"
    )
    return body.encode("utf-8")
