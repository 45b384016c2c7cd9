"""org.openxcap.dialog-rules: Blink's dialog authorization rules (issue 11 item 6).

The documents are the project's own (tests/documents/dialog-rules-*.xml), written the
way sipsimple writes them: single-quoted declaration, one line, no final newline,
``cp:``/``dr:``/``ocp:`` prefixes on the root, percent-encoded anyURI values.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from werkzeug.test import Client

from xcap_wsgi.storage import Storage
from xcap_wsgi.usages import all_usages, get_usage

DOCUMENTS = Path(__file__).parent / "documents"
SIPSIMPLE = (DOCUMENTS / "dialog-rules-sipsimple-prefixed.xml").read_bytes()
OLD_NAMESPACE = (DOCUMENTS / "dialog-rules-openxcap-namespace.xml").read_bytes()
URI = "/xcap-root/org.openxcap.dialog-rules/users/sip:carol@example.org/index"
MIME = "application/auth-policy+xml"
EL = "application/xcap-el+xml"
ATT = "application/xcap-att+xml"
CP = "urn:ietf:params:xml:ns:common-policy"
DR = "urn:ag-projects:xml:ns:dialog-rules"
#: a node selector under the document, with the cp: prefix bound
Q = f"?xmlns(cp={CP})"
STRANGERS = URI + "/~~/cp:ruleset/cp:rule%5B@id=%22strangers%22%5D"
#: every doc_type Kamailio's (kamailio-compat.md) and OpenSIPS's presence modules use
SIP_SERVER_CODES = {2, 4, 8, 16, 32, 64, 128, 256, 512}


def xcap_error(inner: str) -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<xcap-error xmlns="urn:ietf:params:xml:ns:xcap-error">'
            + inner.encode() + b"</xcap-error>\n")


def schema_error(phrase: str) -> bytes:
    return xcap_error(f'<schema-validation-error phrase="{phrase}"/>')


@pytest.fixture
def stored(client: Client) -> Client:
    resp = client.put(URI, data=SIPSIMPLE, content_type=MIME)
    assert resp.status == "201 Created", resp.data
    return client


# -- the usage -----------------------------------------------------------------------------------

def test_usage_is_common_policy_with_sipsimple_namespace_and_a_free_doc_type() -> None:
    usage = get_usage("org.openxcap.dialog-rules")
    assert usage is not None
    assert (usage.mime_type, usage.namespace, usage.root, usage.doc_type, usage.generated) == (
        MIME, DR, f"{{{CP}}}ruleset", 1024, False)
    assert usage.doc_type not in SIP_SERVER_CODES
    assert [u.auid for u in all_usages() if u.doc_type == 1024] == ["org.openxcap.dialog-rules"]


def test_xcap_caps_lists_the_auid_and_the_dialog_rules_namespace(client: Client) -> None:
    body = client.get("/xcap-root/xcap-caps/global/index").data
    assert b"\n    <auid>org.openxcap.dialog-rules</auid>\n" in body
    assert f"\n    <namespace>{DR}</namespace>\n".encode() in body


# -- documents -----------------------------------------------------------------------------------

def test_put_then_get_returns_the_sipsimple_bytes_exactly(client: Client, storage: Storage) -> None:
    put = client.put(URI, data=SIPSIMPLE, content_type=MIME)
    assert (put.status, put.data) == ("201 Created", b"")
    got = client.get(URI)
    assert (got.status, got.headers["Content-Type"], got.headers["ETag"], got.data) == (
        "200 OK", MIME, put.headers["ETag"], SIPSIMPLE)
    assert list(storage.documents(1024)) == [(URI, SIPSIMPLE)]


def test_document_of_the_older_openxcap_namespace_is_stored(client: Client) -> None:
    # actions in a namespace no schema declares are checked laxly, as OpenXCAP does
    assert client.put(URI, data=OLD_NAMESPACE, content_type=MIME).status == "201 Created"
    assert client.get(URI).data == OLD_NAMESPACE


# -- element and attribute operations on a rule ---------------------------------------------------

def test_get_rule_element(stored: Client) -> None:
    resp = stored.get(STRANGERS + Q)
    assert (resp.status, resp.headers["Content-Type"], resp.data) == ("200 OK", EL, (
        b'<cp:rule id="strangers"><cp:conditions><ocp:other-identity/></cp:conditions>'
        b"<cp:actions><dr:sub-handling>confirm</dr:sub-handling></cp:actions></cp:rule>"))


def test_unprefixed_step_is_in_the_dialog_rules_namespace(stored: Client) -> None:
    resp = stored.get(STRANGERS + "/cp:actions/sub-handling" + Q)
    assert (resp.status, resp.data) == ("200 OK", b"<dr:sub-handling>confirm</dr:sub-handling>")


def test_put_sub_handling_replaces_only_that_element(stored: Client) -> None:
    body = f'<dr:sub-handling xmlns:dr="{DR}">polite-block</dr:sub-handling>'.encode()
    resp = stored.put(STRANGERS + "/cp:actions/sub-handling" + Q, data=body, content_type=EL)
    assert resp.status == "200 OK", resp.data
    assert stored.get(URI).data == SIPSIMPLE.replace(b"<dr:sub-handling>confirm</dr:sub-handling>", body)


def test_put_rule_appends_it_after_the_last_rule_and_delete_removes_it(stored: Client) -> None:
    rule = (f'<cp:rule xmlns:cp="{CP}" xmlns:dr="{DR}" id="boss"><cp:conditions><cp:identity>'
            '<cp:one id="sip:boss@example.org"/></cp:identity></cp:conditions>'
            "<cp:actions><dr:sub-handling>block</dr:sub-handling></cp:actions></cp:rule>").encode()
    boss = URI + "/~~/cp:ruleset/cp:rule%5B@id=%22boss%22%5D" + Q
    assert stored.put(boss, data=rule, content_type=EL).status == "201 Created"
    assert stored.get(URI).data == SIPSIMPLE.replace(b"</cp:ruleset>", rule + b"</cp:ruleset>")
    assert stored.delete(boss).status == "200 OK"
    assert stored.get(URI).data == SIPSIMPLE


def test_get_and_put_rule_id_attribute(stored: Client) -> None:
    second = URI + "/~~/cp:ruleset/cp:rule%5B2%5D/@id" + Q
    resp = stored.get(second)
    assert (resp.status, resp.headers["Content-Type"], resp.data) == ("200 OK", ATT, b'"strangers"')
    assert stored.put(second, data=b'"unlisted"', content_type=ATT).status == "200 OK"
    assert stored.get(URI).data == SIPSIMPLE.replace(b'id="strangers"', b'id="unlisted"')


@pytest.mark.parametrize(("method", "body", "phrase"), [
    pytest.param("PUT", b'"anonymous"', "line 2: Element '{urn:ietf:params:xml:ns:common-policy}rule', attribute"
                 " 'id': 'anonymous' is not a valid value of the atomic type 'xs:ID'.", id="duplicate-id"),
    pytest.param("DELETE", b"", "line 2: Element '{urn:ietf:params:xml:ns:common-policy}rule': The attribute 'id'"
                 " is required but missing.", id="delete-required-id"),
])
def test_rule_id_change_that_breaks_the_schema_is_409(stored: Client, method: str, body: bytes, phrase: str) -> None:
    resp = stored.open(URI + "/~~/cp:ruleset/cp:rule%5B2%5D/@id" + Q, method=method, data=body,
                       content_type=ATT if body else None)
    assert (resp.status, resp.headers["Content-Type"], resp.data) == (
        "409 Conflict", "application/xcap-error+xml", schema_error(phrase))
    assert stored.get(URI).data == SIPSIMPLE


def test_element_put_of_an_unknown_sub_handling_value_is_409(stored: Client) -> None:
    body = f'<dr:sub-handling xmlns:dr="{DR}">ignore</dr:sub-handling>'.encode()
    resp = stored.put(STRANGERS + "/cp:actions/sub-handling" + Q, data=body, content_type=EL)
    assert (resp.status, resp.data) == ("409 Conflict", schema_error(
        f"line 2: Element '{{{DR}}}sub-handling': [facet 'enumeration'] The value 'ignore' is not an element of"
        " the set {'block', 'confirm', 'polite-block', 'allow'}."))


# -- invalid documents ----------------------------------------------------------------------------

RULESET = f"<cp:ruleset xmlns:cp='{CP}' xmlns:dr='{DR}'>"


@pytest.mark.parametrize(("body", "error"), [
    pytest.param(RULESET + "<cp:rule id='a'>", '<not-well-formed phrase="Premature end of data in tag rule line 1,'
                 ' line 1, column 124"/>', id="not-well-formed"),
    pytest.param("<resource-lists xmlns='urn:ietf:params:xml:ns:resource-lists'/>",
                 '<schema-validation-error phrase="root element is &lt;resource-lists&gt; in namespace'
                 " urn:ietf:params:xml:ns:resource-lists; this application usage needs {urn:ietf:params:xml:ns:"
                 'common-policy}ruleset"/>', id="other-root"),
    pytest.param(RULESET + "<cp:rule id='a'><cp:actions><dr:sub-handling>deny</dr:sub-handling></cp:actions>"
                 "</cp:rule></cp:ruleset>",
                 f"<schema-validation-error phrase=\"line 1: Element '{{{DR}}}sub-handling': [facet 'enumeration']"
                 " The value 'deny' is not an element of the set {'block', 'confirm', 'polite-block', 'allow'}.\"/>",
                 id="sub-handling-value"),
    pytest.param(RULESET + "<cp:rule id='a'/><cp:rule id='a'/></cp:ruleset>",
                 f"<schema-validation-error phrase=\"line 1: Element '{{{CP}}}rule', attribute 'id': 'a' is not a"
                 " valid value of the atomic type 'xs:ID'.\"/>", id="repeated-rule-id"),
    pytest.param(RULESET + "<cp:rule id='a'><cp:actions/><cp:conditions/></cp:rule></cp:ruleset>",
                 f"<schema-validation-error phrase=\"line 1: Element '{{{CP}}}conditions': This element is not"
                 f" expected. Expected is ( {{{CP}}}transformations ).\"/>", id="conditions-after-actions"),
])
def test_invalid_document_is_409_and_nothing_is_stored(client: Client, body: str, error: str) -> None:
    resp = client.put(URI, data=body.encode(), content_type=MIME)
    assert (resp.status, resp.headers["Content-Type"], resp.data) == (
        "409 Conflict", "application/xcap-error+xml", xcap_error(error))
    assert client.get(URI).status == "404 Not Found"
