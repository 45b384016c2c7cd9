"""Profile: where one XCAP request spends its time inside the WSGI application.

    python bench/profile_request.py [--backend sqlite|mysql] [--requests 20000] [--top 25]
                                    [--kind document|element|attribute|conditional|element-put]
                                    [--size 2048]

Calls the middleware directly (no HTTP server, no network) with the environ gunicorn
builds for a GET of a resource-lists document (2 KB unless ``--size``), its element or attribute, a GET
answered 304, or an element PUT; prints the mean time per request, the same for the bare
one-SELECT baseline (``bench/baseline_app.py``'s work: ``storage.get`` and the headers)
measured in the same run, and the cProfile table of the slowest functions by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.document_get import DOC_URI, MYSQL_URL, document  # noqa: E402
from xcap_wsgi import XCAPMiddleware  # noqa: E402

PATHS = {
    "document": DOC_URI,
    "element": DOC_URI + '/~~/resource-lists/list%5B@name=%22l3%22%5D/entry',
    "attribute": DOC_URI + '/~~/resource-lists/list%5B@name=%22l3%22%5D/entry/@uri',
    "conditional": DOC_URI,
    "element-put": DOC_URI + '/~~/resource-lists/list%5B@name=%22l3%22%5D/entry',
}


def environ(path: str, method: str = "GET", body: bytes = b"", **headers: str) -> dict[str, Any]:
    """What gunicorn hands the application for one keep-alive request."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "RAW_URI": path, "QUERY_STRING": "",
        "PATH_INFO": unquote(path).encode().decode("latin-1"),
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "HTTP_HOST": "127.0.0.1:8080",
        "HTTP_USER_AGENT": "wrk", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
        "wsgi.version": (1, 0), "wsgi.multithread": True, "wsgi.multiprocess": True,
        "wsgi.run_once": False, "wsgi.errors": sys.stderr,
    }
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
        env["CONTENT_TYPE"] = "application/xcap-el+xml"
    env.update({f"HTTP_{name.upper()}": value for name, value in headers.items()})
    return env


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    start_response.status = status  # type: ignore[attr-defined]


def request_maker(app: Any, kind: str) -> Callable[[], None]:
    path = PATHS[kind]
    if kind == "element-put":
        body = b'<entry uri="sip:u3@example.com"/>'
        return lambda: b"".join(app(environ(path, "PUT", body), start_response))  # type: ignore[func-returns-value]
    headers = {}
    if kind == "conditional":
        etag = dict(app.handle(environ(DOC_URI)).headers)["ETag"]
        headers["if_none_match"] = etag
    return lambda: b"".join(app(environ(path, **headers), start_response))  # type: ignore[func-returns-value]


def baseline_maker(app: XCAPMiddleware) -> Callable[[], None]:
    storage = app.storage

    def request() -> None:
        doc = storage.get(DOC_URI)
        assert doc is not None
        start_response("200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(len(doc.doc)))])

    return request


def mean_us(call: Callable[[], None], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "mysql"], default="sqlite")
    parser.add_argument("--kind", choices=sorted(PATHS), default="document")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--size", type=int, default=2048, help="document size in bytes (default 2048)")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="xcap-profile-")
    db_url = f"sqlite:///{tmp}/profile.db" if args.backend == "sqlite" else os.environ.get("XCAP_BENCH_MYSQL_URL", MYSQL_URL)
    app = XCAPMiddleware(None, db_url=db_url, xcap_table="xcap_profile")
    app.handle(environ(DOC_URI, "PUT", document(args.size)) | {"CONTENT_TYPE": "application/resource-lists+xml"})
    request, baseline = request_maker(app, args.kind), baseline_maker(app)
    request()
    expected = "200 OK" if args.kind != "conditional" else "304 Not Modified"
    assert start_response.status == expected, start_response.status  # type: ignore[attr-defined]
    for _ in range(2):  # alternate, so drift hits both
        ours, base = mean_us(request, args.requests), mean_us(baseline, args.requests)
    print(f"[{args.backend}] {args.kind} request: {ours:.1f} us; one-SELECT baseline: {base:.1f} us;"
          f" XCAP's own share: {ours - base:.1f} us ({(ours - base) / ours:.0%})")
    profile = cProfile.Profile()
    profile.runcall(mean_us, request, args.requests)
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())


if __name__ == "__main__":
    main()
