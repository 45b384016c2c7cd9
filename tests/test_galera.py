"""Galera multi-master (issue 11): two ``serve`` instances, each on another node of a 3-node
cluster (tests/galera.py), sharing one digest secret.

A writer that another node overtakes gets MySQL error 1213 at any statement, COMMIT
included, with its transaction rolled back; the storage replays the whole read-modify-write
(table-dialects.md §5), so If-Match writers on both instances lose no update. Nonces are
signed (any instance accepts one) and their counts live in the replicated table, so a count
replayed on the other instance is refused. ``?wsrep_sync_wait=1`` in the database URL makes
a read wait for every commit the cluster has, so a GET on one instance sees a write just
answered by the other.

The cluster starts once per module (about 15 s fresh, 10 s from its data, 0.1 s when it
runs) and is left running for the next test run; each module run has a database of its own,
dropped afterwards. Without mariadbd, galera-4 or rsync the tests skip, saying why; under CI
they fail.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.http import parse_dict_header

from tests.galera import GaleraCluster, add_entry, missing, url
from tests.processes import kill_all, spawn
from tests.test_auth import digest
from tests.test_cli import request
from xcap_wsgi.auth import SubscriberStore
from xcap_wsgi.auth.nonces import SQLNonceCounter
from xcap_wsgi.storage.base import DocKey, Document
from xcap_wsgi.storage.mysql import MySQLStorage, parse_mysql_url

SECRET = "one digest secret for every instance"
PASSWORD = "alice-pw"
ALICE = "/xcap-root/resource-lists/users/sip:alice@example.com/"
RL_MIME = "application/resource-lists+xml"
BASE = b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="l"></list></resource-lists>\n'
WRITERS = 6
ENTRIES = 4
ROUND_TRIPS = 30
DEADLOCK = 1213


def unavailable(reason: str) -> None:
    """Skip with the reason; under CI fail instead (the Galera tests must run there)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI requires the Galera tests to run)")
    pytest.skip(reason)


def with_entry(doc: bytes, uri: str) -> bytes:
    return doc.replace(b"</list>", f'<entry uri="{uri}"/></list>'.encode())


@pytest.fixture(scope="module")
def cluster() -> GaleraCluster:
    reason = missing()
    if reason:
        unavailable(reason)
    cluster = GaleraCluster()
    cluster.start()
    return cluster


@pytest.fixture(scope="module")
def database(cluster: GaleraCluster) -> Iterator[str]:
    name = f"xcap_galera_{os.getpid()}"
    admin = cluster.connect(1)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    cluster.wait_for(name)
    yield name
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE `{name}`")
    admin.close()


@pytest.fixture(scope="module")
def table(cluster: GaleraCluster, database: str) -> str:
    """The xcap table, on every node; each test writes documents of its own."""
    storage = MySQLStorage(url(1, database))
    storage.ensure_schema()
    storage.close()
    cluster.wait_for(database, "xcap")
    return "xcap"


@pytest.fixture(scope="module")
def instances(cluster: GaleraCluster, database: str, table: str,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """The ports of two ``serve --auth digest`` instances, on node 1 and node 2, reading with
    ``wsrep_sync_wait=1``; the tables exist on every node before either starts."""
    SubscriberStore(url(1, database)).add_user("sip:alice@example.com", PASSWORD)
    SQLNonceCounter(url(1, database)).db.run(lambda cursor: None)
    cluster.wait_for(database, "xcap_auth_nonce")
    procs = []
    try:
        for node in (1, 2):
            port, proc = spawn(tmp_path_factory.mktemp(f"node{node}"), "--db-url", url(node, database, wsrep_sync_wait="1"),
                               "--workers", "2", "--auth", "digest", "--auth-secret", SECRET)
            procs.append((port, proc))
        yield procs[0][0], procs[1][0]
    finally:
        for _, proc in procs:
            kill_all(proc)


class Alice:
    """Alice over HTTP Digest on any instance: one nonce, from the first 401, counted up."""

    def __init__(self, port: int) -> None:
        status, headers, _ = request(port, "GET", ALICE + "index")
        assert status == 401
        self.challenge = parse_dict_header(headers["WWW-Authenticate"].split(" ", 1)[1])
        self.nc = 0

    def request(self, port: int, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, *, nc: int | None = None) -> tuple[int, dict[str, str], bytes]:
        """``method path`` signed with the next nonce-count, or with ``nc``."""
        if nc is None:
            self.nc += 1
            nc = self.nc
        authorization = digest(self.challenge, "alice", PASSWORD, path, method=method, nc=nc)
        return request(port, method, path, body, {**(headers or {}), "Authorization": authorization})


# -- the URL parameter ------------------------------------------------------------------


def test_the_mysql_url_takes_wsrep_sync_wait() -> None:
    args = parse_mysql_url("mysql://xcap@db1/kamailio?wsrep_sync_wait=1")
    assert args == {"host": "db1", "port": 3306, "user": "xcap", "password": "", "database": "kamailio", "wsrep_sync_wait": 1}


@pytest.mark.parametrize("value", ["16", "-1", "one", "1.5", "\u0663"])
def test_a_wsrep_sync_wait_outside_0_to_15_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"wsrep_sync_wait in the MySQL URL must be 0-15, got {value!r}")):
        parse_mysql_url(f"mysql://xcap@db1/kamailio?wsrep_sync_wait={value}")


