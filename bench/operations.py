"""Benchmark: every kind of XCAP request through `xcap-wsgi serve`, against Kamailio's xcap_server.

    python bench/operations.py [--backend sqlite|mysql|both] [--seconds 5] [--rounds 5]
                               [--kamailio http://127.0.0.1:5080/xcap-root] [--size 2048]
    python bench/operations.py --models       # the worker models side by side (document GET)

Starts ``xcap-wsgi serve`` (its default worker model and worker count) on a database holding a
2 KB resource-lists document and drives it with wrk (loopback, -t1 -c8 as in the issue,
keep-alive) in alternating rounds: document GET, element GET, attribute GET, conditional
GET answered 304, element PUT, document PUT (validated), and with ``--kamailio`` the same
document and element GET on a running Kamailio xcap_server (``../shared/peers/kamailio/
start.sh``; the document is PUT there first). Prints the median req/s of each and the
ratios the issue sets targets for, all measured in the same run. ``--models`` compares
gunicorn's sync worker with gthread at several thread counts on the document GET, each with
2 workers, beside ``serve``'s default.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.document_get import DOC_URI, MYSQL_URL, document, free_port  # noqa: E402
from xcap_wsgi.cli import DEFAULT_WORKERS  # noqa: E402

ROOT = "/xcap-root"
WRITE_URI = DOC_URI.replace("alice", "bob")  # written by the PUT runs, so the read runs' ETag stays
ELEMENT = '/~~/resource-lists/list%5B@name=%22l3%22%5D/entry'
ATTRIBUTE = ELEMENT + "/@uri"
ENTRY = b'<entry uri="sip:u3@example.com"/>'
#: A pause before each run: this machine's CPU is sometimes throttled for seconds after a
#: sustained full load, and the medians of alternating rounds absorb what remains.
REST_S = 2.0
MODELS = {"sync": ["-k", "sync"], **{f"gthread-{n}": ["-k", "gthread", "--threads", str(n), "--keep-alive", "5"]
                                     for n in (4, 8, 64)}}


def lua(method: str, body: bytes = b"", headers: dict[str, str] | None = None) -> str:
    """A wrk script sending ``method`` with ``body`` and ``headers`` on every request."""
    lines = [f'wrk.method = "{method}"']
    if body:
        lines.append("wrk.body = [==[" + body.decode() + "]==]")
    lines.extend(f'wrk.headers["{name}"] = [==[{value}]==]' for name, value in (headers or {}).items())
    return "\n".join(lines) + "\n"


class Run(NamedTuple):
    """One wrk run: requests per second and the median and 99th-percentile latency in ms."""

    rps: float
    p50: float
    p99: float


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise SystemExit(f"wrk printed a latency this script cannot read: {text!r}")
    return float(match.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[match.group(2)]


def wrk(url: str, seconds: int, script: str, tmp: str, *, threads: int = 1, connections: int = 8) -> Run:
    """``seconds`` of wrk on ``url`` with ``script`` (-t1 -c8 unless told); any non-2xx answer fails."""
    path = Path(tmp) / "script.lua"
    path.write_text(script)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(path), url],
                         capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50, p99 = (re.search(rf"^\s*{p}%\s+(\S+)\s*$", out, re.MULTILINE) for p in (50, 99))
    if not (rps and p50 and p99) or "Non-2xx" in out:
        raise SystemExit(f"wrk failed or saw errors on {url}:\n{out}")
    return Run(float(rps.group(1)), _ms(p50.group(1)), _ms(p99.group(1)))


def request(method: str, url: str, body: bytes = b"", content_type: str = "") -> tuple[int, dict[str, str]]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=10)
    try:
        conn.request(method, parts.path, body or None, {"Content-Type": content_type} if content_type else {})
        resp = conn.getresponse()
        resp.read()
        return resp.status, dict(resp.headers)
    finally:
        conn.close()


def serve(db_url: str, tmp: str, gunicorn_args: list[str] | None = None, *, app: str = "xcap_wsgi:create_app()",
          workers: str = "2") -> tuple[subprocess.Popen[bytes], str]:
    """xcap-wsgi serve (or plain gunicorn running ``app`` with ``gunicorn_args``) on a free port."""
    port = free_port()
    env = {**os.environ, "XCAP_DB_URL": db_url, "XCAP_TABLE": "xcap_bench", "PYTHONPATH": str(HERE.parent)}
    if gunicorn_args is None:
        command = [sys.executable, "-m", "xcap_wsgi", "serve", "--bind", f"127.0.0.1:{port}"]
    else:
        command = [sys.executable, "-m", "gunicorn", "-w", workers, "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                   "--no-control-socket", *gunicorn_args, app]
    proc = subprocess.Popen(command, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            request("GET", base + DOC_URI)
            return proc, base
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"the server exited: {command}") from None
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server did not start: {command}")


def prepare(db_url: str, size: int) -> None:
    from werkzeug.test import Client

    from xcap_wsgi import XCAPMiddleware

    client = Client(XCAPMiddleware(None, db_url=db_url, xcap_table="xcap_bench"))
    for uri in (DOC_URI, WRITE_URI):
        resp = client.put(uri, data=document(size), content_type="application/resource-lists+xml")
        assert resp.status_code in (200, 201), resp.data


def median_rounds(runs: dict[str, tuple[str, str]], seconds: int, rounds: int, tmp: str) -> dict[str, float]:
    """Each (url, wrk script) ``rounds`` times, alternating; the median req/s of each."""
    results: dict[str, list[float]] = {name: [] for name in runs}
    for url, script in runs.values():
        wrk(url, 1, script, tmp)  # warm-up
    for _ in range(rounds):
        for name, (url, script) in runs.items():
            time.sleep(REST_S)
            results[name].append(wrk(url, seconds, script, tmp).rps)
    for name, values in results.items():
        print(f"    {name:<28} {statistics.median(values):>8.0f} req/s  (runs: {', '.join(f'{v:.0f}' for v in values)})")
    return {name: statistics.median(values) for name, values in results.items()}


def ratio(figures: dict[str, float], a: str, b: str, target: str) -> None:
    if a in figures and b in figures:
        print(f"    {a} / {b}: {figures[a] / figures[b]:.3f}  ({target})")


def run(backend: str, args: argparse.Namespace) -> None:
    tmp = tempfile.mkdtemp(prefix="xcap-bench-")
    db_url = f"sqlite:///{tmp}/bench.db" if backend == "sqlite" else MYSQL_URL
    try:
        prepare(db_url, args.size)
        proc, base = serve(db_url, tmp)
        try:
            etag = request("GET", base + DOC_URI)[1]["ETag"]
            get = lua("GET")
            runs = {
                "document GET": (base + DOC_URI, get),
                "element GET": (base + DOC_URI + ELEMENT, get),
                "attribute GET": (base + DOC_URI + ATTRIBUTE, get),
                "conditional GET (304)": (base + DOC_URI, lua("GET", headers={"If-None-Match": etag})),
                "element PUT": (base + WRITE_URI + ELEMENT, lua("PUT", ENTRY, {"Content-Type": "application/xcap-el+xml"})),
                "document PUT": (base + WRITE_URI, lua("PUT", document(args.size),
                                                       {"Content-Type": "application/resource-lists+xml"})),
            }
            if args.kamailio:
                kamailio_doc = args.kamailio.rstrip("/") + DOC_URI[len(ROOT):]
                request("PUT", kamailio_doc, document(args.size), "application/resource-lists+xml")
                runs["kamailio document GET"] = (kamailio_doc, get)
                runs["kamailio element GET"] = (kamailio_doc + ELEMENT, get)
            print(f"[{backend}] xcap-wsgi serve ({DEFAULT_WORKERS} workers, its default) vs Kamailio, wrk -t1 -c8,"
                  f" {args.rounds} rounds of {args.seconds} s:")
            figures = median_rounds(runs, args.seconds, args.rounds, tmp)
        finally:
            proc.terminate()
            proc.wait()
        target = "target >= 0.85 on SQLite, >= 0.5 on MySQL"
        ratio(figures, "document GET", "kamailio document GET", target)
        ratio(figures, "element GET", "kamailio element GET", "the C module's element GET")
        ratio(figures, "element GET", "document GET", "target >= 0.9")
        ratio(figures, "attribute GET", "document GET", "target >= 0.9")
        ratio(figures, "conditional GET (304)", "document GET", "target >= 1.0")
        ratio(figures, "element PUT", "document GET", "target >= 0.3")
        ratio(figures, "document PUT", "document GET", "reported")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_models(backend: str, args: argparse.Namespace) -> None:
    tmp = tempfile.mkdtemp(prefix="xcap-bench-")
    db_url = f"sqlite:///{tmp}/bench.db" if backend == "sqlite" else MYSQL_URL
    servers = {}
    try:
        prepare(db_url, args.size)
        servers = {name: serve(db_url, tmp, model) for name, model in MODELS.items()}
        servers["xcap-wsgi serve"] = serve(db_url, tmp)
        print(f"[{backend}] worker models, document GET, 2 workers, wrk -t1 -c8:")
        median_rounds({name: (base + DOC_URI, lua("GET")) for name, (_, base) in servers.items()},
                      args.seconds, args.rounds, tmp)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "mysql", "both"], default="both")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=2048, help="document size in bytes (default 2048)")
    parser.add_argument("--kamailio", help="XCAP root of a running Kamailio xcap_server, e.g. http://127.0.0.1:5080/xcap-root")
    parser.add_argument("--models", action="store_true", help="compare gunicorn worker models instead")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    for backend in (["sqlite", "mysql"] if args.backend == "both" else [args.backend]):
        (run_models if args.models else run)(backend, args)


if __name__ == "__main__":
    main()
