"""RFC 4825 §12: the server capabilities usage, ``xcap-caps`` (K1-K8)."""

from __future__ import annotations

from xcap_wsgi.usages import ApplicationUsage, register

XCAP_CAPS = register(ApplicationUsage(
    auid="xcap-caps",
    mime_type="application/xcap-caps+xml",
    namespace="urn:ietf:params:xml:ns:xcap-caps",
    doc_type=32,
    generated=True,
))
