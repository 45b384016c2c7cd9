"""The PostgreSQL backend (issue 11 item 2): its URL, BYTEA rows, the auth tables, the
commands, and every wait bounded as MySQL's (issue 9).

The shared storage contract and the HTTP tests run on it through conftest's ``postgresql``
backend; this file holds what is PostgreSQL's own. The waits are real (the default timeouts, a
real row lock, a black hole in front of the server), so those scenarios start at once, each in
a thread of its own, and each test asserts on its scenario's outcome.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from tests.blackhole import BlackHole
from tests.conftest import POSTGRESQL_URL, postgresql_connect, postgresql_drop
from tests.docs import PRES_RULES, PRES_RULES_URI, RESOURCE_LISTS, RL_MIME, RL_URI
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.auth.credentials import SubscriberStore
from xcap_wsgi.auth.nonces import SQLNonceCounter
from xcap_wsgi.cli import main
from xcap_wsgi.storage import DocKey, StorageUnavailable, open_storage
from xcap_wsgi.storage.dbapi import Retry, TimedOut

pytestmark = pytest.mark.postgresql
TABLE = f"xcap_pg_{os.getpid()}"
#: the documented bound (connect 2 s + read 7 s) and a margin for a loaded machine
BOUND_S = 9 + 3
KEY = DocKey(RL_URI, "alice", "example.com", 4)


def pg(url: str = POSTGRESQL_URL, table: str = TABLE) -> Any:
    from xcap_wsgi.storage.postgresql import PostgreSQLStorage
    return PostgreSQLStorage(url, table)


@pytest.fixture
def table() -> Iterator[str]:
    postgresql_drop(TABLE)
    yield TABLE
    postgresql_drop(TABLE)


def rows(statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with postgresql_connect() as conn:
        return [tuple(row) for row in conn.execute(statement, params or None).fetchall()]


# -- the URL --------------------------------------------------------------------------------

@pytest.mark.parametrize(("url", "args"), [
    pytest.param("postgresql://kamailio:s%40cret@db.example.com:5433/kamailio",
                 {"host": "db.example.com", "port": 5433, "user": "kamailio", "password": "s@cret", "dbname": "kamailio"},
                 id="full"),
    pytest.param("postgres://root@127.0.0.1/test", {"host": "127.0.0.1", "port": 5432, "user": "root", "dbname": "test"},
                 id="postgres-scheme"),
    pytest.param("postgresql:///opensips?host=/var/run/postgresql&sslmode=disable",
                 {"host": "/var/run/postgresql", "port": 5432, "user": "postgres", "dbname": "opensips",
                  "sslmode": "disable"}, id="unix-socket"),
])
def test_url_gives_the_connect_arguments(url: str, args: dict[str, Any]) -> None:
    from xcap_wsgi.storage.postgresql import parse_postgresql_url
    assert parse_postgresql_url(url) == args


@pytest.mark.parametrize(("url", "message"), [
    pytest.param("postgresql://root@127.0.0.1/", "the PostgreSQL URL must name one database:"
                 " postgresql://user:pass@host/dbname, got 'postgresql://root@127.0.0.1/'", id="no-database"),
    pytest.param("postgresql://root@127.0.0.1/test?options=-csearch_path%3Dx",
                 "unsupported PostgreSQL URL parameter(s): options", id="parameter"),
])
def test_bad_url_is_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        open_storage(url)
    assert str(refused.value) == message


def test_without_psycopg_the_url_is_refused_saying_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(ValueError) as refused:
        open_storage("postgresql://root@127.0.0.1/test")
    assert str(refused.value) == ("a postgresql:// db_url needs psycopg, which cannot be imported (import of psycopg"
                                  " halted; None in sys.modules): pip install 'xcap-wsgi[postgresql]'")


def test_description_leaves_the_password_out() -> None:
    assert pg("postgres://kamailio:secret@127.0.0.1:5433/kamailio").description == \
        "postgresql://kamailio@127.0.0.1:5433/kamailio"


@pytest.mark.parametrize(("error", "kind"), [
    ("UniqueViolation", Retry), ("SerializationFailure", Retry), ("DeadlockDetected", Retry),
    ("LockNotAvailable", TimedOut), ("QueryCanceled", TimedOut), ("_WaitTimeout", TimedOut),
    ("AdminShutdown", StorageUnavailable), ("CannotConnectNow", StorageUnavailable),
    ("TooManyConnections", StorageUnavailable), ("ReadOnlySqlTransaction", StorageUnavailable),
    ("OperationalError", StorageUnavailable), ("UndefinedTable", None), ("NotNullViolation", None),
])
def test_each_error_is_a_race_a_timeout_an_outage_or_a_bug(error: str, kind: type[Exception] | None) -> None:
    """40001/40P01 replay the whole transaction, as MySQL's 1213 (a lost race)."""
    import psycopg
    assert pg()._classify(getattr(psycopg.errors, error)("x")) is kind


