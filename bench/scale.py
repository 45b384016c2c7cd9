"""Benchmark: how request times grow with the number of users (issue 10, item 1).

    python bench/scale.py [--backend sqlite|mysql] [--sizes 100,1000,10000,100000] [--ops 200]

For each size N a fresh database (a SQLite file, or MySQL tables of their own) is filled
through ``DBAPIStorage.load`` with N users, each holding a resource-lists index, a
pres-rules index and an rls-services index of one or two services. Then, in process
through the WSGI app (werkzeug's test client, no network), ``--ops`` requests of each kind
go to random users: rls-services document PUT and service element PUT (RS3 checks every
new URI against all users'), resource-lists document and entry PUT, pres-rules PUT and a
document GET. Prints the mean and median milliseconds of each, and each median's ratio to
its figure at the smallest size; the target is 1.5 or less for the rls-services PUTs from
10^2 to 10^5 users. The global index GET (RS6) grows with N by nature: it is reported on
its own, with the time of the staleness check a worker makes when it starts.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from werkzeug.test import Client  # noqa: E402

from bench.document_get import MYSQL_URL  # noqa: E402
from xcap_wsgi import XCAPMiddleware  # noqa: E402
from xcap_wsgi.storage import DocKey, Document, open_storage  # noqa: E402
from xcap_wsgi.storage.base import new_etag  # noqa: E402
from xcap_wsgi.storage.dbapi import DBAPIStorage  # noqa: E402

ROOT = "/xcap-root"
HOST = "http://xcap.example.com"
MIME = {"resource-lists": "application/resource-lists+xml", "pres-rules": "application/auth-policy+xml",
        "rls-services": "application/rls-services+xml"}
DOC_TYPE = {"resource-lists": 4, "pres-rules": 2, "rls-services": 8}
EL_MIME = "application/xcap-el+xml"
WRITES = ("rls-services document PUT", "rls-services element PUT", "resource-lists document PUT",
          "resource-lists element PUT", "pres-rules PUT", "document GET")
TARGET = ("rls-services document PUT", "rls-services element PUT")


def path(auid: str, user: int) -> str:
    return f"{ROOT}/{auid}/users/sip:u{user}@example.com/index"


def resource_lists(user: int, extra: str = "") -> bytes:
    entries = "".join(f'<entry uri="sip:u{(user + k) % 997}@example.com"/>' for k in (1, 2, 3))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">\n'
            f'  <list name="friends">{entries}{extra}</list>\n</resource-lists>\n').encode()


def pres_rules(user: int, allowed: str = "sip:bob@example.com") -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<cr:ruleset xmlns="urn:ietf:params:xml:ns:pres-rules"'
            ' xmlns:cr="urn:ietf:params:xml:ns:common-policy">\n  <cr:rule id="a"><cr:conditions><cr:identity>'
            f'<cr:one id="{allowed}"/></cr:identity></cr:conditions><cr:actions><sub-handling>allow</sub-handling>'
            "</cr:actions></cr:rule>\n</cr:ruleset>\n").encode()


def service(user: int, name: str) -> str:
    ref = f"{HOST}{path('resource-lists', user)}/~~/resource-lists/list%5b@name=%22friends%22%5d"
    return (f'<service uri="sip:u{user}-{name}@example.com"><resource-list>{ref}</resource-list>'
            "<packages><package>presence</package></packages></service>")


def rls_services(user: int, *names: str) -> bytes:
    services = "\n  ".join(service(user, name) for name in names)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<rls-services xmlns="urn:ietf:params:xml:ns:rls-services">\n'
            f"  {services}\n</rls-services>\n").encode()


def population(users: int) -> Iterator[tuple[DocKey, Document]]:
    """Every user's three documents; every other user has a second service."""
    for user in range(users):
        services = ("friends", "all") if user % 2 else ("friends",)
        for auid, doc in (("resource-lists", resource_lists(user)), ("pres-rules", pres_rules(user)),
                          ("rls-services", rls_services(user, *services))):
            yield DocKey(path(auid, user), f"u{user}", "example.com", DOC_TYPE[auid]), Document(doc, new_etag())


@contextmanager
def database(backend: str, users: int) -> Iterator[DBAPIStorage]:
    """A fresh table of ``users`` users, dropped afterwards."""
    tmp = tempfile.mkdtemp(prefix="xcap-scale-")
    url = f"sqlite:///{tmp}/scale.db" if backend == "sqlite" else MYSQL_URL
    table = f"xcap_scale_{os.getpid()}"
    storage = open_storage(url, table)
    assert isinstance(storage, DBAPIStorage)
    try:
        drop(storage)
        storage.ensure_schema()
        yield storage
    finally:
        drop(storage)
        storage.close()
        shutil.rmtree(tmp, ignore_errors=True)


def drop(storage: DBAPIStorage) -> None:
    if storage.placeholder == "%s":
        tables = (storage.table, *storage.services.tables)
        storage.run(lambda cursor: cursor.execute("DROP TABLE IF EXISTS " + ", ".join(f"`{t}`" for t in tables)))


