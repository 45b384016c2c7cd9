"""The speed baseline: a bare WSGI app doing one indexed SELECT on the same table.

    XCAP_DB_URL=sqlite:///bench.db gunicorn 'bench.baseline_app:app'

It answers the stored bytes of ``doc_uri = PATH_INFO`` with no XCAP logic at all, using the
same per-thread connection handling as xcap-wsgi's storage (so the comparison isolates
what XCAP adds: URI parsing, preconditions, headers).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from xcap_wsgi.storage import open_storage

storage = open_storage(os.environ.get("XCAP_DB_URL"), os.environ.get("XCAP_TABLE", "xcap"))


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    doc = storage.get(environ["PATH_INFO"])
    if doc is None:
        start_response("404 Not Found", [("Content-Length", "0")])
        return [b""]
    start_response("200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(len(doc.doc)))])
    return [doc.doc]
