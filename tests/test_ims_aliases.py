"""One subscriber, several identities (issue 12; simservs SS6, SS6a, SS6b, SS37, SS52):
``tel:+E164``, ``sip:+E164@home;user=phone``, ``sip:+E164@home`` and the integrator's
aliases address the one document stored under the canonical XUI ``sip:+E164@home``."""

from __future__ import annotations

import base64
import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.test import Client

from tests.conftest import make_storage, mysql_connect
from tests.docs import RESOURCE_LISTS, RL_MIME
from tests.kamailio_peer import KamailioPresence
from tests.processes import kill_all, spawn
from tests.sipclient import Watcher
from tests.test_cli import request as http_request
from tests.test_notify import Recorder
from tests.test_presence_kamailio import rules
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.api import XCAPClient, XCAPRequestError
from xcap_wsgi.auth.ims import aliased
from xcap_wsgi.cli import _settings, build_parser
from xcap_wsgi.config import settings_from_env
from xcap_wsgi.identity import IdentityRule, parse_home_domain
from xcap_wsgi.storage import Storage
from xcap_wsgi.storage.sqlite import SQLiteStorage
from xcap_wsgi.usages.simservs import SIMSERVS_MIME

HOME = "ims.example.com"
NUMBER = "+15551234567"
CANONICAL = f"sip:{NUMBER}@{HOME}"
OTHER_NUMBER = "+15559876543"
IMSI = "sip:001010123456789@ims.mnc001.mcc001.3gppnetwork.org"
PROXY = "10.0.0.5"
FROM_PROXY = {"REMOTE_ADDR": PROXY}


def simservs_path(xui: str) -> str:
    return f"/xcap-root/simservs.ngn.etsi.org/users/{xui}/simservs.xml"


def rl_path(xui: str) -> str:
    return f"/xcap-root/resource-lists/users/{xui}/index"


CANONICAL_DOC = simservs_path(CANONICAL)
SIMSERVS = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<simservs xmlns="http://uri.etsi.org/ngn/params/xml/simservs/xcap"'
    b' xmlns:cp="urn:ietf:params:xml:ns:common-policy">\n'
    b'  <communication-diversion active="true">\n'
    b"    <NoReplyTimer>20</NoReplyTimer>\n"
    b"    <cp:ruleset>\n"
    b'      <cp:rule id="call-diversion-busy">\n'
    b"        <cp:conditions><busy/></cp:conditions>\n"
    b"        <cp:actions><forward-to><target>tel:+15557654321</target></forward-to></cp:actions>\n"
    b"      </cp:rule>\n"
    b"    </cp:ruleset>\n"
    b"  </communication-diversion>\n"
    b"</simservs>\n"
)
#: how phones and proxies spell the subscriber's XUI in the request path (SS6, SS6a)
ALIAS_PATHS = [
    pytest.param(simservs_path(CANONICAL), id="canonical"),
    pytest.param(simservs_path(f"tel:{NUMBER}"), id="tel"),
    pytest.param(simservs_path("tel:+1-555-123-4567"), id="tel-visual-separators"),
    pytest.param(simservs_path(f"sip:{NUMBER}@{HOME};user=phone"), id="sip-user-phone"),
    pytest.param(simservs_path(f"sip:{NUMBER}@IMS.Example.COM;user=phone"), id="sip-user-phone-host-case"),
    pytest.param(simservs_path("sip:+1-555-123-4567@ims.example.com;user=phone"), id="sip-user-phone-separators"),
    pytest.param(simservs_path(f"sips:{NUMBER}@{HOME}"), id="sips"),
    pytest.param(simservs_path("sip%3A%2B15551234567%40ims.example.com"), id="xui-percent-encoded"),
    pytest.param(simservs_path("sip:%252B15551234567@ims.example.com"), id="user-part-escaped-plus"),
    pytest.param(simservs_path("tel%3A%2B15551234567"), id="tel-percent-encoded"),
]


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    """SQLite (the MySQL test opens its own): the rule lies above the storage."""
    s = SQLiteStorage(str(tmp_path / "xcap.db"))
    yield s
    s.close()


def app_for(storage: Storage, **options: object) -> Client:
    return Client(XCAPMiddleware(None, storage=storage, ims_home_domain=HOME, **options))  # type: ignore[arg-type]


@pytest.fixture
def client(storage: Storage) -> Client:
    return app_for(storage)


