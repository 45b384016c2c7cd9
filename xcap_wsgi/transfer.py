"""Documents in and out of the store: export files, imports, OpenXCAP's table, and single
documents provisioned through the XCAP code path.

::

    from xcap_wsgi import transfer

    source, target = transfer.open_table("sqlite:///xcap.db"), transfer.open_table("mysql://k:pw@db/kamailio")
    with open("xcap.jsonl", "wb") as out:
        transfer.export_documents(source, out)
    with open("xcap.jsonl", "rb") as file:
        transfer.import_documents(target, transfer.read_export(file))          # all or nothing
    transfer.import_documents(target, transfer.OpenXCAPRows(transfer.open_table("mysql://.../openxcap")))

    app = transfer.provisioning_app({"db_url": "sqlite:///xcap.db"})
    answer = transfer.request(app, "PUT", "pres-rules/users/sip:alice@example.com/index",
                              user="sip:alice@example.com", body=rules)

**The export format**, version 1, is JSON Lines in UTF-8: the first line is the header
``{"format":"xcap-wsgi-export","version":1}``, every further line one document::

    {"doc_uri":"/xcap-root/pres-rules/users/sip:alice@example.com/index","username":"alice",
     "domain":"example.com","doc_type":2,"etag":"8c1f...","doc":"PD94bWwg..."}

``doc_uri``, ``username``, ``domain`` and ``doc_type`` are the row's columns (Kamailio's
``xcap`` table, kamailio-compat.md), ``etag`` is unquoted, ``doc`` the stored bytes in
base64 (RFC 4648 §4). Documents come in the table's id order. A reader ignores fields it
does not know; a change that older readers would misread gets a new version number.

An import keeps every ETag and records no change event (the rows are restored, not
changed by a client). It runs in one transaction, so a malformed line, a document that
exists already (unless ``replace``) or a lost database leaves nothing written.

**OpenXCAP** (github.com/AGProjects/openxcap) keeps the same columns in its own ``xcap``
table but ``doc_uri`` holds only the document's path under the user (``index``,
``oma_status-icon/index``; pres-rules always ``index.xml``), the owner sits in
``username``/``domain``, and ``doc_type`` is OpenXCAP's own code
(``xcap/backend/database.py``, ``DatabaseStorage.app_mapping``). :class:`OpenXCAPRows`
maps each row onto the document URI a client of this server requests,
``<xcap_root><auid>/users/sip:<username>@<domain>/<path>``, and the usage's doc_type here.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import os
import re
import string
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple
from urllib.parse import quote, unquote_to_bytes, urlsplit

from xcap_wsgi import operations
from xcap_wsgi.errors import XCAPError
from xcap_wsgi.middleware import MAX_BUF_SIZE, XCAPMiddleware
from xcap_wsgi.storage import DocKey, Document, open_storage
from xcap_wsgi.storage.dbapi import DBAPIStorage, DocumentExists
from xcap_wsgi.storage.sqlite import SQLiteStorage
from xcap_wsgi.uri import MAX_DOC_URI, MAX_DOMAIN, MAX_USERNAME, XCAPRoot, parse_xcap_path

FORMAT = "xcap-wsgi-export"
VERSION = 1
HEADER = {"format": FORMAT, "version": VERSION}
HEADER_TEXT = json.dumps(HEADER, separators=(",", ":"))
#: a progress line every this many documents
PROGRESS_EVERY = 1000
#: what an entity tag may hold (RFC 9110 §8.8.3 etagc, no obs-text), at most the column's 128
ETAG_RE = re.compile(r"[\x21\x23-\x7e]{1,128}")
INT32 = range(-(2**31), 2**31)

#: OpenXCAP's doc_type codes (xcap/backend/database.py, DatabaseStorage.app_mapping)
OPENXCAP_APPLICATIONS = {
    0: "test-app",
    1 << 1: "pres-rules",
    1 << 2: "resource-lists",
    1 << 3: "rls-services",
    1 << 4: "pidf-manipulation",
    1 << 5: "org.openmobilealliance.pres-rules",
    1 << 6: "org.openmobilealliance.pres-content",
    1 << 7: "org.openxcap.dialog-rules",
}
#: characters of a document URI kept as they are in a request path (as XCAPURI.document_url)
URI_SAFE = "/:@!$&'()*+,;=-._~"

Report = Callable[[str], None]


def _quiet(line: str) -> None:
    pass


class TransferError(Exception):
    """An export or import that cannot go on; the message says where (line, row)."""


class Incoming(NamedTuple):
    """A document to import and where it came from (``line 3``, ``OpenXCAP row 17``)."""

    origin: str
    key: DocKey
    document: Document


def open_table(db_url: str | None, table: str = "xcap") -> DBAPIStorage:
    """The SQL table at ``db_url`` (ValueError for an unsupported URL)."""
    storage = open_storage(db_url, table)
    if not isinstance(storage, DBAPIStorage):  # every URL scheme is an SQL backend
        raise ValueError(f"db_url {db_url!r} is not an SQL database")
    return storage


def existing_table(db_url: str | None, table: str = "xcap") -> DBAPIStorage:
    """:func:`open_table` for reading only: LookupError for a SQLite file that is not there
    (opening it would create it)."""
    storage = open_table(db_url, table)
    if isinstance(storage, SQLiteStorage) and not os.path.exists(storage.path):
        raise LookupError(f"no database file {storage.path}")
    return storage


def plural(count: int, noun: str = "document") -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


# -- export ----------------------------------------------------------------------------
def _line(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def document_record(key: DocKey, document: Document) -> dict[str, Any]:
    """One document line of the export format."""
    return {"doc_uri": key.doc_uri, "username": key.username, "domain": key.domain, "doc_type": key.doc_type,
            "etag": document.etag, "doc": base64.b64encode(document.doc).decode("ascii")}


def export_documents(storage: DBAPIStorage, out: IO[bytes], report: Report = _quiet) -> int:
    """Write the header and every stored document to ``out``; returns how many."""
    out.write(_line(HEADER))
    count = 0
    for row in storage.dump():
        out.write(_line(document_record(row.key, row.document)))
        count += 1
        if count % PROGRESS_EVERY == 0:
            report(f"{plural(count)} exported")
    return count


# -- reading an export -----------------------------------------------------------------
def read_export(stream: Iterable[bytes]) -> Iterator[Incoming]:
    """The documents of an export, each checked as it is read: TransferError names the
    line of the first that is malformed."""
    lines = enumerate(stream, 1)
    first = next(lines, None)
    if first is None:
        raise TransferError(f"line 1: the file is empty; an export starts with {HEADER_TEXT}")
    _check_header(_parse(*first))
    for number, raw in lines:
        yield Incoming(f"line {number}", *_document(_parse(number, raw), f"line {number}"))


def _parse(number: int, raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.rstrip(b"\r\n").decode("utf-8"))
    except UnicodeDecodeError:
        raise TransferError(f"line {number}: not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise TransferError(f"line {number}: not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise TransferError(f"line {number}: expected a JSON object")
    return value


def _check_header(header: dict[str, Any]) -> None:
    if header.get("format") != FORMAT:
        raise TransferError(f"line 1: not an xcap-wsgi export: the header {HEADER_TEXT} is missing")
    if header.get("version") != VERSION:
        raise TransferError(f"line 1: export format version {header.get('version')!r} is not supported"
                            f" (this xcap-wsgi reads version {VERSION})")


def _field(record: dict[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in record:
        raise TransferError(f"{where}: missing field {name!r}")
    value = record[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TransferError(f"{where}: field {name!r} must be {'an integer' if kind is int else 'a string'}")
    return value


def _text(record: dict[str, Any], name: str, limit: int, where: str) -> str:
    value: str = _field(record, name, str, where)
    if len(value) > limit:
        raise TransferError(f"{where}: field {name!r} is longer than the column's {limit} characters")
    return value


def _document(record: dict[str, Any], where: str) -> tuple[DocKey, Document]:
    doc_uri = _text(record, "doc_uri", MAX_DOC_URI, where)
    if not doc_uri.startswith("/"):
        raise TransferError(f"{where}: field 'doc_uri' must be an absolute path")
    username, domain = _text(record, "username", MAX_USERNAME, where), _text(record, "domain", MAX_DOMAIN, where)
    doc_type: int = _field(record, "doc_type", int, where)
    if doc_type not in INT32:
        raise TransferError(f"{where}: field 'doc_type' is out of the column's range")
    etag: str = _field(record, "etag", str, where)
    if not ETAG_RE.fullmatch(etag):
        raise TransferError(f"{where}: field 'etag' must be 1 to 128 visible ASCII characters other than '\"'")
    try:
        doc = base64.b64decode(_field(record, "doc", str, where), validate=True)
    except (binascii.Error, ValueError):  # the codec's own wording differs between Python versions
        raise TransferError(f"{where}: field 'doc' is not base64") from None
    if len(doc) > MAX_BUF_SIZE:
        raise TransferError(f"{where}: the document is larger than the column's {MAX_BUF_SIZE} bytes")
    return DocKey(doc_uri, username, domain, doc_type), Document(doc, etag)


# -- OpenXCAP ----------------------------------------------------------------------------
class _Skip(Exception):
    pass


@dataclass
class OpenXCAPRows:
    """The documents of OpenXCAP's table ``source``, as this server stores them under
    ``xcap_root``. Rows that cannot be served here (an application usage not registered,
    such as OpenXCAP's ``test-app``, or a name no URI reaches) are skipped, each reported,
    and counted in ``skipped``."""

    source: DBAPIStorage
    xcap_root: str = "/xcap-root/"
    report: Report = _quiet
    skipped: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.root = XCAPRoot(self.xcap_root)

    def __iter__(self) -> Iterator[Incoming]:
        for row in self.source.dump():
            origin = f"OpenXCAP row {row.id}"
            try:
                key = self.key(row.key)
            except _Skip as reason:
                self.skipped += 1
                self.report(f"skipped {origin}: {reason}")
                continue
            yield Incoming(origin, key, row.document)

    def key(self, theirs: DocKey) -> DocKey:
        """Where OpenXCAP's row goes here; _Skip says why nowhere."""
        auid = OPENXCAP_APPLICATIONS.get(theirs.doc_type)
        if auid is None:
            raise _Skip(f"doc_type {theirs.doc_type} is none of OpenXCAP's application usages")
        doc_uri = f"{self.root.prefix}/{auid}/users/sip:{theirs.username}@{theirs.domain}/{theirs.doc_uri}"
        try:
            uri = parse_xcap_path(quote(doc_uri, safe=URI_SAFE), "", self.root)
        except XCAPError as exc:
            raise _Skip(f"{doc_uri}: {exc.description}") from None
        if (uri.doc_uri, uri.username, uri.domain, uri.node_selector) != (doc_uri, theirs.username, theirs.domain, None):
            raise _Skip(f"{doc_uri}: no request URI reaches this owner and document name")
        return DocKey(uri.doc_uri, uri.username, uri.domain, uri.usage.doc_type)


# -- import ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Imported:
    created: int
    replaced: int


def import_documents(storage: DBAPIStorage, documents: Iterable[Incoming], *, replace: bool = False,
                     report: Report = _quiet) -> Imported:
    """Store ``documents`` with their ETags in one transaction; TransferError (nothing
    written) for a document stored already unless ``replace``, one given twice, or one
    that ``documents`` refuses."""
    seen: dict[str, str] = {}
    current: list[Incoming] = []

    def keyed() -> Iterator[tuple[DocKey, Document]]:
        for count, item in enumerate(documents, 1):
            if item.key.doc_uri in seen:
                raise TransferError(f"{item.origin}: {item.key.doc_uri} is given twice (first in {seen[item.key.doc_uri]})")
            seen[item.key.doc_uri] = item.origin
            current[:] = [item]
            yield item.key, item.document
            if count % PROGRESS_EVERY == 0:
                report(f"{plural(count)} read")

    try:
        created, replaced = storage.load(keyed(), replace=replace)
    except DocumentExists as exc:
        raise TransferError(f"{current[0].origin}: {exc.doc_uri} exists already (--replace overwrites it)") from None
    return Imported(created, replaced)


# -- one document through the XCAP code path ---------------------------------------------
#: the address a provisioning request comes from, the one trusted proxy of its app
CLIENT_ADDRESS = "127.0.0.1"
#: settings of serve that a provisioning request uses (the others serve HTTP clients)
PROVISIONING_SETTINGS = frozenset({"db_url", "xcap_table", "xcap_root", "buf_size", "admins", "notify",
                                   "notify_max_attempts", "ims_home_domain"})
#: how long a write waits for its change event to reach every notify target
NOTIFY_WAIT_S = 10.0
NOTIFY_POLL_S = 0.02
#: pending outbox rows looked through for the request's document
OUTBOX_SCAN = 10_000
#: what a PATH may hold unencoded: printable ASCII but '?' (the query), '#' and space
PATH_SAFE = "".join(c for c in string.punctuation if c not in "?#")


def provisioning_app(settings: Mapping[str, Any]) -> XCAPMiddleware:
    """The middleware ``serve`` would build from ``settings``, authenticating as the
    ``upstream`` mode does: the user a request names (:func:`request`) is who it is, so
    authorization is exactly an HTTP client's (own documents only; the global tree for
    ``admins``). Trusted peers are left out: they would read as no one in particular."""
    chosen = {k: v for k, v in settings.items() if k in PROVISIONING_SETTINGS}
    return XCAPMiddleware(None, **chosen, auth="upstream", trusted_proxies=[CLIENT_ADDRESS])


@dataclass(frozen=True)
class Answer:
    """The response, and for a write with notify targets whether its event went out."""

    status: str
    headers: list[tuple[str, str]]
    body: bytes
    delivered: bool | None = None

    @property
    def ok(self) -> bool:
        return self.status.startswith("2")

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


def request(app: XCAPMiddleware, method: str, path: str, *, user: str, body: bytes = b"",
            content_type: str | None = None, base_url: str = "http://localhost",
            answered: Callable[[Answer], None] | None = None) -> Answer:
    """``method`` on ``path`` (under the root, or relative to it; ``?query`` allowed) as
    ``user`` through ``app``, as an HTTP request would be. A PUT body is labelled with
    the type the URI needs (the usage's for a document) unless ``content_type`` says
    otherwise. A successful write then waits up to :data:`NOTIFY_WAIT_S` for its change
    event to be delivered; ``answered`` sees the answer before that wait."""
    path = path if path.startswith("/") else app.root.path + path
    path, _, query = path.partition("?")
    raw, query = quote(path, safe=PATH_SAFE), quote(query, safe=PATH_SAFE + "?")
    doc_uri, body_type = _resource(app, raw, query)
    if method == "PUT" and content_type is None:
        content_type = body_type
    environ = _environ(method, raw, query, body, content_type, base_url)
    environ["REMOTE_USER"] = user
    try:
        answer = Answer(*_call(app, environ))
        if answered is not None:
            answered(answer)
        if answer.ok and method in ("PUT", "DELETE") and doc_uri is not None and app.notifier is not None:
            answer = dataclasses.replace(answer, delivered=await_delivery(app, doc_uri))
    finally:
        if app.notifier is not None:
            app.notifier.stop()  # releases the targets' leases at once: a running server delivers on
    return answer


def _resource(app: XCAPMiddleware, raw: str, query: str) -> tuple[str | None, str | None]:
    """The document URI a request addresses and the type its PUT body is labelled with
    (PD5, PE7, PA2); (None, None) for a URI that does not parse: the request says why."""
    if not app.root.contains(raw):
        return None, None
    try:
        uri = parse_xcap_path(raw, query, app.root)
        return uri.doc_uri, operations.body_content_type(operations.parse_selector(uri), uri.usage.mime_type)
    except XCAPError:
        return None, None


def check_base_url(base_url: str) -> str:
    """``base_url`` when it is ``http(s)://host[:port]``: what clients address, for the
    ``xcap-root`` of change events (RFC 5874) and the OMA directory's URIs."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise ValueError(f"base URL must be http(s)://host[:port], got {base_url!r}")
    return base_url


def _environ(method: str, raw: str, query: str, body: bytes, content_type: str | None,
             base_url: str) -> dict[str, Any]:
    parts = urlsplit(check_base_url(base_url))
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": unquote_to_bytes(raw).decode("latin-1"),
        "QUERY_STRING": query, "RAW_URI": raw + (f"?{query}" if query else ""), "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": parts.hostname, "SERVER_PORT": str(parts.port or (443 if parts.scheme == "https" else 80)),
        "HTTP_HOST": parts.netloc, "wsgi.url_scheme": parts.scheme, "REMOTE_ADDR": CLIENT_ADDRESS,
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
        "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": True,
    }
    if method == "PUT":
        environ["CONTENT_LENGTH"] = str(len(body))
    if content_type:
        environ["CONTENT_TYPE"] = content_type
    return environ


def _call(app: XCAPMiddleware, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        started.append((status, headers))
        return lambda data: None

    chunks = app(environ, start_response)
    try:
        body = b"".join(chunks)
    finally:
        getattr(chunks, "close", lambda: None)()
    status, headers = started[-1]
    return status, headers, body


def await_delivery(app: XCAPMiddleware, doc_uri: str, timeout: float = NOTIFY_WAIT_S) -> bool:
    """Whether, within ``timeout``, the outbox holds no pending event of ``doc_uri`` for
    any target: delivered by this process, or by a server holding the target's lease.
    What is not delivered stays in the outbox for the next process that delivers."""
    notifier = app.notifier
    if notifier is None:
        return True
    deadline = time.monotonic() + timeout
    while any(row.doc_uri == doc_uri for sink in notifier.sinks for row in notifier.outbox.pending(sink.name, OUTBOX_SCAN)):
        if time.monotonic() >= deadline:
            return False
        time.sleep(NOTIFY_POLL_S)
    return True
