"""The seed's script functions as a Python API: XCAP driven from your own code, in process.

::

    from xcap_wsgi import XCAPMiddleware
    from xcap_wsgi.api import XCAPClient, XCAPRequestError

    xcap = XCAPClient(XCAPMiddleware(None, db_url="mysql://kamailio:secret@127.0.0.1/kamailio"))
    path = "/xcap-root/resource-lists/users/sip:alice@example.com/index"
    created = xcap.xcaps_put("sip:alice@example.com", path, document)   # Result(status=201, etag=...)
    friends = xcap.xcaps_get(None, path + "/~~/resource-lists/list%5B@name=%22friends%22%5D")
    try:
        xcap.xcaps_del("sip:alice@example.com", path, if_match=created.etag)
    except XCAPRequestError as exc:
        print(exc.status, exc.condition, exc.phrase)   # 412 None If-Match failed: ...

Kamailio's ``xcap_server`` gives its routing script ``xcaps_put(uri, path, doc)``,
``xcaps_get(uri, path)`` and ``xcaps_del(uri, path)``; these take the same arguments.
``path`` is the request path as on the HTTP request line: percent-encoded, with its node
selector and ``?xmlns()`` query (other characters that cannot appear there are encoded as
a client would). ``uri`` is the SIP URI of the user acting: as over HTTP with
authentication, a user reads and writes their own documents and reads the global tree
(Kamailio's sample script makes the same check). ``uri=None`` is an administrator, who may
do anything: each user's documents and the global tree. Nothing is authenticated: the
caller vouches for ``uri``.

Each call builds a WSGI environ and runs it through the middleware, so it has exactly the
semantics of the HTTP request, and its bytes: validation, ETags, ``if_match`` /
``if_none_match`` (as the headers: quoted or not, lists, ``*``), node selectors,
``buf_size``, U10, change notifications (``notify``), the access log and metrics. A PUT is
labelled with the type its target needs: the usage's MIME type, ``application/xcap-el+xml``
or ``application/xcap-att+xml``. A 2xx or 304 answer is a :class:`Result`; any other raises
:class:`XCAPRequestError` with the answer's status, body and phrase.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from lxml import etree

from xcap_wsgi import operations
from xcap_wsgi.auth.base import Identity, canonical_identity, owner
from xcap_wsgi.errors import XCAP_ERROR_MIME, XCAPError
from xcap_wsgi.middleware import API_IDENTITY, XCAPMiddleware
from xcap_wsgi.uri import XCAPURI, parse_cached

#: every printable ASCII character but the space: what a request line may carry as it is
REQUEST_LINE_SAFE = "".join(chr(c) for c in range(0x21, 0x7F))
Headers = list[tuple[str, str]]


@dataclass(frozen=True)
class Result:
    """A successful answer: ``etag`` without its quotes (as the ``xcap`` table stores it),
    ``body`` and ``content_type`` those of a GET (empty and None for PUT, DELETE and 304)."""

    status: int
    etag: str | None
    body: bytes = b""
    content_type: str | None = None
    headers: Headers = field(default_factory=list, repr=False, compare=False)


class XCAPRequestError(Exception):
    """An answer that is neither 2xx nor 304, as an HTTP client would have received it.

    ``body`` is the response body: for a 409, the ``application/xcap-error+xml`` document,
    whose condition element names ``condition`` (``no-parent``, ``uniqueness-failure``, ...)
    and whose ``phrase`` attribute is ``phrase``; otherwise the plain-text sentence, which is
    ``phrase`` too. ``headers`` holds ``Allow`` (405) or ``Retry-After`` (503).
    """

    def __init__(self, status: int, body: bytes, content_type: str | None, headers: Headers) -> None:
        self.status, self.body, self.content_type, self.headers = status, body, content_type, headers
        self.condition, self.phrase = _reason(body, content_type)
        super().__init__(f"{status} {self.phrase}")


def _reason(body: bytes, content_type: str | None) -> tuple[str | None, str]:
    """(condition, phrase) of an error body (RFC 4825 §11 for a 409)."""
    if content_type == XCAP_ERROR_MIME:
        condition = etree.fromstring(body)[0]
        name = etree.QName(condition).localname
        return name, condition.get("phrase", name)
    return None, body.decode("utf-8", "replace").strip()


class XCAPClient:
    """``xcaps_put`` / ``xcaps_get`` / ``xcaps_del`` against ``middleware``, in process.

    ``base_url`` (scheme and host) is what requests are addressed to: the XCAP root URL of
    change events and the host of OMA xcap-directory listings.
    """

    def __init__(self, middleware: XCAPMiddleware, *, base_url: str = "http://localhost") -> None:
        if not isinstance(middleware, XCAPMiddleware):
            raise ValueError("XCAPClient drives an XCAPMiddleware")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"base_url must be http(s)://host[:port], got {base_url!r}")
        self.middleware = middleware
        self.scheme, self.host = parts.scheme, parts.netloc
        self.port = str(parts.port or (443 if parts.scheme == "https" else 80))

    def xcaps_put(self, uri: str | None, path: str, doc: bytes | str, *,
                  if_match: str | None = None, if_none_match: str | None = None) -> Result:
        """PUT ``doc`` (text is sent as UTF-8) at ``path``: a document, element or attribute."""
        body = doc.encode("utf-8") if isinstance(doc, str) else bytes(doc)
        return self.request("PUT", uri, path, body, if_match=if_match, if_none_match=if_none_match)

    def xcaps_get(self, uri: str | None, path: str, *,
                  if_match: str | None = None, if_none_match: str | None = None) -> Result:
        """GET ``path``: a 304 when ``if_none_match`` matches."""
        return self.request("GET", uri, path, if_match=if_match, if_none_match=if_none_match)

    def xcaps_del(self, uri: str | None, path: str, *,
                  if_match: str | None = None, if_none_match: str | None = None) -> Result:
        """DELETE ``path``; a node DELETE's result carries the document's new ETag."""
        return self.request("DELETE", uri, path, if_match=if_match, if_none_match=if_none_match)

    def request(self, method: str, uri: str | None, path: str, body: bytes = b"", *,
                if_match: str | None = None, if_none_match: str | None = None) -> Result:
        """Any method, as :meth:`xcaps_get` (HEAD, or POST for its 405, included)."""
        raw, _, query = quote(path, safe=REQUEST_LINE_SAFE).partition("?")
        target = self._parse(raw, query)
        environ = self._environ(method, raw, query, body)
        environ[API_IDENTITY] = self._identity(uri, target)
        if body or method == "PUT":
            environ["CONTENT_TYPE"] = self._body_type(target)
        for name, value in (("HTTP_IF_MATCH", if_match), ("HTTP_IF_NONE_MATCH", if_none_match)):
            if value is not None:
                environ[name] = value
        return self._answer(self.middleware, environ)

    def _parse(self, raw: str, query: str) -> XCAPURI | None:
        """The request's XCAP URI; None when the request will fail before using it."""
        if not self.middleware.root.contains(unquote(raw, encoding="latin-1")):
            return None
        try:
            return parse_cached(raw, query, self.middleware.root)
        except XCAPError:
            return None

    @staticmethod
    def _identity(uri: str | None, target: XCAPURI | None) -> Identity:
        """The user named by ``uri``; for None an administrator acting as the document's owner
        (policy lets only owners write users' documents) and as a trusted peer."""
        if uri is not None:
            return Identity(*canonical_identity(uri))
        user, domain = owner(target) if target is not None and target.tree == "users" else ("", "")
        return Identity(user, domain, trusted_peer=True, admin=True)

    @staticmethod
    def _body_type(target: XCAPURI | None) -> str:
        """What a PUT body is labelled: the type its target needs (none when the URI is refused)."""
        if target is None:
            return ""
        try:
            return operations.body_content_type(operations.parse_selector(target), target.usage.mime_type)
        except XCAPError:
            return ""

    def _environ(self, method: str, raw: str, query: str, body: bytes) -> dict[str, Any]:
        """A WSGI environ as a server builds it from the request line (PEP 3333)."""
        return {
            "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": unquote(raw, encoding="latin-1"),
            "QUERY_STRING": query, "RAW_URI": raw + ("?" + query if query else ""), "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_NAME": self.host.rsplit(":", 1)[0], "SERVER_PORT": self.port, "HTTP_HOST": self.host,
            "REMOTE_ADDR": "127.0.0.1", "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "wsgi.version": (1, 0), "wsgi.url_scheme": self.scheme,
            "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
        }

    @staticmethod
    def _answer(app: XCAPMiddleware, environ: dict[str, Any]) -> Result:
        sent: list[tuple[str, Headers]] = []

        def start_response(status: str, headers: Headers, exc_info: Any = None) -> None:
            sent.append((status, list(headers)))

        chunks: Iterable[bytes] = app(environ, start_response)
        try:
            body = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status_line, headers = sent[-1]
        status = int(status_line.split(" ", 1)[0])
        values = {name.lower(): value for name, value in headers}
        content_type = values.get("content-type")
        if not (200 <= status < 300 or status == 304):
            raise XCAPRequestError(status, body, content_type, headers)
        etag = values.get("etag")
        return Result(status, None if etag is None else etag.strip('"'), body, content_type if body else None, headers)
