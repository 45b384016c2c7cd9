"""Benchmark: document GET through xcap-wsgi vs the bare one-SELECT baseline app.

    python bench/document_get.py [--backend sqlite|mysql|both] [--seconds 5] [--rounds 3] [--workers 2]

Starts gunicorn twice on the same database and document (a 2 KB resource-lists), then
drives them with wrk (loopback only, bounded in time) in alternating rounds, so that
drift in the machine's load hits both alike, and prints the median requests/second of
each and the ratio xcap-wsgi / baseline, all measured in the same run. Optionally
compares with a running Kamailio xcap_server (--kamailio URL).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC_URI = "/xcap-root/resource-lists/users/sip:alice@example.com/index"
MYSQL_URL = os.environ.get("XCAP_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")


def document(size: int = 2048) -> bytes:
    head = b'<?xml version="1.0" encoding="UTF-8"?>\n<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">\n'
    entries, i = [], 0
    while len(head) + sum(map(len, entries)) < size - 40:
        entries.append(f'  <list name="l{i}"><entry uri="sip:u{i}@example.com"/></list>\n'.encode())
        i += 1
    return head + b"".join(entries) + b"</resource-lists>\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(app: str, env: dict[str, str], workers: int, cwd: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "-b", f"127.0.0.1:{port}",
         "--log-level", "warning", "--no-control-socket", app],
        env={**os.environ, **env, "PYTHONPATH": str(HERE.parent)}, cwd=cwd,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"gunicorn did not start for {app}")


def wrk(url: str, seconds: int) -> float:
    out = subprocess.run(["wrk", "-t2", "-c8", f"-d{seconds}s", url], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match or "Non-2xx" in out:
        raise SystemExit(f"wrk failed or saw errors:\n{out}")
    return float(match.group(1))


def prepare(db_url: str, table: str) -> None:
    from werkzeug.test import Client

    from xcap_wsgi import XCAPMiddleware

    client = Client(XCAPMiddleware(None, db_url=db_url, xcap_table=table))
    resp = client.put(DOC_URI, data=document(), content_type="application/resource-lists+xml")
    assert resp.status_code in (200, 201), resp.data


APPS = (("baseline", "bench.baseline_app:app"), ("xcap-wsgi", "xcap_wsgi:create_app()"))


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


def run(backend: str, seconds: int, rounds: int, workers: int, kamailio: str | None) -> None:
    tmp = tempfile.mkdtemp(prefix="xcap-bench-")
    try:
        db_url = f"sqlite:///{tmp}/bench.db" if backend == "sqlite" else MYSQL_URL
        table = "xcap_bench"
        sys.path.insert(0, str(HERE.parent))
        prepare(db_url, table)
        env = {"XCAP_DB_URL": db_url, "XCAP_TABLE": table}
        servers = {name: start(app, env, workers, tmp) for name, app in APPS}
        try:
            urls = {name: f"http://127.0.0.1:{port}{DOC_URI}" for name, (_, port) in servers.items()}
            for url in urls.values():
                wrk(url, 2)  # warm-up
            runs: dict[str, list[float]] = {name: [] for name in urls}
            for _ in range(rounds):
                for name, url in urls.items():
                    runs[name].append(wrk(url, seconds))
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait()
        base, ours = statistics.median(runs["baseline"]), statistics.median(runs["xcap-wsgi"])
        print(f"[{backend}] baseline (one SELECT): {base:.0f} req/s (runs: {_fmt(runs['baseline'])})")
        print(f"[{backend}] xcap-wsgi document GET: {ours:.0f} req/s (runs: {_fmt(runs['xcap-wsgi'])})")
        print(f"[{backend}] ratio xcap-wsgi / baseline: {ours / base:.3f} (goal >= 0.90)")
        if kamailio:
            k = wrk(kamailio, seconds)
            print(f"[{backend}] kamailio xcap_server: {k:.0f} req/s; baseline / kamailio: {base / k:.3f},"
                  f" xcap-wsgi / kamailio: {ours / k:.3f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "mysql", "both"], default="both")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kamailio", help="URL of a stored document on a running Kamailio xcap_server")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    for backend in (["sqlite", "mysql"] if args.backend == "both" else [args.backend]):
        run(backend, args.seconds, args.rounds, args.workers, args.kamailio)


if __name__ == "__main__":
    main()
