"""The XCAP URI: root, AUID, tree, XUI, document path, node selector and query.

::

    >>> u = parse_xcap_path("/xcap-root/resource-lists/users/sip:alice@example.com/index",
    ...                     "", XCAPRoot("/xcap-root/"))
    >>> (u.auid, u.username, u.domain, u.doc_uri)
    ('resource-lists', 'alice', 'example.com', '/xcap-root/resource-lists/users/sip:alice@example.com/index')

Parsing works on the *raw* request path (percent-encoded, as on the request line) so
that an encoded ``/`` in an XUI or an attribute value and non-ASCII selectors survive
(requirements U1-U17, N1, pitfall 11.4). :func:`raw_request_path` recovers it from the
WSGI environ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from urllib.parse import quote, unquote, unquote_to_bytes

from xcap_wsgi.errors import BadRequest, NotFound, URITooLong
from xcap_wsgi.usages import ApplicationUsage, generation, get_usage

#: Column sizes of Kamailio's ``xcap`` table (kamailio-compat.md).
MAX_DOC_URI = 255
MAX_USERNAME = 64
MAX_DOMAIN = 64

_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SCHEMES = ("sip:", "sips:", "tel:")


class XCAPRoot:
    """A validated XCAP root path (U3): ``/xcap-root/`` or ``/`` or ``/a/b/``."""

    def __init__(self, root: str) -> None:
        if not isinstance(root, str) or not root.startswith("/"):
            raise ValueError(f"xcap_root must be an absolute path starting with '/', got {root!r}")
        if any(c in root for c in "?#%") or "//" in root:
            raise ValueError(f"xcap_root must be a plain path without query, fragment, '%' or '//': {root!r}")
        self.path = root if root.endswith("/") else root + "/"
        self.prefix = self.path.rstrip("/")  # "" for the root "/"
        self.segments = [s for s in self.path.split("/") if s]

    def contains(self, path: str) -> bool:
        """True when ``path`` lies under the root on whole segments (``/xcap-rootless`` does not)."""
        return path.startswith(self.prefix) and (len(path) == len(self.prefix) or path[len(self.prefix)] == "/")


@dataclass(frozen=True, slots=True)
class XCAPURI:
    """A parsed XCAP request URI.

    ``doc_uri`` is the percent-decoded absolute path of the document including the root:
    the key Kamailio's modules read. ``node_selector`` and ``query`` are percent-decoded.
    """

    usage: ApplicationUsage
    tree: str
    xui: str | None
    username: str
    domain: str
    document: str
    doc_uri: str
    node_selector: str | None
    query: str
    xcap_root: str = "/xcap-root/"

    @property
    def auid(self) -> str:
        return self.usage.auid

    @property
    def document_url(self) -> str:
        """The document's absolute path, percent-encoded (for ``<ancestor>`` and Location)."""
        return quote(self.doc_uri, safe="/:@!$&'()*+,;=-._~")


def raw_request_path(environ: dict[str, object]) -> str:
    """The request path as sent on the request line, percent-encoding intact.

    Uses ``RAW_URI`` (gunicorn, Werkzeug) or ``REQUEST_URI`` (uWSGI, mod_wsgi) when it
    agrees with ``SCRIPT_NAME + PATH_INFO``; otherwise re-encodes the decoded path
    (WSGI gives it as latin-1 text, pitfall 11.4).
    """
    decoded = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw:
        if not raw.startswith("/"):  # absolute-form request target: http://host/path
            slash = raw.find("/", raw.find("//") + 2) if "//" in raw else -1
            raw = raw[slash:] if slash >= 0 else "/"
        raw = raw.split("?", 1)[0].split("#", 1)[0]
        if _latin1_unquoted(raw) == decoded:
            return raw
    return quote(decoded.encode("latin-1"), safe="/:@!$&'()*+,;=-._~")


@lru_cache(maxsize=4096)
def _latin1_unquoted(raw: str) -> str:
    """The request line's path as WSGI decodes it (clients repeat their paths: remembered)."""
    return unquote(raw, encoding="latin-1")


def _decode(text: str, what: str) -> str:
    """Percent-decode as UTF-8, refusing malformed escapes and invalid UTF-8 (400)."""
    if "%" not in text and text.isascii():  # the common case, kept cheap for GET
        return text
    if _BAD_PERCENT.search(text):
        raise BadRequest(f"malformed percent-encoding in the {what}")
    try:
        return unquote_to_bytes(text.encode("latin-1")).decode("utf-8")
    except (UnicodeDecodeError, UnicodeEncodeError):
        raise BadRequest(f"the {what} is not UTF-8 after percent-decoding") from None


