"""Every wait on the database is bounded, and taken once (issue 9 item 2).

A MySQL server that accepts and never answers, a row locked by another writer, or a SQLite
file locked by another process is :class:`StorageUnavailable` — 503 with ``Retry-After`` —
within 10 s (MySQL) or 5 s (SQLite), never replayed into a second full wait. The limits
asserted here are the documented bounds plus a margin for a loaded machine, not speed goals.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from werkzeug.test import Client

from tests.blackhole import BlackHole
from tests.conftest import MYSQL_URL, mysql_connect
from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.storage import DocKey, Storage, StorageUnavailable
from xcap_wsgi.storage.mysql import (
    CONNECT_TIMEOUT_S,
    LOCK_WAIT_TIMEOUT_S,
    READ_TIMEOUT_S,
    WRITE_TIMEOUT_S,
    MySQLStorage,
    parse_mysql_url,
)
from xcap_wsgi.storage.sqlite import BUSY_TIMEOUT_S, SQLiteStorage

T = TypeVar("T")
KEY = DocKey(RL_URI, "alice", "example.com", 4)
MYSQL_BOUND_S = 10.0
SQLITE_BOUND_S = BUSY_TIMEOUT_S + 1.5
READ_TIMED_OUT = "(2013, 'Lost connection to MySQL server during query (timed out)')"
UNAVAILABLE = ("503 Service Unavailable", "5", b"document store unavailable, try again later\n")


def timed(call: Callable[[], T]) -> tuple[T, float]:
    start = time.monotonic()
    result = call()
    return result, time.monotonic() - start


def unavailable(call: Callable[[], object]) -> tuple[str, float]:
    """The StorageUnavailable message ``call`` raises, and how long it took to raise it."""
    def expect() -> str:
        with pytest.raises(StorageUnavailable) as info:
            call()
        return str(info.value)
    return timed(expect)


OPERATIONS = [
    pytest.param(lambda s: s.get(RL_URI), id="get"),
    pytest.param(lambda s: s.update(KEY, lambda current: b"<a/>"), id="update"),
    pytest.param(lambda s: s.ensure_schema(), id="ensure_schema"),
]


@pytest.fixture
def silent() -> Iterator[BlackHole]:
    with BlackHole("silent") as hole:
        yield hole


def test_mysql_timeouts_fit_the_10_s_bound() -> None:
    assert LOCK_WAIT_TIMEOUT_S < READ_TIMEOUT_S  # a queued writer hears the server's 1205
    assert CONNECT_TIMEOUT_S + max(READ_TIMEOUT_S, WRITE_TIMEOUT_S) < MYSQL_BOUND_S


# -- a database that accepts and never answers ------------------------------------------

@pytest.mark.parametrize("operation", OPERATIONS)
def test_mysql_that_never_answers_is_unavailable_after_the_read_timeout(
    silent: BlackHole, operation: Callable[[Storage], object]
) -> None:
    storage = MySQLStorage(silent.url())
    message, elapsed = unavailable(lambda: operation(storage))
    assert message == READ_TIMED_OUT
    assert elapsed < MYSQL_BOUND_S


@pytest.mark.parametrize(("mode", "message"), [
    pytest.param("close", "(2013, 'Lost connection to MySQL server during query')", id="accepts-then-closes"),
    pytest.param("full", "(2003, \"Can't connect to MySQL server on '127.0.0.1' (timed out)\")", id="never-accepts"),
])
def test_mysql_that_drops_the_connection_is_unavailable_at_once_or_after_the_connect_timeout(
    mode: str, message: str
) -> None:
    with BlackHole(mode) as hole:
        assert unavailable(lambda: MySQLStorage(hole.url()).get(RL_URI))[0] == message


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_request_to_mysql_that_never_answers_is_503_with_retry_after(silent: BlackHole, method: str) -> None:
    client = Client(XCAPMiddleware(None, db_url=silent.url()))
    resp, elapsed = timed(lambda: client.open(RL_URI, method=method, data=RESOURCE_LISTS, content_type=RL_MIME))
    assert (resp.status, resp.headers["Retry-After"], resp.data) == UNAVAILABLE
    assert elapsed < MYSQL_BOUND_S


def test_initdb_against_mysql_that_never_answers_exits_1(silent: BlackHole, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "xcap_wsgi", "initdb", "--db-url", silent.url()],
                            cwd=tmp_path, capture_output=True, text=True, timeout=12)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines()[-1] == f"xcap-wsgi: database unavailable: {READ_TIMED_OUT}"


# -- no second wait ------------------------------------------------------------------------

@pytest.mark.mysql
@pytest.mark.parametrize("operation", OPERATIONS[:2])
def test_mysql_that_stops_answering_on_a_reused_connection_is_waited_for_once(
    mysql_table: str, operation: Callable[[Storage], object]
) -> None:
    args = parse_mysql_url(MYSQL_URL)
    with BlackHole("silent", forward_to=(args["host"], args["port"])) as hole:
        storage = MySQLStorage(hole.url(MYSQL_URL), mysql_table)
        storage.ensure_schema()  # the connection is open, and reused from here on
        hole.silence()
        message, elapsed = unavailable(lambda: operation(storage))
    assert message == READ_TIMED_OUT
    assert elapsed < MYSQL_BOUND_S  # a replay would wait a second read timeout: 2 x 7 s


@pytest.mark.mysql
def test_mysql_row_locked_by_another_writer_is_unavailable_after_one_lock_wait(mysql_table: str) -> None:
    storage = MySQLStorage(MYSQL_URL, mysql_table)
    storage.update(KEY, lambda current: b"<a/>")
    blocker = mysql_connect()
    with blocker.cursor() as cur:
        cur.execute("START TRANSACTION")
        cur.execute(f"SELECT doc FROM `{mysql_table}` WHERE doc_uri = %s FOR UPDATE", (RL_URI,))
    try:
        message, elapsed = unavailable(lambda: storage.update(KEY, lambda current: b"<b/>"))
    finally:
        blocker.rollback()
        blocker.close()
    assert message == "(1205, 'Lock wait timeout exceeded; try restarting transaction')"
    assert LOCK_WAIT_TIMEOUT_S - 0.5 < elapsed < 1.5 * LOCK_WAIT_TIMEOUT_S  # one lock wait; two take 2 x 5 s
    storage.update(KEY, lambda current: None)
    storage.close()


def test_sqlite_locked_database_is_503_after_one_busy_timeout_and_writes_resume(tmp_path: Path) -> None:
    path = str(tmp_path / "x.db")
    client = Client(XCAPMiddleware(None, storage=SQLiteStorage(path)))
    assert client.get(RL_URI).status == "404 Not Found"  # schema ready, connection kept for reuse
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        resp, elapsed = timed(lambda: client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert (resp.status, resp.headers["Retry-After"], resp.data) == UNAVAILABLE
    assert BUSY_TIMEOUT_S - 0.5 < elapsed < SQLITE_BOUND_S  # writers queue, once; twice takes 2 x 5 s
    assert client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME).status == "201 Created"
