"""Benchmark: worker memory over repeated rounds of element PUTs (issue 10: RSS stays flat).

    python bench/memory.py [--backend sqlite|mysql] [--rounds 5] [--puts 20000]

Starts ``xcap-wsgi serve`` (its default workers) on a database holding a 2 KB resource-lists document, then
runs rounds of element PUTs (8 kept-alive connections; each PUT replaces an entry, so the
document gets a new ETag every time) and prints each worker's resident set size (VmRSS)
after every round and its growth over the round before, so the output shows whether
memory stops growing after the first round (caches filling: URIs, selectors, parsed
trees, per-thread connections) or keeps climbing (a leak).
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.operations import DOC_URI, ELEMENT, ENTRY, MYSQL_URL, prepare, serve
from xcap_wsgi.cli import DEFAULT_WORKERS


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SystemExit(f"no VmRSS for {pid}")


def put_round(base: str, puts: int) -> float:
    """``puts`` element PUTs over 8 kept-alive connections; the seconds they took."""
    host, port = base.removeprefix("http://").split(":")
    path = DOC_URI + ELEMENT
    failures: list[int] = []

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        for _ in range(puts // 8):
            conn.request("PUT", path, ENTRY, {"Content-Type": "application/xcap-el+xml"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                failures.append(resp.status)
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"{len(failures)} PUTs failed, e.g. {failures[0]}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "mysql"], default="sqlite")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--puts", type=int, default=20000)
    parser.add_argument("--size", type=int, default=2048)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="xcap-bench-")
    db_url = f"sqlite:///{tmp}/bench.db" if args.backend == "sqlite" else MYSQL_URL
    try:
        prepare(db_url, args.size)
        proc, base = serve(db_url, tmp)
        try:
            deadline = time.monotonic() + 10
            while len(workers := children(proc.pid)) < int(DEFAULT_WORKERS) and time.monotonic() < deadline:
                time.sleep(0.1)  # serve answered: the other worker is still booting
            before = {pid: rss_kib(pid) for pid in workers}
            print(f"[{args.backend}] serve, {len(workers)} workers; VmRSS (MiB) after each round of {args.puts} element PUTs")
            print("    start: " + ", ".join(f"{kib / 1024:.1f}" for kib in before.values()))
            for number in range(1, args.rounds + 1):
                seconds = put_round(base, args.puts)
                now = {pid: rss_kib(pid) for pid in workers}
                growth = ", ".join(f"{now[pid] / 1024:.1f} ({(now[pid] - before[pid]) / 1024:+.1f})" for pid in workers)
                print(f"    round {number}: {growth}   [{args.puts / seconds:.0f} PUT/s]")
                before = now
        finally:
            proc.terminate()
            proc.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
