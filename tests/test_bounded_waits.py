"""Every wait on the database is bounded, and taken once (issue 9 item 2).

A MySQL server that accepts and never answers, a row locked by another writer, or a SQLite
file locked by another process is :class:`StorageUnavailable` — 503 with ``Retry-After`` —
within 10 s (MySQL) or 5 s (SQLite), never replayed into a second full wait. The limits
asserted here are the documented bounds plus a margin for a loaded machine, not speed goals.

Each wait is real (the default timeouts, a real lock), so the scenarios all start at once,
each in a thread of its own with its own black hole, database file or row, and each times
its own call: the waits overlap instead of adding up. A test asserts on its scenario's
outcome; what a scenario raised is raised in its test. Every MySQL scenario runs on both
drivers (PyMySQL and mysqlclient), at the same time.
"""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from werkzeug.test import Client

from tests.blackhole import BlackHole
from tests.conftest import MYSQL_DRIVERS, MYSQL_URL, mysql_connect, require_driver
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
#: How a scenario opens MySQL, ``(db_url, xcap_table)``: :class:`MySQLStorage` or another driver's.
StorageFactory = Callable[[str, str], Storage]
MYSQL_BOUND_S = 10.0
SQLITE_BOUND_S = BUSY_TIMEOUT_S + 1.5
#: How long a test waits for its scenario: every scenario ends well within this.
SCENARIO_LIMIT_S = 60.0
READ_TIMED_OUT = "(2013, 'Lost connection to MySQL server during query (timed out)')"
UNAVAILABLE = ("503 Service Unavailable", "5", b"document store unavailable, try again later\n")
OPERATIONS: dict[str, Callable[[Storage, DocKey], object]] = {
    "get": lambda s, key: s.get(key.doc_uri),
    "update": lambda s, key: s.update(key, lambda current: b"<a/>"),
    "ensure_schema": lambda s, key: s.ensure_schema(),
}


def doc_key(user: str) -> DocKey:
    """A resource list of ``user``'s own: scenarios sharing a table never touch one row."""
    return DocKey(RL_URI.replace("alice", user), user, "example.com", 4)


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


def answer(resp: Any) -> tuple[str, str | None, bytes]:
    return resp.status, resp.headers.get("Retry-After"), resp.data


# -- the scenarios, each run in a thread of its own ----------------------------------------

def never_answers(open_mysql: StorageFactory, operation: str) -> tuple[str, float]:
    with BlackHole("silent") as hole:
        storage = open_mysql(hole.url(), "xcap")
        return unavailable(lambda: OPERATIONS[operation](storage, doc_key("alice")))


def drops(open_mysql: StorageFactory, mode: str) -> str:
    with BlackHole(mode) as hole:
        return unavailable(lambda: open_mysql(hole.url(), "xcap").get(RL_URI))[0]


def request_never_answered(open_mysql: StorageFactory, method: str) -> tuple[tuple[str, str | None, bytes], float]:
    with BlackHole("silent") as hole:
        client = Client(XCAPMiddleware(None, storage=open_mysql(hole.url(), "xcap")))
        resp, elapsed = timed(lambda: client.open(RL_URI, method=method, data=RESOURCE_LISTS, content_type=RL_MIME))
        return answer(resp), elapsed