# -- the rows --------------------------------------------------------------------------------

def test_doc_is_bytea_holding_the_exact_bytes(table: str) -> None:
    """Sent as a binary parameter: a backslash or NUL is not bytea escape syntax to the server."""
    storage = pg()
    doc = RESOURCE_LISTS + b"<!-- \\x00 \\\\ -->\x00"
    storage.update(KEY, lambda current: doc)
    assert rows(f'SELECT pg_typeof(doc)::text, octet_length(doc), encode(doc, \'hex\') FROM "{table}"') == [
        ("bytea", len(doc), doc.hex())]
    assert storage.get(KEY).doc == doc  # type: ignore[union-attr]
    storage.close()


def test_http_row_is_what_kamailio_reads(table: str) -> None:
    storage = pg()
    resp = Client(XCAPMiddleware(None, storage=storage)).put(
        "/xcap-root/pres-rules/users/sip%3Aalice%40example.com/index", data=PRES_RULES,
        content_type="application/auth-policy+xml")
    assert rows(f'SELECT username, domain, doc, doc_type, etag, source, doc_uri, port FROM "{table}"') == [
        ("alice", "example.com", PRES_RULES, 2, resp.headers["ETag"].strip('"'), 0, PRES_RULES_URI, 0)]
    assert rows("SELECT table_version FROM version WHERE table_name = %s", table) == [(4,)]
    storage.close()


def test_a_connection_the_server_ended_while_idle_is_reopened(table: str) -> None:
    storage = pg()
    storage.update(KEY, lambda current: RESOURCE_LISTS)
    pid = storage.run(lambda cursor: cursor.connection.info.backend_pid)
    assert rows("SELECT pg_terminate_backend(%s)", pid) == [(True,)]
    assert storage.get(KEY).doc == RESOURCE_LISTS  # type: ignore[union-attr]
    storage.close()


def test_workers_making_the_schema_of_a_new_database_at_once_all_succeed(table: str) -> None:
    """CREATE ... IF NOT EXISTS races in PostgreSQL (a duplicate key in its catalog, or the
    relation created meanwhile): the loser replays and finds the tables."""
    storages = [pg() for _ in range(4)]
    with ThreadPoolExecutor(len(storages)) as pool:
        assert [f.result() for f in [pool.submit(s.ensure_schema) for s in storages]] == [None] * len(storages)
    assert {s.dialect.name for s in storages} == {"kamailio"}
    assert rows("SELECT table_version FROM version WHERE table_name = %s", table) == [(4,)]
    for storage in storages:
        storage.close()


# -- auth tables, commands ---------------------------------------------------------------------------

