"""The global tree under digest: reads need no credentials unless ``global_auth``; its realm
is ``realm``, else the subscriber table's only domain (RFC 4825 §5.7 A1, RFC 7616 §3.3).

Accounts hold HA1 = H(user:domain:password), so a challenge naming the request host could
never be answered; urllib-based clients (python3-xcaplib, Blink) are the real-client check.
"""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.test import Client, TestResponse

from tests.conftest import MYSQL_URL, mysql_drop
from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI
from tests.test_auth import challenges, digest, urllib_leaks_a_socket
from tests.test_cli import start_server, stop_server
from xcap_wsgi import XCAPMiddleware, cli
from xcap_wsgi.auth import SubscriberStore
from xcap_wsgi.auth.realm import DOMAINS_TTL, Realms
from xcap_wsgi.config import settings_from_env
from xcap_wsgi.storage import Storage
from xcap_wsgi.storage.sqlite import SQLiteStorage

SECRET = "global-realm-test-secret-0123456789"
GLOBAL = "/xcap-root/resource-lists/global/index"
CAPS = "/xcap-root/xcap-caps/global/index"
RLS_INDEX = "/xcap-root/rls-services/global/index"
DIRECTORY = "/xcap-root/org.openmobilealliance.xcap-directory/users/sip:alice@example.com/directory.xml"
ACCOUNTS = {"sip:alice@example.com": "alice-pw", "sip:root@example.com": "root-pw"}
ROOT = "sip:root@example.com"
PEER = {"REMOTE_ADDR": "10.1.2.3"}
GLOBAL_WRITE = b"documents in the global tree can only be changed by an administrator\n"


def add_accounts(store: SubscriberStore, accounts: dict[str, str]) -> SubscriberStore:
    for xui, password in accounts.items():
        store.add_user(xui, password)
    return store


@pytest.fixture
def sqlite(tmp_path: Path) -> Iterator[tuple[Storage, SubscriberStore]]:
    storage = SQLiteStorage(str(tmp_path / "xcap.db"))
    store = add_accounts(SubscriberStore(storage.url), ACCOUNTS)
    yield storage, store
    store.close()
    storage.close()


def digest_client(storage: Storage, store: SubscriberStore, **options: object) -> Client:
    return Client(XCAPMiddleware(None, storage=storage, auth="digest", auth_secret=SECRET, credentials=store,
                                 admins=[ROOT], trusted_peers=["10.1.0.0/16"], **options))  # type: ignore[arg-type]


def challenge_realm(response: TestResponse) -> str:
    assert response.status == "401 Unauthorized", response.data
    return str(challenges(response)[0]["realm"])


def logged_in(client: Client, path: str, user: str, password: str, method: str = "GET",
              data: bytes | None = None, content_type: str | None = None) -> TestResponse:
    """The request answered with digest credentials for the realm the server asked for."""
    first = client.open(path, method=method, data=data, content_type=content_type)
    header = digest(challenges(first)[0], user, password, path, method=method)
    return client.open(path, method=method, data=data, content_type=content_type, headers={"Authorization": header})


@pytest.fixture
def stored(sqlite: tuple[Storage, SubscriberStore]) -> tuple[Storage, SubscriberStore, str]:
    """The global resource-lists document, written by the administrator; its ETag."""
    resp = logged_in(digest_client(*sqlite), GLOBAL, "root", "root-pw", "PUT", RESOURCE_LISTS, RL_MIME)
    assert resp.status == "201 Created", resp.data
    return *sqlite, resp.headers["ETag"]


# -- global_auth off (the default): reads are open --------------------------------------


@pytest.mark.parametrize("path", [pytest.param(GLOBAL, id="resource-lists"), pytest.param(CAPS, id="xcap-caps")])
def test_anonymous_get_of_a_global_document_is_200_exactly_as_without_authentication(
        stored: tuple[Storage, SubscriberStore, str], path: str) -> None:
    storage, store, _ = stored
    expected = Client(XCAPMiddleware(None, storage=storage)).get(path)
    resp = digest_client(storage, store).get(path)
    assert (resp.status, resp.headers["ETag"], resp.headers["Content-Type"], resp.data) == (
        "200 OK", expected.headers["ETag"], expected.headers["Content-Type"], expected.data)
    assert "WWW-Authenticate" not in resp.headers


