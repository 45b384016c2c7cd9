"""org.openxcap.watchers: the watchers of alice's presence, read from the presence
server's tables in the database of the xcap table (issue 11 item 7).

Each presence server's own DDL (Kamailio's MySQL and PostgreSQL scripts as Debian installs
them, OpenSIPS's ``scripts/mysql/presence-create.sql``) runs in a database made for the module
and dropped after; a real Kamailio fills the tables in the last test.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from werkzeug.test import Client

from tests.conftest import MYSQL_URL, POSTGRESQL_URL, mysql_connect, postgresql_connect
from tests.kamailio_peer import KamailioPresence
from tests.sipclient import Watcher
from tests.test_presence_kamailio import rules
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.storage import open_storage
from xcap_wsgi.storage.mysql import MySQLStorage
from xcap_wsgi.storage.sqlite import SQLiteStorage

ROOT = "/xcap-root/org.openxcap.watchers/users/sip:alice@example.com/"
URI = ROOT + "index"
NO_TABLES = (b"no watchers here: the database of the xcap table has no presence watchers and active_watchers tables"
             b" (Kamailio's or OpenSIPS's presence module keeps them when it shares this database)\n")
#: Kamailio's DDL scripts as Debian installs them, one folder per database
KAMAILIO_DDL_DIR = Path("/usr/share/kamailio")
#: OpenSIPS's tables, from OpenSIPS/opensips scripts/mysql/presence-create.sql @0a124c86 (CHAR columns)
OPENSIPS_DDL = [
    "CREATE TABLE active_watchers (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,"
    " presentity_uri CHAR(255) NOT NULL, watcher_username CHAR(64) NOT NULL, watcher_domain CHAR(64) NOT NULL,"
    " to_user CHAR(64) NOT NULL, to_domain CHAR(64) NOT NULL, event CHAR(64) DEFAULT 'presence' NOT NULL,"
    " event_id CHAR(64), to_tag CHAR(64) NOT NULL, from_tag CHAR(64) NOT NULL, callid CHAR(64) NOT NULL,"
    " local_cseq INT(11) NOT NULL, remote_cseq INT(11) NOT NULL, contact CHAR(255) NOT NULL, record_route TEXT,"
    " expires INT(11) NOT NULL, status INT(11) DEFAULT 2 NOT NULL, reason CHAR(64), version INT(11) DEFAULT 0 NOT NULL,"
    " socket_info CHAR(64) NOT NULL, local_contact CHAR(255) NOT NULL, sharing_tag CHAR(32) DEFAULT NULL,"
    " CONSTRAINT active_watchers_idx UNIQUE (presentity_uri, callid, to_tag, from_tag)) ENGINE=InnoDB",
    "CREATE TABLE watchers (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,"
    " presentity_uri CHAR(255) NOT NULL, watcher_username CHAR(64) NOT NULL, watcher_domain CHAR(64) NOT NULL,"
    " event CHAR(64) DEFAULT 'presence' NOT NULL, status INT(11) NOT NULL, reason CHAR(64),"
    " inserted_time INT(11) NOT NULL,"
    " CONSTRAINT watcher_idx UNIQUE (presentity_uri, watcher_username, watcher_domain, event)) ENGINE=InnoDB",
]
ALICE = "sip:alice@example.com"
#: (presentity, user, event, status): watchers rows; alice's ones are in the document
WATCHERS = [
    (ALICE, "bob", "presence", 2),        # pending: awaiting alice's decision
    (ALICE, "bob", "dialog", 1),          # the same watcher, another event package
    (ALICE, "carol", "presence", 1),      # active, its subscription expired
    (ALICE, "dave", "presence", 3),       # terminated (blocked)
    (ALICE, "erin", "presence", 4),       # Kamailio's waiting: still no decision
    (ALICE, "mallory", "presence", 9),    # a status neither server writes
    ("sip:zoe@example.com", "bob", "presence", 2),
]
#: (presentity, user, event, expires): active_watchers rows
NEVER = 2**31 - 1
ACTIVE = [(ALICE, "bob", "presence", NEVER), (ALICE, "carol", "presence", 1), (ALICE, "ghost", "presence", NEVER)]


def entry(user: str, status: str, online: str, event: str) -> str:
    return (f"\n  <watcher>\n    <id>{user}@example.com</id>\n    <status>{status}</status>\n"
            f"    <online>{online}</online>\n    <event>{event}</event>\n  </watcher>")


def document(*entries: str) -> bytes:
    head = '<?xml version="1.0" encoding="UTF-8"?>\n<watchers xmlns="http://openxcap.org/ns/watchers"'
    return (head + (">" + "".join(entries) + "\n</watchers>\n" if entries else "/>\n")).encode()


EXPECTED = document(
    entry("bob", "allow", "false", "dialog"), entry("bob", "confirm", "true", "presence"),
    entry("carol", "allow", "false", "presence"), entry("dave", "deny", "false", "presence"),
    entry("erin", "confirm", "false", "presence"), entry("mallory", "unknown", "false", "presence"),
)
EMPTY = document()


def content_etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()[:32]}"'


def active_row(presentity: str, user: str, event: str, expires: int, n: int) -> dict[str, object]:
    """Every NOT NULL column of either layout's active_watchers without a default."""
    return {"presentity_uri": presentity, "watcher_username": user, "watcher_domain": "example.com",
            "to_user": "alice", "to_domain": "example.com", "event": event, "to_tag": f"t{n}", "from_tag": f"f{n}",
            "callid": f"c{n}", "local_cseq": 1, "remote_cseq": 1, "contact": f"sip:{user}@192.0.2.1",
            "expires": expires, "socket_info": "udp:127.0.0.1:5060", "local_contact": "sip:127.0.0.1:5060"}