@pytest.mark.parametrize(("query", "expected"), [({"wsrep_sync_wait": "3"}, (3, 5)), ({}, (0, 5))])
def test_wsrep_sync_wait_from_the_url_is_the_sessions(database: str, mysql_driver: str, query: dict[str, str],
                                                      expected: tuple[int, int]) -> None:
    storage = MySQLStorage(url(3, database, **query), driver=mysql_driver)

    def session(cursor: Any) -> tuple[Any, ...]:
        cursor.execute("SELECT @@SESSION.wsrep_sync_wait, @@SESSION.innodb_lock_wait_timeout")
        return tuple(cursor.fetchone())

    assert storage.run(session) == expected
    storage.close()


# -- a transaction overtaken by another node ----------------------------------------------


class Overtaken(MySQLStorage):
    """A storage on one node whose first ``times`` attempts at a write are each overtaken by
    ``overtake(k)`` (a commit of the same row on another node), before the UPDATE or the COMMIT."""

    def __init__(self, url: str, table: str, driver: str, where: str, overtake: Any, times: int) -> None:
        super().__init__(url, table, driver=driver)
        self.where, self.overtake, self.times = where, overtake, times
        self.seen: list[bytes] = []
        self.commit_errors: list[int] = []

    def change(self, current: Document | None) -> bytes:
        assert current is not None
        self.seen.append(current.doc)
        self._overtaken_at("update")
        return with_entry(current.doc, "sip:mine@example.com")

    def _commit(self, conn: Any) -> None:  # type: ignore[override]  # a staticmethod there
        self._overtaken_at("commit")
        try:
            super()._commit(conn)
        except Exception as exc:
            self.commit_errors.append(exc.args[0])
            raise

    def _overtaken_at(self, where: str) -> None:
        if where == self.where and len(self.seen) <= self.times:
            self.overtake(len(self.seen))


def others(k: int) -> str:
    return f"sip:other{k}@example.com"


@pytest.mark.parametrize("where", ["update", "commit"])
def test_a_write_overtaken_on_another_node_is_replayed_whole(cluster: GaleraCluster, database: str, table: str,
                                                             mysql_driver: str, where: str) -> None:
    """Twice in a row, so that neither the replay on a dead connection (once) nor a transaction
    carried on past its 1213 can pass for the replay of a lost race."""
    key = DocKey(ALICE + f"overtaken-at-{where}-{mysql_driver}", "alice", "example.com", 4)
    other = MySQLStorage(url(1, database, wsrep_sync_wait="1"), table, driver=mysql_driver)
    other.update(key, lambda current: BASE)
    versions = [BASE]

    def overtake(k: int) -> None:
        """Node 1 commits the row node 2's transaction holds; node 2 aborts that transaction."""
        aborted = cluster.conflicts(2)
        versions.append(with_entry(versions[-1], others(k)))
        other.update(key, lambda current: versions[-1])
        for _ in range(200):
            if cluster.conflicts(2) > aborted:
                return
            threading.Event().wait(0.05)
        raise AssertionError("node 2 never aborted the overtaken transaction")

    mine = Overtaken(url(2, database, wsrep_sync_wait="1"), table, mysql_driver, where, overtake, times=2)
    result = mine.update(key, mine.change)
    assert mine.seen == versions  # each attempt read the row anew
    assert mine.commit_errors == ([DEADLOCK, DEADLOCK] if where == "commit" else [])
    assert other.get(key.doc_uri) == Document(with_entry(versions[-1], "sip:mine@example.com"), str(result.etag))
    mine.close()
    other.close()


@pytest.mark.parametrize(("sync_wait", "read"), [("1", b"<new/>"), ("0", b"<old/>")])
def test_a_read_with_wsrep_sync_wait_waits_for_what_another_node_committed(cluster: GaleraCluster, database: str,
                                                                          table: str, sync_wait: str, read: bytes) -> None:
    """Node 3 is held behind (FLUSH TABLES WITH READ LOCK pauses its applier) while node 1
    commits; a read on node 3 started then answers once node 3 has caught up, or at once with
    the old row when the URL has wsrep_sync_wait=0 (the option reaches either driver's session: above)."""
    key = DocKey(ALICE + f"read-{sync_wait}", "alice", "example.com", 4)
    writer = MySQLStorage(url(1, database), table)
    writer.update(key, lambda current: b"<old/>")
    reader = MySQLStorage(url(3, database, wsrep_sync_wait=sync_wait), table)
    assert reader.get(key.doc_uri) == writer.get(key.doc_uri)  # connected, schema checked, row applied
    got: list[Document | None] = []
    behind = cluster.connect(3)
    try:
        with behind.cursor() as cur:
            cur.execute("FLUSH TABLES WITH READ LOCK")
            writer.update(key, lambda current: b"<new/>")
            thread = threading.Thread(target=lambda: got.append(reader.get(key.doc_uri)))
            thread.start()
            while thread.is_alive() and not cluster.waiting_reads(3, database):
                threading.Event().wait(0.02)
            cur.execute("UNLOCK TABLES")
        thread.join()
    finally:
        behind.close()
        cluster.wait_synced(3)
    assert [document.doc for document in got if document] == [read]
    reader.close()
    writer.close()


