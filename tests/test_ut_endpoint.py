"""The decision endpoint (issue 12, "Acting on the settings"): a trusted SIP server asks
``GET ut_decision_path?served=...&service=...`` and gets the small JSON decision taken
from the simservs document the phone stored over XCAP."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server
from werkzeug.test import Client

from tests.kamailio_peer import unavailable
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.cli import build_parser
from xcap_wsgi.config import create_app, settings_from_env
from xcap_wsgi.notify.siptransport import SIPError, send_request
from xcap_wsgi.storage import DocKey, Storage
from xcap_wsgi.storage.sqlite import SQLiteStorage

DOCS = Path(__file__).parent / "documents" / "simservs-decision"
PATH = "/ut/decision"
SIP_SERVER = {"REMOTE_ADDR": "10.0.0.10"}
ALICE = "sip:+15551234567@ims.example.net"
BOB = "sip:bob@example.com"
SIMSERVS_MIME = "application/vnd.etsi.simservs+xml"
JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}


def document_path(xui: str) -> str:
    return f"/xcap-root/simservs.ngn.etsi.org/users/{xui}/simservs.xml"


def store(client: Client, xui: str, name: str) -> None:
    """The phone's whole-document PUT (validated as every write is)."""
    resp = client.put(document_path(xui), data=(DOCS / f"{name}.xml").read_bytes(), content_type=SIMSERVS_MIME)
    assert resp.status == "201 Created", resp.data


def ask(client: Client, query: str, environ: dict[str, str] = SIP_SERVER) -> tuple[str, bytes, dict[str, str]]:
    resp = client.get(PATH, query_string=query, environ_base=environ)
    headers = dict(resp.headers)
    assert headers.pop("Content-Length") == str(len(resp.data))
    return resp.status, resp.data, headers


def ok(body: bytes) -> tuple[str, bytes, dict[str, str]]:
    return "200 OK", body, JSON_HEADERS


def bad(line: str) -> tuple[str, bytes, dict[str, str]]:
    return "400 Bad Request", line.encode() + b"\n", {"Content-Type": "text/plain; charset=utf-8",
                                                      "Cache-Control": "no-store"}


@pytest.fixture(scope="module")
def sip_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    """One XCAP server (SQLite) holding Alice's forwarding and Bob's barring settings."""
    storage = SQLiteStorage(str(tmp_path_factory.mktemp("ut") / "xcap.db"))
    client = Client(XCAPMiddleware(None, storage=storage, trusted_peers=["10.0.0.0/24"], ut_decision_path=PATH))
    store(client, ALICE, "cdiv-rules")
    store(client, BOB, "barring")
    yield client
    storage.close()


def test_a_busy_call_is_forwarded_as_the_phone_stored_it(storage: Storage) -> None:
    client = Client(XCAPMiddleware(None, storage=storage, trusted_peers=["10.0.0.10"], ut_decision_path=PATH))
    store(client, ALICE, "cdiv-rules")
    assert ask(client, f"served={ALICE}&service=cdiv&condition=busy&caller=tel:+15550009999&media=audio") == ok(
        b'{"action":"forward","notify_caller":true,"rule":"cfb","target":"sip:+15550000002@ims.example.net;user=phone"}')
    assert ask(client, f"served={ALICE}&service=cdiv&condition=no-answer") == ok(
        b'{"action":"forward","no_reply_timer":25,"notify_caller":true,"rule":"cfnr",'
        b'"target":"sip:voicemail@ims.example.net"}')