def test_anonymous_get_of_the_global_document_returns_what_the_administrator_put(
        stored: tuple[Storage, SubscriberStore, str]) -> None:
    storage, store, etag = stored
    resp = digest_client(storage, store).get(GLOBAL)
    assert (resp.status, resp.headers["ETag"], resp.data) == ("200 OK", etag, RESOURCE_LISTS)
    head = digest_client(storage, store).head(GLOBAL)
    assert (head.status, head.headers["ETag"], head.data) == ("200 OK", etag, b"")


def test_anonymous_element_get_in_the_global_tree_is_200(stored: tuple[Storage, SubscriberStore, str]) -> None:
    resp = digest_client(*stored[:2]).get(GLOBAL + "/~~/resource-lists/list%5B@name=%22friends%22%5D/@name")
    assert (resp.status, resp.data) == ("200 OK", b'"friends"')


def test_rls_services_global_index_stays_for_trusted_peers_only(sqlite: tuple[Storage, SubscriberStore]) -> None:
    # RFC 4826 §4.4.9 (A3) is a MUST: open reads of the global tree do not open it
    client = digest_client(*sqlite)
    denied = client.get(RLS_INDEX)
    assert (denied.status, denied.data) == (
        "403 Forbidden", b"the rls-services global index is readable only by trusted peers\n")
    assert "WWW-Authenticate" not in denied.headers
    expected = Client(XCAPMiddleware(None, storage=sqlite[0])).get(RLS_INDEX)
    resp = client.get(RLS_INDEX, environ_base=PEER)
    assert (resp.status, resp.headers["ETag"], resp.data) == ("200 OK", expected.headers["ETag"], expected.data)


def test_global_writes_still_need_an_administrator_who_logs_in_with_the_accounts_domain(
        sqlite: tuple[Storage, SubscriberStore]) -> None:
    client = digest_client(*sqlite)
    assert challenge_realm(client.put(GLOBAL, data=RESOURCE_LISTS, content_type=RL_MIME)) == "example.com"
    assert challenge_realm(client.delete(GLOBAL)) == "example.com"
    denied = logged_in(client, GLOBAL, "alice", "alice-pw", "PUT", RESOURCE_LISTS, RL_MIME)
    assert (denied.status, denied.data) == ("403 Forbidden", GLOBAL_WRITE)
    created = logged_in(client, GLOBAL, "root", "root-pw", "PUT", RESOURCE_LISTS, RL_MIME)
    assert created.status == "201 Created"
    assert logged_in(client, GLOBAL, "root", "root-pw", "DELETE").status == "200 OK"


@pytest.mark.parametrize("global_auth", [False, True], ids=["global-auth-off", "global-auth-on"])
def test_users_tree_and_the_oma_directory_are_unaffected(sqlite: tuple[Storage, SubscriberStore], global_auth: bool) -> None:
    client = digest_client(*sqlite, global_auth=global_auth, realm="other.example.org")
    for path in (RL_URI, DIRECTORY):
        assert challenge_realm(client.get(path)) == "example.com"
    assert logged_in(client, RL_URI, "alice", "alice-pw", "PUT", RESOURCE_LISTS, RL_MIME).status == "201 Created"
    listing = logged_in(client, DIRECTORY, "alice", "alice-pw")
    expected = Client(XCAPMiddleware(None, storage=sqlite[0])).get(DIRECTORY)
    assert (listing.status, listing.data) == ("200 OK", expected.data)
    assert b"resource-lists/users/sip:alice@example.com/index" in listing.data
    other = logged_in(client, DIRECTORY.replace("alice", "bob"), "alice", "alice-pw")
    assert other.status == "403 Forbidden"


# -- global_auth on: credentials, with the right realm ----------------------------------


def test_with_global_auth_the_challenge_names_the_subscriber_tables_only_domain(
        stored: tuple[Storage, SubscriberStore, str]) -> None:
    storage, store, etag = stored
    client = digest_client(storage, store, global_auth=True)
    assert challenge_realm(client.get(GLOBAL)) == "example.com"
    resp = logged_in(client, GLOBAL, "alice", "alice-pw")
    assert (resp.status, resp.headers["ETag"], resp.data) == ("200 OK", etag, RESOURCE_LISTS)


