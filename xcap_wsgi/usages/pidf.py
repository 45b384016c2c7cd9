"""RFC 4827 pidf-manipulation: presence documents written over XCAP (PM1, PM2).

The document is a PIDF ``<presence>`` (RFC 3863) with the RFC 4479 data model
(person, device), RPID (RFC 4480), CIPID (RFC 4482) and caps (RFC 5196)
extensions validated; other extensions (OMA pidf, vendor namespaces) are
accepted where PIDF allows them. No constraints beyond the schema (RFC 4827 §7).
"""

from __future__ import annotations

from xcap_wsgi.usages import ApplicationUsage, register
from xcap_wsgi.usages.validation import BUILTIN_SCHEMAS

PIDF_NS = "urn:ietf:params:xml:ns:pidf"

PIDF_MANIPULATION = register(ApplicationUsage(
    auid="pidf-manipulation",
    mime_type="application/pidf+xml",
    namespace=PIDF_NS,
    doc_type=16,
    root=f"{{{PIDF_NS}}}presence",
    schemas=BUILTIN_SCHEMAS,
))
