"""The OMA XDM usages SIP and IMS clients use (doc_type codes from kamailio-compat.md)."""

from __future__ import annotations

from xcap_wsgi.usages import ApplicationUsage, register

USER_PROFILE = register(ApplicationUsage(
    auid="org.openmobilealliance.user-profile",
    mime_type="application/vnd.oma.user-profile+xml",
    namespace="urn:oma:xml:xdm:user-profile",
    doc_type=64,
))

PRES_CONTENT = register(ApplicationUsage(
    auid="org.openmobilealliance.pres-content",
    mime_type="application/vnd.oma.pres-content+xml",
    namespace="urn:oma:xml:prs:pres-content",
    doc_type=128,
))

XCAP_DIRECTORY = register(ApplicationUsage(
    auid="org.openmobilealliance.xcap-directory",
    mime_type="application/vnd.oma.xcap-directory+xml",
    namespace="urn:oma:xml:xdm:xcap-directory",
    doc_type=512,
    generated=True,
))
