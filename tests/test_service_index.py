"""The rls-services service index: RS3 in one lookup, atomic across users, and RS6 without parsing.

Every service URI of every rls-services document lives in a table beside ``xcap``, written
in the document's transaction with a unique key; the global index is assembled from it.
Documents another program (Kamailio) writes into ``xcap`` are noticed and ``xcap-wsgi
reindex`` takes them in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from tests.conftest import BACKENDS, MYSQL_URL, create_ci_xcap_table, mysql_connect, mysql_drop
from tests.test_cli import REFUSED, UNREACHABLE, run
from tests.test_generated import RLS_INDEX, RLS_MIME, rls
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.errors import UniquenessFailure
from xcap_wsgi.storage import DocKey, Document, Storage, WriteResult, open_storage, sql
from xcap_wsgi.storage import services as service_index
from xcap_wsgi.storage.base import Change, Describe, new_etag
from xcap_wsgi.storage.dbapi import DBAPIStorage
from xcap_wsgi.storage.mysql import MySQLStorage
from xcap_wsgi.storage.sqlite import SQLiteStorage
from xcap_wsgi.usages.resource_lists import rls_services_global_index

EL_MIME = "application/xcap-el+xml"
ROUNDS = 20
MYSQL_BACKENDS = [b for b in BACKENDS if b != "sqlite"]


def doc_url(user: str, name: str = "index") -> str:
    return f"/xcap-root/rls-services/users/sip:{user}@example.com/{name}"


def doc_uri(user: str, name: str = "index") -> str:
    return doc_url(user, name)  # the XCAP root is a path: the URL's path is the stored doc_uri


def service_url(user: str, uri: str) -> str:
    return doc_url(user) + f"/~~/rls-services/service%5B@uri=%22{uri}%22%5D"


def service(uri: str) -> bytes:
    return (f'<service uri="{uri}"><list><entry uri="sip:bob@example.com"/></list>'
            "<packages><package>presence</package></packages></service>").encode()


def put_doc(client: Client, user: str, *uris: str, name: str = "index") -> TestResponse:
    return client.put(doc_url(user, name), data=rls(*uris), content_type=RLS_MIME)


def put_named(client: Client, user: str, uri: str, name: str) -> TestResponse:
    return put_doc(client, user, uri, name=name)


def put_service(client: Client, user: str, uri: str) -> TestResponse:
    return client.put(service_url(user, uri), data=service(uri), content_type=EL_MIME)


def uniqueness_failure(*exists: tuple[int, list[str]]) -> bytes:
    """The 409 body naming service[n]/@uri with its alternatives (RFC 4825 §11.2, V4)."""
    fields = "".join(f'<exists field="rls-services/service%5B{n}%5D/@uri">'
                     + "".join(f"<alt-value>{a}</alt-value>" for a in alts) + "</exists>" for n, alts in exists)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<xcap-error xmlns="urn:ietf:params:xml:ns:xcap-error">'
            '<uniqueness-failure phrase="service URI already in use (RFC 4826 section 4.4.5)">'
            f"{fields}</uniqueness-failure></xcap-error>\n").encode()


def alternatives(uri: str) -> list[str]:
    user, _, host = uri.partition("@")
    return [f"{user}-{n}@{host}" for n in (1, 2, 3)]


def assert_refused(resp: TestResponse, *exists: tuple[int, list[str]]) -> None:
    assert (resp.status, resp.headers["Content-Type"], resp.data) == (
        "409 Conflict", "application/xcap-error+xml", uniqueness_failure(*exists))


def foreign_write(storage: DBAPIStorage, statement: str, *params: Any) -> None:
    """A statement on the xcap table behind xcap-wsgi's back, as Kamailio's modules write it."""
    def work(cursor: Any) -> None:
        cursor.execute(statement.format(t=storage.quoted_table, p=storage.placeholder), params)
    storage.run(work)


def kamailio_inserts(storage: DBAPIStorage, user: str, *uris: str) -> None:
    foreign_write(storage, sql.INSERT_DOC, user, "example.com", rls(*uris), 8, new_etag(), doc_uri(user))


def stale_warning(table: str, unindexed: int) -> str:
    return (f"{unindexed} rls-services documents of table {table} are not in the service index as stored (written by"
            " another program?): service URI uniqueness and the global index miss them until `xcap-wsgi reindex`"
            " rebuilds the index")


def storage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "xcap_wsgi.storage" and r.levelno >= logging.WARNING]


@pytest.fixture(autouse=True)
def index_of_this_test(request: pytest.FixtureRequest) -> None:
    """MySQL tests share one table whose rows the fixture deletes behind the index's back:
    each test here starts from an index rebuilt from that (empty) table."""
    if "storage" in request.fixturenames:
        storage = request.getfixturevalue("storage")
        storage.ensure_schema()
        storage.services.reindex()


# -- RS3: one lookup, any writer ------------------------------------------------------------------

def test_service_uri_of_another_user_is_refused_with_alternatives_free_in_the_index(client: Client) -> None:
    assert put_doc(client, "alice", "sip:friends@example.com").status == "201 Created"
    assert put_doc(client, "carol", "sip:friends-1@example.com", "sip:friends-3@example.com").status == "201 Created"
    resp = put_doc(client, "bob", "sip:bob@example.com", "sip:friends@example.com")
    assert_refused(resp, (2, ["sip:friends-2@example.com", "sip:friends-4@example.com", "sip:friends-5@example.com"]))
    assert client.get(doc_url("bob")).status == "404 Not Found"


def test_service_element_put_with_a_taken_uri_is_refused(client: Client) -> None:
    put_doc(client, "alice", "sip:friends@example.com")
    put_doc(client, "bob", "sip:bob-work@example.com")
    assert_refused(put_service(client, "bob", "sip:friends@example.com"), (2, alternatives("sip:friends@example.com")))
    assert client.get(doc_url("bob")).data == rls("sip:bob-work@example.com")


def test_service_uri_compares_percent_decoded_in_the_index(client: Client) -> None:
    put_doc(client, "alice", "sip%3Afriends%40example.com")
    assert_refused(put_doc(client, "bob", "sip:friends@example.com"), (1, alternatives("sip:friends@example.com")))


def test_replacing_a_document_keeps_its_own_service_uris(client: Client) -> None:
    put_doc(client, "alice", "sip:friends@example.com")
    assert put_doc(client, "alice", "sip:friends@example.com", "sip:family@example.com").status == "200 OK"
    assert put_service(client, "alice", "sip:friends@example.com").status == "200 OK"


def test_same_users_other_document_counts_as_another_holder(client: Client) -> None:
    put_doc(client, "alice", "sip:friends@example.com")
    assert_refused(put_doc(client, "alice", "sip:friends@example.com", name="work"),
                   (1, alternatives("sip:friends@example.com")))


@pytest.mark.parametrize("free", [
    pytest.param(lambda c: c.delete(doc_url("alice")), id="document-deleted"),
    pytest.param(lambda c: c.delete(service_url("alice", "sip:friends@example.com")), id="service-deleted"),
    pytest.param(lambda c: put_doc(c, "alice", "sip:alice@example.com", "sip:family@example.com"), id="replaced"),
])
def test_a_service_uri_is_free_once_its_holder_lets_it_go(client: Client, free: Callable[[Client], TestResponse]) -> None:
    put_doc(client, "alice", "sip:friends@example.com", "sip:family@example.com")
    assert free(client).status == "200 OK"
    assert put_doc(client, "bob", "sip:friends@example.com").status == "201 Created"


def test_a_writer_that_does_not_validate_is_refused_by_the_storage(storage: Storage) -> None:
    """RS3 holds for every write of the table: the storage asks the usage for the 409."""
    client = Client(XCAPMiddleware(None, storage=storage))
    put_doc(client, "alice", "sip:friends@example.com")
    key = DocKey(doc_uri("bob"), "sip:bob", "example.com", 8)
    with pytest.raises(UniquenessFailure) as raised:
        storage.update(key, lambda current: rls("sip:friends@example.com"))
    assert raised.value.body_bytes() == uniqueness_failure((1, alternatives("sip:friends@example.com")))
    assert storage.get(doc_uri("bob")) is None


# -- RS3 atomic: two users, one URI, one instant --------------------------------------------------

def at_once(request: Callable[..., TestResponse], *arguments: tuple[Any, ...]) -> list[TestResponse]:
    """``request(*args)`` for each of ``arguments``, each on its own thread (and database
    connection), released together."""
    start = threading.Barrier(len(arguments))

    def released(args: tuple[Any, ...]) -> TestResponse:
        start.wait(timeout=30)
        return request(*args)
    with ThreadPoolExecutor(len(arguments)) as pool:
        return [f.result(timeout=60) for f in [pool.submit(released, a) for a in arguments]]


def one_wins(responses: list[TestResponse], status: str) -> tuple[int, TestResponse]:
    """Exactly one of two responses has ``status``, the other is a 409: (the winner, the loser's response)."""
    statuses = [r.status for r in responses]
    assert sorted(statuses) == sorted([status, "409 Conflict"]), statuses
    winner = statuses.index(status)
    return winner, responses[1 - winner]


def test_two_users_creating_one_service_uri_at_once_exactly_one_succeeds(storage: Storage) -> None:
    app = XCAPMiddleware(None, storage=storage)
    for n in range(ROUNDS):
        uri = f"sip:race{n}@example.com"
        responses = at_once(put_named, *((Client(app), user, uri, f"r{n}") for user in ("bob", "carol")))
        winner, lost = one_wins(responses, "201 Created")
        assert_refused(lost, (1, alternatives(uri)))
        assert Client(app).get(doc_url(("bob", "carol")[1 - winner], f"r{n}")).status == "404 Not Found"


def test_two_users_adding_one_service_element_at_once_exactly_one_succeeds(storage: Storage) -> None:
    app = XCAPMiddleware(None, storage=storage)
    users = ("bob", "carol")
    for user in users:
        put_doc(Client(app), user, f"sip:{user}-own@example.com")
    services = {user: 1 for user in users}
    for n in range(ROUNDS):
        uri = f"sip:race{n}@example.com"
        responses = at_once(put_service, *((Client(app), user, uri) for user in users))
        winner, lost = one_wins(responses, "201 Created")
        assert_refused(lost, (services[users[1 - winner]] + 1, alternatives(uri)))
        services[users[winner]] += 1
    total = sum(Client(app).get(doc_url(user)).data.count(b"<service ") for user in users)
    assert total == 2 + ROUNDS


def test_both_validations_passing_before_either_writes_still_lets_one_win(
        storage: DBAPIStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    """A document PUT validates before its transaction: both see the URI free, and the
    index, written in each transaction, decides."""
    passed = threading.Barrier(2)
    looked_up = threading.local()
    lookup = storage.services_taken

    def lookup_then_wait(uris: Any, doc_uri: str) -> set[str] | None:
        taken = lookup(uris, doc_uri)
        if not getattr(looked_up, "once", False):
            looked_up.once = True
            passed.wait(timeout=30)
        return taken
    monkeypatch.setattr(storage, "services_taken", lookup_then_wait)
    app = XCAPMiddleware(None, storage=storage)
    responses = at_once(put_doc, *((Client(app), user, "sip:race@example.com") for user in ("bob", "carol")))
    assert_refused(one_wins(responses, "201 Created")[1], (1, alternatives("sip:race@example.com")))


@pytest.mark.parametrize("backend", MYSQL_BACKENDS, indirect=True)
def test_two_transactions_inserting_one_service_uri_the_unique_key_lets_one_commit(
        storage: MySQLStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both transactions past every check, both inserting: the loser waits on the unique
    key, gets the duplicate-key error, replays, and is refused (MySQL; SQLite writers queue).
    The documents exist already, so that nothing but the index's rows is inserted while the
    first transaction waits for the second (a new xcap row may wait on a gap lock)."""
    inserting = threading.Barrier(2)
    waited = threading.local()
    insert = storage.services._insert

    def wait_then_insert(*args: Any) -> int:
        if not getattr(waited, "once", False):
            waited.once = True
            inserting.wait(timeout=30)
        return insert(*args)
    app = XCAPMiddleware(None, storage=storage)
    for user in ("bob", "carol"):
        put_doc(Client(app), user, f"sip:{user}@example.com")
    monkeypatch.setattr(storage.services, "_insert", wait_then_insert)
    responses = at_once(put_doc, *((Client(app), user, "sip:race@example.com") for user in ("bob", "carol")))
    assert_refused(one_wins(responses, "200 OK")[1], (1, alternatives("sip:race@example.com")))


# -- RS6 from the index ---------------------------------------------------------------------------

def test_global_index_is_byte_for_byte_what_parsing_every_document_gives(storage: Storage) -> None:
    client = Client(XCAPMiddleware(None, storage=storage))
    inline = Path(__file__).parent / "documents" / "rls-services-reference-and-inline.xml"
    assert client.put("/xcap-root/rls-services/users/sip:me@example.org/index", data=inline.read_bytes(),
                      content_type=RLS_MIME).status == "201 Created"
    prefixed = (b"<?xml version='1.0' encoding='UTF-8'?>\n<r:rls-services xmlns:r=\"urn:ietf:params:xml:ns:rls-services\""
                b' xmlns:x="urn:example:x">\r\n\t<r:service uri="sip:bob-w@example.com" x:tag="1"><r:list/></r:service>'
                b"</r:rls-services>")
    assert client.put(doc_url("bob"), data=prefixed, content_type=RLS_MIME).status == "201 Created"
    put_doc(client, "alice", "sip:alice-a@example.com", "sip:alice-b@example.com")
    put_doc(client, "carol", "sip:carol-x@example.com", name="other")
    resp = client.get(RLS_INDEX)
    assert resp.status == "200 OK"
    assert resp.data == rls_services_global_index(storage.documents(8))
    assert resp.data.count(b"<service ") + resp.data.count(b"<r:service ") == 5


def test_global_index_etag_changes_with_every_change_of_a_users_index(client: Client) -> None:
    """The ETag is the index's bytes' (RS6): back to no service, back to the first ETag."""
    etags = [client.get(RLS_INDEX).headers["ETag"]]
    changes: list[Callable[[], TestResponse]] = [
        lambda: put_doc(client, "alice", "sip:a@example.com"),
        lambda: put_service(client, "alice", "sip:b@example.com"),
        lambda: client.delete(service_url("alice", "sip:a@example.com")),
        lambda: client.delete(doc_url("alice")),
    ]
    for change in changes:
        assert change().status in ("200 OK", "201 Created")
        etags.append(client.get(RLS_INDEX).headers["ETag"])
    assert len(set(etags[:4])) == 4
    assert etags[4] == etags[0]


def test_global_index_conditional_get_is_304_until_a_change(client: Client) -> None:
    put_doc(client, "alice", "sip:a@example.com")
    etag = client.get(RLS_INDEX).headers["ETag"]
    assert client.get(RLS_INDEX, headers={"If-None-Match": etag}).status == "304 Not Modified"
    put_service(client, "alice", "sip:b@example.com")
    assert client.get(RLS_INDEX, headers={"If-None-Match": etag}).status == "200 OK"


# -- documents written by another program ---------------------------------------------------------

def test_document_written_by_another_program_is_warned_about_and_reindex_takes_it_in(
        storage: DBAPIStorage, caplog: pytest.LogCaptureFixture) -> None:
    client = Client(XCAPMiddleware(None, storage=storage))
    put_doc(client, "alice", "sip:alice@example.com")
    kamailio_inserts(storage, "kam", "sip:kam-1@example.com", "sip:kam-2@example.com")
    caplog.clear()
    another_worker(storage).ensure_schema()  # a worker starting
    assert storage_warnings(caplog) == [stale_warning(storage.table, 1)]
    assert storage.services.reindex() == service_index.Reindexed(documents=2, services=3, repeated=0)
    assert_refused(put_doc(client, "bob", "sip:kam-2@example.com"), (1, alternatives("sip:kam-2@example.com")))
    assert b'uri="sip:kam-1@example.com"' in client.get(RLS_INDEX).data
    caplog.clear()
    another_worker(storage).ensure_schema()
    assert storage_warnings(caplog) == []


def another_worker(storage: DBAPIStorage) -> DBAPIStorage:
    """A storage of its own on the same table, as each worker process opens."""
    other = open_storage(storage.url, storage.table)
    assert isinstance(other, DBAPIStorage)
    return other


def test_global_index_read_checks_the_index_at_most_once_a_minute(
        storage: DBAPIStorage, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client(XCAPMiddleware(None, storage=storage))
    client.get(RLS_INDEX)
    kamailio_inserts(storage, "kam", "sip:kam@example.com")
    caplog.clear()
    client.get(RLS_INDEX)
    assert storage_warnings(caplog) == []  # checked at start, less than a minute ago
    monkeypatch.setattr(service_index, "CHECK_INTERVAL_S", 0.0)
    client.get(RLS_INDEX)
    assert storage_warnings(caplog) == [stale_warning(storage.table, 1)]


def test_document_deleted_by_another_program_frees_its_uris_at_once(storage: DBAPIStorage) -> None:
    client = Client(XCAPMiddleware(None, storage=storage))
    put_doc(client, "alice", "sip:friends@example.com")
    foreign_write(storage, sql.DELETE_DOC, doc_uri("alice"))
    assert client.get(RLS_INDEX).data == rls_services_global_index([])
    assert put_doc(client, "bob", "sip:friends@example.com").status == "201 Created"
    assert storage.services.reindex() == service_index.Reindexed(documents=1, services=1, repeated=0)


def test_index_rows_of_documents_another_program_deleted_are_dropped_without_a_warning(
        storage: DBAPIStorage, caplog: pytest.LogCaptureFixture) -> None:
    client = Client(XCAPMiddleware(None, storage=storage))
    put_doc(client, "alice", "sip:a@example.com")
    put_doc(client, "bob", "sip:b@example.com")
    foreign_write(storage, sql.DELETE_DOC, doc_uri("alice"))
    caplog.set_level(logging.INFO, "xcap_wsgi.storage")
    caplog.clear()
    another_worker(storage).ensure_schema()
    assert [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "xcap_wsgi.storage"] == [
        ("INFO", f"dropped the service index rows of 1 rls-services documents deleted from table {storage.table}")]
    assert storage.services.reindex() == service_index.Reindexed(documents=1, services=1, repeated=0)


def test_import_indexes_its_documents_and_keeps_a_repeated_uri_with_its_first_holder(storage: DBAPIStorage) -> None:
    """An import restores documents as stored, RS3 breaches of the old server included."""
    rows = [(DocKey(doc_uri(u), f"sip:{u}", "example.com", 8), Document(rls(f"sip:{u}@example.com", "sip:dup@example.com"),
                                                                    new_etag())) for u in ("alice", "bob")]
    assert storage.load(rows) == (2, 0)
    client = Client(XCAPMiddleware(None, storage=storage))
    assert client.get(RLS_INDEX).data == rls_services_global_index(storage.documents(8))
    assert_refused(put_doc(client, "carol", "sip:dup@example.com"), (1, alternatives("sip:dup@example.com")))
    assert_refused(put_doc(client, "carol", "sip:bob@example.com"), (1, alternatives("sip:bob@example.com")))
    client.delete(doc_url("alice"))
    assert_refused(put_doc(client, "carol", "sip:dup@example.com"), (1, alternatives("sip:dup@example.com")))
    assert storage.services.reindex() == service_index.Reindexed(documents=1, services=2, repeated=0)


def test_a_database_from_before_the_index_is_indexed_when_first_used(
        storage: DBAPIStorage, caplog: pytest.LogCaptureFixture) -> None:
    client = Client(XCAPMiddleware(None, storage=storage))
    put_doc(client, "alice", "sip:alice@example.com", "sip:friends@example.com")
    put_doc(client, "bob", "sip:bob@example.com")
    for table in storage.services.tables:
        storage.run(lambda cursor, t=table: cursor.execute(f"DROP TABLE {t}"))
    caplog.set_level(logging.INFO, "xcap_wsgi.storage")
    caplog.clear()
    upgraded = another_worker(storage)
    upgraded.ensure_schema()
    assert [r.getMessage() for r in caplog.records if r.name == "xcap_wsgi.storage"] == [
        f"indexed the rls-services documents of table {storage.table}: 2 documents, 3 services"]
    assert_refused(put_doc(Client(XCAPMiddleware(None, storage=upgraded)), "carol", "sip:friends@example.com"),
                   (1, alternatives("sip:friends@example.com")))
    upgraded.close()


@pytest.mark.mysql
def test_mysql_index_follows_the_collation_of_kamailios_table(mysql_table: str) -> None:
    table = mysql_table + "_kci"
    mysql_drop(table)
    create_ci_xcap_table(table)
    storage = MySQLStorage(MYSQL_URL, table)
    try:
        client = Client(XCAPMiddleware(None, storage=storage))
        put_doc(client, "alice", "sip:friends@example.com")
        assert_refused(put_doc(client, "bob", "sip:friends@example.com"), (1, alternatives("sip:friends@example.com")))
        assert index_collations(storage) == {"utf8mb4_general_ci"}
        foreign_write(storage, "ALTER TABLE {t} MODIFY doc_uri VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
                               " NOT NULL, MODIFY etag VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL")
        MySQLStorage(MYSQL_URL, table).ensure_schema()
        assert index_collations(storage) == {"utf8mb4_bin"}
        assert client.get(RLS_INDEX).data.count(b"<service ") == 1
    finally:
        storage.close()
        drop_index(table)
        mysql_drop(table)


def index_collations(storage: DBAPIStorage) -> set[str]:
    conn = mysql_connect()
    with conn.cursor() as cur:
        cur.execute("SELECT collation_name FROM information_schema.columns WHERE table_schema = DATABASE()"
                    " AND table_name IN (%s, %s) AND column_name IN ('doc_uri', 'etag')", storage.services.tables)
        found = {row[0] for row in cur.fetchall()}
    conn.close()
    return found


def drop_index(table: str) -> None:
    conn = mysql_connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{table}_rls_services`, `{table}_rls_documents`")
    conn.close()


# -- a storage of another kind keeps working without the index ------------------------------------

class MemoryStorage(Storage):
    """A third-party backend that knows nothing of the index: RS3 and RS6 scan its documents."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[DocKey, Document]] = {}

    def get(self, key: DocKey | str) -> Document | None:
        doc_uri = key if isinstance(key, str) else key.doc_uri
        return self.rows[doc_uri][1] if doc_uri in self.rows else None

    def update(self, key: DocKey, change: Change, describe: Describe | None = None) -> WriteResult:
        current = self.get(key.doc_uri)
        new = change(current)
        if new is None:
            self.rows.pop(key.doc_uri, None)
            return WriteResult(False, None)
        self.rows[key.doc_uri] = (key, Document(new, new_etag()))
        return WriteResult(current is None, self.rows[key.doc_uri][1].etag)

    def documents(self, doc_type: int) -> Iterator[tuple[str, bytes]]:
        return iter(sorted((uri, d.doc) for uri, (k, d) in self.rows.items() if k.doc_type == doc_type))

    def owned(self, username: str, domain: str) -> list[tuple[str, str, int]]:
        return []

    def ensure_schema(self) -> None:
        pass


def test_storage_without_the_index_scans_its_documents_for_rs3_and_rs6() -> None:
    storage = MemoryStorage()
    client = Client(XCAPMiddleware(None, storage=storage))
    put_doc(client, "alice", "sip:friends@example.com")
    assert_refused(put_doc(client, "bob", "sip:friends@example.com"), (1, alternatives("sip:friends@example.com")))
    assert client.get(RLS_INDEX).data == rls_services_global_index(storage.documents(8))


# -- xcap-wsgi reindex ----------------------------------------------------------------------------

def test_reindex_command_rebuilds_the_index_and_reports_counts(tmp_path: Path) -> None:
    storage = SQLiteStorage(str(tmp_path / "x.db"))
    put_doc(Client(XCAPMiddleware(None, storage=storage)), "alice", "sip:alice@example.com")
    kamailio_inserts(storage, "kam", "sip:kam@example.com", "sip:alice@example.com")
    storage.close()
    result = run("reindex", "--db-url", "sqlite:///x.db", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "xcap-wsgi: indexed 3 services of 2 rls-services documents in sqlite:///x.db;"
           " services repeating a URI that an earlier document keeps: 1\n", "")


@pytest.mark.parametrize(("args", "status", "stderr"), [
    pytest.param(["--db-url", "sqlite:///missing.db"], 2, "xcap-wsgi: configuration error: no database file missing.db\n",
                 id="no-file"),
    pytest.param(["--db-url", "sqlite:///x.db", "--xcap-table", "other"], 2,
                 "xcap-wsgi: configuration error: no table 'other' in sqlite:///x.db\n", id="no-table"),
    pytest.param(["--xcap-table", "a;b"], 2,
                 "xcap-wsgi: configuration error: --xcap-table must match ^[A-Za-z0-9_]{1,64}$, got 'a;b'\n",
                 id="bad-table"),
    pytest.param(["--db-url", UNREACHABLE], 1, REFUSED, id="unreachable"),
])
def test_reindex_command_errors_are_one_line(tmp_path: Path, args: list[str], status: int, stderr: str) -> None:
    SQLiteStorage(str(tmp_path / "x.db")).ensure_schema()
    result = run("reindex", *args, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (status, "", stderr)


@pytest.mark.mysql
def test_reindex_command_on_mysql(tmp_path: Path, mysql_table: str) -> None:
    table = mysql_table + "_reindex"
    mysql_drop(table)
    storage = MySQLStorage(MYSQL_URL, table)
    try:
        put_doc(Client(XCAPMiddleware(None, storage=storage)), "alice", "sip:a@example.com", "sip:b@example.com")
        result = run("reindex", "--db-url", MYSQL_URL, "--xcap-table", table, cwd=tmp_path)
        assert (result.returncode, result.stderr) == (0, "")
        assert result.stdout == f"xcap-wsgi: indexed 2 services of 1 rls-services document in {storage.description}\n"
    finally:
        storage.close()
        drop_index(table)
        mysql_drop(table)


def test_initdb_creates_the_index_tables(tmp_path: Path) -> None:
    assert run("initdb", "--db-url", "sqlite:///x.db", cwd=tmp_path).returncode == 0
    storage = SQLiteStorage(str(tmp_path / "x.db"))
    names = storage.run(lambda c: c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'xcap_rls%'"
                                            " ORDER BY name").fetchall())
    storage.close()
    assert names == [("xcap_rls_documents",), ("xcap_rls_services",)]