def test_with_global_auth_the_configured_realm_wins(stored: tuple[Storage, SubscriberStore, str]) -> None:
    storage, store, etag = stored
    store.add_user("sip:carol@Example.ORG", "carol-pw")
    client = digest_client(storage, store, global_auth=True, realm="Example.ORG")
    assert challenge_realm(client.get(GLOBAL)) == "example.org"
    resp = logged_in(client, GLOBAL, "carol", "carol-pw")
    assert (resp.status, resp.headers["ETag"], resp.data) == ("200 OK", etag, RESOURCE_LISTS)
    wrong = client.get(GLOBAL, headers={"Authorization": digest(challenges(client.get(GLOBAL))[0], "alice", "alice-pw",
                                                                GLOBAL, realm="example.com")})
    assert challenge_realm(wrong) == "example.org"


def test_with_global_auth_xcap_caps_stays_public(sqlite: tuple[Storage, SubscriberStore]) -> None:
    assert digest_client(*sqlite, global_auth=True).get(CAPS).status == "200 OK"


def test_with_global_auth_the_rls_index_is_challenged_then_refused_to_users(sqlite: tuple[Storage, SubscriberStore]) -> None:
    client = digest_client(*sqlite, global_auth=True)
    assert challenge_realm(client.get(RLS_INDEX)) == "example.com"
    assert logged_in(client, RLS_INDEX, "alice", "alice-pw").status == "403 Forbidden"
    assert client.get(RLS_INDEX, environ_base=PEER).status == "200 OK"


@pytest.mark.parametrize(
    ("accounts", "why"),
    [
        pytest.param({}, "the subscriber table has no accounts", id="no-accounts"),
        pytest.param({**ACCOUNTS, "sip:carol@example.org": "pw"},
                     "the subscriber table has several domains (example.com, example.org)", id="two-domains"),
    ],
)
def test_without_one_domain_the_realm_is_the_request_host_and_one_warning_says_set_realm(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, accounts: dict[str, str], why: str) -> None:
    storage = SQLiteStorage(str(tmp_path / "xcap.db"))
    store = add_accounts(SubscriberStore(storage.url), accounts)
    client = digest_client(storage, store, global_auth=True)
    with caplog.at_level(logging.WARNING, logger="xcap_wsgi.auth"):
        realms = [challenge_realm(client.get(GLOBAL, base_url=f"http://{host}/")) for host in ("XCAP.example.net:8080", "xcap")]
    assert realms == ["xcap.example.net", "xcap"]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [(
        "WARNING", f"global documents are challenged with the request host as realm because {why}: set --realm"
                   " ($XCAP_REALM, realm=) to the SIP domain of the accounts")]
    store.close()
    storage.close()


def test_the_subscriber_tables_domain_is_asked_once_per_ttl() -> None:
    asked: list[int] = []
    now = [0.0]

    def domains() -> list[str]:
        asked.append(1)
        return ["Example.COM "] if len(asked) == 1 else ["example.com", "example.org"]

    realms = Realms(domains=domains, clock=lambda: now[0])
    assert [realms.global_realm(), realms.global_realm()] == ["example.com", "example.com"]
    now[0] = DOMAINS_TTL
    assert (realms.global_realm(), len(asked)) == (None, 2)


@pytest.mark.parametrize("realm", ["", "example.com/x", 'ex"ample.com', "alice@example.com", "a b", "x" * 65])
def test_a_realm_that_is_not_a_domain_is_refused_at_construction(sqlite: tuple[Storage, SubscriberStore], realm: str) -> None:
    with pytest.raises(ValueError, match="realm must be a SIP domain"):
        digest_client(*sqlite, realm=realm)


def test_environment_variables_set_realm_and_global_auth() -> None:
    assert settings_from_env({"XCAP_REALM": "Example.com", "XCAP_GLOBAL_AUTH": "yes"}) == {
        "realm": "Example.com", "global_auth": True}
    with pytest.raises(ValueError, match="XCAP_GLOBAL_AUTH must be true or false, got 'maybe'"):
        settings_from_env({"XCAP_GLOBAL_AUTH": "maybe"})
    with pytest.raises(ValueError, match=r"XCAP_REALM must be a SIP domain such as example\.com, got 'a b'"):
        settings_from_env({"XCAP_REALM": "a b"})


def test_serve_flags_set_realm_and_global_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XCAP_REALM", raising=False)
    monkeypatch.delenv("XCAP_GLOBAL_AUTH", raising=False)
    settings, names = cli._settings(cli.build_parser().parse_args(["serve", "--realm", "Example.com", "--global-auth"]))
    assert ({k: settings[k] for k in ("realm", "global_auth")}, names["realm"], names["global_auth"]) == (
        {"realm": "Example.com", "global_auth": True}, "--realm", "--global-auth")