QUERIES = [
    pytest.param(f"served={ALICE}&service=cdiv&condition=unconditional", b'{"action":"none"}',
                 id="cfu-deactivated"),
    pytest.param(f"served={ALICE}&service=cdiv&condition=busy&media=audio,video",
                 b'{"action":"forward","notify_caller":true,"rule":"cfb",'
                 b'"target":"sip:+15550000002@ims.example.net;user=phone"}', id="busy-audio-video"),
    pytest.param(f"served={ALICE}&service=cdiv&condition=busy&media=video",
                 b'{"action":"forward","notify_caller":false,"rule":"cfb-video","target":"tel:+15550000003"}',
                 id="busy-video-notify-caller-false"),
    pytest.param(f"served={ALICE}&service=cdiv&condition=not-reachable",
                 b'{"action":"forward","notify_caller":true,"rule":"cfnrc","target":"tel:+15550000004"}',
                 id="not-reachable"),
    pytest.param(f"served={ALICE}&service=cdiv&condition=not-registered",
                 b'{"action":"forward","notify_caller":true,"rule":"cfnl","target":"tel:+15550000005"}',
                 id="not-registered"),
    pytest.param(f"served={ALICE}&service=cdiv&condition=unconditional&anonymous=true",
                 b'{"action":"forward","notify_caller":true,"rule":"cf-anonymous",'
                 b'"target":"sip:announcement@ims.example.net"}', id="anonymous"),
    pytest.param(f"served={ALICE}&service=cdiv&condition=unconditional&caller=sip:aunt@family.example.org",
                 b'{"action":"forward","notify_caller":true,"rule":"cf-family","target":"tel:+15550000006"}',
                 id="identity-many"),
    pytest.param(f"served={ALICE}&service=cdiv&condition=unconditional&time=2026-07-04T12:00:00%2B02:00",
                 b'{"action":"forward","notify_caller":true,"rule":"cf-holiday","target":"tel:+15550000007"}',
                 id="validity-time-percent-encoded-offset"),
    pytest.param(f"served={ALICE}&service=cdiv&condition=unconditional&time=2026-08-01T00:00:00Z&sphere=work",
                 b'{"action":"forward","notify_caller":true,"rule":"cf-at-work","target":"tel:+15550000008"}',
                 id="sphere"),
    pytest.param(f"served={ALICE}&service=icb&anonymous=true", b'{"action":"allow"}', id="no-barring-service"),
    pytest.param(f"served={BOB}&service=icb&caller=sip:anonymous@anonymous.invalid",
                 b'{"action":"bar","rule":"call-barring-anonymous-incoming"}', id="acr"),
    pytest.param(f"served={BOB}&service=icb&caller=tel:+15559990000",
                 b'{"action":"bar","rule":"call-barring-incoming-blocklist"}', id="blocklist"),
    pytest.param(f"served={BOB}&service=icb&caller=tel:+15550001111&media=audio", b'{"action":"allow"}',
                 id="icb-allowed"),
    pytest.param(f"served={BOB}&service=icb&caller=tel:+15550001111&media=audio,video",
                 b'{"action":"bar","rule":"call-barring-all-incoming-video"}', id="icb-video"),
    pytest.param(f"served={BOB}&service=icb&caller=sip:friend@example.org&roaming=1&communication-diverted=true",
                 b'{"action":"allow","rule":"friend"}', id="allow-true-wins"),
    pytest.param(f"served={BOB}&service=icb&caller=tel:+15550001111&roaming=true",
                 b'{"action":"bar","rule":"call-barring-incoming-in-roaming"}', id="bic-roam"),
    pytest.param(f"served={BOB}&service=ocb&callee=tel:+441632960000&international=true",
                 b'{"action":"bar","rule":"call-barring-outgoing-international"}', id="boic"),
    pytest.param(f"served={BOB}&service=ocb&callee=tel:+15550001111&international-exHC=true", b'{"action":"allow"}',
                 id="boic-exhc-deactivated"),
    pytest.param("served=sip:carol@example.com&service=cdiv&condition=busy", b'{"action":"none"}',
                 id="no-document"),
    pytest.param("served=sip:carol@example.com&service=ocb&international=true", b'{"action":"none"}',
                 id="no-document-barring"),
    pytest.param("served=sip:%2B15551234567@ims.example.net&service=cdiv&condition=not-reachable",
                 b'{"action":"forward","notify_caller":true,"rule":"cfnrc","target":"tel:+15550000004"}',
                 id="percent-encoded-plus"),
    pytest.param(f"served=%3C{ALICE}%3E&service=cdiv&condition=not-reachable",
                 b'{"action":"forward","notify_caller":true,"rule":"cfnrc","target":"tel:+15550000004"}',
                 id="name-addr-brackets"),
]


@pytest.mark.parametrize(("query", "body"), QUERIES)
def test_decisions(sip_server: Client, query: str, body: bytes) -> None:
    assert ask(sip_server, query) == ok(body)


