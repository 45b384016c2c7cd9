"""Dialog authorization rules, ``org.openxcap.dialog-rules`` (issue 11 item 6).

Blink and other sipsimple clients keep, beside their presence rules, the rules that
decide who may subscribe to their ``dialog`` event package (who sees them on the
phone). No RFC defines the usage; OpenXCAP serves it and sipsimple writes it. The
document is an RFC 4745 common-policy ``<ruleset>`` whose ``<actions>`` hold
``<dr:sub-handling>`` (block, confirm, polite-block, allow, as RFC 5025 §3.2.1),
with the OMA common-policy conditions (``ocp:external-list``, ``ocp:other-identity``,
``ocp:anonymous-request``) sipsimple puts in every rule::

    PUT /xcap-root/org.openxcap.dialog-rules/users/sip:alice@example.com/index
    Content-Type: application/auth-policy+xml

The namespace of ``<sub-handling>`` is the one sipsimple writes today,
``urn:ag-projects:xml:ns:dialog-rules`` (``sipsimple/payloads/dialogrules.py``), and it
is this usage's default document namespace. OpenXCAP declares
``http://openxcap.org/ns/dialog-rules`` instead, the namespace of older sipsimple
releases: such documents are still accepted (common-policy checks other namespaces in
``<actions>`` laxly, as OpenXCAP does) but their actions are not validated.

``doc_type`` is 1024, a code neither Kamailio (2-512) nor OpenSIPS (2-32) uses;
OpenXCAP's own table stores the usage as 128, which is Kamailio's pres-content, and
``xcap-wsgi import --from-openxcap`` re-types those rows. 2048 is reserved for the
ETSI simservs usage (issue 12). No constraint beyond the schema: a repeated
``rule/@id`` is an xs:ID error, as for pres-rules.
"""

from __future__ import annotations

from xcap_wsgi.usages import ApplicationUsage, register
from xcap_wsgi.usages.pres_rules import CP_NS
from xcap_wsgi.usages.validation import BUILTIN_SCHEMAS

DIALOG_RULES_NS = "urn:ag-projects:xml:ns:dialog-rules"
#: what OpenXCAP declares as the default namespace (older sipsimple wrote it)
OPENXCAP_DIALOG_RULES_NS = "http://openxcap.org/ns/dialog-rules"

DIALOG_RULES = register(ApplicationUsage(
    auid="org.openxcap.dialog-rules",
    mime_type="application/auth-policy+xml",
    namespace=DIALOG_RULES_NS,
    doc_type=1024,
    root=f"{{{CP_NS}}}ruleset",
    schemas=BUILTIN_SCHEMAS,
))
