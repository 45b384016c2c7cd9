"""Checks on XML request bodies before anything is stored (RFC 4825 §8.2.2, PD3, PD4).

The parser never loads a DTD, never resolves an entity and never touches the network;
a document that declares a DOCTYPE is refused outright, so no entity declaration is
ever stored or expanded.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from lxml import etree

from xcap_wsgi.errors import NotUTF8, NotWellFormed

_XML_DECL_ENCODING = re.compile(rb"""^<\?xml\s[^>]*?encoding\s*=\s*["']([^"']*)["']""")
_UTF8_NAMES = {"utf-8", "utf8"}
_local = threading.local()


def parser() -> etree.XMLParser:
    """This thread's hardened lxml parser (parsers must not be shared between threads)."""
    p: etree.XMLParser | None = getattr(_local, "parser", None)
    if p is None:
        p = etree.XMLParser(
            resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False,
            remove_blank_text=False, remove_comments=False, remove_pis=False,
        )
        _local.parser = p
    return p


def check_utf8(body: bytes) -> None:
    """PD4/PE6/PA3: every XCAP body is UTF-8, both declared and in fact."""
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise NotUTF8("the body is UTF-16 (byte order mark); XCAP documents must be UTF-8")
    head = body[3:] if body.startswith(b"\xef\xbb\xbf") else body
    m = _XML_DECL_ENCODING.match(head)
    if m and m.group(1).decode("ascii", "replace").lower() not in _UTF8_NAMES:
        raise NotUTF8(f"the body declares encoding {m.group(1).decode('ascii', 'replace')!r}; XCAP requires UTF-8")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotUTF8(f"the body is not valid UTF-8 (byte {exc.start}: {body[exc.start:exc.start + 1]!r})") from None


def parse_document(body: bytes) -> etree._Element:
    """Parse a whole-document body: UTF-8, well-formed, no DOCTYPE. Returns the root."""
    check_utf8(body)
    try:
        root = etree.fromstring(body, parser())
    except etree.XMLSyntaxError as exc:
        raise NotWellFormed(getattr(exc, "msg", None) or str(exc)) from None
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise NotWellFormed("DOCTYPE and entity declarations are not allowed in XCAP documents")
    return root
