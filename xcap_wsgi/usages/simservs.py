"""MMTel supplementary services over the IMS Ut interface, ``simservs.ngn.etsi.org`` (issue 12).

A VoLTE/VoWiFi phone keeps its call forwarding, call barring, caller-ID and call
waiting settings in one document per user (3GPP TS 24.623, ETSI TS 183 023;
reference simservs.md)::

    GET /simservs.ngn.etsi.org/users/sip:+15551234567@ims.mnc001.mcc001.3gppnetwork.org/simservs.xml
    PUT .../simservs.xml/~~/simservs/communication-diversion/cp:ruleset/cp:rule%5B@id=%22cfb%22%5D?xmlns(cp=...)
    Content-Type: application/xcap-el+xml

The document is validated with the project's own schemas (``schemas/simservs/``, SS10-SS26)
on top of RFC 4745 and OMA common policy. Rule ids are ``xs:ID``: unique in the whole
document, across diversion and both barrings (SS21, decided strict); a repeated id is
refused before the schema runs, with a phrase that names it (libxml2's own message
for a repeated ID reads like a malformed one). The phone quirks are switched on for
this usage only: an element PUT labelled with the document type (SS3a), selectors
without the root step (SS31a) and a bare ``true`` as an attribute value (SS35).

A phone never creates the document (SS40): :class:`FirstRead` holds the default a GET
of a missing ``simservs.xml`` stores and returns, the built-in template
(``simservs-default.xml``: every service, an empty ``cp:ruleset`` under CDIV, ICB and
OCB, the root declaring the default namespace, ``ss:``, ``cp:`` and ``ocp:``; SS41,
SS42) or an operator's file (``simservs_template=``). ``doc_type`` is 2048, a code
neither Kamailio (2-512) nor OpenSIPS (2-32) reads.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from xcap_wsgi.errors import Conflict, SchemaValidationError
from xcap_wsgi.usages import ApplicationUsage, ValidationContext, register
from xcap_wsgi.usages.pres_rules import CP_NS
from xcap_wsgi.usages.validation import BUILTIN_SCHEMAS, check_root, parse_document

SIMSERVS_AUID = "simservs.ngn.etsi.org"
SIMSERVS_NS = "http://uri.etsi.org/ngn/params/xml/simservs/xcap"
SIMSERVS_MIME = "application/vnd.etsi.simservs+xml"
#: the one document name phones use (SS2)
DOCUMENT_NAME = "simservs.xml"
BUILTIN_TEMPLATE = Path(__file__).resolve().parent / "simservs-default.xml"


def service_of(element: etree._Element) -> str:
    """The local name of the root's child that holds ``element`` (the service)."""
    node = element
    while (parent := node.getparent()) is not None and parent.getparent() is not None:
        node = parent
    return etree.QName(node).localname


def check_rule_ids(root: etree._Element) -> None:
    """SS21: ``cp:rule/@id`` is an xs:ID, so no two rules of the document share one.

    Compared after the whitespace collapsing xs:ID applies; the phrase names the id and
    the services holding it, short enough for a phone to show (SS51), and quotes the id
    with ``'`` as libxml2's phrases do, so the attribute stays ``phrase="..."``."""
    seen: dict[str, str] = {}
    for rule in root.iter(f"{{{CP_NS}}}rule"):
        value = rule.get("id")
        if value is None:
            continue  # the schema says it is required
        rule_id, where = " ".join(value.split()), service_of(rule)
        if rule_id in seen:
            places = f"in {where}" if seen[rule_id] == where else f"in {seen[rule_id]} and in {where}"
            raise SchemaValidationError(
                f"rule id '{rule_id}' is used twice, {places}; each rule id must be unique in the document"
            )
        seen[rule_id] = where


class SimservsUsage(ApplicationUsage):
    """The simservs usage: the repeated-rule-id check runs before the schema."""

    def validate(self, document: bytes | etree._Element, context: ValidationContext) -> None:
        root = parse_document(document) if isinstance(document, bytes) else document
        if self.root is not None:
            check_root(root, self.root)
        check_rule_ids(root)
        super().validate(root, context)


SIMSERVS = register(SimservsUsage(
    auid=SIMSERVS_AUID,
    mime_type=SIMSERVS_MIME,
    namespace=SIMSERVS_NS,
    doc_type=2048,
    root=f"{{{SIMSERVS_NS}}}simservs",
    schemas=(*BUILTIN_SCHEMAS, "simservs/simservs.xsd"),
    element_mime_aliases=(SIMSERVS_MIME,),
    rootless_selectors=True,
    bare_attribute_values=True,
))


class FirstRead:
    """SS40-SS44 (decided: store on first GET): the default ``simservs.xml``.

    ``template`` is a file whose bytes are stored as they are; None is the built-in one.
    It is read and validated here, so a bad file stops the server at start, with a
    message naming ``simservs_template``; so does a file larger than ``limit`` (the
    server's ``buf_size``: no element PUT could change such a document)."""

    def __init__(self, template: str | None = None, *, limit: int | None = None) -> None:
        path = BUILTIN_TEMPLATE if template is None else Path(template)
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"simservs_template {str(path)!r} cannot be read: {exc.strerror or exc}") from None
        where = f"/{SIMSERVS_AUID}/users/sip:template@invalid/{DOCUMENT_NAME}"
        try:
            SIMSERVS.validate(body, ValidationContext("/", SIMSERVS_AUID, "users", "sip:template@invalid", where))
        except Conflict as exc:
            raise ValueError(f"simservs_template {str(path)!r} is not a valid simservs document: {exc.phrase}") from None
        if template is not None and limit is not None and len(body) > limit:
            raise ValueError(f"simservs_template {str(path)!r} is {len(body)} bytes, more than buf_size ({limit})")
        self.path = path
        self.document = body

    def document_for(self, auid: str, tree: str, document: str) -> bytes | None:
        """The default for a missing document there: only a user's ``simservs.xml`` of this usage."""
        if auid == SIMSERVS_AUID and tree == "users" and document == DOCUMENT_NAME:
            return self.document
        return None