def asserted(*identities: str, intended: str | None = None) -> dict[str, str]:
    headers = {"X-3GPP-Asserted-Identity": ", ".join(f'"{i}"' for i in identities)}
    if intended is not None:
        headers["X-3GPP-Intended-Identity"] = f'"{intended}"'
    return headers


def put_simservs(client: Client, path: str = CANONICAL_DOC) -> str:
    resp = client.put(path, data=SIMSERVS, content_type=SIMSERVS_MIME)
    assert resp.status == "201 Created", resp.data
    return str(resp.headers["ETag"])


# -- the rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "xui",
    [
        pytest.param(f"tel:{NUMBER}", id="tel"),
        pytest.param("tel:+1-555-123-4567", id="tel-dashes"),
        pytest.param("TEL:+1(555)123.4567;npdi;rn=+1-555-000", id="tel-parentheses-dots-parameters"),
        pytest.param("tel:%2B15551234567", id="tel-escaped-plus"),
        pytest.param(CANONICAL, id="canonical-itself"),
        pytest.param(f"sip:{NUMBER}@{HOME};user=phone", id="sip-user-phone"),
        pytest.param(f"sip:{NUMBER}@IMS.Example.COM.;user=phone", id="host-case-and-root-dot"),
        pytest.param("sip:+1-555-123-4567@ims.example.com;user=phone;transport=tcp", id="user-phone-separators"),
        pytest.param(f"sips:{NUMBER}@{HOME}:5061", id="sips-with-port"),
        pytest.param(f"sip:%2B15551234567@{HOME}", id="escaped-plus-in-user"),
        pytest.param(f"{NUMBER}@{HOME}", id="bare-user-at-host"),
    ],
)
def test_e164_forms_under_the_home_domain_are_one_canonical_xui(xui: str) -> None:
    assert IdentityRule(HOME).canonical_xui(xui) == CANONICAL


@pytest.mark.parametrize(
    "xui",
    [
        pytest.param(f"sip:{NUMBER}@other.example.com;user=phone", id="another-domain"),
        pytest.param("sip:+1-555-123-4567@ims.example.com", id="separators-without-user-phone"),
        pytest.param("tel:5551234;phone-context=+1", id="local-number"),
        pytest.param(f"tel:{NUMBER};ext=22", id="extension"),
        pytest.param(f"sip:{NUMBER};isub=3@{HOME};user=phone", id="sub-address"),
        pytest.param("tel:+1234567890123456", id="sixteen-digits"),
        pytest.param("tel:+", id="plus-alone"),
        pytest.param(f"sip:15551234567@{HOME}", id="national-without-plus"),
        pytest.param("sip:alice@ims.example.com", id="not-a-number"),
        pytest.param(IMSI, id="imsi-without-an-alias"),
    ],
)
def test_other_xuis_are_left_as_they_are(xui: str) -> None:
    assert IdentityRule(HOME).canonical_xui(xui) == xui


def test_the_home_domain_is_canonical_and_checked() -> None:
    assert IdentityRule("IMS.Example.com.").home_domain == HOME
    for bad in ("ims example.com", "sip:ims.example.com", "", "-ims.example.com", "a" * 65):
        with pytest.raises(ValueError) as refused:
            parse_home_domain(bad)
        assert str(refused.value) == f"ims_home_domain must be a domain name such as ims.example.com, got {bad!r}"


def test_aliases_answer_is_put_through_the_e164_rule() -> None:
    seen: list[str] = []

    def aliases(xui: str) -> str | None:
        seen.append(xui)
        return f"tel:{NUMBER}" if xui == IMSI else None

    rule = IdentityRule(HOME, aliases)
    assert [rule.canonical_xui(x) for x in (IMSI, f"tel:{OTHER_NUMBER}")] == [CANONICAL, f"sip:{OTHER_NUMBER}@{HOME}"]
    assert seen == [IMSI, f"tel:{OTHER_NUMBER}"]
    assert IdentityRule(None, aliases).canonical_xui(IMSI) == f"tel:{NUMBER}"  # no home domain: aliases only


def test_asserted_identities_compare_through_the_rule() -> None:
    canonical = aliased(IdentityRule(HOME).canonical_xui)
    assert canonical(f'"tel:{NUMBER}"') == canonical(f"<sip:{NUMBER}@IMS.example.com;user=phone>") == (NUMBER, HOME)