def test_subscriber_table_and_nonce_counts_on_postgresql() -> None:
    subscriber, nonces = f"subscriber_pg_{os.getpid()}", f"nonce_pg_{os.getpid()}"
    for name in (subscriber, nonces):
        postgresql_drop(name)
    try:
        store = SubscriberStore(POSTGRESQL_URL, subscriber)
        store.add_user("sip:alice@example.com", "pw")
        found = store("alice", "example.com")
        assert found is not None
        assert found.ha1_for("MD5", "alice", "example.com") == hashlib.md5(b"alice:example.com:pw").hexdigest()
        assert rows("SELECT table_version FROM version WHERE table_name = %s", subscriber) == [(7,)]
        assert rows("SELECT indexname FROM pg_indexes WHERE tablename = %s ORDER BY indexname", subscriber) == [
            (f"{subscriber}_account_idx",), (f"{subscriber}_pkey",), (f"{subscriber}_username_idx",)]
        store.delete_user("sip:alice@example.com")
        assert store("alice", "example.com") is None
        store.close()
        counter = SQLNonceCounter(POSTGRESQL_URL, nonces)
        expires = int(time.time()) + 60
        assert [counter.advance("n1", nc, expires) for nc in (1, 1, 3, 2, 4)] == [True, False, True, False, True]
        counter.close()
    finally:
        for name in (subscriber, nonces):
            postgresql_drop(name)


def test_initdb_export_import_reindex_and_user_on_a_postgresql_url(
        table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, subscriber = POSTGRESQL_URL, f"subscriber_cli_{os.getpid()}"
    postgresql_drop(subscriber)
    try:
        assert main(["initdb", "--db-url", url, "--xcap-table", table, "--schema", "opensips"]) == 0
        storage = pg()
        client = Client(XCAPMiddleware(None, storage=storage))
        put = client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME)
        backup = tmp_path / "backup.jsonl"
        assert main(["export", "--db-url", url, "--xcap-table", table, str(backup)]) == 0
        header, record = [json.loads(line) for line in backup.read_text().splitlines()]
        assert header == {"format": "xcap-wsgi-export", "version": 1}
        assert (record["doc_uri"], record["etag"]) == (RL_URI, put.headers["ETag"].strip('"'))
        assert client.delete(RL_URI).status == "200 OK"
        assert main(["import", "--db-url", url, "--xcap-table", table, str(backup)]) == 0
        got = client.get(RL_URI)
        assert (got.data, got.headers["ETag"]) == (RESOURCE_LISTS, put.headers["ETag"])
        assert main(["reindex", "--db-url", url, "--xcap-table", table]) == 0
        assert main(["user", "add", "sip:bob@example.com", "--password", "pw", "--db-url", url,
                     "--table", subscriber]) == 0
        assert rows(f'SELECT username, domain FROM "{subscriber}"') == [("bob", "example.com")]
        storage.close()
        capsys.readouterr()
    finally:
        postgresql_drop(subscriber)


# -- bounded waits ------------------------------------------------------------------------------------


def unavailable(call: Callable[[], object]) -> tuple[str, float]:
    start = time.monotonic()
    try:
        call()
    except StorageUnavailable as exc:
        return type(exc).__name__, time.monotonic() - start
    return "answered", time.monotonic() - start


def never_answers() -> tuple[str, float]:
    with BlackHole("silent") as hole:
        return unavailable(lambda: pg(hole.url(POSTGRESQL_URL)).get(KEY))


def refused() -> tuple[str, float]:
    with BlackHole("close") as hole:
        return unavailable(lambda: pg(hole.url(POSTGRESQL_URL)).get(KEY))


def request_never_answered() -> tuple[tuple[str, str | None], float]:
    with BlackHole("silent") as hole:
        client = Client(XCAPMiddleware(None, storage=pg(hole.url(POSTGRESQL_URL))))
        start = time.monotonic()
        resp = client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME)
        return (resp.status, resp.headers.get("Retry-After")), time.monotonic() - start


def initdb_never_answered(cwd: Path) -> tuple[int, str, str]:
    with BlackHole("silent") as hole:
        url = hole.url(POSTGRESQL_URL)
        done = subprocess.run([sys.executable, "-m", "xcap_wsgi", "initdb", "--db-url", url], cwd=cwd,
                              capture_output=True, text=True, timeout=BOUND_S + 10)
        return done.returncode, done.stdout, done.stderr


