"""The storage contract, shared by both backends (MySQL through each driver), and Kamailio's view of the MySQL table."""

from __future__ import annotations

import contextlib
import gc
import sqlite3
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from tests.conftest import MYSQL_URL, create_ci_xcap_table, mysql_connect, mysql_drop
from tests.docs import MINIMAL, PRES_RULES, PRES_RULES_URI, RESOURCE_LISTS, RESOURCE_LISTS_TABS, RL_MIME, RL_URI
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.errors import NotFound
from xcap_wsgi.storage import DocKey, Document, Storage
from xcap_wsgi.storage.mysql import MySQLStorage
from xcap_wsgi.storage.sqlite import SQLiteStorage

KEY = DocKey(RL_URI, "alice", "example.com", 4)


# -- the contract ---------------------------------------------------------------------

def test_get_missing_is_none(storage: Storage) -> None:
    assert storage.get(RL_URI) is None


def test_update_inserts_then_replaces_with_new_etag(storage: Storage) -> None:
    seen: list[Document | None] = []

    def write(body: bytes) -> Any:
        return lambda current: (seen.append(current), body)[1]

    first = storage.update(KEY, write(b"<a/>"))
    second = storage.update(KEY, write(b"<b/>"))
    assert (first.created, second.created) == (True, False)
    assert first.etag != second.etag
    assert seen == [None, Document(b"<a/>", first.etag)]
    assert storage.get(RL_URI) == Document(b"<b/>", second.etag)


def test_update_returning_none_deletes(storage: Storage) -> None:
    storage.update(KEY, lambda current: b"<a/>")
    result = storage.update(KEY, lambda current: None)
    assert (result.created, result.etag) == (False, None)
    assert storage.get(RL_URI) is None


def test_change_that_raises_writes_nothing(storage: Storage) -> None:
    etag = storage.update(KEY, lambda current: b"<a/>").etag

    def refuse(current: Document | None) -> bytes:
        raise NotFound("no")

    with pytest.raises(NotFound):
        storage.update(KEY, refuse)
    assert storage.get(RL_URI) == Document(b"<a/>", etag)


def test_documents_lists_one_doc_type_in_uri_order(storage: Storage) -> None:
    for uri, doc_type in [(RL_URI.replace("alice", "zed"), 4), (RL_URI, 4), (PRES_RULES_URI, 2)]:
        storage.update(DocKey(uri, "u", "d", doc_type), lambda current, uri=uri: uri.encode())
    assert list(storage.documents(4)) == [
        (RL_URI, RL_URI.encode()), (RL_URI.replace("alice", "zed"), RL_URI.replace("alice", "zed").encode())]


def test_large_document_round_trips(storage: Storage) -> None:
    big = b"<r>" + b"x" * (3 * 1024 * 1024) + b"</r>"  # pitfall 11.5: beyond TEXT's 64 KB
    storage.update(KEY, lambda current: big)
    stored = storage.get(RL_URI)
    assert stored is not None and stored.doc == big


def test_any_bytes_round_trip(storage: Storage) -> None:
    utf16 = '<?xml version="1.0" encoding="UTF-16"?><r n="\u00e9\u20ac"/>'.encode("utf-16")  # not UTF-8: a BLOB, not text
    storage.update(KEY, lambda current: utf16 + bytes(range(256)))
    assert storage.get(RL_URI).doc == utf16 + bytes(range(256))  # type: ignore[union-attr]


def test_non_ascii_uri_and_owner_round_trip(storage: Storage) -> None:
    uri = RL_URI.replace("alice", "j\u00f6ns%E2%82%AC")
    storage.update(DocKey(uri, "j\u00f6ns", "\u00e9xample.com", 4), lambda current: b"<a/>")
    assert list(storage.documents(4)) == [(uri, b"<a/>")]
    assert [(u, size) for u, _, size in storage.owned("j\u00f6ns", "\u00e9xample.com")] == [(uri, 4)]


def test_doc_uri_is_case_sensitive(storage: Storage) -> None:
    storage.update(KEY, lambda current: b"<lower/>")
    upper = DocKey(RL_URI.replace("alice", "Alice"), "Alice", "example.com", 4)
    assert storage.update(upper, lambda current: b"<upper/>").created is True
    assert storage.get(RL_URI).doc == b"<lower/>"  # type: ignore[union-attr]


def test_ensure_schema_is_idempotent(storage: Storage) -> None:
    storage.update(KEY, lambda current: b"<a/>")
    storage.ensure_schema()
    storage.ensure_schema()
    assert storage.get(RL_URI).doc == b"<a/>"  # type: ignore[union-attr]


# -- database unavailable -------------------------------------------------------------------

class TCPForwarder:
    """A TCP proxy to MySQL that the test can take down and bring back."""

    def __init__(self, host: str, port: int) -> None:
        import socket

        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.conns: list[Any] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.target)
            self.conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: Any, b: Any) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def down(self) -> None:
        self.up = False
        for s in self.conns:
            with contextlib.suppress(OSError):
                s.close()
        self.conns.clear()

    def close(self) -> None:
        self.down()
        self.listener.close()


