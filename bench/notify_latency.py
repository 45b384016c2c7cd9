"""Benchmark: commit -> notification latency, and what the notifier costs a PUT.

    python bench/notify_latency.py [--backend sqlite|mysql|both] [--seconds 10] [--clients 8] [--workers 4] [--rounds 3]

Starts ``xcap-wsgi serve`` (4 workers) announcing every change to a JSON-RPC recorder that
answers like Kamailio's jsonrpcs, drives it with concurrent clients each PUTting the
pres-rules of a user of its own (one change per document, so every change is one
``presence.updateWatchers`` call), and prints, for every change, the time from the client
sending the PUT to the recorder receiving the call (an upper bound of commit -> notification,
since the commit happens before the answer) and from the 201 answer to the call: p50, p99,
max. Rounds without ``--notify`` alternate with those rounds, and it prints the median PUT
req/s with and without the notifier, measured in the same run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MYSQL_URL = os.environ.get("XCAP_BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
RULES = b'<ruleset xmlns="urn:ietf:params:xml:ns:common-policy"/>'


class Recorder(ThreadingHTTPServer):
    """The JSON-RPC target, in a process of its own (so that it takes no CPU time from
    the load generator's interpreter): POST /RPC records, GET /arrivals reports."""

    daemon_threads = True

    def __init__(self, port: int) -> None:
        self.arrivals: dict[str, float] = {}
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), Handler)


def recorder_process(port: int) -> None:
    Recorder(port).serve_forever(0.05)


def arrivals(port: int) -> dict[str, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/arrivals")
    result: dict[str, float] = json.loads(conn.getresponse().read())
    conn.close()
    return result


class Handler(BaseHTTPRequestHandler):
    server: Recorder
    protocol_version = "HTTP/1.1"  # kept alive, as Kamailio's xhttp does

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold each kept-alive answer back 40 ms
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        with self.server.lock:
            payload = json.dumps(self.server.arrivals).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        now = time.time()
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.arrivals.setdefault(body["params"][0], now)
        payload = json.dumps({"jsonrpc": "2.0", "result": {}, "id": body["id"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(db_url: str, workers: int, cwd: str, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "xcap_wsgi", "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
         "--db-url", db_url, "--xcap-table", "xcap_bench_notify", *extra],
        cwd=cwd, env={**os.environ, "PYTHONPATH": str(HERE.parent)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("xcap-wsgi serve did not start")


def load(port: int, seconds: float, clients: int, tag: str) -> list[tuple[str, float, float]]:
    """PUT fresh documents from ``clients`` threads: (presentity, sent, answered) of each 201."""
    done: list[tuple[str, float, float]] = []
    stop = time.time() + seconds

    def client(c: int) -> None:
        n = 0
        while time.time() < stop:
            user = f"{tag}c{c}n{n}"
            n += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            sent = time.time()
            conn.request("PUT", f"/xcap-root/pres-rules/users/sip:{user}@example.com/index", RULES,
                         {"Content-Type": "application/auth-policy+xml"})
            resp = conn.getresponse()
            resp.read()
            answered = time.time()
            conn.close()
            if resp.status != 201:
                raise SystemExit(f"PUT answered {resp.status}")
            done.append((f"sip:{user}@example.com", sent, answered))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return done


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return f"p50 {statistics.median(values) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {values[-1] * 1000:.0f} ms"


def measure(db_url: str, workers: int, cwd: str, seconds: float, clients: int, *extra: str,
            rpc_port: int = 0) -> list[tuple[str, float, float]]:
    """One round: a server of its own, a second of warm-up, ``seconds`` of PUTs, and (with
    ``rpc_port``) up to 30 s for the last notifications before the server stops."""
    proc, port = serve(db_url, workers, cwd, *extra)
    try:
        load(port, 1, clients, f"warm{time.time_ns()}")
        puts = load(port, seconds, clients, f"n{time.time_ns()}")
        deadline = time.time() + 30
        while rpc_port and time.time() < deadline and not {p for p, _, _ in puts} <= arrivals(rpc_port).keys():
            time.sleep(0.2)
        return puts
    finally:
        proc.terminate()
        proc.wait()


def run(backend: str, seconds: float, clients: int, workers: int, rounds: int) -> None:
    tmp = tempfile.mkdtemp(prefix="xcap-bench-notify-")
    db_url = f"sqlite:///{tmp}/bench.db" if backend == "sqlite" else MYSQL_URL
    rpc_port = free_port()
    recorder = multiprocessing.Process(target=recorder_process, args=(rpc_port,), daemon=True)
    recorder.start()
    notify = ("--notify", f"kamailio+http://127.0.0.1:{rpc_port}/RPC")
    try:
        puts: list[tuple[str, float, float]] = []
        rates: dict[str, list[float]] = {"with": [], "without": []}
        for _ in range(rounds):  # alternating, so drift in the machine's load hits both alike
            changes = measure(db_url, workers, tmp, seconds, clients, *notify, rpc_port=rpc_port)
            puts += changes
            rates["with"].append(len(changes) / seconds)
            rates["without"].append(len(measure(db_url, workers, tmp, seconds, clients)) / seconds)
        seen = arrivals(rpc_port)
        missing = [p for p, _, _ in puts if p not in seen]
        from_send = [seen[p] - sent for p, sent, _ in puts if p in seen]
        from_answer = [seen[p] - answered for p, _, answered in puts if p in seen]
        print(f"[{backend}] {len(puts)} changes by {clients} clients against {workers} workers, {len(missing)} not notified")
        print(f"[{backend}] PUT sent -> notification received: {percentiles(from_send)}")
        print(f"[{backend}] 201 answered -> notification received: {percentiles(from_answer)}")
        with_rate, without_rate = statistics.median(rates["with"]), statistics.median(rates["without"])
        print(f"[{backend}] PUT with notifier: {with_rate:.0f} req/s (runs: {', '.join(f'{r:.0f}' for r in rates['with'])});"
              f" without: {without_rate:.0f} req/s (runs: {', '.join(f'{r:.0f}' for r in rates['without'])});"
              f" ratio {with_rate / without_rate:.3f}")
    finally:
        recorder.terminate()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "mysql", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for backend in (["sqlite", "mysql"] if args.backend == "both" else [args.backend]):
        run(backend, args.seconds, args.clients, args.workers, args.rounds)


if __name__ == "__main__":
    main()
