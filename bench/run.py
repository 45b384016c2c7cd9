"""Every benchmark of issue 10 in one run, written to ``bench/RESULTS.md``.

    python bench/run.py [--backends sqlite,mysql] [--rounds 3] [--seconds 3] [--no-kamailio]
                        [--scale 100,1000,10000,100000] [--scale-mysql 100,1000,10000]
                        [--scale-ops 100] [--output bench/RESULTS.md]

1. **Operations**, per backend: ``xcap-wsgi serve`` with its defaults on a 2 KB resource-lists
   document, driven by wrk in alternating rounds (medians): document GET, element GET,
   attribute GET, conditional GET answered 304, document PUT, element PUT and element DELETE
   with If-Match; beside them, in the same rounds, the bare one-SELECT app
   (``bench/baseline_app.py``) under the same gunicorn worker model, and Kamailio's xcap_server
   (``../shared/peers/kamailio/start.sh``, started when port 5080 is closed, stopped after):
   document GET, element GET and document PUT. The If-Match runs give each of 8 connections a
   document of its own and send the ETag of its last answer (wrk -t8 -c8, one connection per
   thread); the DELETE run alternates DELETE and PUT of one entry, and counts both.
2. **Document sizes** 1 KB to 4 MB, per backend: document GET, element GET and document PUT
   on one connection, so the latency is the cost of one request; with the time per MB.
3. **Scale**, per backend: ``bench/scale.py``'s series (in process), 10^2 to 10^5 users on SQLite
   and to 10^4 on MySQL unless ``--scale-mysql`` says more: filling MySQL with 10^5 users
   (300 000 documents, one import transaction) takes about 5 minutes here, a third of the
   run's budget.

Prints each figure as it is measured and writes the tables, with p50/p99 latency and the
ratios the issue sets targets for, to the output file. About 12 minutes with the defaults on a
2-core machine (17 with ``--scale-mysql 100,1000,10000,100000``). Needs wrk; MySQL at ``XCAP_BENCH_MYSQL_URL`` (default
mysql://root@127.0.0.1:3306/test).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from werkzeug.test import Client  # noqa: E402

from bench import operations, scale  # noqa: E402
from bench.document_get import DOC_URI, MYSQL_URL, document  # noqa: E402
from bench.operations import ATTRIBUTE, ELEMENT, ENTRY, REST_S, Run, lua, request, serve, wrk  # noqa: E402
from xcap_wsgi import XCAPMiddleware  # noqa: E402
from xcap_wsgi.cli import DEFAULT_WORKERS, SERVER_MODEL  # noqa: E402

KAMAILIO = "http://127.0.0.1:5080/xcap-root"
KAMAILIO_START = HERE.parent.parent / "shared" / "peers" / "kamailio" / "start.sh"
KAMAILIO_PID = Path("/tmp/kamailio-xcap/kamailio.pid")  # noqa: S108  (where start.sh writes it)
RL_MIME = "application/resource-lists+xml"
EL_MIME = "application/xcap-el+xml"
#: the documents of the If-Match runs, one per wrk thread (``USER`` is the thread's number)
OWN_URI = DOC_URI.replace("alice", "wUSER")
IF_MATCH_THREADS = 8
#: 1 KB to 4 MB (4,000,000 bytes: within the default buf_size of 4 MiB)
SIZES = (1_000, 16_000, 256_000, 1_000_000, 4_000_000)
#: the document of the size series whose element GET the issue compares with the smallest's
LARGE = 256_000
#: the element GET of the size series: the first list's entry, present at every size
FIRST_ENTRY = '/~~/resource-lists/list%5B@name=%22l0%22%5D/entry'
BASELINE_MODEL = ["-k", SERVER_MODEL["worker_class"], "--threads", str(SERVER_MODEL["threads"]),
                  "--keep-alive", str(SERVER_MODEL["keepalive"])]


def if_match_script(method: str, path: str, body: bytes = b"", content_type: str = "", *, alternate: str = "") -> str:
    """A wrk script: each thread writes its own document (``USER`` in ``path``) with the ETag
    of its last answer as If-Match; ``alternate`` sends DELETE and a PUT of ``body`` in turns."""
    return f"""
local counter = 0
function setup(thread) counter = counter + 1; thread:set("id", counter) end
local etag, deleting = nil, false
function init(args) target = string.gsub([==[{path}]==], "USER", tostring(id)) end
function request()
  local headers = {{}}
  if etag then headers["If-Match"] = etag end
  if deleting then return wrk.format("{alternate}", target, headers) end
  headers["Content-Type"] = "{content_type}"
  return wrk.format("{method}", target, headers, [==[{body.decode()}]==])