@pytest.fixture
def forwarder(mysql_table: str) -> Iterator[TCPForwarder]:
    from xcap_wsgi.storage.mysql import parse_mysql_url

    args = parse_mysql_url(MYSQL_URL)
    fwd = TCPForwarder(args["host"], args["port"])
    yield fwd
    fwd.close()


@pytest.mark.mysql
def test_mysql_down_is_503_with_retry_after_and_recovers(
    forwarder: TCPForwarder, mysql_table: str, mysql_driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = MYSQL_URL.replace(MYSQL_URL.split("@")[1].split("/")[0], f"127.0.0.1:{forwarder.port}")
    storage = MySQLStorage(url, mysql_table, driver=mysql_driver)
    storage.ensure_schema()
    client = Client(XCAPMiddleware(None, storage=storage))
    client.delete(RL_URI)
    assert client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME).status == "201 Created"

    forwarder.down()
    for request in (lambda: client.get(RL_URI),
                    lambda: client.put(RL_URI, data=RESOURCE_LISTS_TABS, content_type=RL_MIME)):
        resp = request()
        assert (resp.status, resp.headers["Retry-After"], resp.data) == (
            "503 Service Unavailable", "5", b"document store unavailable, try again later\n")
    assert any("database unavailable" in r.getMessage() for r in caplog.records)

    forwarder.up = True
    resp = client.get(RL_URI)
    assert (resp.status, resp.data) == ("200 OK", RESOURCE_LISTS)  # nothing half-written
    storage.close()


@pytest.mark.mysql
def test_mysql_connection_killed_while_idle_is_reopened(mysql_table: str, mysql_driver: str) -> None:
    storage = MySQLStorage(MYSQL_URL, mysql_table, driver=mysql_driver)
    storage.update(KEY, lambda current: b"<a/>")
    conn, _ = storage._connection()
    admin = mysql_connect()
    with admin.cursor() as cur:
        cur.execute(f"KILL {conn.thread_id()}")
    admin.close()
    assert storage.get(RL_URI).doc == b"<a/>"  # type: ignore[union-attr]
    storage.close()


def test_sqlite_unopenable_file_is_503(tmp_path: Path) -> None:
    client = Client(XCAPMiddleware(None, db_url=f"sqlite:///{tmp_path}/missing-dir/x.db"))
    resp = client.get(RL_URI)
    assert (resp.status, resp.headers["Retry-After"]) == ("503 Service Unavailable", "5")


def test_sqlite_write_lock_held_too_long_is_503_and_reads_continue(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    storage = SQLiteStorage(path, busy_timeout=0.2)
    client = Client(XCAPMiddleware(None, storage=storage))
    assert client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME).status == "201 Created"
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        resp = client.put(RL_URI, data=RESOURCE_LISTS_TABS, content_type=RL_MIME)
        assert resp.status == "503 Service Unavailable"
        assert client.get(RL_URI).data == RESOURCE_LISTS
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert client.put(RL_URI, data=RESOURCE_LISTS_TABS, content_type=RL_MIME).status == "200 OK"
    storage.close()


# -- what Kamailio reads ---------------------------------------------------------------------

@pytest.fixture
def mysql_client(mysql_table: str, mysql_driver: str) -> Iterator[tuple[Client, Any]]:
    storage = MySQLStorage(MYSQL_URL, mysql_table, driver=mysql_driver)
    storage.ensure_schema()
    conn = mysql_connect()
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM `{mysql_table}`")
    yield Client(XCAPMiddleware(None, storage=storage)), conn
    conn.close()
    storage.close()


@pytest.mark.mysql
def test_mysql_row_is_what_kamailio_reads(mysql_client: tuple[Client, Any], mysql_table: str) -> None:
    client, conn = mysql_client
    resp = client.put("/xcap-root/pres-rules/users/sip%3Aalice%40example.com/index", data=PRES_RULES,
                      content_type="application/auth-policy+xml")
    with conn.cursor() as cur:
        cur.execute(f"SELECT username, domain, doc, doc_type, etag, source, doc_uri, port FROM `{mysql_table}`")
        rows = cur.fetchall()
    assert rows == (("alice", "example.com", PRES_RULES, 2, resp.headers["ETag"].strip('"'), 0, PRES_RULES_URI, 0),)


@pytest.mark.mysql
@pytest.mark.parametrize("auid", sorted(MINIMAL))
def test_mysql_doc_type_is_kamailios_code(mysql_client: tuple[Client, Any], mysql_table: str, auid: str) -> None:
    client, conn = mysql_client
    doc_type, body = MINIMAL[auid]
    uri = f"/xcap-root/{auid}/users/sip:alice@example.com/dir/index"
    resp = client.put(uri, data=body)
    assert resp.status == "201 Created", resp.data
    with conn.cursor() as cur:
        cur.execute(f"SELECT doc_type, doc_uri FROM `{mysql_table}`")
        assert cur.fetchall() == ((doc_type, uri),)