# -- every alias reaches one stored document -------------------------------------------------


@pytest.mark.parametrize("path", ALIAS_PATHS)
def test_every_alias_reads_the_one_stored_document_byte_exact(client: Client, path: str) -> None:
    etag = put_simservs(client, simservs_path(f"tel:{NUMBER}"))
    resp = client.get(path)
    assert (resp.status, resp.headers["Content-Type"], resp.headers["ETag"], resp.data) == (
        "200 OK", SIMSERVS_MIME, etag, SIMSERVS)
    service = client.get(path + "/~~/simservs/communication-diversion/NoReplyTimer")
    assert (service.status, service.data) == ("200 OK", b"<NoReplyTimer>20</NoReplyTimer>")


def test_writes_through_any_alias_change_the_one_document(client: Client, storage: Storage) -> None:
    etag = put_simservs(client, simservs_path(f"sip:{NUMBER}@{HOME};user=phone"))
    timer = client.put(simservs_path(f"tel:{NUMBER}") + "/~~/simservs/communication-diversion/NoReplyTimer",
                       data=b"<NoReplyTimer>30</NoReplyTimer>", content_type="application/xcap-el+xml",
                       headers={"If-Match": etag})
    assert timer.status == "200 OK"
    stored = storage.get(CANONICAL_DOC)
    assert stored is not None and stored.doc == SIMSERVS.replace(b">20<", b">30<")
    assert f'"{stored.etag}"' == timer.headers["ETag"]
    stale = client.put(simservs_path("tel:+1-555-123-4567"), data=SIMSERVS, content_type=SIMSERVS_MIME,
                       headers={"If-Match": etag})
    assert stale.status == "412 Precondition Failed"
    deleted = client.delete(simservs_path(f"sips:{NUMBER}@{HOME}"), headers={"If-Match": timer.headers["ETag"]})
    assert deleted.status == "200 OK"
    assert storage.get(CANONICAL_DOC) is None


def test_the_first_read_through_an_alias_stores_the_default_once(client: Client, storage: Storage) -> None:
    first = client.get(simservs_path(f"tel:{NUMBER}"))
    assert first.status == "200 OK"
    again = client.get(simservs_path(f"sip:{NUMBER}@{HOME};user=phone"))
    assert (again.status, again.headers["ETag"], again.data) == ("200 OK", first.headers["ETag"], first.data)
    stored = storage.get(CANONICAL_DOC)
    assert stored is not None and (f'"{stored.etag}"', stored.doc) == (first.headers["ETag"], first.data)


def test_every_usage_of_the_users_tree_follows_the_rule(client: Client) -> None:
    assert client.put(rl_path(f"tel:{NUMBER}"), data=RESOURCE_LISTS, content_type=RL_MIME).status == "201 Created"
    resp = client.get(rl_path(f"sip:{NUMBER}@{HOME};user=phone"))
    assert (resp.status, resp.data) == ("200 OK", RESOURCE_LISTS)


def test_the_oma_directory_of_an_alias_lists_the_canonical_documents(client: Client) -> None:
    etag = put_simservs(client, simservs_path(f"tel:{NUMBER}"))
    resp = client.get(f"/xcap-root/org.openmobilealliance.xcap-directory/users/tel:{NUMBER}/directory.xml")
    entry = f'<entry uri="http://localhost{CANONICAL_DOC}" etag={etag} size="{len(SIMSERVS)}"/>'
    assert resp.status == "200 OK" and entry.encode() in resp.data


def test_an_answer_names_the_canonical_document(client: Client) -> None:
    assert client.put(rl_path(f"tel:{NUMBER}"), data=RESOURCE_LISTS, content_type=RL_MIME).status == "201 Created"
    resp = client.put(rl_path(f"tel:{NUMBER}") + '/~~/resource-lists/list%5B@name="none"%5D/entry',
                      data=b'<entry xmlns="urn:ietf:params:xml:ns:resource-lists" uri="sip:x@example.com"/>',
                      content_type="application/xcap-el+xml")
    assert resp.status == "409 Conflict"
    assert b"<ancestor>/xcap-root/resource-lists/users/sip:+15551234567@ims.example.com/index/~~/resource-lists" \
           b"</ancestor>" in resp.data


