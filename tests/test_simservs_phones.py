"""Phones' Ut request sequences replayed against the simservs usage (issue 12 "Proven";
simservs.md §3, SS30-SS38), with the URIs and headers the reference records for
MediaTek, Samsung and AOSP, on every storage backend.

The phone talks to the authentication proxy (SS38, 24.109 §7), which forwards with
``X-3GPP-Asserted-Identity`` from a trusted address; each phone request also carries its
own headers (SS37: the quoted ``X-3GPP-Intended-Identity``, MediaTek's ``3gpp-gba``
User-Agent and ``Accept: */*``, ``Host`` the NAF name). The XCAP root is ``/`` (SS7).
Bodies are written for this project in the style each client sends (SS34: MediaTek's
without namespace declarations); the expected element bytes are cut out of the default
document the first GET returns, so the sequences hold for any operator template that
has the services.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from werkzeug.test import Client, TestResponse

from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.storage import Storage

IMPU = "sip:+15551234567@ims.mnc001.mcc001.3gppnetwork.org"
D = f"/simservs.ngn.etsi.org/users/{IMPU}/simservs.xml"
SIMSERVS_MIME = "application/vnd.etsi.simservs+xml"
EL = "application/xcap-el+xml"
ATT = "application/xcap-att+xml"
AP = "10.0.0.5"
NAF = "xcap.ims.mnc001.mcc001.pub.3gppnetwork.org"
CP = "xmlns(cp=urn:ietf:params:xml:ns:common-policy)"
SS = "xmlns(ss=http://uri.etsi.org/ngn/params/xml/simservs/xcap)"
CDIV = D + "/~~/simservs/communication-diversion"
MTK_BUSY = CDIV + "/cp:ruleset/cp:rule%5b@id=%22call-diversion-busy%22%5d"
SAMSUNG_CFU = D + "/~~/simservs/ss:communication-diversion/cp:ruleset/cp:rule%5B@id=%22call-diversion-unconditional%22%5D"
#: SS37: what every phone request carries; MediaTek adds its User-Agent and Accept
PHONE = {"Host": NAF, "X-3GPP-Intended-Identity": f'"{IMPU}"'}
MTK = {**PHONE, "User-Agent": "XCAP Client 3gpp-gba", "Accept": "*/*"}
SAMSUNG = PHONE
#: SS34: MediaTek's rule body: cp: undeclared, simservs children unprefixed
MTK_BUSY_RULE = (b'<cp:rule id="call-diversion-busy"><cp:conditions><busy/></cp:conditions><cp:actions>'
                 b"<forward-to><target>tel:+15550001111</target></forward-to></cp:actions></cp:rule>")
SAMSUNG_CFU_RULE = (
    b'<cp:rule xmlns:cp="urn:ietf:params:xml:ns:common-policy" xmlns:ss="http://uri.etsi.org/ngn/params/xml/simservs/xcap"'
    b' id="call-diversion-unconditional"><cp:conditions/><cp:actions><ss:forward-to><ss:target>'
    b"sip:+15550002222@ims.mnc001.mcc001.3gppnetwork.org;user=phone</ss:target></ss:forward-to></cp:actions></cp:rule>"
)


@pytest.fixture
def phone(storage: Storage) -> Client:
    return Client(XCAPMiddleware(None, storage=storage, xcap_root="/", auth="ims", trusted_proxies=[AP]))


def send(phone: Client, method: str, uri: str, headers: dict[str, str], body: bytes | None = None, /,
         **more: str) -> TestResponse:
    """One phone request as the authentication proxy forwards it (SS38); ``more`` are headers."""
    path, _, query = uri.partition("?")
    asserted = {"X-3GPP-Asserted-Identity": f'"{IMPU}"'}
    return phone.open(path, method=method, query_string=query, data=body, headers={**headers, **more, **asserted},
                      environ_base={"REMOTE_ADDR": AP})


def element(document: bytes, name: str) -> bytes:
    """The bytes of the first element called ``name`` (any prefix) in ``document``."""
    start = re.search(rb"<(?:[\w.-]+:)?" + name.encode() + rb"[ />]", document)
    assert start is not None, name
    tag_end = document.index(b">", start.start()) + 1
    if document[tag_end - 2 : tag_end] == b"/>":
        return document[start.start() : tag_end]
    close = re.compile(rb"</(?:[\w.-]+:)?" + name.encode() + rb">").search(document, tag_end)
    assert close is not None, name
    return document[start.start() : close.end()]


def in_service(document: bytes, service: str, old: bytes, new: bytes) -> bytes:
    """``document`` with ``old`` replaced by ``new`` once, inside the service element."""
    part = element(document, service)
    assert old in part
    return document.replace(part, part.replace(old, new, 1), 1)


def first_get(phone: Client) -> tuple[bytes, str]:
    resp = send(phone, "GET", D, PHONE)
    assert (resp.status, resp.headers["Content-Type"]) == ("200 OK", SIMSERVS_MIME)
    return bytes(resp.data), str(resp.headers["ETag"])


def stored(storage: Storage) -> bytes:
    document = storage.get(unquote(D))
    assert document is not None
    return document.doc


# -- reads (SS30, SS31, SS40) --------------------------------------------------------------------

def test_aosp_first_whole_document_get_stores_the_default_with_a_stable_etag(phone: Client, storage: Storage) -> None:
    document, etag = first_get(phone)
    assert stored(storage) == document
    again = send(phone, "GET", D, PHONE)
    assert (again.status, again.headers["ETag"], again.data) == ("200 OK", etag, document)
    assert send(phone, "GET", D, PHONE, **{"If-None-Match": etag}).status == "304 Not Modified"


def test_mtk_first_request_is_an_element_get_of_a_service(phone: Client, storage: Storage) -> None:
    resp = send(phone, "GET", CDIV, MTK)
    document = stored(storage)
    assert (resp.status, resp.headers["Content-Type"], resp.data) == ("200 OK", EL, element(document, "communication-diversion"))
    etag = resp.headers["ETag"]
    assert send(phone, "GET", D, MTK).headers["ETag"] == etag
    cached = send(phone, "GET", CDIV, MTK, **{"If-None-Match": etag})
    assert (cached.status, cached.headers["ETag"], cached.data) == ("304 Not Modified", etag, b"")


@pytest.mark.parametrize("service", [
    "communication-diversion", "incoming-communication-barring", "outgoing-communication-barring",
    "communication-waiting", "originating-identity-presentation", "originating-identity-presentation-restriction",
])
def test_service_element_gets_as_phones_send_them(phone: Client, service: str) -> None:
    document, etag = first_get(phone)
    resp = send(phone, "GET", f"{D}/~~/simservs/{service}", MTK)
    assert (resp.status, resp.headers["ETag"], resp.data) == ("200 OK", etag, element(document, service))
    prefixed = send(phone, "GET", f"{D}/~~/simservs/ss:{service}?{SS}", SAMSUNG)
    assert (prefixed.status, prefixed.data) == ("200 OK", element(document, service))


@pytest.mark.parametrize("service", ["terminating-identity-presentation", "terminating-identity-presentation-restriction"])
def test_samsung_tip_tir_gets_without_the_root_step(phone: Client, service: str) -> None:
    # SS31a
    document, etag = first_get(phone)
    resp = send(phone, "GET", f"{D}/~~/{service}", SAMSUNG)
    assert (resp.status, resp.headers["Content-Type"], resp.headers["ETag"]) == ("200 OK", EL, etag)
    assert resp.data == element(document, service)


# -- single-rule writes (SS32, SS33, SS34) --------------------------------------------------------

def test_mtk_single_rule_put_with_if_match_creates_then_replaces(phone: Client, storage: Storage) -> None:
    document, etag = first_get(phone)
    created = send(phone, "PUT", f"{MTK_BUSY}?{CP}", MTK, MTK_BUSY_RULE,
                   **{"Content-Type": EL, "If-Match": etag})
    assert (created.status, created.data, created.headers["Content-Length"]) == ("201 Created", b"", "0")
    assert created.headers["ETag"] != etag
    with_rule = in_service(document, "communication-diversion", b"<cp:ruleset/>",
                           b"<cp:ruleset>" + MTK_BUSY_RULE + b"</cp:ruleset>")
    assert stored(storage) == with_rule
    read = send(phone, "GET", f"{MTK_BUSY}?{CP}", MTK)
    assert (read.status, read.headers["ETag"], read.data) == ("200 OK", created.headers["ETag"], MTK_BUSY_RULE)
    deactivated = MTK_BUSY_RULE.replace(b"<busy/>", b"<busy/><rule-deactivated/>")  # SS17: keep the number
    replaced = send(phone, "PUT", f"{MTK_BUSY}?{CP}", MTK, deactivated,
                    **{"Content-Type": EL, "If-Match": created.headers["ETag"]})
    assert replaced.status == "200 OK"
    assert stored(storage) == with_rule.replace(MTK_BUSY_RULE, deactivated)


def test_samsung_rule_put_with_ss_steps_and_concatenated_xmlns_parts(phone: Client, storage: Storage) -> None:
    document, etag = first_get(phone)
    resp = send(phone, "PUT", f"{SAMSUNG_CFU}?{CP}{SS}", SAMSUNG, SAMSUNG_CFU_RULE,
                **{"Content-Type": EL, "If-Match": etag})
    assert resp.status == "201 Created"
    assert stored(storage) == in_service(document, "communication-diversion", b"<cp:ruleset/>",
                                         b"<cp:ruleset>" + SAMSUNG_CFU_RULE + b"</cp:ruleset>")
    assert send(phone, "GET", f"{SAMSUNG_CFU}?{CP}{SS}", SAMSUNG).data == SAMSUNG_CFU_RULE


def test_mtk_rule_id_with_a_space_is_decoded_and_refused_as_an_xs_id(phone: Client, storage: Storage) -> None:
    # MediaTek writes %20 for a space in an id; xs:ID allows none (SS21, strict)
    document, etag = first_get(phone)
    uri = f"{CDIV}/cp:ruleset/cp:rule%5b@id=%22call%20diversion%20busy%22%5d?{CP}"
    body = MTK_BUSY_RULE.replace(b'id="call-diversion-busy"', b'id="call diversion busy"')
    resp = send(phone, "PUT", uri, MTK, body, **{"Content-Type": EL, "If-Match": etag})
    assert (resp.status, resp.headers["Content-Type"]) == ("409 Conflict", "application/xcap-error+xml")
    assert b"<schema-validation-error phrase=" in resp.data
    assert b"'call diversion busy' is not a valid value of the atomic type 'xs:ID'" in resp.data
    assert stored(storage) == document


def test_rule_erasure_with_delete(phone: Client, storage: Storage) -> None:
    # SS36: erase = DELETE the rule; the 200 carries the new ETag (D8)
    document, etag = first_get(phone)
    created = send(phone, "PUT", f"{MTK_BUSY}?{CP}", MTK, MTK_BUSY_RULE, **{"Content-Type": EL, "If-Match": etag})
    deleted = send(phone, "DELETE", f"{MTK_BUSY}?{CP}", MTK, **{"If-Match": created.headers["ETag"]})
    assert (deleted.status, deleted.headers["Content-Length"]) == ("200 OK", "0")
    assert deleted.headers["ETag"] not in (etag, created.headers["ETag"])
    assert stored(storage) == in_service(document, "communication-diversion", b"<cp:ruleset/>",
                                         b"<cp:ruleset></cp:ruleset>")
    assert send(phone, "GET", f"{MTK_BUSY}?{CP}", MTK).status == "404 Not Found"


def test_operator_tool_unprefixed_ruleset_selector_stays_strict(phone: Client, storage: Storage) -> None:
    # SS32: `ruleset` unprefixed is in the simservs namespace (U17) and matches nothing
    document, _ = first_get(phone)
    trailing = send(phone, "PUT", f"{CDIV}/ruleset/rule%5B@id=%22X%22%5D/", PHONE, b'<cp:rule id="X"/>',
                    **{"Content-Type": EL})
    assert (trailing.status, trailing.data) == ("400 Bad Request",
                                                b"node selector has an empty step (leading, trailing or double '/')\n")
    resp = send(phone, "PUT", f"{CDIV}/ruleset/rule%5B@id=%22X%22%5D", PHONE, b'<cp:rule id="X"/>',
                **{"Content-Type": EL})
    assert (resp.status, resp.data) == ("409 Conflict", (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<xcap-error xmlns="urn:ietf:params:xml:ns:xcap-error">'
        b'<no-parent phrase="the parent of the node does not exist"><ancestor>' + CDIV.encode() +
        b"</ancestor></no-parent></xcap-error>\n"))
    assert stored(storage) == document


# -- conditional writes (SS8) -------------------------------------------------------------------

def test_samsung_412_then_whole_document_reread_then_retry(phone: Client, storage: Storage) -> None:
    _, etag = first_get(phone)
    other = send(phone, "PUT", f"{MTK_BUSY}?{CP}", MTK, MTK_BUSY_RULE, **{"Content-Type": EL, "If-Match": etag})
    assert other.status == "201 Created"
    stale = send(phone, "PUT", f"{SAMSUNG_CFU}?{CP}{SS}", SAMSUNG, SAMSUNG_CFU_RULE,
                 **{"Content-Type": EL, "If-Match": etag})
    assert (stale.status, stale.data) == ("412 Precondition Failed",
                                          b"If-Match failed: the document has changed (its ETag differs)\n")
    document, fresh = first_get(phone)
    assert fresh == other.headers["ETag"]
    retry = send(phone, "PUT", f"{SAMSUNG_CFU}?{CP}{SS}", SAMSUNG, SAMSUNG_CFU_RULE,
                 **{"Content-Type": EL, "If-Match": fresh})
    assert retry.status == "201 Created"
    assert stored(storage) == document.replace(MTK_BUSY_RULE, MTK_BUSY_RULE + SAMSUNG_CFU_RULE)


# -- service toggles and settings (SS35, SS36, SS3a) -------------------------------------------

@pytest.mark.parametrize("quoted", [False, True], ids=["bare", "quoted"])
def test_mtk_active_put(phone: Client, storage: Storage, quoted: bool) -> None:
    # SS35: body `true` without quotes by default; quoted with the operator flag xcap.attr.active.quote
    document, etag = first_get(phone)
    uri = f"{D}/~~/simservs/communication-waiting/@active"
    off = send(phone, "PUT", uri, MTK, b'"false"' if quoted else b"false", **{"Content-Type": ATT, "If-Match": etag})
    assert (off.status, off.headers["Content-Length"]) == ("200 OK", "0")
    read = send(phone, "GET", uri, MTK)
    assert (read.status, read.headers["Content-Type"], read.data) == ("200 OK", ATT, b'"false"')
    waiting = element(document, "communication-waiting")
    assert stored(storage) == document.replace(waiting, waiting.replace(b'active="true"', b'active="false"'))
    on = send(phone, "PUT", uri, MTK, b'"true"' if quoted else b"true",
              **{"Content-Type": ATT, "If-Match": off.headers["ETag"]})
    assert on.status == "200 OK"
    assert stored(storage) == document


def test_samsung_tir_element_put_without_the_root_step(phone: Client, storage: Storage) -> None:
    # SS31a, and the body in the in-scope default namespace (PE8)
    document, etag = first_get(phone)
    body = (b'<terminating-identity-presentation-restriction active="true">'
            b"<default-behaviour>presentation-restricted</default-behaviour>"
            b"</terminating-identity-presentation-restriction>")
    resp = send(phone, "PUT", f"{D}/~~/terminating-identity-presentation-restriction", SAMSUNG, body,
                **{"Content-Type": EL, "If-Match": etag})
    assert resp.status == "200 OK"
    assert stored(storage) == document.replace(element(document, "terminating-identity-presentation-restriction"), body)
    toggled = send(phone, "PUT", f"{D}/~~/terminating-identity-presentation/@active", SAMSUNG, b'"false"',
                   **{"Content-Type": ATT})
    assert toggled.status == "200 OK"
    assert send(phone, "GET", f"{D}/~~/terminating-identity-presentation", SAMSUNG).data == (
        b'<terminating-identity-presentation active="false"/>')


@pytest.mark.parametrize(("uri", "body"), [
    pytest.param(f"{CDIV}/NoReplyTimer", b"<NoReplyTimer>30</NoReplyTimer>", id="unprefixed"),
    pytest.param(f"{D}/~~/simservs/ss:communication-diversion/ss:NoReplyTimer?{SS}", b"<ss:NoReplyTimer>30</ss:NoReplyTimer>",
                 id="ss-prefixed-undeclared"),
])
def test_mtk_noreplytimer_put(phone: Client, storage: Storage, uri: str, body: bytes) -> None:
    # SS36: MediaTek writes the timer on its own, ss:-prefixed when the server's document uses ss:
    document, etag = first_get(phone)
    resp = send(phone, "PUT", uri, MTK, body, **{"Content-Type": EL, "If-Match": etag})
    assert resp.status == "200 OK"
    assert stored(storage) == document.replace(element(document, "NoReplyTimer"), body)


def test_mtk_default_behaviour_put(phone: Client, storage: Storage) -> None:
    document, etag = first_get(phone)
    body = b"<default-behaviour>presentation-restricted</default-behaviour>"
    resp = send(phone, "PUT", f"{D}/~~/simservs/originating-identity-presentation-restriction/default-behaviour", MTK,
                body, **{"Content-Type": EL, "If-Match": etag})
    assert resp.status == "200 OK"
    assert stored(storage) == in_service(document, "originating-identity-presentation-restriction",
                                         element(document, "default-behaviour"), body)


def test_mtk_whole_service_put_labelled_with_the_document_type(phone: Client, storage: Storage) -> None:
    # SS3a + SS34: the simservs type on an element URI, no namespace declaration, cp: undeclared
    document, etag = first_get(phone)
    body = (b'<communication-diversion active="true"><cp:ruleset><cp:rule id="call-diversion-not-reachable">'
            b"<cp:conditions><not-reachable/></cp:conditions><cp:actions><forward-to><target>tel:+15550003333</target>"
            b"</forward-to></cp:actions></cp:rule></cp:ruleset></communication-diversion>")
    resp = send(phone, "PUT", CDIV, MTK, body, **{"Content-Type": SIMSERVS_MIME, "If-Match": etag})
    assert resp.status == "200 OK"
    assert stored(storage) == document.replace(element(document, "communication-diversion"), body)
    two = send(phone, "PUT", CDIV, MTK, body + body, **{"Content-Type": SIMSERVS_MIME})
    assert (two.status, two.data) == ("415 Unsupported Media Type",
                                      f"Content-Type must be {EL}, got {SIMSERVS_MIME}\n".encode())


def test_mtk_noreplytimer_created_after_a_whole_service_put_is_refused(phone: Client, storage: Storage) -> None:
    # SS34: the whole-service body has no timer; MediaTek then PUTs it, which creates it at
    # the end of communication-diversion (PE10), after cp:ruleset, where the sequence
    # (NoReplyTimer?, cp:ruleset?) does not allow it: 409, the stored document unchanged.
    _, etag = first_get(phone)
    body = b'<communication-diversion active="true"><cp:ruleset/></communication-diversion>'
    put = send(phone, "PUT", CDIV, MTK, body, **{"Content-Type": EL, "If-Match": etag})
    assert put.status == "200 OK"
    before = stored(storage)
    timer = send(phone, "PUT", f"{CDIV}/NoReplyTimer", MTK, b"<NoReplyTimer>20</NoReplyTimer>",
                 **{"Content-Type": EL, "If-Match": put.headers["ETag"]})
    assert (timer.status, timer.headers["Content-Type"]) == ("409 Conflict", "application/xcap-error+xml")
    assert b"NoReplyTimer': This element is not expected." in timer.data
    assert stored(storage) == before