def initdb_never_answered(driver: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    with BlackHole("silent") as hole:
        return subprocess.run([sys.executable, "-m", "xcap_wsgi", "initdb", "--db-url", hole.url()],
                              cwd=cwd, capture_output=True, text=True, timeout=12,
                              env={**os.environ, "XCAP_MYSQL_DRIVER": driver})


def sqlite_locked(path: str) -> tuple[str, tuple[str, str | None, bytes], float, str]:
    """The status before, the answer and its wait while another process holds the file
    locked, and the status after."""
    storage = SQLiteStorage(path)
    client = Client(XCAPMiddleware(None, storage=storage))
    try:
        before = client.get(RL_URI).status  # schema ready, connection kept for reuse
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            resp, elapsed = timed(lambda: client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        return before, answer(resp), elapsed, client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME).status
    finally:
        storage.close()


def reused_connection_silenced(open_mysql: StorageFactory, table: str, user: str, operation: str) -> tuple[str, float]:
    args = parse_mysql_url(MYSQL_URL)
    with BlackHole("silent", forward_to=(args["host"], args["port"])) as hole:
        storage = open_mysql(hole.url(MYSQL_URL), table)
        storage.ensure_schema()  # the connection is open, and reused from here on
        hole.silence()
        return unavailable(lambda: OPERATIONS[operation](storage, doc_key(f"{user}-{operation}")))


def row_locked(open_mysql: StorageFactory, table: str, user: str) -> tuple[str, float]:
    key = doc_key(user)
    storage = open_mysql(MYSQL_URL, table)
    storage.update(key, lambda current: b"<a/>")
    blocker = mysql_connect()
    with blocker.cursor() as cur:
        cur.execute("START TRANSACTION")
        cur.execute(f"SELECT doc FROM `{table}` WHERE doc_uri = %s FOR UPDATE", (key.doc_uri,))
    try:
        outcome = unavailable(lambda: storage.update(key, lambda current: b"<b/>"))
    finally:
        blocker.rollback()
        blocker.close()
    storage.update(key, lambda current: None)
    storage.close()
    return outcome


def blackhole_scenarios(open_mysql: StorageFactory, tmp: pytest.TempPathFactory, driver: str
                        ) -> dict[str, Callable[[], object]]:
    """A MySQL that never answers or drops the connection, under the storage, the
    middleware and the CLI: no server needed."""
    return {
        **{f"never-answers/{operation}": partial(never_answers, open_mysql, operation) for operation in OPERATIONS},
        **{f"drops/{mode}": partial(drops, open_mysql, mode) for mode in ("close", "full")},
        **{f"request/{method}": partial(request_never_answered, open_mysql, method) for method in ("GET", "PUT")},
        "initdb": partial(initdb_never_answered, driver, tmp.mktemp("initdb")),
    }


def mysql_scenarios(open_mysql: StorageFactory, table: str, tag: str) -> dict[str, Callable[[], object]]:
    """A real MySQL server that stops answering, or holds a row locked, in ``table`` (rows
    of users named after ``tag``, so scenarios sharing the table never meet)."""
    return {
        **{f"reused/{operation}": partial(reused_connection_silenced, open_mysql, table, f"{tag}-reused", operation)
           for operation in ("get", "update")},
        "row-locked": partial(row_locked, open_mysql, table, f"{tag}-locked"),
    }


def installed_drivers() -> list[str]:
    """The drivers whose scenarios can run; a test of a missing one skips (fails under CI)."""
    return [d for d in MYSQL_DRIVERS if d == "pymysql" or importlib.util.find_spec("MySQLdb") is not None]


def mysql_scenarios_if_up(request: pytest.FixtureRequest) -> dict[str, Callable[[], object]]:
    """The MySQL scenarios when the server answers; when it does not, every ``mysql`` test
    skips (or fails under CI) on its own ``mysql_table``, and the others still run."""
    try:
        table = request.getfixturevalue("mysql_table")
    except (pytest.skip.Exception, pytest.fail.Exception):
        return {}
    storage = MySQLStorage(MYSQL_URL, table, driver="pymysql")
    storage.ensure_schema()  # the table exists before the scenarios reach it at once
    storage.close()
    return {f"{driver}/{name}": run for driver in installed_drivers()
            for name, run in mysql_scenarios(partial(MySQLStorage, driver=driver), table, driver).items()}


class Outcomes:
    """What each scenario returned, once it has; a scenario that raised raises the same
    exception, with its traceback, in the test that asks for its outcome."""

    def __init__(self, futures: dict[str, Future[Any]]) -> None:
        self.futures = futures

    def __getitem__(self, name: str) -> Any:
        return self.futures[name].result(timeout=SCENARIO_LIMIT_S)


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcomes]:
    scenarios = {
        **{f"{driver}/{name}": run for driver in installed_drivers()
           for name, run in blackhole_scenarios(partial(MySQLStorage, driver=driver), tmp_path_factory, driver).items()},
        "sqlite-locked": partial(sqlite_locked, str(tmp_path_factory.mktemp("sqlite") / "x.db")),
        **mysql_scenarios_if_up(request),
    }
    with ThreadPoolExecutor(len(scenarios), thread_name_prefix="scenario") as pool:
        yield Outcomes({name: pool.submit(run) for name, run in scenarios.items()})


