"""RFC 4826: resource-lists (§3) and rls-services (§4) (requirements RL1, RS1)."""

from __future__ import annotations

from xcap_wsgi.usages import ApplicationUsage, register

RESOURCE_LISTS = register(ApplicationUsage(
    auid="resource-lists",
    mime_type="application/resource-lists+xml",
    namespace="urn:ietf:params:xml:ns:resource-lists",
    doc_type=4,
))

RLS_SERVICES = register(ApplicationUsage(
    auid="rls-services",
    mime_type="application/rls-services+xml",
    namespace="urn:ietf:params:xml:ns:rls-services",
    doc_type=8,
))