# -- MySQL: the domain query on Kamailio's table ----------------------------------------


@pytest.mark.mysql
@pytest.mark.parametrize("backend", ["mysql"], indirect=True)
def test_mysql_subscriber_tables_only_domain_is_the_global_realm(storage: Storage) -> None:
    table = f"subscriber_realm_{os.getpid()}"
    mysql_drop(table)
    store = add_accounts(SubscriberStore(MYSQL_URL, table), ACCOUNTS)
    try:
        client = digest_client(storage, store, global_auth=True)
        assert challenge_realm(client.get(GLOBAL)) == "example.com"
        assert logged_in(client, GLOBAL, "alice", "alice-pw").status == "404 Not Found"  # logged in; nothing stored
        store.add_user("sip:carol@example.org", "pw")
        assert sorted(store.domains()) == ["example.com", "example.org"]
    finally:
        store.close()
        mysql_drop(table)


# -- a real client: urllib's digest handler, as python3-xcaplib builds it ---------------


def xcaplib_opener(base_url: str, user: str, password: str) -> urllib.request.OpenerDirector:
    """python3-xcaplib's HTTPClient: one digest handler, the password registered for the SIP domain."""
    passwords = urllib.request.HTTPPasswordMgr()
    passwords.add_password("example.com", base_url, user, password)
    return urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(passwords))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Two ``xcap-wsgi serve``, global_auth off and on (--global-auth), each on its own
    database holding the accounts and the global document the administrator PUT with urllib."""
    servers: dict[str, tuple[int, subprocess.Popen[str]]] = {}
    try:
        for name, extra in (("off", ()), ("on", ("--global-auth",))):
            cwd = tmp_path_factory.mktemp(f"global-auth-{name}")
            add_accounts(SubscriberStore(f"sqlite:///{cwd / 'xcap.db'}"), ACCOUNTS).close()
            # two workers: with one, a connection urllib leaves open after a 401 delays its retry (gthread)
            servers[name] = start_server(cwd, "--auth", "digest", "--admin", ROOT, *extra, workers=2,
                                         env={"XCAP_AUTH_SECRET": SECRET})
        urls = {name: f"http://127.0.0.1:{port}" for name, (port, _) in servers.items()}
        for url in urls.values():
            put(url, "root", GLOBAL)
        yield urls
    finally:
        for _, proc in servers.values():
            stop_server(proc)


def put(base_url: str, user: str, path: str) -> None:
    request = urllib.request.Request(base_url + path, data=RESOURCE_LISTS, method="PUT", headers={"Content-Type": RL_MIME})
    with xcaplib_opener(base_url, user, f"{user}-pw").open(request, timeout=10) as response:
        assert response.status in (200, 201)
    gc.collect()


@urllib_leaks_a_socket
@pytest.mark.parametrize("mode", ["off", "on"])
def test_urllib_reads_the_global_tree_of_a_running_server(served: dict[str, str], mode: str) -> None:
    base_url = served[mode]
    opener = xcaplib_opener(base_url, "alice", "alice-pw")
    with opener.open(base_url + GLOBAL, timeout=10) as response:
        assert (response.status, response.headers["Content-Type"], response.read()) == (200, RL_MIME, RESOURCE_LISTS)
    with opener.open(base_url + CAPS, timeout=10) as response:
        assert (response.status, response.headers["Content-Type"]) == (200, "application/xcap-caps+xml")
    own = "/xcap-root/resource-lists/users/sip:alice%40example.com/index"
    put(base_url, "alice", own)
    with opener.open(base_url + own, timeout=10) as response:
        assert (response.status, response.read()) == (200, RESOURCE_LISTS)
    gc.collect()


@urllib_leaks_a_socket
def test_urllib_without_credentials_reads_the_global_tree_only_when_it_is_open(served: dict[str, str]) -> None:
    plain = urllib.request.build_opener()
    with plain.open(served["off"] + GLOBAL, timeout=10) as response:
        assert (response.status, response.read()) == (200, RESOURCE_LISTS)
    with pytest.raises(urllib.error.HTTPError) as info:
        plain.open(served["on"] + GLOBAL, timeout=10)
    assert (info.value.code, str(info.value.headers["WWW-Authenticate"])[:27]) == (401, 'Digest realm="example.com",')
    info.value.close()
    gc.collect()