BAD = [
    pytest.param("", "served is required: the served user's identity, e.g. sip:+15551234567@ims.example.com",
                 id="empty"),
    pytest.param(f"served={ALICE}", "service is required: cdiv, icb or ocb", id="no-service"),
    pytest.param(f"served={ALICE}&service=cfu", "service must be one of cdiv, icb, ocb, got 'cfu'", id="bad-service"),
    pytest.param(f"served={ALICE}&service=cdiv",
                 "condition must be one of unconditional, busy, no-answer, not-reachable, not-registered, got None",
                 id="cdiv-without-condition"),
    pytest.param(f"served={ALICE}&service=cdiv&condition=not-logged-in",
                 "condition must be one of unconditional, busy, no-answer, not-reachable, not-registered,"
                 " got 'not-logged-in'", id="bad-condition"),
    pytest.param(f"served={ALICE}&service=icb&condition=busy", "condition applies to service cdiv only",
                 id="condition-for-barring"),
    pytest.param(f"served={ALICE}&service=ocb&caller=tel:+1", "caller does not apply to service ocb",
                 id="caller-for-ocb"),
    pytest.param(f"served={ALICE}&service=icb&caller=mailto:x@example.com",
                 "caller must be a sip:, sips: or tel: URI, got 'mailto:x@example.com'", id="bad-caller"),
    pytest.param(f"served={ALICE}&service=icb&roaming=maybe", "roaming must be true or false, got 'maybe'",
                 id="bad-boolean"),
    pytest.param(f"served={ALICE}&service=icb&time=tomorrow",
                 "time must be an xs:dateTime such as 2026-07-01T09:00:00Z, got 'tomorrow'", id="bad-time"),
    pytest.param(f"served={ALICE}&service=icb&service=ocb", "service is given twice", id="repeated"),
    pytest.param(f"served={ALICE}&service=cdiv&conditon=busy",
                 "unknown parameter 'conditon'; the parameters are served, service, condition, caller, callee, sphere,"
                 " media, time, anonymous, international, international-exHC, roaming, communication-diverted",
                 id="unknown-parameter"),
    pytest.param("served=sip:ims.example.net&service=icb",
                 "served 'sip:ims.example.net' names no user's document: the user id 'sip:ims.example.net' has no"
                 " user part", id="served-without-user"),
    pytest.param("served=%22sip:a@b&service=icb", "unterminated quoted string in '\"sip:a@b'",
                 id="served-unterminated-quote"),
]


@pytest.mark.parametrize(("query", "line"), BAD)
def test_a_bad_query_is_a_400_with_one_line_saying_why(sip_server: Client, query: str, line: str) -> None:
    assert ask(sip_server, query) == bad(line)


