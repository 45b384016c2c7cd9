"""RFC 5025 presence rules on RFC 4745 common policy, and the OMA variant (PR1-PR3).

Both AUIDs hold a common-policy ``<ruleset>``; the pres-rules permissions, the
OMA common-policy conditions (external-list, anonymous-request, other-identity)
and the OMA pres-rules transformations are validated wherever they appear.
RFC 5025 §9.5 adds no constraint beyond the schema; a repeated ``rule/@id`` is
an xs:ID schema error (requirements §10 item 11).
"""

from __future__ import annotations

from xcap_wsgi.usages import ApplicationUsage, register
from xcap_wsgi.usages.validation import BUILTIN_SCHEMAS

CP_NS = "urn:ietf:params:xml:ns:common-policy"
PR_NS = "urn:ietf:params:xml:ns:pres-rules"
OMA_CP_NS = "urn:oma:xml:xdm:common-policy"
OMA_PR_NS = "urn:oma:xml:prs:pres-rules"

PRES_RULES = register(ApplicationUsage(
    auid="pres-rules",
    mime_type="application/auth-policy+xml",
    namespace=PR_NS,
    doc_type=2,
    root=f"{{{CP_NS}}}ruleset",
    schemas=BUILTIN_SCHEMAS,
))

OMA_PRES_RULES = register(ApplicationUsage(
    auid="org.openmobilealliance.pres-rules",
    mime_type="application/auth-policy+xml",
    namespace=PR_NS,
    doc_type=2,
    root=f"{{{CP_NS}}}ruleset",
    schemas=BUILTIN_SCHEMAS,
))