def sqlite_rows(tmp_path: Path) -> list[tuple[str, str, str, int]]:
    """Kamailio's columns as the ``storage`` fixture's table holds them."""
    with contextlib.closing(sqlite3.connect(tmp_path / "xcap.db")) as conn:  # a with-block alone does not close it
        return conn.execute("SELECT username, domain, doc_uri, doc_type FROM xcap ORDER BY doc_uri").fetchall()


def test_without_a_home_domain_each_form_is_a_document_of_its_own(storage: Storage, tmp_path: Path) -> None:
    client = Client(XCAPMiddleware(None, storage=storage))
    forms = (CANONICAL, f"sip:{NUMBER}@{HOME};user=phone", f"tel:{NUMBER}")
    for xui in forms:
        put_simservs(client, simservs_path(xui))  # each a 201
    assert sqlite_rows(tmp_path) == [(NUMBER, HOME, simservs_path(forms[0]), 2048),
                                     (NUMBER, HOME, simservs_path(forms[1]), 2048),
                                     (NUMBER, "", simservs_path(forms[2]), 2048)]


def test_kamailio_columns_hold_the_canonical_owner_on_sqlite(client: Client, tmp_path: Path) -> None:
    put_simservs(client, simservs_path(f"tel:{NUMBER}"))
    assert sqlite_rows(tmp_path) == [(NUMBER, HOME, CANONICAL_DOC, 2048)]


