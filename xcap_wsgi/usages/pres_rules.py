"""RFC 5025 presence rules on RFC 4745 common policy, and the OMA variant (PR1)."""

from __future__ import annotations

from xcap_wsgi.usages import ApplicationUsage, register

PRES_RULES = register(ApplicationUsage(
    auid="pres-rules",
    mime_type="application/auth-policy+xml",
    namespace="urn:ietf:params:xml:ns:pres-rules",
    doc_type=2,
))

OMA_PRES_RULES = register(ApplicationUsage(
    auid="org.openmobilealliance.pres-rules",
    mime_type="application/auth-policy+xml",
    namespace="urn:ietf:params:xml:ns:pres-rules",
    doc_type=2,
))