# -- two serve instances ------------------------------------------------------------------


def test_if_match_writers_on_two_instances_lose_no_update(cluster: GaleraCluster, instances: tuple[int, int]) -> None:
    doc_uri = ALICE + "writers"
    alice = Alice(instances[0])
    assert alice.request(instances[0], "PUT", doc_uri, BASE, {"Content-Type": RL_MIME})[0] == 201
    replays_before = cluster.conflicts(1) + cluster.conflicts(2)
    outcomes: dict[int, tuple[int, int]] = {}
    start = threading.Barrier(WRITERS)

    def writer(w: int) -> None:
        port = instances[w % 2]
        user = Alice(port)
        start.wait()
        conflicts = phantoms = 0
        for i in range(ENTRIES):
            c, p = add_entry(user.request, port, doc_uri, f"sip:w{w}-{i}@example.com")
            conflicts, phantoms = conflicts + c, phantoms + p
        outcomes[w] = conflicts, phantoms

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    replays = cluster.conflicts(1) + cluster.conflicts(2) - replays_before
    status, _, body = alice.request(instances[1], "GET", doc_uri)
    entries = re.findall(rb'<entry uri="sip:(w\d+-\d+)@example.com"/>', body)
    print(f"{WRITERS * ENTRIES} commits, {sum(c for c, _ in outcomes.values())} x 412, {replays} replays (1213)")
    assert sorted(outcomes) == list(range(WRITERS))  # every writer finished
    assert [p for _, p in outcomes.values()] == [0] * WRITERS  # no write committed without its 201
    assert status == 200
    assert sorted(entries) == sorted(f"w{w}-{i}".encode() for w in range(WRITERS) for i in range(ENTRIES))


def test_a_nonce_from_one_instance_is_accepted_by_the_other_and_each_count_once(instances: tuple[int, int]) -> None:
    one, two = instances
    doc_uri = ALICE + "nonces"
    alice = Alice(one)
    assert alice.request(one, "PUT", doc_uri, BASE, {"Content-Type": RL_MIME}, nc=1)[0] == 201
    assert alice.request(two, "GET", doc_uri, nc=2)[::2] == (200, BASE)
    for port, nc in ((one, 2), (two, 1), (one, 1), (two, 2)):
        status, headers, body = alice.request(port, "GET", doc_uri, nc=nc)
        challenge = parse_dict_header(headers["WWW-Authenticate"].split(" ", 1)[1])
        assert (status, body, challenge["stale"]) == (401, b"nonce-count already used\n", "true")
        assert challenge["nonce"] != alice.challenge["nonce"]
    assert alice.request(two, "GET", doc_uri, nc=3)[::2] == (200, BASE)


def test_a_write_answered_by_one_instance_is_read_at_once_on_the_other(instances: tuple[int, int]) -> None:
    doc_uri = ALICE + "read-your-writes"
    alice = Alice(instances[0])
    for i in range(ROUND_TRIPS):
        writer, reader = instances[i % 2], instances[1 - i % 2]
        doc = with_entry(BASE, f"sip:n{i}@example.com")
        status, headers, _ = alice.request(writer, "PUT", doc_uri, doc, {"Content-Type": RL_MIME})
        assert status == (201 if i == 0 else 200)
        got = alice.request(reader, "GET", doc_uri)
        assert (got[0], got[1]["ETag"], got[2]) == (200, headers["ETag"], doc)



def test_a_document_and_a_directory_of_one_name_created_on_two_nodes_at_once_one_wins(
        instances: tuple[int, int]) -> None:
    """U10 across nodes: ``pN`` through node 1 and ``pN/inner`` through node 2 at the same
    instant: the two creations' claims on the owner's lock row conflict in certification, the
    loser is replayed and sees the winner, so exactly one is stored and the other gets 409."""
    def create(start: threading.Barrier, port: int, path: str, answers: dict[str, int]) -> None:
        user = Alice(port)
        start.wait()
        answers[path] = user.request(port, "PUT", path, BASE, {"Content-Type": RL_MIME})[0]

    reader = Alice(instances[1])
    for n in range(6):
        document, inner = ALICE + f"u10-{n}", ALICE + f"u10-{n}/inner"
        start, answers = threading.Barrier(2), {}
        threads = [threading.Thread(target=create, args=(start, instances[0], document, answers)),
                   threading.Thread(target=create, args=(start, instances[1], inner, answers))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(answers.values()) == [201, 409], (n, answers)
        stored = {path: reader.request(instances[1], "GET", path)[0] for path in (document, inner)}
        assert stored == {path: 200 if status == 201 else 404 for path, status in answers.items()}, (n, stored)