@pytest.mark.mysql
def test_kamailio_columns_hold_the_canonical_owner_on_mysql(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """What Kamailio's presence_xml reads for the IMPU (``doc_type=2``, username, domain)
    and what a TAS reads by ``doc_uri``: the canonical XUI's, whichever alias wrote."""
    storage = make_storage("mysql", tmp_path, request)
    table = request.getfixturevalue("mysql_table")
    try:
        client = app_for(storage)
        put_simservs(client, simservs_path(f"tel:{NUMBER}"))
        pres_rules = b'<ruleset xmlns="urn:ietf:params:xml:ns:common-policy"/>'
        pres_path = f"/xcap-root/pres-rules/users/sip:{NUMBER}@IMS.example.com;user=phone/index"
        assert client.put(pres_path, data=pres_rules, content_type="application/auth-policy+xml").status == "201 Created"
        conn = mysql_connect()
        with conn.cursor() as cur:
            cur.execute(f"SELECT username, domain, doc_uri, doc_type FROM `{table}` ORDER BY doc_type")
            rows = [tuple(r) for r in cur.fetchall()]
            cur.execute(f"SELECT doc FROM `{table}` WHERE doc_type = 2 AND username = %s AND domain = %s", (NUMBER, HOME))
            presence_xml_reads = [bytes(r[0]) for r in cur.fetchall()]
        conn.close()
    finally:
        storage.close()
    assert rows == [(NUMBER, HOME, f"/xcap-root/pres-rules/users/{CANONICAL}/index", 2),
                    (NUMBER, HOME, CANONICAL_DOC, 2048)]
    assert presence_xml_reads == [pres_rules]


def test_change_events_name_the_canonical_document(storage: Storage) -> None:
    recorder = Recorder()
    app = XCAPMiddleware(None, storage=storage, ims_home_domain=HOME, notify=[recorder])
    assert app.notifier is not None
    try:
        put_simservs(Client(app), simservs_path(f"tel:{NUMBER}"))
        [event] = recorder.wait(1)
    finally:
        app.notifier.stop()
    assert (event.xui, event.username, event.domain, event.doc_uri, event.action) == (
        CANONICAL, NUMBER, HOME, CANONICAL_DOC, "created")


@pytest.mark.kamailio
def test_kamailio_presence_applies_rules_written_through_the_tel_form_to_the_impu(
        kamailio_presence: KamailioPresence, tmp_path: Path) -> None:
    """A real Kamailio (presence_xml reading the ``xcap`` table) authorises bob's
    subscription to the IMPU ``sip:+15551234567@example.com`` from pres-rules a client
    wrote as ``tel:+15551234567``: they are stored under the IMPU's username and domain."""
    impu = f"sip:{NUMBER}@example.com"
    kamailio_presence.clear_presence_state(impu)
    conn = kamailio_presence._connect(database=kamailio_presence.database)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM xcap WHERE username = %s AND domain = 'example.com'", (NUMBER,))
    conn.close()
    port, proc = spawn(tmp_path, "--workers", "1", "--db-url", kamailio_presence.db_url, "--ims-home-domain",
                       "example.com", "--notify", "kamailio+" + kamailio_presence.rpc_url)
    try:
        with Watcher("sip:bob@example.com", ("127.0.0.1", kamailio_presence.sip_port)) as bob:
            subscription = bob.subscribe(impu)
            assert subscription.wait_for(timeout=2.0).state == "pending"
            status, _, _ = http_request(port, "PUT", f"/xcap-root/pres-rules/users/tel:{NUMBER}/index",
                                        rules(bob="allow"), {"Content-Type": "application/auth-policy+xml"})
            assert status == 201
            assert subscription.wait_for(lambda n: n.state == "active", timeout=3.0).state == "active"
    finally:
        kill_all(proc)


# -- who may act on it --------------------------------------------------------------------


@pytest.fixture
def ims(storage: Storage) -> Client:
    client = app_for(storage, auth="ims", trusted_proxies=[PROXY])
    owner = Client(XCAPMiddleware(None, storage=storage))
    for number in (NUMBER, OTHER_NUMBER):
        put_simservs(owner, simservs_path(f"sip:{number}@{HOME}"))
    return client


@pytest.mark.parametrize(
    ("identity", "xui"),
    [
        pytest.param(f"tel:{NUMBER}", f"sip:{NUMBER}@{HOME};user=phone", id="asserted-tel-on-sip-xui"),
        pytest.param(f"sip:{NUMBER}@{HOME};user=phone", f"tel:{NUMBER}", id="asserted-sip-on-tel-xui"),
        pytest.param("tel:+1-555-123-4567", CANONICAL, id="asserted-tel-separators-on-canonical"),
    ],
)
def test_an_asserted_identity_acts_on_every_form_of_its_xui(ims: Client, identity: str, xui: str) -> None:
    resp = ims.get(simservs_path(xui), headers=asserted(identity), environ_base=FROM_PROXY)
    assert (resp.status, resp.data) == ("200 OK", SIMSERVS)


def test_intended_identity_selects_among_the_asserted_ones(ims: Client) -> None:
    both = (f"sip:{NUMBER}@{HOME}", f"sip:{OTHER_NUMBER}@{HOME}")
    headers = asserted(*both, intended=f"tel:{OTHER_NUMBER}")
    chosen = ims.get(simservs_path(f"sip:{OTHER_NUMBER}@{HOME};user=phone"), headers=headers, environ_base=FROM_PROXY)
    assert (chosen.status, chosen.data) == ("200 OK", SIMSERVS)
    other = ims.get(simservs_path(f"tel:{NUMBER}"), headers=headers, environ_base=FROM_PROXY)
    assert (other.status, other.data) == ("404 Not Found", f"{CANONICAL} is not the identity this request acts as\n".encode())
    unasserted = ims.get(simservs_path(f"tel:{NUMBER}"), headers=asserted(*both, intended="tel:+15550000000"),
                         environ_base=FROM_PROXY)
    assert (unasserted.status, unasserted.data) == (
        "404 Not Found", b"the intended identity tel:+15550000000 is not an identity of the authenticated user\n")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_another_subscribers_number_is_404_not_403(ims: Client, storage: Storage, method: str) -> None:
    resp = ims.open(simservs_path(f"tel:{OTHER_NUMBER}"), method=method, data=SIMSERVS, content_type=SIMSERVS_MIME,
                    headers=asserted(f"tel:{NUMBER}"), environ_base=FROM_PROXY)
    assert (resp.status, resp.data) == (
        "404 Not Found", f"sip:{OTHER_NUMBER}@{HOME} is not the identity this request acts as\n".encode())
    stored = storage.get(simservs_path(f"sip:{OTHER_NUMBER}@{HOME}"))
    assert stored is not None and stored.doc == SIMSERVS


def test_an_alias_of_the_integrator_reaches_and_acts_on_the_document(storage: Storage) -> None:
    def aliases(xui: str) -> str | None:
        return f"tel:{NUMBER}" if xui == IMSI else None

    put_simservs(Client(XCAPMiddleware(None, storage=storage)), CANONICAL_DOC)
    client = app_for(storage, identity_aliases=aliases, auth="ims", trusted_proxies=[PROXY])
    by_imsi_path = client.get(simservs_path(IMSI), headers=asserted(f"tel:{NUMBER}"), environ_base=FROM_PROXY)
    by_imsi_identity = client.get(simservs_path(f"tel:{NUMBER}"), headers=asserted(IMSI), environ_base=FROM_PROXY)
    assert [(r.status, r.data) for r in (by_imsi_path, by_imsi_identity)] == [("200 OK", SIMSERVS)] * 2


def test_an_alias_that_is_not_a_xui_is_a_500_that_is_logged(storage: Storage, caplog: pytest.LogCaptureFixture) -> None:
    client = app_for(storage, identity_aliases=lambda xui: "alice")
    resp = client.get(simservs_path(IMSI))
    assert resp.status == "500 Internal Server Error"
    assert resp.data == f"internal error (request id {resp.headers['X-Request-ID']})\n".encode()
    assert "identity_aliases answered 'alice' for" in caplog.text


def test_an_account_of_the_subscriber_acts_on_every_form_of_its_xui(storage: Storage) -> None:
    """Basic here; digest yields its identity the same way (user@domain of the account)."""
    passwords = {(NUMBER, HOME): "pw", ("001010123456789", "ims.mnc001.mcc001.3gppnetwork.org"): "imsi-pw"}
    client = app_for(storage, auth="basic", credentials=lambda user, domain: passwords.get((user, domain)),
                     allow_basic_over_http=True,
                     identity_aliases=lambda xui: CANONICAL if xui == IMSI else None)

    def basic(user: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    as_number = basic(f"{NUMBER}@{HOME}", "pw")
    assert client.put(simservs_path(f"tel:{NUMBER}"), data=SIMSERVS, content_type=SIMSERVS_MIME,
                      headers=as_number).status == "201 Created"
    as_imsi = basic("001010123456789@ims.mnc001.mcc001.3gppnetwork.org", "imsi-pw")
    assert client.get(simservs_path(f"sip:{NUMBER}@{HOME};user=phone"), headers=as_imsi).data == SIMSERVS
    refused = client.get(simservs_path(f"tel:{OTHER_NUMBER}"), headers=as_number)
    assert refused.status == "403 Forbidden"  # policy's answer in digest/basic mode (see the README on SS52)
    challenge = client.get(simservs_path(f"tel:{NUMBER}"))
    assert (challenge.status, challenge.headers["WWW-Authenticate"]) == (
        "401 Unauthorized", f'Basic realm="{HOME}", charset="UTF-8"')


def test_the_api_acts_as_any_form_of_the_subscriber(storage: Storage) -> None:
    xcap = XCAPClient(XCAPMiddleware(None, storage=storage, ims_home_domain=HOME))
    created = xcap.xcaps_put(f"tel:{NUMBER}", simservs_path(f"sip:{NUMBER}@{HOME};user=phone"), SIMSERVS)
    assert created.status == 201
    assert xcap.xcaps_get(None, simservs_path(f"tel:{NUMBER}")).body == SIMSERVS  # an administrator
    with pytest.raises(XCAPRequestError) as refused:
        xcap.xcaps_get(f"tel:{OTHER_NUMBER}", simservs_path(f"tel:{NUMBER}"))
    assert refused.value.status == 403


# -- configuration -----------------------------------------------------------------------


def test_the_home_domain_comes_from_the_environment_or_the_flag() -> None:
    assert settings_from_env({"XCAP_IMS_HOME_DOMAIN": "IMS.example.com"}) == {"ims_home_domain": "IMS.example.com"}
    with pytest.raises(ValueError) as refused:
        settings_from_env({"XCAP_IMS_HOME_DOMAIN": "ims example.com"})
    assert str(refused.value) == "XCAP_IMS_HOME_DOMAIN must be a domain name such as ims.example.com, got 'ims example.com'"
    args = build_parser().parse_args(["serve", "--ims-home-domain", HOME])
    assert _settings(args)[0]["ims_home_domain"] == HOME


def test_bad_identity_settings_are_refused_at_construction(storage: Storage) -> None:
    with pytest.raises(ValueError, match="ims_home_domain must be a domain name"):
        XCAPMiddleware(None, storage=storage, ims_home_domain="ims/example")
    with pytest.raises(ValueError, match="identity_aliases must be a callable"):
        XCAPMiddleware(None, storage=storage, identity_aliases={IMSI: CANONICAL})  # type: ignore[arg-type]