def silenced_mid_session(table: str) -> tuple[str, float]:
    from xcap_wsgi.storage.postgresql import parse_postgresql_url
    args = parse_postgresql_url(POSTGRESQL_URL)
    with BlackHole("silent", forward_to=(args["host"], args["port"])) as hole:
        storage = pg(hole.url(POSTGRESQL_URL), table)
        storage.ensure_schema()  # the connection is open, and reused from here on
        hole.silence()
        return unavailable(lambda: storage.get(DocKey(RL_URI + "-silenced", "alice", "example.com", 4)))


def row_locked(table: str) -> tuple[str, float, str]:
    """The outcome and wait of a writer behind another's row lock, and a write after it."""
    key = DocKey(RL_URI + "-locked", "alice", "example.com", 4)
    storage = pg(table=table)
    storage.update(key, lambda current: b"<a/>")
    with postgresql_connect() as blocker:
        blocker.execute("BEGIN")
        blocker.execute(f'SELECT doc FROM "{table}" WHERE doc_uri = %s FOR UPDATE', (key.doc_uri,))
        outcome = unavailable(lambda: storage.update(key, lambda current: b"<b/>"))
        blocker.execute("ROLLBACK")
    after = storage.update(key, lambda current: b"<c/>")
    storage.close()
    return (*outcome, "written" if after.etag else "lost")


@pytest.fixture(scope="module")
def waits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[Any]]]:
    """Every scenario started at once; a test waits for its own."""
    postgresql_connect().close()
    table = TABLE + "_waits"
    postgresql_drop(table)
    pg(table=table).ensure_schema()
    scenarios: dict[str, Callable[[], Any]] = {
        "never-answers": never_answers, "refused": refused, "request": request_never_answered,
        "silenced": lambda: silenced_mid_session(table), "row-locked": lambda: row_locked(table),
        "initdb": lambda: initdb_never_answered(tmp_path_factory.mktemp("initdb")),
    }
    with ThreadPoolExecutor(len(scenarios)) as pool:
        yield {name: pool.submit(run) for name, run in scenarios.items()}
    postgresql_drop(table)


def test_postgresql_that_never_answers_is_unavailable_after_the_connect_timeout(waits: dict[str, Future[Any]]) -> None:
    outcome, elapsed = waits["never-answers"].result()
    assert outcome == "StorageUnavailable"
    assert elapsed < 2 + 3


def test_postgresql_that_refuses_is_unavailable_at_once(waits: dict[str, Future[Any]]) -> None:
    outcome, elapsed = waits["refused"].result()
    assert outcome == "StorageUnavailable"
    assert elapsed < 3


def test_request_to_postgresql_that_never_answers_is_503_with_retry_after(waits: dict[str, Future[Any]]) -> None:
    answer, elapsed = waits["request"].result()
    assert answer[0] == "503 Service Unavailable"
    assert answer[1] is not None
    assert elapsed < BOUND_S


def test_postgresql_that_stops_answering_on_a_reused_connection_is_waited_for_once(waits: dict[str, Future[Any]]) -> None:
    outcome, elapsed = waits["silenced"].result()
    assert outcome == "StorageUnavailable"
    assert elapsed < BOUND_S


def test_postgresql_row_locked_by_another_writer_is_unavailable_after_one_lock_wait(
        waits: dict[str, Future[Any]]) -> None:
    outcome, elapsed, after = waits["row-locked"].result()
    assert (outcome, after) == ("StorageUnavailable", "written")
    assert 5 - 0.5 < elapsed < 5 + 3


def test_initdb_against_postgresql_that_never_answers_exits_1(waits: dict[str, Future[Any]]) -> None:
    assert waits["initdb"].result() == (1, "", "xcap-wsgi: database unavailable: connection timeout expired\n")
