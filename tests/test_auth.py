"""Authentication: digest (RFC 7616), basic (RFC 7617), upstream, trusted peers and proxies.

``Protected`` (a stub app), ``digest`` and ``challenges`` are shared with test_auth_store.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from werkzeug.http import parse_dict_header
from werkzeug.test import Client, TestResponse

from xcap_wsgi.auth import Authenticator, authorize, client_address, make_authenticator
from xcap_wsgi.auth.digest import DigestAuthenticator
from xcap_wsgi.auth.nonces import SQLNonceCounter
from xcap_wsgi.errors import XCAPError
from xcap_wsgi.uri import XCAPRoot, parse_xcap_path, raw_request_path

ROOT = XCAPRoot("/xcap-root/")
CAPS = "/xcap-root/xcap-caps/global/index"
ALICE_DOC = "/xcap-root/resource-lists/users/sip:alice@example.com/index"
BOB_DOC = "/xcap-root/resource-lists/users/sip:bob@example.com/index"
PASSWORDS = {("alice", "example.com"): "alice-pw", ("bob", "example.com"): "bob-pw"}
SECRET = "0123456789abcdef-test-secret"
H = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def lookup(user: str, domain: str) -> str | None:
    return PASSWORDS.get((user, domain))


class Protected:
    """A stub XCAP app: authenticate, authorize, answer ``200 user@domain``."""

    def __init__(self, authenticator: Authenticator | None) -> None:
        self.authenticator = authenticator

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        try:
            uri = parse_xcap_path(raw_request_path(environ), environ.get("QUERY_STRING", ""), ROOT)
            identity = self.authenticator.authenticate(environ, uri) if self.authenticator else None
            authorize(identity, uri, environ["REQUEST_METHOD"])
        except XCAPError as exc:
            return exc(environ, start_response)
        body = b"auth off" if identity is None else f"{identity.user}@{identity.domain}".encode()
        flags = "" if identity is None else f"peer={identity.trusted_peer} admin={identity.admin}"
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Flags", flags)])
        return [body]


def challenges(response: TestResponse) -> list[dict[str, str | None]]:
    """The Digest challenges of a 401, in order."""
    return [parse_dict_header(value.split(" ", 1)[1]) for value in response.headers.getlist("WWW-Authenticate")]


def digest(challenge: dict[str, str | None], username: str, password: str, uri: str, *, method: str = "GET",
           nc: int = 1, realm: str | None = None, cnonce: str = "0a4f113b", nonce: str | None = None) -> str:
    """An ``Authorization: Digest`` value answering ``challenge`` (RFC 7616 §3.4)."""
    algorithm = str(challenge["algorithm"])
    realm = realm or str(challenge["realm"])
    nonce = nonce or str(challenge["nonce"])

    def h(text: str) -> str:
        return H[algorithm](text.encode()).hexdigest()

    ha1, ha2 = h(f"{username}:{realm}:{password}"), h(f"{method}:{uri}")
    response = h(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm={algorithm},'
            f' response="{response}", qop=auth, nc={nc:08x}, cnonce="{cnonce}", opaque="{challenge["opaque"]}"')


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def digest_app(**kwargs: Any) -> DigestAuthenticator:
    return DigestAuthenticator(lookup, SECRET, **kwargs)


def first_challenge(client: Client, path: str = ALICE_DOC, algorithm: str = "SHA-256") -> dict[str, str | None]:
    response = client.get(path)
    assert response.status_code == 401
    return next(c for c in challenges(response) if c["algorithm"] == algorithm)


# -- digest ------------------------------------------------------------------------------


def test_digest_without_credentials_challenges_md5_then_sha256() -> None:
    # MD5 first: urllib before Python 3.14 answers only the first challenge and knows only MD5
    response = Client(Protected(make_authenticator("digest", secret=SECRET, credentials=lookup))).get(ALICE_DOC)
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.data == b"authentication required\n"
    values = response.headers.getlist("WWW-Authenticate")
    pattern = r'Digest realm="example\.com", qop="auth", algorithm={}, nonce="[0-9a-f.]+", opaque="[0-9a-f]{{32}}"$'
    assert [bool(re.match(pattern.format(a), v)) for a, v in zip(["MD5", "SHA-256"], values, strict=True)] == [True, True]
    assert challenges(response)[0]["nonce"] == challenges(response)[1]["nonce"]


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
@pytest.mark.parametrize("username", ["alice", "alice@example.com"])
def test_digest_accepts_correct_response(algorithm: str, username: str) -> None:
    client = Client(Protected(digest_app()))
    challenge = first_challenge(client, algorithm=algorithm)
    response = client.get(ALICE_DOC, headers={"Authorization": digest(challenge, username, "alice-pw", ALICE_DOC)})
    assert (response.status_code, response.data) == (200, b"alice@example.com")


def test_digest_realm_is_the_domain_of_the_xui_being_accessed() -> None:
    response = Client(Protected(digest_app())).get("/xcap-root/resource-lists/users/sip:carol@Other.ORG/index")
    assert {c["realm"] for c in challenges(response)} == {"other.org"}


@pytest.mark.parametrize(
    ("username", "password", "realm"),
    [
        pytest.param("alice", "wrong", None, id="wrong-password"),
        pytest.param("mallory", "alice-pw", None, id="unknown-user"),
        pytest.param("alice", "alice-pw", "evil.com", id="wrong-realm"),
        pytest.param("alice@evil.com", "alice-pw", None, id="username-in-other-domain"),
    ],
)
def test_digest_refuses_bad_credentials_with_a_fresh_challenge(username: str, password: str, realm: str | None) -> None:
    client = Client(Protected(digest_app()))
    challenge = first_challenge(client)
    response = client.get(ALICE_DOC, headers={"Authorization": digest(challenge, username, password, ALICE_DOC, realm=realm)})
    assert response.status_code == 401
    assert len(response.headers.getlist("WWW-Authenticate")) == 2
    assert "stale" not in response.headers["WWW-Authenticate"]


def test_digest_refuses_tampered_nonce() -> None:
    client = Client(Protected(digest_app()))
    challenge = first_challenge(client)
    nonce = str(challenge["nonce"])
    stamp, rand, mac = nonce.split(".")
    forged = f"{int(stamp, 16) + 3600:x}.{rand}.{mac}"
    response = client.get(ALICE_DOC, headers={"Authorization": digest(challenge, "alice", "alice-pw", ALICE_DOC, nonce=forged)})
    assert response.status_code == 401
    assert response.data == b"unknown nonce\n"


def test_digest_refuses_nonce_signed_with_another_secret() -> None:
    other = Client(Protected(DigestAuthenticator(lookup, "another-secret-of-16+chars")))
    challenge = first_challenge(other)
    response = Client(Protected(digest_app())).get(
        ALICE_DOC, headers={"Authorization": digest(challenge, "alice", "alice-pw", ALICE_DOC)})
    assert (response.status_code, response.data) == (401, b"unknown nonce\n")


def test_digest_expired_nonce_gets_stale_challenge() -> None:
    clock = Clock()
    client = Client(Protected(digest_app(nonce_lifetime=300, clock=clock)))
    challenge = first_challenge(client)
    clock.now += 301
    response = client.get(ALICE_DOC, headers={"Authorization": digest(challenge, "alice", "alice-pw", ALICE_DOC)})
    assert response.status_code == 401
    assert all(v.endswith(", stale=true") for v in response.headers.getlist("WWW-Authenticate"))
    assert challenges(response)[0]["nonce"] != challenge["nonce"]


def test_digest_expired_nonce_with_wrong_password_is_not_stale() -> None:
    clock = Clock()
    client = Client(Protected(digest_app(clock=clock)))
    challenge = first_challenge(client)
    clock.now += 301
    response = client.get(ALICE_DOC, headers={"Authorization": digest(challenge, "alice", "wrong", ALICE_DOC)})
    assert response.status_code == 401
    assert "stale" not in response.headers["WWW-Authenticate"]


def test_digest_refuses_replayed_nonce_count() -> None:
    client = Client(Protected(digest_app()))
    authorization = digest(first_challenge(client), "alice", "alice-pw", ALICE_DOC, nc=1)
    assert client.get(ALICE_DOC, headers={"Authorization": authorization}).status_code == 200
    replay = client.get(ALICE_DOC, headers={"Authorization": authorization})
    assert (replay.status_code, replay.data) == (401, b"nonce-count already used\n")


def test_digest_accepts_increasing_nonce_counts_and_refuses_a_lower_one() -> None:
    client = Client(Protected(digest_app()))
    challenge = first_challenge(client)

    def status(nc: int) -> int:
        authorization = digest(challenge, "alice", "alice-pw", ALICE_DOC, nc=nc)
        return client.get(ALICE_DOC, headers={"Authorization": authorization}).status_code

    statuses = [status(nc) for nc in (1, 2, 5, 3)]
    assert statuses == [200, 200, 200, 401]


@pytest.mark.parametrize(
    "signed_uri",
    [
        pytest.param(BOB_DOC, id="other-document"),
        pytest.param(ALICE_DOC + "?x=1", id="added-query"),
        pytest.param("/xcap-root/resource-lists/users/sip:alice@example.com/", id="other-path"),
    ],
)
def test_digest_refuses_mismatched_uri_with_400(signed_uri: str) -> None:
    client = Client(Protected(digest_app()))
    response = client.get(ALICE_DOC, headers={"Authorization": digest(first_challenge(client), "alice", "alice-pw", signed_uri)})
    expected = "the digest uri does not match the request URI (RFC 7616 §3.4.6)\n".encode()
    assert (response.status_code, response.data) == (400, expected)


def test_digest_uri_matches_the_raw_request_uri_with_query_and_encoding() -> None:
    client = Client(Protected(digest_app()))
    target = ("/xcap-root/resource-lists/users/sip:alice%40example.com/index/~~/resource-lists/list%5B@name=%22a%22%5D"
              "?xmlns(x=urn:x)")
    challenge = first_challenge(client, target)
    response = client.get(target, headers={"Authorization": digest(challenge, "alice", "alice-pw", target)},
                          environ_overrides={"RAW_URI": target})
    assert (response.status_code, response.data) == (200, b"alice@example.com")


def test_digest_missing_fields_are_a_bad_request() -> None:
    response = Client(Protected(digest_app())).get(ALICE_DOC, headers={"Authorization": 'Digest username="alice"'})
    assert response.status_code == 400
    assert response.data == b"the Digest credentials lack realm, nonce, uri, response, qop, nc, cnonce\n"


def test_digest_nonce_minted_by_one_worker_is_accepted_by_another(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'auth.db'}"
    worker1 = Client(Protected(digest_app(counter=SQLNonceCounter(url))))
    worker2 = Client(Protected(digest_app(counter=SQLNonceCounter(url))))
    challenge = first_challenge(worker1)
    ok = worker2.get(ALICE_DOC, headers={"Authorization": digest(challenge, "alice", "alice-pw", ALICE_DOC, nc=1)})
    replay = worker1.get(ALICE_DOC, headers={"Authorization": digest(challenge, "alice", "alice-pw", ALICE_DOC, nc=1)})
    nxt = worker1.get(ALICE_DOC, headers={"Authorization": digest(challenge, "alice", "alice-pw", ALICE_DOC, nc=2)})
    assert [ok.status_code, replay.status_code, nxt.status_code] == [200, 401, 200]


# -- a real client ----------------------------------------------------------------------


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served_digest() -> Iterator[str]:
    # the default order (MD5 first) is what urllib before Python 3.14 can answer
    server = make_server("127.0.0.1", 0, Protected(digest_app()), handler_class=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


# urllib's digest handler never closes the 401 it answers; collect it here, not in a later test
urllib_leaks_a_socket = pytest.mark.filterwarnings("ignore::ResourceWarning")


@urllib_leaks_a_socket
def test_urllib_digest_handler_completes_the_handshake(served_digest: str) -> None:
    passwords = urllib.request.HTTPPasswordMgr()
    passwords.add_password("example.com", served_digest, "alice", "alice-pw")
    opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(passwords))
    with opener.open(served_digest + "/xcap-root/resource-lists/users/sip:alice%40example.com/index", timeout=5) as response:
        assert (response.status, response.read()) == (200, b"alice@example.com")
    gc.collect()


@urllib_leaks_a_socket
def test_urllib_with_a_wrong_password_gets_401(served_digest: str) -> None:
    passwords = urllib.request.HTTPPasswordMgr()
    passwords.add_password("example.com", served_digest, "alice", "nope")
    opener = urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(passwords))
    with pytest.raises(urllib.error.HTTPError) as info:
        opener.open(served_digest + ALICE_DOC, timeout=5)
    assert info.value.code == 401
    info.value.close()
    gc.collect()


# -- basic -------------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def basic_client(**kwargs: Any) -> Client:
    return Client(Protected(make_authenticator("basic", credentials=lookup, **kwargs)))


def test_basic_over_plain_http_is_refused() -> None:
    response = basic_client().get(ALICE_DOC, headers=basic("alice", "alice-pw"))
    expected = "Basic authentication is only accepted over HTTPS (RFC 4825 §14)\n".encode()
    assert (response.status_code, response.data) == (403, expected)
    assert "WWW-Authenticate" not in response.headers


def test_basic_over_https_via_trusted_proxy_is_accepted() -> None:
    response = basic_client(trusted_proxies=["10.0.0.1"]).get(
        ALICE_DOC, headers={**basic("alice", "alice-pw"), "X-Forwarded-Proto": "https"}, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert (response.status_code, response.data) == (200, b"alice@example.com")


def test_basic_forwarded_proto_from_an_untrusted_address_is_ignored() -> None:
    response = basic_client(trusted_proxies=["10.0.0.1"]).get(
        ALICE_DOC, headers={**basic("alice", "alice-pw"), "X-Forwarded-Proto": "https"}, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert response.status_code == 403


def test_basic_over_plain_http_when_explicitly_allowed_is_accepted() -> None:
    response = basic_client(allow_basic_over_http=True).get(ALICE_DOC, headers=basic("alice@example.com", "alice-pw"))
    assert (response.status_code, response.data) == (200, b"alice@example.com")


def test_basic_wrong_password_gets_a_basic_challenge() -> None:
    response = basic_client(allow_basic_over_http=True).get(ALICE_DOC, headers=basic("alice", "bob-pw"))
    assert response.status_code == 401
    assert response.headers.getlist("WWW-Authenticate") == ['Basic realm="example.com", charset="UTF-8"']


def test_basic_over_tls_to_this_server_is_accepted() -> None:
    response = basic_client().get(ALICE_DOC, headers=basic("alice", "alice-pw"), base_url="https://localhost/")
    assert response.status_code == 200


# -- upstream ----------------------------------------------------------------------------


def upstream_client(**kwargs: Any) -> Client:
    return Client(Protected(make_authenticator("upstream", trusted_proxies=["127.0.0.1"], **kwargs)))


def test_upstream_remote_user_from_trusted_proxy_is_accepted() -> None:
    response = upstream_client().get(ALICE_DOC, environ_base={"REMOTE_ADDR": "127.0.0.1", "REMOTE_USER": "sip:alice@Example.com"})
    assert (response.status_code, response.data) == (200, b"alice@example.com")


def test_upstream_header_from_trusted_proxy_is_accepted() -> None:
    response = upstream_client(upstream_header="X-Authenticated-User").get(
        ALICE_DOC, headers={"X-Authenticated-User": "alice@example.com"}, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert (response.status_code, response.data) == (200, b"alice@example.com")


def test_upstream_identity_from_an_untrusted_address_is_ignored() -> None:
    response = upstream_client(upstream_header="X-Authenticated-User").get(
        ALICE_DOC, headers={"X-Authenticated-User": "alice@example.com"}, environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert (response.status_code, response.data) == (403, b"not authenticated: no user named by a trusted proxy\n")


# -- addresses, trusted peers, public documents, administrators --------------------------


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        pytest.param("192.0.2.9", "10.1.0.5", "192.0.2.9", id="spoofed-xff-from-untrusted"),
        pytest.param("127.0.0.1", "10.1.0.5", "10.1.0.5", id="one-proxy"),
        pytest.param("127.0.0.1", "6.6.6.6, 10.1.0.5, 127.0.0.2", "10.1.0.5", id="right-most-untrusted-hop"),
        pytest.param("127.0.0.1", "[2001:db8::1]:4711", "2001:db8::1", id="ipv6-with-port"),
        pytest.param("127.0.0.1", "", "127.0.0.1", id="no-xff"),
    ],
)
def test_client_address(remote: str, forwarded: str, expected: str) -> None:
    environ = {"REMOTE_ADDR": remote, "HTTP_X_FORWARDED_FOR": forwarded}
    assert client_address(environ, ["127.0.0.0/8"]) == expected


def peer_client(**kwargs: Any) -> Client:
    return Client(Protected(make_authenticator("digest", secret=SECRET, credentials=lookup, trusted_peers=["10.1.0.0/16"],
                                               trusted_proxies=["127.0.0.1"], **kwargs)))


def test_trusted_peer_in_cidr_reads_without_credentials() -> None:
    response = peer_client().get(ALICE_DOC, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert (response.status_code, response.headers["X-Flags"]) == (200, "peer=True admin=False")


def test_trusted_peer_behind_a_trusted_proxy_reads_without_credentials() -> None:
    response = peer_client().get(ALICE_DOC, headers={"X-Forwarded-For": "10.1.2.3"}, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 200


def test_spoofed_forwarded_for_does_not_make_a_trusted_peer() -> None:
    response = peer_client().get(ALICE_DOC, headers={"X-Forwarded-For": "10.1.2.3"}, environ_base={"REMOTE_ADDR": "192.0.2.9"})
    assert response.status_code == 401


def test_trusted_peer_cannot_write() -> None:
    response = peer_client().put(ALICE_DOC, data=b"<x/>", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert response.status_code == 403


def test_xcap_caps_is_readable_without_credentials() -> None:
    response = peer_client().get(CAPS)
    assert (response.status_code, response.data) == (200, b"@")


def test_administrator_identity_is_flagged_admin() -> None:
    client = peer_client(admins=["sips:alice@EXAMPLE.com"])
    challenge = first_challenge(client)
    response = client.get(ALICE_DOC, headers={"Authorization": digest(challenge, "alice", "alice-pw", ALICE_DOC)})
    assert response.headers["X-Flags"] == "peer=False admin=True"


@pytest.mark.parametrize(
    ("mode", "kwargs", "message"),
    [
        pytest.param("ldap", {}, "auth mode must be one of", id="unknown-mode"),
        pytest.param("digest", {"credentials": lookup}, "needs a secret", id="digest-without-secret"),
        pytest.param("digest", {"secret": "short", "credentials": lookup}, "at least 16", id="short-secret"),
        pytest.param("digest", {"secret": SECRET}, "exactly one of", id="no-credentials"),
        pytest.param("digest", {"secret": SECRET, "credentials": lookup, "credentials_url": "sqlite:///x.db"}, "exactly one of",
                     id="two-credential-sources"),
        pytest.param("digest", {"secret": SECRET, "credentials": lookup, "nonce_lifetime": 0}, "nonce_lifetime",
                     id="zero-lifetime"),
        pytest.param("digest", {"secret": SECRET, "credentials": lookup, "digest_algorithms": ["SHA-1"]}, "digest algorithms",
                     id="unknown-algorithm"),
        pytest.param("digest", {"secret": SECRET, "credentials": lookup, "trusted_peers": ["10.0.0.0/33"]}, "CIDR", id="bad-cidr"),
        pytest.param("digest", {"secret": SECRET, "credentials": lookup, "admins": ["example.com"]}, "expected a user@domain",
                     id="admin-without-user"),
        pytest.param("basic", {"credentials_url": "oracle://x/y"}, "unsupported db_url", id="bad-credentials-url"),
        pytest.param("basic", {"credentials_url": "sqlite:///x.db", "credentials_table": "sub;drop"}, "table name",
                     id="bad-table-name"),
        pytest.param("upstream", {}, "needs trusted_proxies", id="upstream-without-proxies"),
    ],
)
def test_bad_configuration_is_rejected_at_construction(mode: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_authenticator(mode, **kwargs)


def test_mode_none_means_no_authenticator() -> None:
    assert make_authenticator("none") is None