def fill(cursor: Any, p: str, extra_active: dict[str, object]) -> None:
    """The rows above, through a DB-API cursor whose placeholder is ``p``."""
    execute = cursor.execute
    for presentity, user, event, status in WATCHERS:
        execute("INSERT INTO watchers (presentity_uri, watcher_username, watcher_domain, event, status, inserted_time)"
                f" VALUES ({p}, {p}, 'example.com', {p}, {p}, 0)", (presentity, user, event, status))
    for n, (presentity, user, event, expires) in enumerate(ACTIVE):
        row = active_row(presentity, user, event, expires, n) | extra_active
        execute(f"INSERT INTO active_watchers ({', '.join(row)}) VALUES ({', '.join([p] * len(row))})", tuple(row.values()))


# -- SQLite: the embedded default has no presence tables ------------------------------------------

@pytest.fixture
def sqlite_client(tmp_path: Path) -> Iterator[Client]:
    storage = SQLiteStorage(str(tmp_path / "xcap.db"))
    yield Client(XCAPMiddleware(None, storage=storage))
    storage.close()


def sqlite_presence_tables(path: Path, *tables: str) -> None:
    """The columns this server reads, in the SQLite file of the xcap table."""
    conn = sqlite3.connect(path)
    if "watchers" in tables:
        conn.execute("CREATE TABLE watchers (id INTEGER PRIMARY KEY, presentity_uri TEXT, watcher_username TEXT,"
                     " watcher_domain TEXT, event TEXT, status INTEGER, reason TEXT, inserted_time INTEGER)")
    if "active_watchers" in tables:
        columns = ", ".join(f"{name} {'INTEGER' if isinstance(value, int) else 'TEXT'}"
                            for name, value in active_row("", "", "", 0, 0).items())
        conn.execute(f"CREATE TABLE active_watchers (id INTEGER PRIMARY KEY, {columns})")
    if len(tables) == 2:
        fill(conn, "?", {})
    conn.commit()
    conn.close()


@pytest.mark.parametrize("tables", [pytest.param((), id="none"), pytest.param(("watchers",), id="watchers-only")])
def test_without_the_presence_tables_the_document_is_404_saying_why(sqlite_client: Client, tmp_path: Path,
                                                                    tables: tuple[str, ...]) -> None:
    sqlite_presence_tables(tmp_path / "xcap.db", *tables)
    resp = sqlite_client.get(URI)
    assert (resp.status, resp.headers["Content-Type"], resp.data) == ("404 Not Found", "text/plain; charset=utf-8",
                                                                      NO_TABLES)


def test_presence_tables_in_the_sqlite_file_are_read(sqlite_client: Client, tmp_path: Path) -> None:
    sqlite_presence_tables(tmp_path / "xcap.db", "watchers", "active_watchers")
    resp = sqlite_client.get(URI)
    assert (resp.status, resp.headers["Content-Type"], resp.headers["ETag"], resp.data) == (
        "200 OK", "application/xml", content_etag(EXPECTED), EXPECTED)
    assert sqlite_client.get(ROOT + "watchers.xml").data == EXPECTED


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_the_document_is_read_only(sqlite_client: Client, method: str) -> None:
    resp = sqlite_client.open(URI, method=method, data=EMPTY, content_type="application/xml")
    assert (resp.status, resp.headers["Allow"], resp.data) == (
        "405 Method Not Allowed", "GET, HEAD", b"org.openxcap.watchers documents are generated by the server and read-only\n")