def test_mysql_timeouts_fit_the_10_s_bound() -> None:
    assert LOCK_WAIT_TIMEOUT_S < READ_TIMEOUT_S  # a queued writer hears the server's 1205
    assert CONNECT_TIMEOUT_S + max(READ_TIMEOUT_S, WRITE_TIMEOUT_S) < MYSQL_BOUND_S


# -- a database that accepts and never answers ------------------------------------------

@pytest.fixture(params=MYSQL_DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    require_driver(request.param)
    return str(request.param)


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_mysql_that_never_answers_is_unavailable_after_the_read_timeout(
    outcomes: Outcomes, driver: str, operation: str
) -> None:
    message, elapsed = outcomes[f"{driver}/never-answers/{operation}"]
    assert message == READ_TIMED_OUT
    assert elapsed < MYSQL_BOUND_S


@pytest.mark.parametrize(("mode", "message"), [
    pytest.param("close", "(2013, 'Lost connection to MySQL server during query')", id="accepts-then-closes"),
    pytest.param("full", "(2003, \"Can't connect to MySQL server on '127.0.0.1' (timed out)\")", id="never-accepts"),
])
def test_mysql_that_drops_the_connection_is_unavailable_at_once_or_after_the_connect_timeout(
    outcomes: Outcomes, driver: str, mode: str, message: str
) -> None:
    assert outcomes[f"{driver}/drops/{mode}"] == message


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_request_to_mysql_that_never_answers_is_503_with_retry_after(outcomes: Outcomes, driver: str,
                                                                    method: str) -> None:
    resp, elapsed = outcomes[f"{driver}/request/{method}"]
    assert resp == UNAVAILABLE
    assert elapsed < MYSQL_BOUND_S


def test_initdb_against_mysql_that_never_answers_exits_1(outcomes: Outcomes, driver: str) -> None:
    result = outcomes[f"{driver}/initdb"]
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.splitlines()[-1] == f"xcap-wsgi: database unavailable: {READ_TIMED_OUT}"


# -- no second wait ------------------------------------------------------------------------

@pytest.mark.mysql
@pytest.mark.usefixtures("mysql_table")  # skips, or fails under CI, when MySQL is down
@pytest.mark.parametrize("operation", ["get", "update"])
def test_mysql_that_stops_answering_on_a_reused_connection_is_waited_for_once(
    outcomes: Outcomes, driver: str, operation: str
) -> None:
    message, elapsed = outcomes[f"{driver}/reused/{operation}"]
    assert message == READ_TIMED_OUT
    assert elapsed < MYSQL_BOUND_S  # a replay would wait a second read timeout: 2 x 7 s


@pytest.mark.mysql
@pytest.mark.usefixtures("mysql_table")
def test_mysql_row_locked_by_another_writer_is_unavailable_after_one_lock_wait(outcomes: Outcomes,
                                                                             driver: str) -> None:
    message, elapsed = outcomes[f"{driver}/row-locked"]
    assert message == "(1205, 'Lock wait timeout exceeded; try restarting transaction')"
    assert LOCK_WAIT_TIMEOUT_S - 0.5 < elapsed < 1.5 * LOCK_WAIT_TIMEOUT_S  # one lock wait; two take 2 x 5 s


def test_sqlite_locked_database_is_503_after_one_busy_timeout_and_writes_resume(outcomes: Outcomes) -> None:
    before, resp, elapsed, after = outcomes["sqlite-locked"]
    assert before == "404 Not Found"
    assert resp == UNAVAILABLE
    assert BUSY_TIMEOUT_S - 0.5 < elapsed < SQLITE_BOUND_S  # writers queue, once; twice takes 2 x 5 s
    assert after == "201 Created"