def test_only_trusted_peers_may_ask(sip_server: Client) -> None:
    query = f"served={ALICE}&service=cdiv&condition=busy"
    assert ask(sip_server, query, {"REMOTE_ADDR": "192.0.2.7"}) == (
        "403 Forbidden", b"only trusted peers may ask for call decisions\n",
        {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"})
    forged = {"REMOTE_ADDR": "192.0.2.7", "HTTP_X_FORWARDED_FOR": "10.0.0.10"}
    assert ask(sip_server, query, forged)[0] == "403 Forbidden"


def test_a_trusted_peer_behind_a_trusted_proxy(tmp_path: Path) -> None:
    app = XCAPMiddleware(None, storage=SQLiteStorage(str(tmp_path / "x.db")), trusted_peers=["10.0.0.10"],
                         trusted_proxies=["127.0.0.1"], ut_decision_path=PATH)
    query = f"served={ALICE}&service=icb"
    assert ask(Client(app), query, {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "10.0.0.10"}) == ok(
        b'{"action":"none"}')
    assert ask(Client(app), query, {"REMOTE_ADDR": "127.0.0.1"})[0] == "403 Forbidden"


def test_only_get_and_head(sip_server: Client) -> None:
    query = f"served={ALICE}&service=cdiv&condition=not-reachable"
    resp = sip_server.post(PATH, query_string=query, environ_base=SIP_SERVER)
    assert (resp.status, resp.headers["Allow"], resp.data) == ("405 Method Not Allowed", "GET, HEAD", b"GET or HEAD\n")
    body = b'{"action":"forward","notify_caller":true,"rule":"cfnrc","target":"tel:+15550000004"}'
    head = sip_server.head(PATH, query_string=query, environ_base=SIP_SERVER)
    assert (head.status, head.data, head.headers["Content-Length"]) == ("200 OK", b"", str(len(body)))


def test_asking_about_a_user_without_a_document_stores_nothing(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "x.db"))
    client = Client(XCAPMiddleware(None, storage=storage, trusted_peers=["10.0.0.10"], ut_decision_path=PATH))
    assert ask(client, f"served={ALICE}&service=cdiv&condition=busy") == ok(b'{"action":"none"}')
    assert storage.get(document_path(ALICE)) is None


def test_the_served_user_is_found_under_every_alias_of_the_subscriber(tmp_path: Path) -> None:
    client = Client(XCAPMiddleware(None, storage=SQLiteStorage(str(tmp_path / "x.db")), trusted_peers=["10.0.0.10"],
                                   ut_decision_path=PATH, ims_home_domain="ims.example.net"))
    store(client, "tel:+15551234567", "cdiv-unconditional")
    expected = ok(b'{"action":"forward","notify_caller":true,"rule":"call-diversion-unconditional",'
                  b'"target":"tel:+15557654321"}')
    for served in ("tel:+1-555-123-4567", ALICE, f"{ALICE};user=phone", "sip:+15551234567@IMS.example.net"):
        assert ask(client, f"served={served}&service=cdiv&condition=busy") == expected, served


def test_a_stored_document_that_is_not_simservs_is_a_500(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "x.db"))
    storage.update(DocKey(document_path(ALICE), "+15551234567", "ims.example.net", 2048), lambda current: b"<other/>")
    client = Client(XCAPMiddleware(None, storage=storage, trusted_peers=["10.0.0.10"], ut_decision_path=PATH))
    assert ask(client, f"served={ALICE}&service=icb") == (
        "500 Internal Server Error", b"the stored simservs document cannot be evaluated\n",
        {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"})


def test_an_unreachable_database_is_a_503() -> None:
    app = XCAPMiddleware(None, db_url="mysql://root@127.0.0.1:1/test", trusted_peers=["10.0.0.10"],
                         ut_decision_path=PATH)
    assert ask(Client(app), f"served={ALICE}&service=icb") == (
        "503 Service Unavailable", b"database unavailable\n",
        {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store", "Retry-After": "5"})


def test_the_decision_path_is_off_unless_set(tmp_path: Path) -> None:
    app = XCAPMiddleware(None, storage=SQLiteStorage(str(tmp_path / "x.db")), trusted_peers=["10.0.0.10"])
    assert Client(app).get(PATH, query_string=f"served={ALICE}&service=icb", environ_base=SIP_SERVER).status == \
        "404 Not Found"


def test_the_decision_path_may_lie_under_the_xcap_root_slash(tmp_path: Path) -> None:
    client = Client(XCAPMiddleware(None, storage=SQLiteStorage(str(tmp_path / "x.db")), xcap_root="/",
                                   trusted_peers=["10.0.0.10"], ut_decision_path=PATH))
    resp = client.put(f"/simservs.ngn.etsi.org/users/{ALICE}/simservs.xml",
                      data=(DOCS / "barring-all.xml").read_bytes(), content_type=SIMSERVS_MIME)
    assert resp.status == "201 Created"
    assert ask(client, f"served={ALICE}&service=ocb&callee=tel:+15550001111") == ok(
        b'{"action":"bar","rule":"call-barring-all-outgoing"}')


@pytest.mark.parametrize(("settings", "message"), [
    ({"ut_decision_path": PATH}, "ut_decision_path needs trusted_peers: the SIP servers allowed to ask for decisions"),
    ({"ut_decision_path": "ut", "trusted_peers": ["10.0.0.10"]}, "ut_decision_path must be an absolute URL path"),
    ({"ut_decision_path": "/ut?x", "trusted_peers": ["10.0.0.10"]}, "ut_decision_path must be an absolute URL path"),
])
def test_a_bad_configuration_is_refused_at_construction(tmp_path: Path, settings: dict[str, object],
                                                         message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("?", r"\?")):
        XCAPMiddleware(None, storage=SQLiteStorage(str(tmp_path / "x.db")), **settings)  # type: ignore[arg-type]


def test_the_environment_and_serve_flag_set_the_path() -> None:
    assert settings_from_env({"XCAP_UT_DECISION_PATH": "/ut/decision"}) == {"ut_decision_path": "/ut/decision"}
    args = build_parser().parse_args(["serve", "--ut-decision-path", "/ut/decision"])
    assert args.ut_decision_path == "/ut/decision"


def test_a_bad_path_from_the_environment_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XCAP_DB_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("XCAP_TRUSTED_PEERS", "10.0.0.10")
    monkeypatch.setenv("XCAP_UT_DECISION_PATH", "ut/decision")
    with pytest.raises(ValueError) as refused:
        create_app()
    assert str(refused.value) == "XCAP_UT_DECISION_PATH must be an absolute URL path, got 'ut/decision'"


# --- The README recipe, verified: Kamailio (tests/peers/kamailio-ut.cfg, http_client) asks the
# endpoint and relays calls between sipp user agents playing caller, callee and forward target.

KAMAILIO_CFG = Path(__file__).parent / "peers" / "kamailio-ut.cfg"
KAMAILIO_PACKAGES = "kamailio kamailio-utils-modules kamailio-json-modules sipp"
SERVED = "+15551234567"
SDP = """v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
"""
CALLER = f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller: INVITE the served user, expect STATUS from CONTACT_USER, then ACK and BYE">
  <send retrans="500"><![CDATA[
INVITE sip:{SERVED}@ims.example.net SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <FROM>;tag=[pid]caller[call_number]
To: <sip:{SERVED}@ims.example.net>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

{SDP}]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="181" optional="true"/>
  ANSWER
</scenario>
"""
ANSWERED = """<recv response="200" rrs="true">
    <action>
      <ereg regexp="sip:CONTACT_USER@" search_in="hdr" header="Contact:" check_it="true" assign_to="contact"/>
      <log message="answered by [$contact]"/>
    </action>
  </recv>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <FROM>;tag=[pid]caller[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
[routes]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <FROM>;tag=[pid]caller[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
[routes]
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>"""
REFUSED = """<recv response="STATUS"/>
  <send><![CDATA[
ACK sip:{served}@ims.example.net SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch]
From: <FROM>;tag=[pid]caller[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>""".replace("{served}", SERVED)
UAS_HEAD = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="NAME">
  <recv request="INVITE">
    <action><ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="cseq"/></action>
  </recv>
"""
REPLY = """  <send><![CDATA[
SIP/2.0 STATUS
[last_Via:]
[last_From:]
[last_To:];tag=[pid]callee[call_number]
[last_Call-ID:]
CSeq: [$cseq] INVITE
[last_Record-Route:]
Contact: <sip:CONTACT_USER@[local_ip]:[local_port]>
BODY]]></send>
"""
NO_BODY = "Content-Length: 0\n\n"
WITH_SDP = f"Content-Type: application/sdp\nContent-Length: [len]\n\n{SDP}"
#: a user agent that answers 200 (as CONTACT_USER), then takes the ACK and the BYE
ANSWERS = UAS_HEAD + REPLY.replace("STATUS", "200 OK").replace("BODY", WITH_SDP) + """  <recv request="ACK"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""
#: a user agent that is busy
BUSY = UAS_HEAD + REPLY.replace("STATUS", "486 Busy Here").replace("BODY", NO_BODY) + """  <recv request="ACK"/>
</scenario>
"""
#: a user agent that rings until the proxy gives up (CANCEL), then ends the INVITE with 487
RINGS = UAS_HEAD + REPLY.replace("STATUS", "180 Ringing").replace("BODY", NO_BODY) + """  <recv request="CANCEL"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
""" + REPLY.replace("STATUS", "487 Request Terminated").replace("BODY", NO_BODY) + """  <recv request="ACK"/>
</scenario>
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def simservs_for_the_recipe(forward_to: str) -> bytes:
    """The served user's settings: CFB, CFNR after 5 s and CFNRc to ``forward_to``, ACR."""
    rules = "".join(
        f'<cp:rule id="{rule}"><cp:conditions><{condition}/></cp:conditions><cp:actions><forward-to>'
        f"<target>{forward_to}</target></forward-to>{extra}</cp:actions></cp:rule>"
        for rule, condition, extra in (("cfb", "busy", ""), ("cfnr", "no-answer", "<NoReplyTimer>5</NoReplyTimer>"),
                                       ("cfnrc", "not-reachable", "")))
    return (f'<simservs xmlns="http://uri.etsi.org/ngn/params/xml/simservs/xcap" '
            f'xmlns:cp="urn:ietf:params:xml:ns:common-policy"><communication-diversion active="true">'
            f"<cp:ruleset>{rules}</cp:ruleset></communication-diversion>"
            f'<incoming-communication-barring active="true"><cp:ruleset><cp:rule id="acr"><cp:conditions>'
            f"<anonymous/></cp:conditions><cp:actions><allow>false</allow></cp:actions></cp:rule></cp:ruleset>"
            f"</incoming-communication-barring></simservs>").encode()


class Recipe:
    """xcap-wsgi over HTTP (a thread), Kamailio with the recipe, and sipp user agents."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.sip_port, self.callee_port, self.forward_port = free_udp_port(), free_udp_port(), free_udp_port()
        storage = SQLiteStorage(str(run_dir / "xcap.db"))
        self.app = XCAPMiddleware(None, storage=storage, trusted_peers=["127.0.0.1"], ut_decision_path=PATH)
        self.http = make_server("127.0.0.1", 0, self.app, threaded=True)
        threading.Thread(target=self.http.serve_forever, name="xcap-http", daemon=True).start()
        store_body = simservs_for_the_recipe(f"sip:forwarded@127.0.0.1:{self.forward_port}")
        resp = Client(self.app).put(document_path(f"sip:{SERVED}@ims.example.net"), data=store_body,
                                    content_type=SIMSERVS_MIME)
        assert resp.status == "201 Created", resp.data
        self.kamailio: subprocess.Popen[bytes] | None = None
        self.agents: list[subprocess.Popen[bytes]] = []

    def command(self, *extra: str) -> list[str]:
        substitutions = {"SIP_PORT": str(self.sip_port), "CALLEE": f"sip:127.0.0.1:{self.callee_port}",
                         "UT_URL": f"http://127.0.0.1:{self.http.server_port}{PATH}", "FR_TIMER": "1000"}
        return ["kamailio", "-f", str(KAMAILIO_CFG), "-DD", "-E", "-Y", str(self.run_dir),
                *(f"--substdef=!{name}!{value}!g" for name, value in substitutions.items()), *extra]

    def start(self) -> None:
        for program in ("kamailio", "sipp"):
            if shutil.which(program) is None:
                unavailable(f"{program} is not installed (Debian: apt-get install {KAMAILIO_PACKAGES})")
        check = subprocess.run(self.command("-c"), capture_output=True, text=True, timeout=30, check=False)
        if "could not find module" in check.stderr or "cannot open shared object" in check.stderr:
            unavailable(f"Kamailio's http_client or json module is missing (Debian: apt-get install {KAMAILIO_PACKAGES})")
        assert check.returncode == 0, check.stderr[-3000:]
        with (self.run_dir / "kamailio.log").open("wb") as log:
            self.kamailio = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            try:
                if send_request(f"sip:127.0.0.1:{self.sip_port}", "OPTIONS", f"sip:127.0.0.1:{self.sip_port}",
                                [("From", "<sip:probe@127.0.0.1>")], timeout=0.5).status == 200:
                    return
            except SIPError:
                pass
            assert self.kamailio.poll() is None and time.monotonic() < deadline, self.log()
            time.sleep(0.1)

    def reap(self) -> None:
        """End the user agents a failed call left waiting."""
        for agent in self.agents:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
        self.agents.clear()

    def stop(self) -> None:
        self.reap()
        if self.kamailio is not None and self.kamailio.poll() is None:
            self.kamailio.send_signal(signal.SIGTERM)
            try:
                self.kamailio.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.kamailio.pid, signal.SIGKILL)
                self.kamailio.wait(10)
        self.http.shutdown()
        self.http.server_close()

    def log(self) -> str:
        return (self.run_dir / "kamailio.log").read_text(errors="replace")[-4000:]

    def uas(self, name: str, scenario: str, port: int, contact: str) -> subprocess.Popen[bytes]:
        """A sipp user agent server for one call, on ``port``."""
        path = self.run_dir / f"{name}.xml"
        path.write_text(scenario.replace("NAME", name).replace("CONTACT_USER", contact))
        return self.sipp(name, "-sf", str(path), "-p", str(port))

    def call(self, name: str, caller: str, answer: str) -> subprocess.CompletedProcess[bytes]:
        """One call from ``caller`` to the served user through Kamailio; sipp's exit status says
        whether every expected message came."""
        path = self.run_dir / f"{name}.xml"
        path.write_text(CALLER.replace("ANSWER", answer).replace("FROM", caller))
        process = self.sipp(name, "-sf", str(path), "-p", str(free_udp_port()), f"127.0.0.1:{self.sip_port}")
        process.wait(30)
        return subprocess.CompletedProcess(process.args, process.returncode)

    def sipp(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.run_dir / f"{name}.log").open("wb")
        try:
            agent = subprocess.Popen(["sipp", "-m", "1", "-i", "127.0.0.1", "-mp", str(free_udp_port()),
                                    "-timeout", "20s", "-nostdin", "-trace_err", "-error_file",
                                    str(self.run_dir / f"{name}-errors.log"), "-trace_logs", "-log_file",
                                    str(self.run_dir / f"{name}-logs.log"), *args],
                                    cwd=self.run_dir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        self.agents.append(agent)
        return agent

    def errors(self, *names: str) -> str:
        texts = [f"--- {n}:\n{(self.run_dir / f'{n}-errors.log').read_text(errors='replace')[-2000:]}"
                 for n in names if (self.run_dir / f"{n}-errors.log").exists()]
        return "\n".join([*texts, "--- kamailio:", self.log()])


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recipe]:
    peer = Recipe(tmp_path_factory.mktemp("ut-kamailio"))
    try:
        peer.start()
        yield peer
    finally:
        peer.stop()


@pytest.fixture
def calls(recipe: Recipe) -> Iterator[Recipe]:
    """The recipe, with no user agent left over from a failed call."""
    yield recipe
    recipe.reap()


def test_kamailio_forwards_a_busy_call_to_the_cfb_target(calls: Recipe) -> None:
    recipe = calls
    callee = recipe.uas("busy-callee", BUSY, recipe.callee_port, "callee")
    target = recipe.uas("busy-target", ANSWERS, recipe.forward_port, "forwarded")
    answer = ANSWERED.replace("CONTACT_USER", "forwarded")
    result = recipe.call("busy-caller", "sip:bob@example.com", answer)
    assert (result.returncode, callee.wait(10), target.wait(10)) == (0, 0, 0), recipe.errors(
        "busy-caller", "busy-callee", "busy-target")
    assert "ut: sip:+15551234567@ims.example.net forwards sip:bob@example.com to sip:forwarded@" in recipe.log()


def test_kamailio_forwards_an_unanswered_call_after_the_no_reply_timer(calls: Recipe) -> None:
    recipe = calls
    callee = recipe.uas("cfnr-callee", RINGS, recipe.callee_port, "callee")
    target = recipe.uas("cfnr-target", ANSWERS, recipe.forward_port, "forwarded")
    result = recipe.call("cfnr-caller", "sip:bob@example.com", ANSWERED.replace("CONTACT_USER", "forwarded"))
    assert (result.returncode, callee.wait(10), target.wait(10)) == (0, 0, 0), recipe.errors(
        "cfnr-caller", "cfnr-callee", "cfnr-target")
    assert (f"ut: sip:+15551234567@ims.example.net rings 5 s before forwarding to sip:forwarded@127.0.0.1:"
            f"{recipe.forward_port} (rule cfnr)") in recipe.log()  # the rule's NoReplyTimer, not fr_inv_timer's 60 s


def test_kamailio_forwards_an_unreachable_callee_to_the_cfnrc_target(calls: Recipe) -> None:
    recipe = calls
    target = recipe.uas("cfnrc-target", ANSWERS, recipe.forward_port, "forwarded")
    result = recipe.call("cfnrc-caller", "sip:bob@example.com", ANSWERED.replace("CONTACT_USER", "forwarded"))
    assert (result.returncode, target.wait(10)) == (0, 0), recipe.errors("cfnrc-caller", "cfnrc-target")


def test_kamailio_rejects_an_anonymous_caller_with_433(calls: Recipe) -> None:
    recipe = calls
    result = recipe.call("acr-caller", "sip:anonymous@anonymous.invalid", REFUSED.replace("STATUS", "433"))
    assert result.returncode == 0, recipe.errors("acr-caller")
    assert "ut: sip:+15551234567@ims.example.net bars sip:anonymous@anonymous.invalid (rule acr)" in recipe.log()