@pytest.mark.parametrize("path", [
    pytest.param("/xcap-root/org.openxcap.watchers/global/index", id="global-tree"),
    pytest.param(ROOT + "other", id="other-name"),
])
def test_only_the_users_watchers_document_exists(sqlite_client: Client, path: str) -> None:
    resp = sqlite_client.get(path)
    assert (resp.status, resp.data) == (
        "404 Not Found", b"the watchers document is users/<xui>/index (or users/<xui>/watchers.xml)\n")


def test_only_the_owner_reads_the_watchers(tmp_path: Path) -> None:
    sqlite_presence_tables(tmp_path / "xcap.db", "watchers", "active_watchers")
    passwords = {("alice", "example.com"): "alice-pw", ("bob", "example.com"): "bob-pw"}
    storage = SQLiteStorage(str(tmp_path / "xcap.db"))
    client = Client(XCAPMiddleware(None, storage=storage, auth="basic", credentials=lambda u, d: passwords.get((u, d)),
                                   allow_basic_over_http=True))

    def as_user(user: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}@example.com:{user}-pw".encode()).decode()}

    assert client.get(URI, headers=as_user("alice")).data == EXPECTED
    resp = client.get(URI, headers=as_user("bob"))
    assert (resp.status, resp.data) == (
        "403 Forbidden", b"sip:alice@example.com is not yours: users read and write only their own documents\n")
    storage.close()


# -- each presence server's DDL, on MySQL and PostgreSQL ---------------------------------------------

LAYOUTS = [
    pytest.param("kamailio-mysql", marks=pytest.mark.mysql),
    pytest.param("opensips-mysql", marks=pytest.mark.mysql),
    pytest.param("kamailio-postgresql", marks=pytest.mark.postgresql),
]
#: the NOT NULL columns without a default that Kamailio's active_watchers adds to OpenSIPS's
KAMAILIO_ONLY = {"from_user": "bob", "from_domain": "example.com", "updated": 0, "updated_winfo": 0}


def kamailio_ddl(database: str) -> list[str]:
    """Kamailio's CREATE TABLE statements for watchers and active_watchers, as installed."""
    path = KAMAILIO_DDL_DIR / database / "presence-create.sql"
    if not path.exists():
        message = f"{path} is missing (Debian: apt-get install kamailio-{database}-modules)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    statements = path.read_text().split(";")
    found = [s.strip() for s in statements if re.match(r"\s*CREATE TABLE `?(active_watchers|watchers)`? ", s)]
    assert len(found) == 2, f"{path}: no CREATE TABLE for watchers and active_watchers"
    return found


def in_mysql(name: str, ddl: list[str], extra: dict[str, object] | None) -> Iterator[str]:
    """A new MySQL database with ``ddl`` run and, unless ``extra`` is None, the rows; its URL, then dropped."""
    conn = mysql_connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(f"USE `{name}`")
        for statement in ddl:
            cur.execute(statement)
        if extra is not None:
            fill(cur, "%s", extra)
    yield urlsplit(MYSQL_URL)._replace(path=f"/{name}").geturl()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE `{name}`")
    conn.close()


def in_postgresql(name: str, ddl: list[str], extra: dict[str, object] | None) -> Iterator[str]:
    """The same on PostgreSQL."""
    import psycopg

    from xcap_wsgi.storage.postgresql import parse_postgresql_url

    admin = postgresql_connect()
    admin.execute(f'CREATE DATABASE "{name}"')
    url = urlsplit(POSTGRESQL_URL)._replace(path=f"/{name}").geturl()
    with psycopg.connect(**parse_postgresql_url(url), autocommit=True) as conn:
        for statement in ddl:
            conn.execute(statement)
        if extra is not None:
            fill(conn.cursor(), "%s", extra)
    yield url
    admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture(scope="module", params=LAYOUTS)
def presence_db(request: pytest.FixtureRequest) -> Iterator[str]:
    """A database of its own holding the layout's presence tables and the rows above; its URL."""
    server, database = str(request.param).split("-")
    ddl = OPENSIPS_DDL if server == "opensips" else kamailio_ddl("postgres" if database == "postgresql" else "mysql")
    name = f"xcap_watchers_test_{server}_{secrets.token_hex(4)}"
    create = in_postgresql if database == "postgresql" else in_mysql
    yield from create(name, ddl, KAMAILIO_ONLY if server == "kamailio" else {})


