"""The IMS Ut usage ``simservs.ngn.etsi.org`` (issue 12): identity, schema, the first read.

Requirement ids SSn are those of reference/simservs.md. The project's own documents are in
tests/documents/simservs/; the shared ims-ut fixtures are replayed over HTTP when present.
Storage-backed tests run on every backend of the ``storage`` fixture.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from werkzeug.test import Client

from tests.test_notify import FAST, Recorder, clear_outbox
from tests.test_usages import FIXTURES, needs_fixtures
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.cli import main
from xcap_wsgi.config import create_app
from xcap_wsgi.errors import SchemaValidationError
from xcap_wsgi.notify import NotifySettings
from xcap_wsgi.storage import Storage
from xcap_wsgi.storage.sqlite import SQLiteStorage
from xcap_wsgi.usages import ValidationContext, all_usages, get_usage, xcap_caps_document
from xcap_wsgi.usages.simservs import BUILTIN_TEMPLATE, SIMSERVS, FirstRead

AUID = "simservs.ngn.etsi.org"
SS = "http://uri.etsi.org/ngn/params/xml/simservs/xcap"
CP = "urn:ietf:params:xml:ns:common-policy"
MIME = "application/vnd.etsi.simservs+xml"
EL = "application/xcap-el+xml"
XUI = "sip:+15551234567@ims.mnc001.mcc001.3gppnetwork.org"
D = f"/{AUID}/users/{XUI}/simservs.xml"
CDIV = D + "/~~/simservs/communication-diversion"
QCP = f"?xmlns(cp={CP})"
DEFAULT = BUILTIN_TEMPLATE.read_bytes()
DOCUMENTS = Path(__file__).parent / "documents" / "simservs"
OWN_DOCUMENTS = sorted(p.name for p in DOCUMENTS.glob("*.xml"))


def xcap_error(inner: str) -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<xcap-error xmlns="urn:ietf:params:xml:ns:xcap-error">'
            + inner.encode() + b"</xcap-error>\n")


def schema_error(phrase: str) -> bytes:
    return xcap_error(f'<schema-validation-error phrase="{phrase}"/>')


def context() -> ValidationContext:
    return ValidationContext("/", AUID, "users", XUI, D)


def validate(document: str | bytes) -> None:
    SIMSERVS.validate(document.encode() if isinstance(document, str) else document, context())


def doc(services: str) -> str:
    return f'<simservs xmlns="{SS}" xmlns:cp="{CP}">{services}</simservs>'


def rule(rule_id: str, conditions: str = "", actions: str = "") -> str:
    return f'<cp:rule id="{rule_id}"><cp:conditions>{conditions}</cp:conditions><cp:actions>{actions}</cp:actions></cp:rule>'


def cdiv(rules: str, timer: str = "") -> str:
    return f"<communication-diversion>{timer}<cp:ruleset>{rules}</cp:ruleset></communication-diversion>"


def barring(service: str, rules: str) -> str:
    return f"<{service}><cp:ruleset>{rules}</cp:ruleset></{service}>"


FORWARD = "<forward-to><target>tel:+15557654321</target></forward-to>"


@pytest.fixture
def sqlite_client(tmp_path: Path) -> Client:
    """For behaviour that does not depend on the database."""
    return Client(XCAPMiddleware(None, storage=SQLiteStorage(str(tmp_path / "x.db")), xcap_root="/"))


@pytest.fixture
def phone(storage: Storage) -> Client:
    """Phones address the XCAP root ``/`` (SS7)."""
    return Client(XCAPMiddleware(None, storage=storage, xcap_root="/"))


# -- the usage (SS1-SS5) --------------------------------------------------------------------------


def test_usage_is_registered_with_its_identity_and_phone_switches() -> None:
    usage = get_usage(AUID)
    assert usage is SIMSERVS
    assert (usage.mime_type, usage.namespace, usage.doc_type, usage.root) == (MIME, SS, 2048, f"{{{SS}}}simservs")
    assert (usage.element_mime_aliases, usage.rootless_selectors, usage.bare_attribute_values) == ((MIME,), True, True)
    assert usage.schemas[-1] == "simservs/simservs.xsd" and "common-policy.xsd" in usage.schemas


def test_doc_type_collides_with_no_kamailio_opensips_or_other_usage_code() -> None:
    kamailio = {2, 4, 8, 16, 32, 64, 128, 256, 512}  # kamailio-compat.md; OpenSIPS uses 2-32
    others = {u.doc_type for u in all_usages() if u.auid != AUID}
    assert SIMSERVS.doc_type not in kamailio | others


def test_xcap_caps_lists_the_auid_and_the_simservs_namespace() -> None:
    body = xcap_caps_document(all_usages())
    assert f"<auid>{AUID}</auid>".encode() in body
    assert f"<namespace>{SS}</namespace>".encode() in body


# -- the schema (SS10-SS26, SS50) -----------------------------------------------------------------


@pytest.mark.parametrize("name", OWN_DOCUMENTS)
def test_project_documents_are_valid(name: str) -> None:
    validate((DOCUMENTS / name).read_bytes())


def test_builtin_template_has_every_service_and_an_empty_ruleset_where_rules_go() -> None:
    """SS41, SS42: rule PUTs need a parent; bodies relying on in-scope prefixes need them declared."""
    validate(DEFAULT)
    root = etree.fromstring(DEFAULT)
    assert root.nsmap == {None: SS, "ss": SS, "cp": CP, "ocp": "urn:oma:xml:xdm:common-policy"}
    assert [etree.QName(child).localname for child in root] == [
        "originating-identity-presentation", "originating-identity-presentation-restriction",
        "terminating-identity-presentation", "terminating-identity-presentation-restriction",
        "communication-waiting", "communication-diversion", "incoming-communication-barring",
        "outgoing-communication-barring",
    ]
    for service in ("communication-diversion", "incoming-communication-barring", "outgoing-communication-barring"):
        [ruleset] = root.findall(f"{{{SS}}}{service}/{{{CP}}}ruleset")
        assert len(ruleset) == 0
    assert root.findtext(f"{{{SS}}}communication-diversion/{{{SS}}}NoReplyTimer") == "20"


def ss(name: str) -> str:
    return f"{{{SS}}}{name}"


@pytest.mark.parametrize(("document", "phrase"), [
    pytest.param(doc("<extensions/><communication-waiting/>"),
                 f"line 1: Element '{ss('communication-waiting')}': This element is not expected.",
                 id="service-after-extensions-SS10"),
    pytest.param(doc("<communication-waiting/><extensions><busy/></extensions>"),
                 f"line 1: Element '{ss('busy')}': This element is not expected. Expected is ( ##other{{{SS}}}* ).",
                 id="own-namespace-in-extensions-SS10"),
    pytest.param(doc('<communication-waiting active="on"/>'),
                 f"line 1: Element '{ss('communication-waiting')}', attribute 'active': 'on' is not a valid value of"
                 " the atomic type 'xs:boolean'.", id="active-not-boolean-SS11"),
    pytest.param(doc("<communication-waiting>on</communication-waiting>"),
                 f"line 1: Element '{ss('communication-waiting')}': Character content is not allowed, because the"
                 " content type is empty.", id="text-in-a-service-SS16"),
    pytest.param(doc("<communication-diversion><cp:ruleset/><NoReplyTimer>20</NoReplyTimer></communication-diversion>"),
                 f"line 1: Element '{ss('NoReplyTimer')}': This element is not expected.", id="ruleset-before-timer-SS12"),
    pytest.param(doc(cdiv("", "<NoReplyTimer>4</NoReplyTimer>")),
                 f"line 1: Element '{ss('NoReplyTimer')}': [facet 'minInclusive'] The value '4' is less than the"
                 " minimum value allowed ('5').", id="timer-below-5-SS12"),
    pytest.param(doc(cdiv(rule("r", "<no-answer/>", FORWARD + "<NoReplyTimer>200</NoReplyTimer>"))),
                 f"line 1: Element '{ss('NoReplyTimer')}': [facet 'maxInclusive'] The value '200' is greater than the"
                 " maximum value allowed ('180').", id="timer-in-rule-above-180-SS25"),
    pytest.param(doc(cdiv(rule("r", "", "<forward-to><notify-caller>true</notify-caller></forward-to>"))),
                 f"line 1: Element '{ss('notify-caller')}': This element is not expected. Expected is"
                 f" ( {ss('target')} ).", id="forward-to-without-target-SS13"),
    pytest.param(doc(cdiv(rule("r", "", "<forward-to><target>tel:+1</target><notify-served-user>true</notify-served-user>"
                                     "<notify-caller>true</notify-caller></forward-to>"))),
                 f"line 1: Element '{ss('notify-caller')}': This element is not expected. Expected is one of"
                 f" ( {ss('notify-served-user-on-outbound-call')}, {ss('reveal-identity-to-target')} ).",
                 id="forward-to-out-of-order-SS13"),
    pytest.param(doc(cdiv(rule("r", "", "<forward-to><target>tel:+1</target>"
                                     "<reveal-identity-to-caller>yes</reveal-identity-to-caller></forward-to>"))),
                 f"line 1: Element '{ss('reveal-identity-to-caller')}': [facet 'enumeration'] The value 'yes' is not"
                 " an element of the set {'false', 'not-reveal-GRUU', 'true'}.", id="reveal-option-SS13"),
    pytest.param(doc("<originating-identity-presentation-restriction><default-behaviour>presentation-allowed"
                     "</default-behaviour></originating-identity-presentation-restriction>"),
                 f"line 1: Element '{ss('default-behaviour')}': [facet 'enumeration'] The value 'presentation-allowed'"
                 " is not an element of the set {'presentation-restricted', 'presentation-not-restricted'}.",
                 id="oir-default-behaviour-SS15"),
    pytest.param(doc(barring("incoming-communication-barring", rule("r", "<anonymous/>", "<allow>yes</allow>"))),
                 f"line 1: Element '{ss('allow')}': 'yes' is not a valid value of the atomic type 'xs:boolean'.",
                 id="allow-not-boolean-SS18"),
    pytest.param(doc(cdiv(rule("r", "<rule-deactivated>yes</rule-deactivated>", FORWARD))),
                 f"line 1: Element '{ss('rule-deactivated')}': Character content is not allowed, because the content"
                 " type is empty.", id="rule-deactivated-not-empty-SS17"),
    pytest.param(doc(cdiv(rule("call diversion busy", "<busy/>", FORWARD))),
                 f"line 1: Element '{{{CP}}}rule', attribute 'id': 'call diversion busy' is not a valid value of the"
                 " atomic type 'xs:ID'.", id="rule-id-with-space-SS21"),
    pytest.param(doc(barring("incoming-communication-barring", rule("rule0"))
                     + barring("outgoing-communication-barring", rule("rule0"))),
                 "rule id 'rule0' is used twice, in incoming-communication-barring and in outgoing-communication-barring;"
                 " each rule id must be unique in the document", id="rule-id-repeated-across-services-SS21"),
    pytest.param(doc(cdiv(rule("r", "<busy/>") + rule(" r ", "<no-answer/>"))),
                 "rule id 'r' is used twice, in communication-diversion; each rule id must be unique in the document",
                 id="rule-id-repeated-in-one-ruleset-SS21"),
    pytest.param(f'<simservs xmlns="{SS}x"/>',
                 f"root element is <simservs> in namespace {SS}x; this application usage needs {{{SS}}}simservs",
                 id="other-namespace-SS4"),
])
def test_invalid_documents_are_schema_validation_errors(document: str, phrase: str) -> None:
    with pytest.raises(SchemaValidationError) as info:
        validate(document)
    assert info.value.phrase == phrase


def test_unknown_service_phrase_lists_the_services_the_schema_knows() -> None:
    with pytest.raises(SchemaValidationError) as info:
        validate(doc("<andy-is-cool/>"))
    assert info.value.phrase is not None
    for service in ("communication-diversion", "communication-barring-serv-cap", "communication-waiting"):
        assert ss(service) in info.value.phrase


@pytest.mark.parametrize("conditions", [
    pytest.param("<busyy/>", id="typo"),
    pytest.param("<serv-cap-unconditional/>", id="newer-element"),
])
def test_undeclared_simservs_condition_passes_the_lax_wildcard(conditions: str) -> None:
    """SS26: in cp:conditions only elements with a global declaration are checked."""
    validate(doc(cdiv(rule("r", conditions, FORWARD))))


# -- the first read (SS40-SS44, decided: store on first GET) ---------------------------------------


def test_first_get_stores_the_default_and_later_gets_answer_the_same(phone: Client, storage: Storage) -> None:
    first = phone.get(D)
    assert (first.status, first.headers["Content-Type"], first.headers["Cache-Control"], first.data) == (
        "200 OK", MIME, "no-cache", DEFAULT)
    stored = storage.get(D)
    assert stored is not None and stored.doc == DEFAULT and first.headers["ETag"] == f'"{stored.etag}"'
    again = phone.get(D)
    assert (again.status, again.headers["ETag"], again.data) == ("200 OK", first.headers["ETag"], DEFAULT)
    assert phone.get(D, headers={"If-None-Match": first.headers["ETag"]}).status == "304 Not Modified"


def test_first_get_of_a_service_element_stores_the_whole_default(phone: Client, storage: Storage) -> None:
    """MTK and Samsung read one service first (SS30)."""
    resp = phone.get(CDIV)
    assert (resp.status, resp.headers["Content-Type"], resp.data) == ("200 OK", EL, (
        b'<communication-diversion active="true">\n    <NoReplyTimer>20</NoReplyTimer>\n'
        b"    <cp:ruleset/>\n  </communication-diversion>"))
    whole = phone.get(D)
    assert (whole.headers["ETag"], whole.data) == (resp.headers["ETag"], DEFAULT)


def test_first_head_stores_the_default_too(phone: Client) -> None:
    head = phone.head(D)
    assert (head.status, head.headers["Content-Length"], head.data) == ("200 OK", str(len(DEFAULT)), b"")
    assert phone.get(D).headers["ETag"] == head.headers["ETag"]


def test_first_get_then_rule_put_with_if_match_creates_the_rule(phone: Client) -> None:
    """The phone's next element PUT carries the ETag of its first GET (SS8, SS33)."""
    etag = phone.get(CDIV).headers["ETag"]
    body = (f'<cp:rule xmlns:cp="{CP}" xmlns:ss="{SS}" id="call-diversion-busy"><cp:conditions><ss:busy/>'
            "</cp:conditions><cp:actions><ss:forward-to><ss:target>tel:+15557654321</ss:target></ss:forward-to>"
            "</cp:actions></cp:rule>").encode()
    uri = CDIV + "/cp:ruleset/cp:rule%5B@id=%22call-diversion-busy%22%5D" + QCP
    resp = phone.put(uri, data=body, content_type=EL, headers={"If-Match": etag})
    assert resp.status == "201 Created"
    assert phone.get(D).data == DEFAULT.replace(
        b"<NoReplyTimer>20</NoReplyTimer>\n    <cp:ruleset/>",
        b"<NoReplyTimer>20</NoReplyTimer>\n    <cp:ruleset>" + body + b"</cp:ruleset>")