end
function response(status, headers, body)
  if status >= 300 then print("answer " .. status .. " on thread " .. id .. ": " .. body) end
  etag = headers["ETag"] or headers["etag"]
  -- the next method follows the answer, not the request: wrk may build a request it never sends
  if "{alternate}" ~= "" then deleting = not deleting end
end
"""


def timed_rounds(runs: dict[str, tuple[str, str, int]], seconds: int, rounds: int, tmp: str) -> dict[str, Run]:
    """Each (url, script, wrk threads) ``rounds`` times in turns; the median of each figure."""
    results: dict[str, list[Run]] = {name: [] for name in runs}
    for url, script, threads in runs.values():
        wrk(url, 1, script, tmp, threads=threads)  # warm-up
    for _ in range(rounds):
        for name, (url, script, threads) in runs.items():
            time.sleep(REST_S)
            results[name].append(wrk(url, seconds, script, tmp, threads=threads))
    medians = {}
    for name, values in results.items():
        medians[name] = Run(*(statistics.median([getattr(r, field) for r in values]) for field in Run._fields))
        print(f"    {name:<34} {medians[name].rps:>8.0f} req/s  p50 {medians[name].p50:.2f} ms"
              f"  p99 {medians[name].p99:.2f} ms  (runs: {', '.join(f'{r.rps:.0f}' for r in values)})", flush=True)
    return medians


@contextmanager
def kamailio(wanted: bool) -> Iterator[str | None]:
    """Kamailio's xcap_server root URL: the one running on 5080, or one started for the run."""
    if not wanted:
        yield None
        return
    started = False
    try:
        socket.create_connection(("127.0.0.1", 5080), timeout=0.5).close()
    except OSError:
        if not KAMAILIO_START.exists():
            raise SystemExit(f"no Kamailio on 127.0.0.1:5080 and no {KAMAILIO_START} to start one (or --no-kamailio)") from None
        subprocess.run(["sh", str(KAMAILIO_START)], check=True, stdout=subprocess.DEVNULL)
        started = True
    try:
        yield KAMAILIO
    finally:
        if started and KAMAILIO_PID.exists():
            subprocess.run(["kill", KAMAILIO_PID.read_text().strip()], check=False)


def prepare_own_documents(db_url: str) -> None:
    client = Client(XCAPMiddleware(None, db_url=db_url, xcap_table="xcap_bench"))
    for n in range(1, IF_MATCH_THREADS + 1):
        resp = client.put(OWN_URI.replace("USER", str(n)), data=document(), content_type=RL_MIME)
        assert resp.status_code in (200, 201), resp.data


def run_operations(backend: str, db_url: str, kamailio_root: str | None, args: argparse.Namespace,
                   tmp: str) -> dict[str, Run]:
    operations.prepare(db_url, 2048)
    prepare_own_documents(db_url)
    ours, base = serve(db_url, tmp)
    baseline, baseline_base = serve(db_url, tmp, BASELINE_MODEL, app="bench.baseline_app:app", workers=DEFAULT_WORKERS)
    try:
        etag = request("GET", base + DOC_URI)[1]["ETag"]
        get = lua("GET")
        # in a list of its own: the element PUT run replaces the one entry of l3
        new_entry = ELEMENT.replace("l3", "l4").replace("/entry", '/entry%5B@uri=%22sip:new@example.com%22%5D')
        runs = {
            "document GET": (base + DOC_URI, get, 1),
            "element GET": (base + DOC_URI + ELEMENT, get, 1),
            "attribute GET": (base + DOC_URI + ATTRIBUTE, get, 1),
            "conditional GET (304)": (base + DOC_URI, lua("GET", headers={"If-None-Match": etag}), 1),
            "document PUT (If-Match)": (base, if_match_script("PUT", OWN_URI, document(), RL_MIME), IF_MATCH_THREADS),
            "element PUT (If-Match)": (base, if_match_script("PUT", OWN_URI + ELEMENT, ENTRY, EL_MIME), IF_MATCH_THREADS),
            "element DELETE+PUT (If-Match)": (base, if_match_script("PUT", OWN_URI + new_entry,
                                                                     b'<entry uri="sip:new@example.com"/>', EL_MIME,
                                                                     alternate="DELETE"), IF_MATCH_THREADS),
            "baseline: one SELECT": (baseline_base + DOC_URI, get, 1),
        }
        if kamailio_root:
            kamailio_doc = kamailio_root + DOC_URI[len(operations.ROOT):]
            status, _ = request("PUT", kamailio_doc, document(), RL_MIME)
            assert status in (200, 201), status
            runs["kamailio document GET"] = (kamailio_doc, get, 1)
            runs["kamailio element GET"] = (kamailio_doc + ELEMENT, get, 1)
            runs["kamailio document PUT"] = (kamailio_doc, lua("PUT", document(), {"Content-Type": RL_MIME}), 1)
        print(f"[{backend}] operations: xcap-wsgi serve ({DEFAULT_WORKERS} workers, its defaults), {args.rounds} rounds"
              f" of {args.seconds} s", flush=True)
        return timed_rounds(runs, args.seconds, args.rounds, tmp)
    finally:
        for proc in (ours, baseline):
            proc.terminate()
            proc.wait()