@pytest.mark.mysql
def test_mysql_schema_is_kamailio_version_4(mysql_table: str, mysql_driver: str) -> None:
    mysql_drop(mysql_table)
    MySQLStorage(MYSQL_URL, mysql_table, driver=mysql_driver).ensure_schema()
    conn = mysql_connect()
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name, column_type, is_nullable, extra FROM information_schema.columns"
            " WHERE table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position", (mysql_table,))
        columns = cur.fetchall()
        cur.execute(
            "SELECT index_name, non_unique, GROUP_CONCAT(column_name ORDER BY seq_in_index)"
            " FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = %s"
            " GROUP BY index_name, non_unique ORDER BY index_name", (mysql_table,))
        indexes = cur.fetchall()
        cur.execute("SELECT table_version FROM version WHERE table_name = %s", (mysql_table,))
        version = cur.fetchall()
    conn.close()
    assert [(c[0].lower(), c[1].lower(), c[2], c[3]) for c in columns] == [
        ("id", "int(10) unsigned", "NO", "auto_increment"),
        ("username", "varchar(64)", "NO", ""),
        ("domain", "varchar(64)", "NO", ""),
        ("doc", "mediumblob", "NO", ""),
        ("doc_type", "int(11)", "NO", ""),
        ("etag", "varchar(128)", "NO", ""),
        ("source", "int(11)", "NO", ""),
        ("doc_uri", "varchar(255)", "NO", ""),
        ("port", "int(11)", "NO", ""),
    ]
    assert indexes == (
        ("account_doc_type_idx", 1, "username,domain,doc_type"),
        ("account_doc_type_uri_idx", 1, "username,domain,doc_type,doc_uri"),
        ("account_doc_uri_idx", 1, "username,domain,doc_uri"),
        ("doc_uri_idx", 0, "doc_uri"),
        ("PRIMARY", 0, "id"),
    )
    assert version == ((4,),)


@pytest.mark.mysql
def test_mysql_ensure_schema_leaves_existing_tables_alone(mysql_table: str, mysql_driver: str) -> None:
    other = mysql_table + "_other"
    mysql_drop(other)
    conn = mysql_connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{other}` (x INT)")
        cur.execute(f"INSERT INTO `{other}` VALUES (7)")
    storage = MySQLStorage(MYSQL_URL, mysql_table, driver=mysql_driver)
    storage.update(KEY, lambda current: b"<kept/>")
    storage.ensure_schema()
    storage.ensure_schema()
    with conn.cursor() as cur:
        cur.execute(f"SELECT x FROM `{other}`")
        assert cur.fetchall() == ((7,),)
        cur.execute("SELECT COUNT(*) FROM version WHERE table_name = %s", (mysql_table,))
        assert cur.fetchone() == (1,)
    assert storage.get(RL_URI).doc == b"<kept/>"  # type: ignore[union-attr]
    conn.close()
    mysql_drop(other)
    storage.close()


def test_sqlite_schema_has_the_same_columns_and_indexes(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    storage = SQLiteStorage(path)
    storage.ensure_schema()
    storage.close()
    conn = sqlite3.connect(path)
    columns = [(r[1], r[2]) for r in conn.execute("PRAGMA table_info(xcap)")]
    indexes = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'"
                                                " AND tbl_name='xcap' AND sql IS NOT NULL"))
    version = conn.execute("SELECT table_version FROM version WHERE table_name='xcap'").fetchall()
    journal = conn.execute("PRAGMA journal_mode").fetchone()
    conn.close()
    assert columns == [("id", "INTEGER"), ("username", "VARCHAR(64)"), ("domain", "VARCHAR(64)"),
                       ("doc", "MEDIUMBLOB"), ("doc_type", "INT(11)"), ("etag", "VARCHAR(128)"),
                       ("source", "INT(11)"), ("doc_uri", "VARCHAR(255)"), ("port", "INT(11)")]
    assert indexes == ["account_doc_type_idx", "account_doc_type_uri_idx", "account_doc_uri_idx"]
    assert version == [(4,)]
    assert journal == ("wal",)


@pytest.mark.mysql
def test_mysql_case_insensitive_doc_uri_is_warned_about(
    mysql_table: str, mysql_driver: str, caplog: pytest.LogCaptureFixture
) -> None:
    table = mysql_table + "_ci"
    mysql_drop(table)
    create_ci_xcap_table(table)
    try:
        MySQLStorage(MYSQL_URL, table, driver=mysql_driver).ensure_schema()
        assert any(f"{table}.doc_uri has collation utf8mb4_general_ci" in r.getMessage() for r in caplog.records)
    finally:
        mysql_drop(table)


def test_sqlite_connections_are_closed_when_their_thread_ends_or_the_storage_is_dropped(tmp_path: Path) -> None:
    """Python 3.13 warns about a connection left to the garbage collector; earlier versions pass trivially."""
    storage = SQLiteStorage(str(tmp_path / "x.db"))
    worker = threading.Thread(target=storage.get, args=(RL_URI,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        worker.start()
        worker.join()
        storage.get(RL_URI)
        del storage
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