def split_xui(xui: str) -> tuple[str, str]:
    """Owner of a users-tree document as Kamailio stores it: (username, domain).

    ``sip:alice@example.com`` → (alice, example.com); ``tel:+123`` → (+123, "");
    bare ``alice@example.com`` too; ``sip:example.com`` has no user part. URI parameters and a host port are dropped, as
    Kamailio's own URI parser does.
    """
    scheme, colon, rest = xui.partition(":")
    scheme = scheme.lower() + ":"
    if not colon or scheme not in _SCHEMES:
        scheme, rest = "", xui
    rest = rest.split(";", 1)[0].split("?", 1)[0]
    user, at, host = rest.rpartition("@")
    if not at:  # sip:host names no user; tel: and bare ids are all user
        user, host = ("", rest) if scheme in ("sip:", "sips:") else (rest, "")
    host = host[: host.find("]") + 1] if host.startswith("[") else host.split(":", 1)[0]  # drop the port
    return user, host


def parse_cached(raw_path: str, raw_query: str, root: XCAPRoot) -> XCAPURI:
    """:func:`parse_xcap_path`, remembered: clients request the same few URIs again and
    again, and a parsed URI is immutable. Refused URIs are not remembered."""
    return _parse_cached(raw_path, raw_query, root, generation())


@lru_cache(maxsize=4096)
def _parse_cached(raw_path: str, raw_query: str, root: XCAPRoot, registry_generation: int) -> XCAPURI:
    return parse_xcap_path(raw_path, raw_query, root)


def parse_xcap_path(raw_path: str, raw_query: str, root: XCAPRoot) -> XCAPURI:
    """Parse a raw request path known to lie under ``root`` (see :meth:`XCAPRoot.contains`).

    Raises NotFound for a wrong AUID, tree or user (U6-U8, U13, U14), BadRequest for
    malformed encoding, URITooLong when the document URI exceeds the ``doc_uri`` column.
    """
    raw_segments = raw_path.split("/")[1 + len(root.segments):]
    segments, selector = _split_selector(raw_segments)
    if not segments or segments == [""]:
        raise NotFound("no application usage (AUID) in the URI: the XCAP root itself is not a document")
    auid = segments[0]
    usage = get_usage(auid)
    if usage is None:
        raise NotFound(f"unknown application usage (AUID) {auid!r}")
    tree = segments[1] if len(segments) > 1 else ""
    if tree not in ("users", "global"):
        raise NotFound(f"expected 'users' or 'global' after the AUID {auid!r}, got {tree!r}")
    xui: str | None = None
    rest = segments[2:]
    username = domain = ""
    if tree == "users":
        xui = rest[0] if rest else ""
        if not xui:
            raise NotFound("missing user id (XUI) after 'users'")
        username, domain = _owner(xui)
        rest = rest[1:]
    document = _document_path(rest)
    doc_uri = _doc_uri(root.prefix, auid, tree, xui, document)
    query = _decode(raw_query, "query") if raw_query else ""
    return XCAPURI(usage, tree, xui, username, domain, document, doc_uri, selector, query, root.path)


def with_xui(uri: XCAPURI, xui: str) -> XCAPURI:
    """The users-tree ``uri`` addressed to the same document of the user ``xui`` (the
    subscriber's canonical XUI, :mod:`xcap_wsgi.identity`), with the checks of
    :func:`parse_xcap_path`."""
    username, domain = _owner(xui)
    doc_uri = _doc_uri(uri.xcap_root.rstrip("/"), uri.auid, uri.tree, xui, uri.document)
    return replace(uri, xui=xui, username=username, domain=domain, doc_uri=doc_uri)


def _owner(xui: str) -> tuple[str, str]:
    """:func:`split_xui`, refusing a XUI Kamailio's columns cannot hold (U8, U14)."""
    username, domain = split_xui(xui)
    if not username:
        raise NotFound(f"the user id {xui!r} has no user part")
    if len(username) > MAX_USERNAME or len(domain) > MAX_DOMAIN:
        raise NotFound(f"user id {xui!r} not recognised: user or domain part longer than 64 characters")
    return username, domain


def _doc_uri(prefix: str, auid: str, tree: str, xui: str | None, document: str) -> str:
    doc_uri = "/".join([prefix, auid, tree, *([xui] if xui else []), document])
    if len(doc_uri) > MAX_DOC_URI:
        raise URITooLong(f"the document URI is {len(doc_uri)} characters long; at most {MAX_DOC_URI} are stored")
    return doc_uri


def _split_selector(raw_segments: list[str]) -> tuple[list[str], str | None]:
    """Decode the document segments; cut at the ``~~`` separator (also ``%7E%7E``, U2)."""
    segments: list[str] = []
    for i, raw in enumerate(raw_segments):
        seg = _decode(raw, "path")
        if seg == "~~":
            selector = _decode("/".join(raw_segments[i + 1:]), "node selector")
            if not selector:
                raise BadRequest("empty node selector after '~~'")
            return segments, selector
        segments.append(seg)
    return segments, None


def _document_path(parts: list[str]) -> str:
    """The document name, possibly in sub-folders (U9)."""
    if not parts or parts == [""]:
        raise NotFound("no document name in the URI (a directory is not a document)")
    for part in parts:
        if part in ("", ".", ".."):
            raise NotFound("empty, '.' or '..' path segment in the document path")
        if "/" in part:
            raise NotFound("a document name cannot contain an encoded '/'")
    return "/".join(parts)
