"""Authorization (RFC 4825 §5.7, requirements §3.9 and §10 item 9)."""

from __future__ import annotations

import pytest

from xcap_wsgi.auth import Identity, authorize
from xcap_wsgi.errors import Forbidden
from xcap_wsgi.uri import XCAPRoot, parse_xcap_path

ALICE = Identity("alice", "example.com")
ADMIN = Identity("root", "example.com", admin=True)
PEER = Identity("", "", trusted_peer=True)
ROOT = XCAPRoot("/xcap-root/")


def allowed(identity: Identity | None, path: str, method: str) -> bool:
    try:
        authorize(identity, parse_xcap_path(path, "", ROOT), method)
    except Forbidden:
        return False
    return True


OWN = "/xcap-root/resource-lists/users/sip:alice@example.com/index"
OTHER = "/xcap-root/resource-lists/users/sip:bob@example.com/index"
GLOBAL = "/xcap-root/resource-lists/global/index"
RLS_INDEX = "/xcap-root/rls-services/global/index"
CAPS = "/xcap-root/xcap-caps/global/index"


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
@pytest.mark.parametrize(
    "path",
    [
        pytest.param(OWN, id="document"),
        pytest.param(OWN + "/~~/resource-lists/list%5B@name=%22a%22%5D", id="element"),
        pytest.param(OWN + "/~~/resource-lists/list/@name", id="attribute"),
        pytest.param("/xcap-root/resource-lists/users/sips:alice@example.com/index", id="sips-scheme"),
        pytest.param("/xcap-root/resource-lists/users/sip:alice%40example.com/index", id="percent-encoded-at"),
        pytest.param("/xcap-root/resource-lists/users/sip:alice@EXAMPLE.Com/index", id="host-case"),
        pytest.param("/xcap-root/resource-lists/users/sip:alice@example.com:5061;transport=tls/index", id="port-and-params"),
        pytest.param("/xcap-root/pres-rules/users/alice@example.com/sub/dir/index", id="bare-xui-subfolder"),
    ],
)
def test_user_reads_and_writes_own_documents(path: str, method: str) -> None:
    assert allowed(ALICE, path, method)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize(
    "path",
    [
        pytest.param(OTHER, id="document"),
        pytest.param(OTHER + "/~~/resource-lists/list", id="element"),
        pytest.param(OTHER + "/~~/resource-lists/list/@name", id="attribute"),
        pytest.param("/xcap-root/resource-lists/users/sip:Alice@example.com/index", id="user-part-is-case-sensitive"),
        pytest.param("/xcap-root/resource-lists/users/sip:alice@example.org/index", id="other-domain"),
    ],
)
def test_user_gets_403_on_another_users_documents(path: str, method: str) -> None:
    assert not allowed(ALICE, path, method)


def test_forbidden_names_the_reason() -> None:
    with pytest.raises(Forbidden) as info:
        authorize(ALICE, parse_xcap_path(OTHER, "", ROOT), "GET")
    assert (info.value.code, info.value.body_bytes()) == (
        403, b"sip:bob@example.com is not yours: users read and write only their own documents\n")


@pytest.mark.parametrize(
    ("identity", "method", "expected"),
    [
        pytest.param(ALICE, "GET", True, id="user-reads"),
        pytest.param(ALICE, "PUT", False, id="user-cannot-write"),
        pytest.param(ALICE, "DELETE", False, id="user-cannot-delete"),
        pytest.param(ADMIN, "PUT", True, id="admin-writes"),
        pytest.param(ADMIN, "DELETE", True, id="admin-deletes"),
        pytest.param(PEER, "GET", True, id="peer-reads"),
        pytest.param(PEER, "PUT", False, id="peer-cannot-write"),
    ],
)
def test_global_documents_readable_by_users_writable_by_administrators(identity: Identity, method: str, expected: bool) -> None:
    assert allowed(identity, GLOBAL, method) is expected


@pytest.mark.parametrize(
    ("identity", "expected"),
    [
        pytest.param(ALICE, False, id="user"),
        pytest.param(ADMIN, False, id="admin"),
        pytest.param(PEER, True, id="trusted-peer"),
        pytest.param(None, True, id="auth-off"),
    ],
)
def test_rls_services_global_index_is_readable_only_by_trusted_peers(identity: Identity | None, expected: bool) -> None:
    assert allowed(identity, RLS_INDEX, "GET") is expected


@pytest.mark.parametrize("identity", [ALICE, PEER, Identity("", ""), None])
def test_xcap_caps_is_public(identity: Identity | None) -> None:
    assert allowed(identity, CAPS, "GET")


def test_trusted_peer_reads_but_does_not_write_users_documents() -> None:
    assert [allowed(PEER, OTHER, m) for m in ("GET", "HEAD", "PUT", "DELETE")] == [True, True, False, False]


def test_administrator_has_no_access_to_other_users_documents() -> None:
    assert not allowed(ADMIN, OWN, "GET")


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_users_tree_is_open_when_authentication_is_off(method: str) -> None:
    assert allowed(None, OTHER, method)


def test_global_tree_is_read_only_when_authentication_is_off() -> None:
    # writing it needs an administrator, and so authentication (A1)
    assert [allowed(None, GLOBAL, m) for m in ("GET", "PUT", "DELETE")] == [True, False, False]


def test_anonymous_cannot_read_users_or_global_documents() -> None:
    assert [allowed(Identity("", ""), p, "GET") for p in (OWN, GLOBAL)] == [False, False]