def test_concurrent_first_gets_store_one_document_and_answer_alike(storage: Storage) -> None:
    """Both requests find no row, then race to store: one writes, the other answers what it wrote."""
    app = XCAPMiddleware(None, storage=storage, xcap_root="/")
    read, both_missed = storage.get, threading.Barrier(2)

    def get_then_wait(key: Any) -> Any:
        found = read(key)
        both_missed.wait(timeout=30)
        return found

    storage.get = get_then_wait  # type: ignore[method-assign]
    answers: list[Any] = []
    threads = [threading.Thread(target=lambda: answers.append(Client(app).get(D))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    storage.get = read  # type: ignore[method-assign]
    assert [(a.status, a.data) for a in answers] == [("200 OK", DEFAULT)] * 2
    assert answers[0].headers["ETag"] == answers[1].headers["ETag"]
    stored = storage.get(D)
    assert stored is not None and f'"{stored.etag}"' == answers[0].headers["ETag"]


@pytest.mark.parametrize("path", [
    pytest.param(f"/{AUID}/users/{XUI}/other.xml", id="other-document-name"),
    pytest.param(f"/{AUID}/users/{XUI}/dir/simservs.xml", id="simservs-xml-in-a-folder"),
    pytest.param(f"/{AUID}/global/simservs.xml", id="global-tree"),
    pytest.param(f"/resource-lists/users/{XUI}/simservs.xml", id="other-usage"),
])
def test_no_default_elsewhere(sqlite_client: Client, path: str) -> None:
    resp = sqlite_client.get(path)
    assert (resp.status, resp.data) == ("404 Not Found", b"no such document\n")


def test_put_and_delete_of_a_missing_document_do_not_use_the_default(sqlite_client: Client) -> None:
    """Only a read stores the default: a node PUT into a document nobody read still has no parent."""
    resp = sqlite_client.put(CDIV + "/NoReplyTimer", data=b"<NoReplyTimer>30</NoReplyTimer>", content_type=EL)
    assert resp.status == "409 Conflict" and b"<no-parent" in resp.data
    assert sqlite_client.delete(D).status == "404 Not Found"


def test_after_a_delete_the_next_get_stores_the_default_again(sqlite_client: Client) -> None:
    first = sqlite_client.get(D).headers["ETag"]
    assert sqlite_client.delete(D).status == "200 OK"
    again = sqlite_client.get(D)
    assert (again.status, again.data) == ("200 OK", DEFAULT) and again.headers["ETag"] != first


def upstream(storage: Storage) -> Client:
    return Client(XCAPMiddleware(None, storage=storage, xcap_root="/", auth="upstream",
                                 trusted_proxies=["127.0.0.1"], trusted_peers=["10.1.0.0/16"]))


def test_only_whoever_may_read_the_document_stores_the_default(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "x.db"))
    client = upstream(storage)
    other = client.get(D, environ_base={"REMOTE_ADDR": "127.0.0.1", "REMOTE_USER": "sip:+15550000000@ims.example.org"})
    nobody = client.get(D, environ_base={"REMOTE_ADDR": "192.0.2.1"})
    assert (other.status, nobody.status, storage.get(D)) == ("403 Forbidden", "403 Forbidden", None)
    owner = client.get(D, environ_base={"REMOTE_ADDR": "127.0.0.1", "REMOTE_USER": XUI})
    assert (owner.status, owner.data) == ("200 OK", DEFAULT)


def test_a_trusted_peer_reading_first_stores_the_default(tmp_path: Path) -> None:
    """SS63: the application server reads the document of a user whose phone never did."""
    storage = SQLiteStorage(str(tmp_path / "x.db"))
    resp = upstream(storage).get(D, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    stored = storage.get(D)
    assert (resp.status, resp.data) == ("200 OK", DEFAULT)
    assert stored is not None and resp.headers["ETag"] == f'"{stored.etag}"'


# -- the operator's template ----------------------------------------------------------------------


OPERATOR_TEMPLATE = (
    f"<?xml version='1.0' encoding='UTF-8'?>\n<simservs xmlns=\"{SS}\" xmlns:cp=\"{CP}\">"
    '<communication-diversion active="false"><NoReplyTimer>25</NoReplyTimer><cp:ruleset/></communication-diversion>'
    "</simservs>"
).encode()


def test_operator_template_is_stored_byte_for_byte(tmp_path: Path) -> None:
    template = tmp_path / "template.xml"
    template.write_bytes(OPERATOR_TEMPLATE)
    app = XCAPMiddleware(None, storage=SQLiteStorage(str(tmp_path / "x.db")), xcap_root="/",
                         simservs_template=str(template))
    template.write_bytes(b"changed after start")  # read once, at start
    resp = Client(app).get(D)
    assert (resp.status, resp.data) == ("200 OK", OPERATOR_TEMPLATE)


@pytest.mark.parametrize(("content", "reason"), [
    pytest.param(None, "cannot be read: No such file or directory", id="missing"),
    pytest.param(b"<simservs", "is not a valid simservs document: Couldn't find end of Start Tag simservs line 1,"
                               " line 1, column 10", id="not-well-formed"),
    pytest.param(b"<resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'/>",
                 "is not a valid simservs document: root element is <resource-lists> in namespace"
                 f" urn:ietf:params:xml:ns:resource-lists; this application usage needs {{{SS}}}simservs", id="root"),
    pytest.param(doc(cdiv("", "<NoReplyTimer>200</NoReplyTimer>")).encode(),
                 f"is not a valid simservs document: line 1: Element '{ss('NoReplyTimer')}': [facet 'maxInclusive']"
                 " The value '200' is greater than the maximum value allowed ('180').", id="schema"),
    pytest.param(doc(barring("incoming-communication-barring", rule("rule0"))
                     + barring("outgoing-communication-barring", rule("rule0"))).encode(),
                 "is not a valid simservs document: rule id 'rule0' is used twice, in incoming-communication-barring"
                 " and in outgoing-communication-barring; each rule id must be unique in the document",
                 id="repeated-rule-id"),
])
def test_bad_template_is_refused_at_start(tmp_path: Path, content: bytes | None, reason: str) -> None:
    template = tmp_path / "template.xml"
    if content is not None:
        template.write_bytes(content)
    with pytest.raises(ValueError) as info:
        XCAPMiddleware(None, storage=SQLiteStorage(str(tmp_path / "x.db")), simservs_template=str(template))
    assert str(info.value) == f"simservs_template {str(template)!r} {reason}"


def test_template_larger_than_buf_size_is_refused_at_start(tmp_path: Path) -> None:
    template = tmp_path / "template.xml"
    template.write_bytes(OPERATOR_TEMPLATE)
    with pytest.raises(ValueError) as info:
        FirstRead(str(template), limit=100)
    assert str(info.value) == f"simservs_template {str(template)!r} is {len(OPERATOR_TEMPLATE)} bytes, more than buf_size (100)"


def test_template_from_the_environment_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XCAP_DB_URL", f"sqlite:///{tmp_path}/x.db")
    monkeypatch.setenv("XCAP_SIMSERVS_TEMPLATE", str(tmp_path / "none.xml"))
    with pytest.raises(ValueError) as info:
        create_app()
    assert str(info.value) == f"XCAP_SIMSERVS_TEMPLATE {str(tmp_path / 'none.xml')!r} cannot be read: No such file or directory"
    template = tmp_path / "template.xml"
    template.write_bytes(OPERATOR_TEMPLATE)
    monkeypatch.setenv("XCAP_SIMSERVS_TEMPLATE", str(template))
    assert Client(create_app(xcap_root="/")).get(D).data == OPERATOR_TEMPLATE


def test_serve_with_a_bad_template_exits_2_naming_the_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("XCAP_SIMSERVS_TEMPLATE", raising=False)
    assert main(["serve", "--db-url", f"sqlite:///{tmp_path}/x.db", "--simservs-template", "none.xml"]) == 2
    assert capsys.readouterr().err == ("xcap-wsgi: configuration error: --simservs-template 'none.xml' cannot be read:"
                                       " No such file or directory\n")


# -- notifications (issue 8) ----------------------------------------------------------------------


@pytest.fixture
def notified(storage: Storage) -> Iterator[tuple[Client, Recorder]]:
    recorder = Recorder()
    app = XCAPMiddleware(None, storage=storage, xcap_root="/", notify=NotifySettings(targets=(recorder,), **FAST))
    assert app.notifier is not None
    storage.ensure_schema()
    clear_outbox(app.notifier.outbox)
    yield Client(app), recorder
    app.notifier.stop()


def test_first_read_and_rule_put_are_announced_to_a_callable(notified: tuple[Client, Recorder]) -> None:
    client, recorder = notified
    first = client.get(D).headers["ETag"].strip('"')
    assert client.get(D).headers["ETag"] == f'"{first}"'  # a read of the stored document announces nothing
    uri = CDIV + "/cp:ruleset/cp:rule%5B@id=%22cfu%22%5D" + QCP
    put = client.put(uri, data=f'<cp:rule xmlns:cp="{CP}" id="cfu"/>'.encode(), content_type=EL)
    assert put.status == "201 Created"
    created, rule_added = recorder.wait(2)
    assert (created.auid, created.doc_uri, created.doc_type, created.action, created.previous_etag,
            created.new_etag, created.node_selector, created.xcap_root_url) == (
        AUID, D, 2048, "created", None, first, None, "http://localhost/")
    assert (rule_added.action, rule_added.previous_etag, rule_added.new_etag, rule_added.node_selector,
            rule_added.namespaces) == (
        "created", first, put.headers["ETag"].strip('"'),
        'simservs/communication-diversion/cp:ruleset/cp:rule[@id="cfu"]', {"cp": CP})


# -- writes over HTTP (SS50) ----------------------------------------------------------------------


def test_rule_put_reusing_an_id_of_another_service_is_409_naming_it(phone: Client) -> None:
    phone.get(D)
    body = f'<cp:rule xmlns:cp="{CP}" id="call-barring-all"/>'.encode()
    icb = D + "/~~/simservs/incoming-communication-barring/cp:ruleset/cp:rule%5B@id=%22call-barring-all%22%5D" + QCP
    assert phone.put(icb, data=body, content_type=EL).status == "201 Created"
    ocb = icb.replace("incoming", "outgoing")
    resp = phone.put(ocb, data=body, content_type=EL)
    assert (resp.status, resp.headers["Content-Type"], resp.data) == ("409 Conflict", "application/xcap-error+xml",
        schema_error("rule id 'call-barring-all' is used twice, in incoming-communication-barring and in"
                     " outgoing-communication-barring; each rule id must be unique in the document"))


def test_node_delete_that_breaks_the_schema_is_409_and_keeps_the_document(sqlite_client: Client) -> None:
    """V6: deleting a rule's forward-to target leaves a forward-to the schema refuses."""
    document = doc(cdiv(rule("cfb", "<busy/>", FORWARD))).encode()
    assert sqlite_client.put(D, data=document, content_type=MIME).status == "201 Created"
    resp = sqlite_client.delete(CDIV + "/cp:ruleset/cp:rule/cp:actions/forward-to/target" + QCP)
    assert (resp.status, resp.data) == ("409 Conflict", schema_error(
        f"line 1: Element '{ss('forward-to')}': Missing child element(s). Expected is ( {ss('target')} )."))
    assert sqlite_client.get(D).data == document


def test_timer_put_out_of_range_is_409(sqlite_client: Client) -> None:
    sqlite_client.get(D)
    resp = sqlite_client.put(CDIV + "/NoReplyTimer", data=b"<NoReplyTimer>181</NoReplyTimer>", content_type=EL)
    assert (resp.status, resp.data) == ("409 Conflict", schema_error(
        f"line 13: Element '{ss('NoReplyTimer')}': [facet 'maxInclusive'] The value '181' is greater than the"
        " maximum value allowed ('180')."))
    assert sqlite_client.get(D).data == DEFAULT


# -- the shared ims-ut fixtures ---------------------------------------------------------------------


VALID_FIXTURES = ["ims-ut/documents/simservs-barring-acr-boic-ss-prefix.xml",
                  "ims-ut/documents/simservs-cdiv-four-rules-oir-restricted.xml",
                  "ims-ut/documents/simservs-default-new-subscriber.xml"]
INVALID_FIXTURES = {
    "ims-ut/invalid/simservs-cdiv-noreplytimer-out-of-range.xml":
        f"line 4: Element '{ss('NoReplyTimer')}': [facet 'maxInclusive'] The value '200' is greater than the maximum"
        " value allowed ('180').",
    "ims-ut/invalid/simservs-oir-default-behaviour-bad-enum.xml":
        f"line 5: Element '{ss('default-behaviour')}': [facet 'enumeration'] The value 'presentation-allowed' is not"
        " an element of the set {'presentation-restricted', 'presentation-not-restricted'}.",
}


@needs_fixtures
@pytest.mark.parametrize("name", VALID_FIXTURES)
def test_client_document_is_stored_and_read_back_byte_exact(phone: Client, name: str) -> None:
    body = (FIXTURES / name).read_bytes()
    assert phone.put(D, data=body, content_type=MIME).status == "201 Created"
    resp = phone.get(D)
    assert (resp.status, resp.headers["Content-Type"], resp.data) == ("200 OK", MIME, body)


@needs_fixtures
@pytest.mark.parametrize("name", sorted(INVALID_FIXTURES))
def test_invalid_client_document_is_409_schema_validation_error(sqlite_client: Client, name: str) -> None:
    resp = sqlite_client.put(D, data=(FIXTURES / name).read_bytes(), content_type=MIME)
    assert (resp.status, resp.data) == ("409 Conflict", schema_error(INVALID_FIXTURES[name]))
    assert sqlite_client.head(f"/{AUID}/users/{XUI}/other.xml").status == "404 Not Found"


@needs_fixtures
def test_client_rule_fragment_creates_a_rule_in_the_default(sqlite_client: Client) -> None:
    body = (FIXTURES / "ims-ut/fragments/cdiv-rule-element-no-reply.xml").read_bytes().rstrip(b"\n")
    uri = CDIV + "/cp:ruleset/cp:rule%5B@id=%22call-diversion-no-reply%22%5D" + QCP
    etag = sqlite_client.get(D).headers["ETag"]
    assert sqlite_client.put(uri, data=body, content_type=EL, headers={"If-Match": etag}).status == "201 Created"
    assert sqlite_client.get(uri).data == body


@needs_fixtures
def test_client_mediatek_body_replaces_the_service_in_context(sqlite_client: Client) -> None:
    """SS34: no namespace declarations, ``cp:`` undeclared; the stored root declares both (PE8)."""
    body = (FIXTURES / "ims-ut/odd/cdiv-element-mtk-undeclared-cp-prefix.xml").read_bytes()
    sqlite_client.get(D)
    assert sqlite_client.put(CDIV, data=body, content_type=EL).status == "200 OK"
    assert sqlite_client.get(CDIV).data == body