def operations(client: Client, users: int, rng: random.Random) -> dict[str, Callable[[int], None]]:
    """One request of each kind on a random user; ``n`` makes each new URI unique."""
    def put(url: str, body: bytes, mime: str, expect: str) -> None:
        resp = client.put(url, data=body, content_type=mime)
        assert resp.status == expect, (url, resp.status, resp.data)

    def rls_document(n: int) -> None:
        user = rng.randrange(users)
        put(path("rls-services", user), rls_services(user, "friends", f"n{n}"), MIME["rls-services"], "200 OK")

    def rls_element(n: int) -> None:
        user = rng.randrange(users)
        uri = f"sip:u{user}-e{n}@example.com"
        put(path("rls-services", user) + f"/~~/rls-services/service%5B@uri=%22{uri}%22%5D",
            service(user, f"e{n}").encode(), EL_MIME, "201 Created")

    def rl_document(n: int) -> None:
        user = rng.randrange(users)
        put(path("resource-lists", user), resource_lists(user, f'<entry uri="sip:d{n}@example.com"/>'),
            MIME["resource-lists"], "200 OK")

    def rl_element(n: int) -> None:
        user = rng.randrange(users)
        uri = f"sip:new{n}@example.com"
        put(path("resource-lists", user) + f"/~~/resource-lists/list%5B@name=%22friends%22%5D/entry%5B@uri=%22{uri}%22%5D",
            f'<entry uri="{uri}"/>'.encode(), EL_MIME, "201 Created")

    def pres(n: int) -> None:
        user = rng.randrange(users)
        put(path("pres-rules", user), pres_rules(user, f"sip:p{n}@example.com"), MIME["pres-rules"], "200 OK")

    def get(n: int) -> None:
        assert client.get(path("resource-lists", rng.randrange(users))).status == "200 OK"

    return dict(zip(WRITES, (rls_document, rls_element, rl_document, rl_element, pres, get), strict=True))


def timed(runs: dict[str, Callable[[int], None]], count: int) -> dict[str, list[float]]:
    """Milliseconds of ``count`` runs of each, after three unmeasured ones, taken in turns so
    that a drift in the machine's (or the database server's) load hits every kind alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for n in range(count + 3):
        for name, run in runs.items():
            start = time.perf_counter()
            run(n)
            if n >= 3:
                times[name].append((time.perf_counter() - start) * 1000)
    return times


def measure(backend: str, users: int, ops: int) -> dict[str, list[float]]:
    with database(backend, users) as storage:
        start = time.perf_counter()
        storage.load(population(users))
        filled = time.perf_counter() - start
        start = time.perf_counter()
        storage.run(storage.services.check)
        checked = (time.perf_counter() - start) * 1000
        client = Client(XCAPMiddleware(None, storage=storage))
        rng = random.Random(users)  # noqa: S311  (the same users on every run, not a secret)
        results = timed(operations(client, users, rng), ops)
        index = timed({"global index GET": lambda n: _global_index(client)}, max(3, min(ops, 20_000 // users)))
        print(f"[{backend}] N={users}: populated in {filled:.1f} s; staleness check {checked:.1f} ms;"
              f" global index GET {statistics.median(index['global index GET']):.1f} ms median{sizes(storage)}",
              flush=True)
        return {**results, **index}


def sizes(storage: DBAPIStorage) -> str:
    """MySQL: the tables' size on disk (whether they fit in the server's buffer pool)."""
    if storage.placeholder != "%s":
        return ""
    tables = (storage.table, *storage.services.tables)
    statement = ("SELECT SUM(data_length + index_length), @@innodb_buffer_pool_size FROM information_schema.tables"
                 f" WHERE table_schema = DATABASE() AND table_name IN ({', '.join(['%s'] * len(tables))})")

    def work(cursor: Any) -> tuple[int, int]:
        cursor.execute(statement, tables)
        used, pool = cursor.fetchone()
        return int(used or 0), int(pool)
    used, pool = storage.run(work)
    return f"; tables {used / 2**20:.0f} MiB, buffer pool {pool / 2**20:.0f} MiB"


def _global_index(client: Client) -> None:
    assert client.get(f"{ROOT}/rls-services/global/index").status == "200 OK"


def report(backend: str, figures: dict[int, dict[str, list[float]]]) -> None:
    sizes = sorted(figures)
    width = max(map(len, WRITES)) + 2
    print(f"\n[{backend}] mean / median ms per operation")
    print("operation".ljust(width) + "".join(f"N={n:<16}" for n in sizes))
    for name in (*WRITES, "global index GET"):
        cells = [f"{statistics.mean(figures[n][name]):6.2f} / {statistics.median(figures[n][name]):6.2f}   "
                 for n in sizes]
        print(name.ljust(width) + "".join(cells))
    base = sizes[0]
    print(f"\n[{backend}] median ratio to N={base} (target <= 1.5 for the rls-services PUTs)")
    print("operation".ljust(width) + "".join(f"N={n:<10}" for n in sizes))
    for name in (*WRITES, "global index GET"):
        ratios = [statistics.median(figures[n][name]) / statistics.median(figures[base][name]) for n in sizes]
        mark = "  <- target" if name in TARGET else ""
        print(name.ljust(width) + "".join(f"{r:<12.2f}" for r in ratios) + mark)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "mysql"], default="sqlite")
    parser.add_argument("--sizes", default="100,1000,10000,100000", help="numbers of users, comma-separated")
    parser.add_argument("--ops", type=int, default=200, help="measured requests of each kind per size")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    report(args.backend, {n: measure(args.backend, n, args.ops) for n in sizes})


if __name__ == "__main__":
    main()
