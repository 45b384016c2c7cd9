"""The OMA XDM usages SIP and IMS clients use (doc_type codes from kamailio-compat.md).

pres-content documents (status icons) must carry base64 image data of an allowed
type and size (:data:`ICON_MIME_TYPES`, :data:`ICON_MAX_BYTES`). The user's
xcap-directory is generated::

    body = xcap_directory_document([DirectoryEntry("resource-lists", uri, etag)])
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable
from datetime import datetime
from itertools import groupby
from typing import NamedTuple
from xml.sax.saxutils import quoteattr

from lxml import etree

from xcap_wsgi.errors import ConstraintFailure
from xcap_wsgi.usages import ApplicationUsage, ValidationContext, register
from xcap_wsgi.usages.validation import BUILTIN_SCHEMAS

USER_PROFILE_NS = "urn:oma:xml:xdm:user-profile"
PRES_CONTENT_NS = "urn:oma:xml:prs:pres-content"
XCAP_DIRECTORY_NS = "urn:oma:xml:xdm:xcap-directory"

#: Image types accepted as presence content: the three every OMA/RCS client
#: renders (openxcap accepts exactly these) plus BMP, which OMA pres-content
#: examples also list. Compared case-insensitively, parameters ignored.
ICON_MIME_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/bmp"})

#: Largest decoded icon accepted: 300 KiB, openxcap's limit for status icons and
#: well above the GSMA RCS recommendation for presence icons.
ICON_MAX_BYTES = 300 * 1024

#: Base64 (RFC 4648 §4) as ``binascii.a2b_base64(strict_mode=True)`` checks it on
#: Python 3.13: alphabet characters only, ``=`` only to complete the last group.
#: Checked here because 3.10 has no strict mode and 3.11/3.12's accepts ``AAAA=``.
BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")

USER_PROFILE = register(ApplicationUsage(
    auid="org.openmobilealliance.user-profile",
    mime_type="application/vnd.oma.user-profile+xml",
    namespace=USER_PROFILE_NS,
    doc_type=64,
    root=f"{{{USER_PROFILE_NS}}}user-profile",
    schemas=BUILTIN_SCHEMAS,
))


def _child_text(root: etree._Element, name: str) -> str | None:
    element = root.find(f"{{{PRES_CONTENT_NS}}}{name}")
    return None if element is None else (element.text or "").strip()


def _check_mime_type(root: etree._Element) -> None:
    mime_type = _child_text(root, "mime-type")
    if mime_type is None:
        raise ConstraintFailure("presence content needs a <mime-type>; allowed: " + ", ".join(sorted(ICON_MIME_TYPES)))
    if mime_type.split(";", 1)[0].strip().lower() not in ICON_MIME_TYPES:
        raise ConstraintFailure(f"MIME type {mime_type!r} not allowed; allowed: " + ", ".join(sorted(ICON_MIME_TYPES)))


def _decoded_data(root: etree._Element) -> bytes:
    encoding = _child_text(root, "encoding")
    if encoding is not None and encoding.lower() != "base64":
        raise ConstraintFailure(f"encoding {encoding!r} not supported; only base64 is")
    data = "".join((_child_text(root, "data") or "").split())
    if not BASE64.fullmatch(data):
        raise ConstraintFailure("<data> is not valid base64")
    return binascii.a2b_base64(data)


def check_pres_content(root: etree._Element, context: ValidationContext) -> None:
    """Presence content: an allowed image type, valid base64 data, at most ICON_MAX_BYTES."""
    _check_mime_type(root)
    size = len(_decoded_data(root))
    if size > ICON_MAX_BYTES:
        raise ConstraintFailure(f"content is {size} bytes; the limit is {ICON_MAX_BYTES} bytes")


PRES_CONTENT = register(ApplicationUsage(
    auid="org.openmobilealliance.pres-content",
    mime_type="application/vnd.oma.pres-content+xml",
    namespace=PRES_CONTENT_NS,
    doc_type=128,
    root=f"{{{PRES_CONTENT_NS}}}content",
    schemas=BUILTIN_SCHEMAS,
    constraints=(check_pres_content,),
))

XCAP_DIRECTORY = register(ApplicationUsage(
    auid="org.openmobilealliance.xcap-directory",
    mime_type="application/vnd.oma.xcap-directory+xml",
    namespace=XCAP_DIRECTORY_NS,
    doc_type=512,
    generated=True,
    root=f"{{{XCAP_DIRECTORY_NS}}}xcap-directory",
    schemas=BUILTIN_SCHEMAS,
))


class DirectoryEntry(NamedTuple):
    """One document of a user, as the OMA xcap-directory lists it.

    ``uri`` is the document's HTTP URI as clients should fetch it (percent-encoded
    XUI); ``etag`` is without quotes, as stored.
    """

    auid: str
    uri: str
    etag: str
    last_modified: datetime | None = None
    size: int | None = None


def _entry(entry: DirectoryEntry) -> str:
    attributes = f"uri={quoteattr(entry.uri)} etag={quoteattr(entry.etag)}"
    if entry.last_modified is not None:
        attributes += f' last-modified="{entry.last_modified.isoformat()}"'
    if entry.size is not None:
        attributes += f' size="{entry.size}"'
    return f"\n    <entry {attributes}/>"


def xcap_directory_document(entries: Iterable[DirectoryEntry], auids: Iterable[str] = ()) -> bytes:
    """The OMA xcap-directory document: one ``<folder auid>`` per AUID, sorted.

    ``auids`` adds (empty) folders for usages the user has no document in, so a
    client sees every AUID the server offers.
    """
    rows = sorted(entries, key=lambda e: (e.auid, e.uri))
    folders = {auid: [_entry(e) for e in group] for auid, group in groupby(rows, key=lambda e: e.auid)}
    for auid in auids:
        folders.setdefault(auid, [])
    body = "".join(
        f"\n  <folder auid={quoteattr(auid)}>{''.join(folders[auid])}\n  </folder>"
        if folders[auid] else f"\n  <folder auid={quoteattr(auid)}/>"
        for auid in sorted(folders)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<xcap-directory xmlns="{XCAP_DIRECTORY_NS}">{body}\n</xcap-directory>\n'
    ).encode()
