"""Authorization through the whole middleware, on both backends (RFC 4825 §5.7, A1-A4).

The authentication mechanisms themselves are tested in test_auth.py; here Basic over
plain HTTP (explicitly allowed) keeps the credentials readable, and digest is exercised
once end to end.
"""

from __future__ import annotations

import base64

import pytest
from werkzeug.test import Client

from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI
from tests.test_auth import challenges, digest
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.storage import Storage

PASSWORDS = {("alice", "example.com"): "alice-pw", ("bob", "example.com"): "bob-pw",
             ("root", "example.com"): "root-pw"}
BOB_URI = RL_URI.replace("alice", "bob")
NODE = RL_URI + "/~~/resource-lists/list%5B@name=%22friends%22%5D"
GLOBAL = "/xcap-root/resource-lists/global/index"
RLS_INDEX = "/xcap-root/rls-services/global/index"
PEER = {"REMOTE_ADDR": "10.1.2.3"}
PROXY = "127.0.0.1"


def lookup(user: str, domain: str) -> str | None:
    return PASSWORDS.get((user, domain))


def as_user(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}@example.com:{user}-pw".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def client(storage: Storage) -> Client:
    app = XCAPMiddleware(None, storage=storage, auth="basic", credentials=lookup, allow_basic_over_http=True,
                         trusted_peers=["10.1.0.0/16"], trusted_proxies=[PROXY], admins=["sip:root@example.com"])
    client = Client(app)
    for user, uri in (("alice", RL_URI), ("bob", BOB_URI)):
        assert client.put(uri, data=RESOURCE_LISTS, content_type=RL_MIME, headers=as_user(user)).status == "201 Created"
    return client


def test_owner_reads_and_writes_own_documents(client: Client) -> None:
    assert client.get(RL_URI, headers=as_user("alice")).data == RESOURCE_LISTS
    assert client.get(NODE, headers=as_user("alice")).status == "200 OK"
    assert client.delete(NODE, headers=as_user("alice")).status == "200 OK"


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type"),
    [
        pytest.param("GET", RL_URI, None, None, id="read-document"),
        pytest.param("GET", NODE, None, None, id="read-element"),
        pytest.param("GET", NODE + "/@name", None, None, id="read-attribute"),
        pytest.param("PUT", RL_URI, RESOURCE_LISTS, RL_MIME, id="replace-document"),
        pytest.param("PUT", NODE + "/entry", b'<entry uri="sip:x@example.com"/>', "application/xcap-el+xml",
                     id="put-element"),
        pytest.param("DELETE", NODE, None, None, id="delete-element"),
        pytest.param("DELETE", RL_URI, None, None, id="delete-document"),
    ],
)
def test_another_users_documents_are_403(client: Client, method: str, path: str, body: bytes | None,
                                         content_type: str | None) -> None:
    resp = client.open(path, method=method, data=body, content_type=content_type, headers=as_user("bob"))
    assert (resp.status, resp.data) == (
        "403 Forbidden", b"sip:alice@example.com is not yours: users read and write only their own documents\n")
    assert client.get(RL_URI, headers=as_user("alice")).data == RESOURCE_LISTS


@pytest.mark.parametrize(
    "spelling",
    ["sips:alice@example.com", "sip%3Aalice%40example.com", "sip:alice@EXAMPLE.com", "sip:alice@example.com;transport=tcp"],
)
def test_owner_is_recognised_in_every_spelling_of_the_xui(client: Client, spelling: str) -> None:
    resp = client.get(f"/xcap-root/resource-lists/users/{spelling}/other", headers=as_user("alice"))
    assert resp.status == "404 Not Found"  # allowed to look; the document just does not exist


def test_no_credentials_is_401_with_a_challenge(client: Client) -> None:
    resp = client.get(RL_URI)
    assert resp.status == "401 Unauthorized"
    assert resp.headers["WWW-Authenticate"] == 'Basic realm="example.com", charset="UTF-8"'


def test_trusted_peer_reads_without_credentials_but_cannot_write(client: Client) -> None:
    assert client.get(RL_URI, environ_base=PEER).data == RESOURCE_LISTS
    assert client.get(RLS_INDEX, environ_base=PEER).status == "200 OK"
    resp = client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME, environ_base=PEER)
    assert resp.status == "403 Forbidden"


def test_spoofed_forwarded_for_from_an_untrusted_address_is_ignored(client: Client) -> None:
    resp = client.get(RL_URI, headers={"X-Forwarded-For": "10.1.2.3"}, environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert resp.status == "401 Unauthorized"


def test_forwarded_for_from_a_trusted_proxy_names_the_peer(client: Client) -> None:
    resp = client.get(RL_URI, headers={"X-Forwarded-For": "10.1.2.3"}, environ_base={"REMOTE_ADDR": PROXY})
    assert (resp.status, resp.data) == ("200 OK", RESOURCE_LISTS)


def test_global_tree_readable_by_users_writable_by_administrators(client: Client) -> None:
    denied = client.put(GLOBAL, data=RESOURCE_LISTS, content_type=RL_MIME, headers=as_user("alice"))
    assert (denied.status, denied.data) == (
        "403 Forbidden", b"documents in the global tree can only be changed by an administrator\n")
    assert client.put(GLOBAL, data=RESOURCE_LISTS, content_type=RL_MIME, headers=as_user("root")).status == "201 Created"
    assert client.get(GLOBAL, headers=as_user("alice")).data == RESOURCE_LISTS


def test_rls_global_index_is_for_trusted_peers_only(client: Client) -> None:
    resp = client.get(RLS_INDEX, headers=as_user("alice"))
    assert (resp.status, resp.data) == (
        "403 Forbidden", b"the rls-services global index is readable only by trusted peers\n")


def test_xcap_caps_is_public(client: Client) -> None:
    assert client.get("/xcap-root/xcap-caps/global/index").status == "200 OK"


def test_unknown_auid_is_404_before_authentication(client: Client) -> None:
    assert client.get("/xcap-root/nope/users/sip:alice@example.com/index").status == "404 Not Found"


def test_digest_through_the_middleware(storage: Storage) -> None:
    client = Client(XCAPMiddleware(None, storage=storage, auth="digest", auth_secret="s" * 32, credentials=lookup))
    challenge = challenges(client.get(RL_URI))[0]
    assert challenge["algorithm"] == "MD5"
    header = digest(challenge, "alice", "alice-pw", RL_URI, method="PUT")
    resp = client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME, headers={"Authorization": header})
    assert resp.status == "201 Created"
