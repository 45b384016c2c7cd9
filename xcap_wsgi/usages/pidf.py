"""RFC 4827 pidf-manipulation: presence documents written over XCAP (PM1)."""

from __future__ import annotations

from xcap_wsgi.usages import ApplicationUsage, register

PIDF_MANIPULATION = register(ApplicationUsage(
    auid="pidf-manipulation",
    mime_type="application/pidf+xml",
    namespace="urn:ietf:params:xml:ns:pidf",
    doc_type=16,
))
