"""Several worker processes writing one document at once: no lost update, ever.

Each process builds its own middleware on the same database, as gunicorn workers do,
and talks HTTP to it through Werkzeug's test client. Preconditions are checked inside
the storage transaction, so check-then-write is atomic (RFC 4825 §7.11; issue 2).
"""

from __future__ import annotations

import multiprocessing
import re
from typing import Any

from werkzeug.test import Client

from tests.docs import RL_MIME, RL_URI, counter_doc
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.storage import Storage

PROCESSES = 4
ROUNDS = 15
COUNTER = re.compile(rb'name="n(\d+)"')


def db_config(storage: Storage) -> dict[str, str]:
    """What another process opens the same table with (every backend keeps its db_url)."""
    return {"db_url": storage.url, "xcap_table": storage.table}


def client_for(config: dict[str, str]) -> Client:
    return Client(XCAPMiddleware(None, **config))


def increment_with_if_match(config: dict[str, str], start: Any, rounds: int) -> int:
    """Read-modify-write ``rounds`` times, retrying on 412; returns how many 412s it saw."""
    client = client_for(config)
    start.wait()
    conflicts = 0
    for _ in range(rounds):
        while True:
            got = client.get(RL_URI)
            n = int(COUNTER.search(got.data).group(1))  # type: ignore[union-attr]
            resp = client.put(RL_URI, data=counter_doc(n + 1), content_type=RL_MIME,
                              headers={"If-Match": got.headers["ETag"]})
            if resp.status == "200 OK":
                break
            assert resp.status == "412 Precondition Failed", resp.status
            conflicts += 1
    return conflicts


def put_once(config: dict[str, str], start: Any, headers: dict[str, str], n: int) -> str:
    client = client_for(config)
    start.wait()
    return str(client.put(RL_URI, data=counter_doc(n), content_type=RL_MIME, headers=headers).status)


def put_unconditionally(config: dict[str, str], start: Any, worker: int, rounds: int) -> list[tuple[str, int]]:
    client = client_for(config)
    start.wait()
    written = []
    for i in range(rounds):
        n = worker * 1000 + i
        resp = client.put(RL_URI, data=counter_doc(n), content_type=RL_MIME)
        assert resp.status in ("200 OK", "201 Created"), resp.status
        written.append((resp.headers["ETag"], n))
    return written


def run_parallel(target: Any, args_per_process: list[tuple[Any, ...]]) -> list[Any]:
    ctx = multiprocessing.get_context("fork")
    start = ctx.Manager().Barrier(len(args_per_process))
    with ctx.Pool(len(args_per_process)) as pool:
        results = [pool.apply_async(target, (args[0], start, *args[1:])) for args in args_per_process]
        return [r.get(timeout=120) for r in results]


def test_if_match_read_modify_write_loses_no_update(storage: Storage, client: Client) -> None:
    client.put(RL_URI, data=counter_doc(0), content_type=RL_MIME)
    config = db_config(storage)
    run_parallel(increment_with_if_match, [(config, ROUNDS)] * PROCESSES)
    final = client.get(RL_URI).data
    assert final == counter_doc(PROCESSES * ROUNDS)


def test_same_if_match_from_racing_processes_succeeds_exactly_once(storage: Storage, client: Client) -> None:
    etag = client.put(RL_URI, data=counter_doc(0), content_type=RL_MIME).headers["ETag"]
    config = db_config(storage)
    statuses = run_parallel(put_once, [(config, {"If-Match": etag}, n) for n in range(1, PROCESSES + 1)])
    assert sorted(statuses) == ["200 OK"] + ["412 Precondition Failed"] * (PROCESSES - 1)
    winner = statuses.index("200 OK") + 1
    assert client.get(RL_URI).data == counter_doc(winner)


def test_racing_creators_with_if_none_match_star_create_once(storage: Storage, client: Client) -> None:
    config = db_config(storage)
    statuses = run_parallel(put_once, [(config, {"If-None-Match": "*"}, n) for n in range(1, PROCESSES + 1)])
    assert sorted(statuses) == ["201 Created"] + ["412 Precondition Failed"] * (PROCESSES - 1)


def test_racing_unconditional_writers_leave_a_consistent_row(storage: Storage, client: Client) -> None:
    config = db_config(storage)
    results = run_parallel(put_unconditionally, [(config, w, ROUNDS) for w in range(PROCESSES)])
    written = dict(pair for result in results for pair in result)
    assert len(written) == PROCESSES * ROUNDS  # every write got its own ETag
    final = client.get(RL_URI)
    # the stored ETag is the one handed out for exactly the stored bytes
    assert final.data == counter_doc(written[final.headers["ETag"]])



def insert_entries(config: dict[str, str], start: Any, worker: int, rounds: int) -> list[str]:
    """Element PUTs without preconditions, each inserting a new entry (RFC 4825 §8.2.3)."""
    client = client_for(config)
    start.wait()
    statuses = []
    for i in range(rounds):
        uri = f"sip:w{worker}-{i}@example.com"
        resp = client.put(f'{RL_URI}/~~/resource-lists/list/entry[@uri="{uri}"]',
                          data=f'<entry uri="{uri}"/>'.encode(), content_type="application/xcap-el+xml")
        statuses.append(resp.status)
    return statuses


def test_concurrent_element_puts_lose_no_insert(storage: Storage, client: Client) -> None:
    client.put(RL_URI, data=counter_doc(0), content_type=RL_MIME)
    results = run_parallel(insert_entries, [(db_config(storage), w, ROUNDS) for w in range(PROCESSES)])
    assert all(status == "201 Created" for statuses in results for status in statuses)
    final = client.get(RL_URI).data
    entries = re.findall(rb'<entry uri="sip:(w\d+-\d+)@example.com"/>', final)
    assert sorted(entries) == sorted(f"w{w}-{i}".encode() for w in range(PROCESSES) for i in range(ROUNDS))