@pytest.fixture
def presence_client(presence_db: str) -> Iterator[Client]:
    storage = open_storage(presence_db, "xcap")
    storage.ensure_schema()
    yield Client(XCAPMiddleware(None, storage=storage))
    storage.close()


def test_each_watcher_with_its_status_liveness_and_event(presence_client: Client) -> None:
    resp = presence_client.get(URI)
    assert (resp.status, resp.headers["Content-Type"], resp.headers["ETag"], resp.headers["Cache-Control"],
            resp.data) == ("200 OK", "application/xml", content_etag(EXPECTED), "no-cache", EXPECTED)


def test_a_user_nobody_watches_has_an_empty_document(presence_client: Client) -> None:
    resp = presence_client.get(URI.replace("alice", "nobody"))
    assert (resp.status, resp.headers["ETag"], resp.data) == ("200 OK", content_etag(EMPTY), EMPTY)


def test_conditional_get_and_node_selectors_work_on_the_document(presence_client: Client) -> None:
    etag = presence_client.get(URI).headers["ETag"]
    assert presence_client.get(URI, headers={"If-None-Match": etag}).status == "304 Not Modified"
    resp = presence_client.get(URI + "/~~/watchers/watcher%5B2%5D/status")
    assert (resp.status, resp.headers["Content-Type"], resp.data) == (
        "200 OK", "application/xcap-el+xml", b"<status>confirm</status>")


@pytest.mark.parametrize("database", [pytest.param("mysql", marks=pytest.mark.mysql),
                                      pytest.param("postgresql", marks=pytest.mark.postgresql)])
def test_a_database_without_presence_tables_is_404(database: str) -> None:
    create = in_postgresql if database == "postgresql" else in_mysql
    databases = create(f"xcap_watchers_test_none_{secrets.token_hex(4)}", [], None)
    storage = open_storage(next(databases), "xcap")
    try:
        storage.ensure_schema()
        resp = Client(XCAPMiddleware(None, storage=storage)).get(URI)
        assert (resp.status, resp.data) == ("404 Not Found", NO_TABLES)
    finally:
        storage.close()
        next(databases, None)


# -- Kamailio's presence server writes the tables ---------------------------------------------------

@pytest.mark.kamailio
def test_kamailio_records_a_pending_watcher_and_then_alices_decision(kamailio_presence: KamailioPresence) -> None:
    walter = "sip:walter@example.com"  # this test's own presentity in the shared peer database
    kamailio_presence.clear_presence_state(walter)
    storage = MySQLStorage(kamailio_presence.db_url, "xcap")
    client = Client(XCAPMiddleware(None, storage=storage))
    uri = URI.replace("alice", "walter")
    rules_uri = "/xcap-root/pres-rules/users/sip:walter@example.com/index"
    client.delete(rules_uri)
    try:
        with Watcher("sip:wanda@example.com", ("127.0.0.1", kamailio_presence.sip_port)) as wanda:
            subscription = wanda.subscribe(walter)
            assert subscription.wait_for(timeout=2.0).state == "pending"
            assert client.get(uri).data == document(entry("wanda", "confirm", "true", "presence"))
            put = client.put(rules_uri, data=rules(wanda="allow"), content_type="application/auth-policy+xml")
            assert put.status == "201 Created"
            kamailio_presence.rpc("presence.updateWatchers", [walter, "presence"])
            subscription.wait_for(lambda n: n.state == "active", timeout=3.0)
            assert client.get(uri).data == document(entry("wanda", "allow", "true", "presence"))
    finally:
        client.delete(rules_uri)
        kamailio_presence.clear_presence_state(walter)
        storage.close()


def test_a_watcher_name_with_characters_xml_cannot_hold_still_gives_a_well_formed_document() -> None:
    from lxml import etree

    from xcap_wsgi.usages.watchers import Watcher, render

    body = render([Watcher("bob\x01<&>\ufffe@example.com", "pres\x1bence", status="confirm", online=False)])
    assert body == (b'<?xml version="1.0" encoding="UTF-8"?>\n<watchers xmlns="http://openxcap.org/ns/watchers">\n'
                    b"  <watcher>\n    <id>bob\xef\xbf\xbd&lt;&amp;&gt;\xef\xbf\xbd@example.com</id>\n"
                    b"    <status>confirm</status>\n    <online>false</online>\n"
                    b"    <event>pres\xef\xbf\xbdence</event>\n  </watcher>\n</watchers>\n")
    assert etree.fromstring(body).findtext("{http://openxcap.org/ns/watchers}watcher/"
                                           "{http://openxcap.org/ns/watchers}id") == "bob\ufffd<&>\ufffd@example.com"