def run_sizes(backend: str, db_url: str, args: argparse.Namespace, tmp: str) -> dict[int, dict[str, Run]]:
    client = Client(XCAPMiddleware(None, db_url=db_url, xcap_table="xcap_bench"))
    uris = {size: DOC_URI.replace("alice", f"size{size}") for size in SIZES}
    for size, uri in uris.items():
        resp = client.put(uri, data=document(size), content_type=RL_MIME)
        assert resp.status_code in (200, 201), resp.data
    proc, base = serve(db_url, tmp)
    print(f"[{backend}] document sizes, one round of {args.seconds} s each", flush=True)
    figures: dict[int, dict[str, Run]] = {}
    try:
        for size, uri in uris.items():
            runs = {"document GET": (base + uri, lua("GET")), "element GET": (base + uri + FIRST_ENTRY, lua("GET")),
                    "document PUT": (base + uri, lua("PUT", document(size), {"Content-Type": RL_MIME}))}
            figures[size] = {}
            for name, (url, script) in runs.items():
                time.sleep(REST_S)
                figures[size][name] = result = wrk(url, args.seconds, script, tmp, connections=1)
                print(f"    {size // 1000:>5} KB {name:<14} {result.rps:>8.1f} req/s  p50 {result.p50:.2f} ms"
                      f"  p99 {result.p99:.2f} ms", flush=True)
    finally:
        proc.terminate()
        proc.wait()
    return figures


def fmt_runs(figures: dict[str, Run]) -> list[str]:
    lines = ["| request | req/s | p50 ms | p99 ms |", "|---|---:|---:|---:|"]
    lines += [f"| {name} | {r.rps:.0f} | {r.p50:.2f} | {r.p99:.2f} |" for name, r in figures.items()]
    return lines


def fmt_ratios(f: dict[str, Run], backend: str) -> list[str]:
    target = "≥ 0.85 (moonshot 1.0)" if backend == "sqlite" else "≥ 0.5 (moonshot 0.6)"
    rows = [("document GET / Kamailio document GET", "document GET", "kamailio document GET", target),
            ("element GET / Kamailio element GET", "element GET", "kamailio element GET", "reported"),
            ("document PUT / Kamailio document PUT", "document PUT (If-Match)", "kamailio document PUT", "reported"),
            ("document GET / one-SELECT baseline", "document GET", "baseline: one SELECT", "reported"),
            ("element GET / document GET", "element GET", "document GET", "≥ 0.9"),
            ("attribute GET / document GET", "attribute GET", "document GET", "≥ 0.9"),
            ("304 / document GET", "conditional GET (304)", "document GET", "≥ 1.0"),
            ("element PUT / document GET", "element PUT (If-Match)", "document GET", "≥ 0.3"),
            ("element DELETE+PUT / document GET", "element DELETE+PUT (If-Match)", "document GET", "reported"),
            ("document PUT / document GET", "document PUT (If-Match)", "document GET", "reported")]
    lines = ["| ratio | value | target |", "|---|---:|---|"]
    lines += [f"| {label} | {f[a].rps / f[b].rps:.2f} | {goal} |" for label, a, b, goal in rows if a in f and b in f]
    return lines


