"""IMS asserted identity (``auth="ims"``): a trusted authentication proxy names the user
(TS 24.109 §7, simservs SS37, SS38, SS52); identities compared canonically (RFC 3261
§19.1.4, RFC 3966 §3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.test import Client

from tests.docs import RESOURCE_LISTS, RL_MIME
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.auth import canonical_ims_identity, make_authenticator
from xcap_wsgi.auth.ims import identity_list
from xcap_wsgi.storage.sqlite import SQLiteStorage

PROXY = "10.0.0.5"
FROM_PROXY = {"REMOTE_ADDR": PROXY}
IMPU = "sip:+15551234567@ims.example.com"
TEL = "tel:+15551234567"
SIP_DOC = f"/xcap-root/resource-lists/users/{IMPU}/index"
TEL_DOC = f"/xcap-root/resource-lists/users/{TEL}/index"
BOB_DOC = "/xcap-root/resource-lists/users/sip:bob@ims.example.com/index"
GLOBAL = "/xcap-root/resource-lists/global/index"
NOT_NAMED = b"not authenticated: no user named by a trusted proxy\n"


def asserted(value: str, header: str = "X-3GPP-Asserted-Identity", **more: str) -> dict[str, str]:
    return {header: value, **more}


@pytest.fixture
def open_app(tmp_path: Path) -> Iterator[Client]:
    """No authentication: how the test documents get stored."""
    storage = SQLiteStorage(str(tmp_path / "xcap.db"))
    client = Client(XCAPMiddleware(None, storage=storage))
    for path in (SIP_DOC, TEL_DOC, BOB_DOC):
        assert client.put(path, data=RESOURCE_LISTS, content_type=RL_MIME).status == "201 Created"
    yield client
    storage.close()


def ims_client(open_app: Client, **options: object) -> Client:
    app = open_app.application
    assert isinstance(app, XCAPMiddleware)
    return Client(XCAPMiddleware(None, storage=app.storage, auth="ims", trusted_proxies=[PROXY], **options))  # type: ignore[arg-type]


@pytest.fixture
def client(open_app: Client) -> Client:
    return ims_client(open_app)


# -- the canonical form -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("sip:alice@example.com", ("alice", "example.com"), id="sip"),
        pytest.param("sip:alice@EXAMPLE.Com.", ("alice", "example.com"), id="host-case-and-root-dot"),
        pytest.param("sips:alice@example.com:5061;transport=tls", ("alice", "example.com"), id="sips-port-params"),
        pytest.param("sip:+15551234567@IMS.example.com;user=phone", ("+15551234567", "ims.example.com"), id="user-phone"),
        pytest.param("sip:alice:secret@example.com?subject=x", ("alice", "example.com"), id="password-and-headers"),
        pytest.param("sip:%61lice@example.com", ("alice", "example.com"), id="escaped-user"),
        pytest.param("SIP:alice@example.com", ("alice", "example.com"), id="scheme-case"),
        pytest.param("alice@example.com", ("alice", "example.com"), id="bare-user-at-host"),
        pytest.param("sip:alice@[2001:DB8::1]:5060", ("alice", "[2001:db8::1]"), id="ipv6-host"),
        pytest.param('"sip:+15551234567@ims.example.com"', ("+15551234567", "ims.example.com"), id="quoted"),
        pytest.param("<sip:alice@example.com;user=phone>", ("alice", "example.com"), id="angle-brackets"),
        pytest.param('"Alice \\"A\\" Smith" <sip:alice@example.com>', ("alice", "example.com"), id="name-addr-quoted-name"),
        pytest.param("Alice <sip:alice@example.com>", ("alice", "example.com"), id="name-addr-token-name"),
        pytest.param('"<tel:+15551234567>"', ("+15551234567", ""), id="quoted-angle-brackets"),
        pytest.param("tel:+15551234567", ("+15551234567", ""), id="tel"),
        pytest.param("tel:+1-555-123-4567", ("+15551234567", ""), id="tel-dashes"),
        pytest.param("TEL:+1(555)123.4567", ("+15551234567", ""), id="tel-parentheses-dots"),
        pytest.param("tel:+1-555-123-4567;npdi;rn=+1-555-000", ("+15551234567", ""), id="tel-parameters-ignored"),
        pytest.param("tel:7042;phone-context=Example.COM", ("7042;phone-context=example.com", ""), id="tel-local"),
        pytest.param("tel:*61a;phone-context=+1-555", ("*61A;phone-context=+1555", ""), id="tel-local-hex-and-prefix"),
    ],
)
def test_canonical_ims_identity(text: str, expected: tuple[str, str]) -> None:
    assert canonical_ims_identity(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("mailto:alice@example.com", id="other-scheme"),
        pytest.param("sip:example.com", id="sip-without-user"),
        pytest.param("sip:alice@", id="sip-without-host"),
        pytest.param("tel:", id="empty-tel"),
        pytest.param("tel:+1-555-CALL", id="letters-in-global-number"),
        pytest.param("tel:+", id="plus-alone"),
        pytest.param("tel:+١٢٣", id="non-ascii-digits"),
        pytest.param('"sip:alice@example.com', id="unterminated-quote"),
        pytest.param("<sip:alice@example.com", id="unterminated-angle-bracket"),
        pytest.param("", id="empty"),
    ],
)
def test_canonical_ims_identity_refuses_what_is_not_an_identity(text: str) -> None:
    with pytest.raises(ValueError):
        canonical_ims_identity(text)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        pytest.param("sip:Alice@example.com", "sip:alice@example.com", False, id="user-part-is-case-sensitive"),
        pytest.param("tel:+1-555-123-4567", "tel:+15551234567;phone-context=x", True, id="tel-separators-and-params"),
        pytest.param("tel:+15551234567", "sip:+15551234567@ims.example.com;user=phone", False,
                     id="tel-and-sip-forms-differ-without-an-alias-rule"),
        pytest.param("sip:alice@example.com", "sips:alice@EXAMPLE.COM;transport=tcp", True, id="sip-and-sips"),
    ],
)
def test_canonical_comparison(a: str, b: str, same: bool) -> None:
    assert (canonical_ims_identity(a) == canonical_ims_identity(b)) is same


def test_identity_lists_split_at_commas_outside_quotes_and_brackets() -> None:
    value = '"Smith, Alice" <sip:alice@example.com>, "tel:+1555", <sip:a,b@example.com>,, sip:c@example.com'
    assert identity_list(value) == ['"Smith, Alice" <sip:alice@example.com>', '"tel:+1555"', "<sip:a,b@example.com>",
                                    "sip:c@example.com"]


# -- asserted identity over HTTP ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers", "stored"),
    [
        pytest.param(SIP_DOC, asserted(f'"{IMPU}"'), True, id="quoted-sip"),
        pytest.param(SIP_DOC, asserted(f"<{IMPU};user=phone>"), True, id="name-addr-brackets"),
        pytest.param(SIP_DOC, asserted(f'"Alice" <{IMPU}>'), True, id="name-addr-display-name"),
        pytest.param(SIP_DOC, asserted(IMPU, "X-XCAP-Asserted-Identity"), True, id="x-xcap-unquoted"),
        pytest.param(SIP_DOC, asserted(f'"{IMPU}"', **{"X-XCAP-Asserted-Identity": f"<{IMPU}>"}), True,
                     id="both-headers-agree"),
        pytest.param(TEL_DOC, asserted('"tel:+1-555-123-4567"'), True, id="quoted-tel-with-separators"),
        pytest.param("/xcap-root/resource-lists/users/sip%3A%2B15551234567%40ims.example.com/index",
                     asserted(f'"{IMPU}"'), True, id="xui-percent-encoded"),
        # other spellings of the XUI are the same user, but another document URI (U8)
        pytest.param("/xcap-root/resource-lists/users/tel:+1(555)123-4567/index", asserted(f'"{TEL}"'), False,
                     id="xui-with-separators"),
        pytest.param("/xcap-root/resource-lists/users/sip:+15551234567@IMS.Example.com;user=phone/index",
                     asserted(f'"{IMPU}"'), False, id="xui-host-case-and-user-phone"),
    ],
)
def test_asserted_identity_reads_and_writes_its_own_documents(client: Client, path: str, headers: dict[str, str],
                                                              stored: bool) -> None:
    first = client.get(path, headers=headers, environ_base=FROM_PROXY)
    assert (first.status, first.data if stored else b"") == (("200 OK", RESOURCE_LISTS) if stored else ("404 Not Found", b""))
    put = client.put(path, data=RESOURCE_LISTS, content_type=RL_MIME, headers=headers, environ_base=FROM_PROXY)
    assert put.status == ("200 OK" if stored else "201 Created")
    got = client.get(path, headers=headers, environ_base=FROM_PROXY)
    assert (got.status, got.headers["Content-Type"], got.data) == ("200 OK", RL_MIME, RESOURCE_LISTS)


def test_asserted_identity_reads_the_stored_document_exactly(client: Client, open_app: Client) -> None:
    expected = open_app.get(SIP_DOC)
    resp = client.get(SIP_DOC, headers=asserted(f'"{IMPU}"'), environ_base=FROM_PROXY)
    assert (resp.status, resp.headers["ETag"], resp.data) == ("200 OK", expected.headers["ETag"], RESOURCE_LISTS)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_another_users_xui_is_404_not_403(client: Client, open_app: Client, method: str) -> None:
    data = RESOURCE_LISTS if method == "PUT" else None
    resp = client.open(BOB_DOC, method=method, data=data, content_type=RL_MIME, headers=asserted(f'"{IMPU}"'),
                       environ_base=FROM_PROXY)
    assert (resp.status, resp.data) == (
        "404 Not Found", b"sip:bob@ims.example.com is not the identity this request acts as\n")
    assert open_app.get(BOB_DOC).data == RESOURCE_LISTS


def test_the_tel_form_is_not_the_sip_form_of_the_same_number(client: Client) -> None:
    resp = client.get(SIP_DOC, headers=asserted(f'"{TEL}"'), environ_base=FROM_PROXY)
    assert resp.status == "404 Not Found"


def test_a_list_of_asserted_identities_lets_each_act(client: Client) -> None:
    headers = asserted(f'"{IMPU}", "{TEL}"')
    assert [client.get(p, headers=headers, environ_base=FROM_PROXY).status for p in (SIP_DOC, TEL_DOC, BOB_DOC)] == [
        "200 OK", "200 OK", "404 Not Found"]


# -- intended identity (TS 24.109 §7.2) ---------------------------------------------------


def test_intended_identity_selects_which_asserted_identity_acts(client: Client) -> None:
    headers = asserted(f'"{IMPU}", "{TEL}"', **{"X-3GPP-Intended-Identity": '"tel:+1-555-123-4567"'})
    assert client.get(TEL_DOC, headers=headers, environ_base=FROM_PROXY).data == RESOURCE_LISTS
    other = client.get(SIP_DOC, headers=headers, environ_base=FROM_PROXY)
    assert (other.status, other.data) == ("404 Not Found", f"{IMPU} is not the identity this request acts as\n".encode())


def test_intended_identity_equal_to_the_asserted_one_is_accepted(client: Client) -> None:
    headers = asserted(f'"{IMPU}"', **{"X-3GPP-Intended-Identity": f'"{IMPU};user=phone"'})
    assert client.get(SIP_DOC, headers=headers, environ_base=FROM_PROXY).status == "200 OK"


def test_intended_identity_that_is_not_asserted_is_404(client: Client) -> None:
    headers = asserted(f'"{IMPU}"', **{"X-3GPP-Intended-Identity": '"sip:bob@ims.example.com"'})
    resp = client.get(BOB_DOC, headers=headers, environ_base=FROM_PROXY)
    assert (resp.status, resp.data) == (
        "404 Not Found", b"the intended identity sip:bob@ims.example.com is not an identity of the authenticated user\n")


def test_malformed_intended_identity_is_400(client: Client) -> None:
    headers = asserted(f'"{IMPU}"', **{"X-3GPP-Intended-Identity": '"mailto:alice@example.com"'})
    resp = client.get(SIP_DOC, headers=headers, environ_base=FROM_PROXY)
    assert (resp.status, resp.data) == (
        "400 Bad Request",
        b"X-3GPP-Intended-Identity must be a quoted sip:, sips: or tel: URI, got '\"mailto:alice@example.com\"'\n")


# -- who is believed ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "environ"),
    [
        pytest.param(asserted(f'"{IMPU}"'), {"REMOTE_ADDR": "192.0.2.9"}, id="untrusted-peer-x-3gpp"),
        pytest.param(asserted(IMPU, "X-XCAP-Asserted-Identity"), {"REMOTE_ADDR": "192.0.2.9"}, id="untrusted-peer-x-xcap"),
        pytest.param(asserted(f'"{IMPU}"', **{"X-Forwarded-For": PROXY}), {"REMOTE_ADDR": "192.0.2.9"},
                     id="forwarded-for-names-the-proxy"),
        pytest.param({"X-3GPP-Intended-Identity": f'"{IMPU}"'}, FROM_PROXY, id="proxy-without-asserted-identity"),
        pytest.param({}, FROM_PROXY, id="proxy-without-any-header"),
    ],
)
def test_without_an_identity_from_a_trusted_proxy_there_is_no_identity(
        client: Client, open_app: Client, headers: dict[str, str], environ: dict[str, str]) -> None:
    for method in ("GET", "PUT"):
        resp = client.open(SIP_DOC, method=method, data=b"<x/>", content_type=RL_MIME, headers=headers, environ_base=environ)
        assert (resp.status, resp.data) == ("403 Forbidden", NOT_NAMED)
        assert "WWW-Authenticate" not in resp.headers
    assert open_app.get(SIP_DOC).data == RESOURCE_LISTS


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        pytest.param(asserted('"mailto:alice@example.com"'),
                     b"the asserted identity '\"mailto:alice@example.com\"' names no user\n", id="not-an-identity"),
        pytest.param(asserted(f'"{IMPU}"', **{"X-XCAP-Asserted-Identity": "sip:bob@ims.example.com"}),
                     b"the asserted identity headers name different users\n", id="headers-disagree"),
    ],
)
def test_asserted_identities_that_cannot_be_believed_are_403(client: Client, headers: dict[str, str], body: bytes) -> None:
    resp = client.get(SIP_DOC, headers=headers, environ_base=FROM_PROXY)
    assert (resp.status, resp.data) == ("403 Forbidden", body)


def test_upstream_header_names_the_one_header_believed(open_app: Client) -> None:
    client = ims_client(open_app, upstream_header="X-Asserted-User")
    assert client.get(SIP_DOC, headers=asserted(f'"{IMPU}"'), environ_base=FROM_PROXY).status == "403 Forbidden"
    resp = client.get(SIP_DOC, headers=asserted(f'"{IMPU}"', "X-Asserted-User"), environ_base=FROM_PROXY)
    assert resp.status == "200 OK"


def test_trusted_peer_reads_without_an_asserted_identity(open_app: Client) -> None:
    client = ims_client(open_app, trusted_peers=["10.9.0.0/16"])
    assert client.get(SIP_DOC, environ_base={"REMOTE_ADDR": "10.9.1.1"}).data == RESOURCE_LISTS


def test_global_tree_reads_are_open_and_writes_need_an_administrator(open_app: Client) -> None:
    admin = ims_client(open_app, admins=["sip:op@ims.example.com"])
    anyone = admin.get(GLOBAL, environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert anyone.status == "404 Not Found"  # readable by anyone; nothing stored yet
    user_put = admin.put(GLOBAL, data=RESOURCE_LISTS, content_type=RL_MIME, headers=asserted(f'"{IMPU}"'),
                         environ_base=FROM_PROXY)
    assert (user_put.status, user_put.data) == (
        "403 Forbidden", b"documents in the global tree can only be changed by an administrator\n")
    op_put = admin.put(GLOBAL, data=RESOURCE_LISTS, content_type=RL_MIME, headers=asserted('"sip:op@IMS.example.com"'),
                       environ_base=FROM_PROXY)
    assert op_put.status == "201 Created"
    locked = ims_client(open_app, global_auth=True)
    assert locked.get(GLOBAL, environ_base={"REMOTE_ADDR": "192.0.2.9"}).status == "403 Forbidden"
    assert locked.get(GLOBAL, headers=asserted(f'"{TEL}"'), environ_base=FROM_PROXY).data == RESOURCE_LISTS


def test_ims_mode_needs_trusted_proxies() -> None:
    with pytest.raises(ValueError, match="ims authentication needs trusted_proxies"):
        make_authenticator("ims")