def fmt_sizes(figures: dict[int, dict[str, Run]]) -> list[str]:
    lines = ["| size | document GET req/s | p50 / p99 ms | ms per MB | element GET req/s | p50 / p99 ms"
             " | document PUT req/s | p50 / p99 ms | ms per MB |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for size, f in figures.items():
        get, el, put = f["document GET"], f["element GET"], f["document PUT"]
        mb = size / 1e6
        lines.append(f"| {size // 1000} KB | {get.rps:.0f} | {get.p50:.2f} / {get.p99:.2f} | {get.p50 / mb:.1f}"
                     f" | {el.rps:.0f} | {el.p50:.2f} / {el.p99:.2f} | {put.rps:.1f} | {put.p50:.2f} / {put.p99:.2f}"
                     f" | {put.p50 / mb:.1f} |")
    small, large = figures[min(figures)]["element GET"], figures[LARGE]["element GET"]
    lines += ["", f"Element GET p50, {LARGE // 1000} KB against {min(figures) // 1000} KB (repeated, one ETag):"
              f" {large.p50 / small.p50:.2f} times (target: at most 3). A document larger than node_cache_size"
              " (2 MiB by default) is parsed by each of its element GETs."]
    return lines


def fmt_scale(figures: dict[int, dict[str, list[float]]]) -> list[str]:
    sizes = sorted(figures)
    names = [*scale.WRITES, "global index GET"]
    lines = ["| operation | " + " | ".join(f"N={n} ms" for n in sizes) + " | " + " | ".join(
        f"ratio N={n}" for n in sizes[1:]) + " |", "|---|" + "---:|" * (2 * len(sizes) - 1)]
    for name in names:
        medians = [statistics.median(figures[n][name]) for n in sizes]
        lines.append(f"| {name} | " + " | ".join(f"{m:.2f}" for m in medians) + " | "
                     + " | ".join(f"{m / medians[0]:.2f}" for m in medians[1:]) + " |")
    return lines


def machine() -> str:
    versions = []
    for command in (["wrk", "--version"], ["kamailio", "-v"], ["mariadb", "--version"]):
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=5)
            versions.append((out.stdout or out.stderr).splitlines()[0].strip())
        except (OSError, IndexError, subprocess.TimeoutExpired):
            versions.append(f"{command[0]}: not found")
    return (f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}; "
            + "; ".join(versions))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,mysql", help="comma-separated: sqlite, mysql")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--no-kamailio", action="store_true", help="leave Kamailio's xcap_server out")
    parser.add_argument("--scale", default="100,1000,10000,100000", help="numbers of users (empty: no scale series)")
    parser.add_argument("--scale-mysql", default="100,1000,10000", help="numbers of users on MySQL (default: to 10^4)")
    parser.add_argument("--scale-ops", type=int, default=100, help="measured requests of each kind per size")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    backends = [b for b in args.backends.split(",") if b]
    started = time.monotonic()
    report = [f"# Benchmark results ({datetime.date.today().isoformat()})", "",
              f"`python bench/run.py {' '.join(sys.argv[1:])}`".replace("  ", " "), "",
              f"Machine: {machine()}.", "",
              f"xcap-wsgi runs `serve`'s defaults ({DEFAULT_WORKERS} {SERVER_MODEL['worker_class']} workers,"
              f" {SERVER_MODEL['threads']} threads); the one-SELECT baseline the same worker model. wrk -t1 -c8 on"
              " loopback (the If-Match runs -t8 -c8: a document and an ETag per connection); medians of"
              f" {args.rounds} alternating rounds of {args.seconds} s.", ""]
    with kamailio(not args.no_kamailio) as kamailio_root:
        for backend in backends:
            tmp = tempfile.mkdtemp(prefix="xcap-bench-")
            db_url = f"sqlite:///{tmp}/bench.db" if backend == "sqlite" else MYSQL_URL
            try:
                figures = run_operations(backend, db_url, kamailio_root, args, tmp)
                sizes = run_sizes(backend, db_url, args, tmp)
            finally:
                if backend == "mysql":
                    drop_bench_table()
                shutil.rmtree(tmp, ignore_errors=True)
            report += [f"## {backend}: operations", "", *fmt_runs(figures), "", *fmt_ratios(figures, backend), "",
                       f"## {backend}: document sizes", "", *fmt_sizes(sizes), ""]
    for backend in backends if args.scale else ():
        users = [int(n) for n in (args.scale_mysql if backend == "mysql" else args.scale).split(",")]
        print(f"[{backend}] scale series, {args.scale_ops} requests of each kind per size", flush=True)
        series = {n: scale.measure(backend, n, args.scale_ops) for n in users}
        report += [f"## {backend}: scale (median ms in process, ratio to N={users[0]}; target ≤ 1.5 for PUTs,"
                   " ≤ 1.2 for the document GET)", "", *fmt_scale(series), ""]
    report.append(f"Whole run: {(time.monotonic() - started) / 60:.1f} minutes.")
    Path(args.output).write_text("\n".join(report) + "\n")
    print(f"wrote {args.output}")


def drop_bench_table() -> None:
    from xcap_wsgi.storage import open_storage

    storage = open_storage(MYSQL_URL, "xcap_bench")
    storage.run(lambda cursor: cursor.execute("DELETE FROM `xcap_bench`"))  # type: ignore[attr-defined]
    storage.close()


if __name__ == "__main__":
    main()
