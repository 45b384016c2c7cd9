"""Documents the server computes instead of storing (RFC 4825 §12, RFC 4826 §4.4.8, OMA).

* ``/xcap-caps/global/index``: the capabilities document (K1-K8);
* ``/rls-services/global/index``: the live union of every user's rls-services
  ``index`` (RS6), assembled on each request from the storage's service index (no
  parsing), so it always reflects the latest state;
* ``/org.openmobilealliance.xcap-directory/users/<xui>/directory.xml``: the user's
  documents with their ETags;
* ``/org.openxcap.watchers/users/<xui>/index``: the watchers of the user's presence, from
  the presence server's tables (:mod:`xcap_wsgi.usages.watchers`).

Each answer gets a strong ETag derived from its bytes, so conditional GETs work on them
like on stored documents.
"""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from xcap_wsgi.errors import NotFound
from xcap_wsgi.storage import Document, Storage
from xcap_wsgi.uri import XCAPURI
from xcap_wsgi.usages import (
    DirectoryEntry,
    all_usages,
    rls_services_global_index,
    xcap_caps_document,
    xcap_directory_document,
)
from xcap_wsgi.usages.caps import XCAP_CAPS
from xcap_wsgi.usages.oma import XCAP_DIRECTORY
from xcap_wsgi.usages.resource_lists import RLS_SERVICES, rls_services_document
from xcap_wsgi.usages.watchers import WATCHERS, WATCHERS_DOCUMENTS, watchers_document

DIRECTORY_DOCUMENT = "directory.xml"
URI_SAFE = "/:@!$&'()*+,;=-._~"


def is_rls_global_index(uri: XCAPURI) -> bool:
    return uri.usage is RLS_SERVICES and uri.tree == "global" and uri.document == "index"


def generated(storage: Storage, uri: XCAPURI, base_url: str) -> Document | None:
    """The generated document ``uri`` names, None when ``uri`` is a stored document."""
    if uri.usage is XCAP_CAPS:
        if uri.tree != "global" or uri.document != "index":
            raise NotFound("the only xcap-caps document is /xcap-caps/global/index (RFC 4825 §12.7)")
        return _document(xcap_caps_document(all_usages()))
    if is_rls_global_index(uri):
        return _document(rls_global_index(storage))
    if uri.usage is XCAP_DIRECTORY:
        if uri.tree != "users" or uri.document != DIRECTORY_DOCUMENT:
            raise NotFound(f"the xcap-directory is users/<xui>/{DIRECTORY_DOCUMENT}")
        return _document(directory(storage, uri, base_url))
    if uri.usage is WATCHERS:
        if uri.tree != "users" or uri.document not in WATCHERS_DOCUMENTS:
            raise NotFound("the watchers document is users/<xui>/index (or users/<xui>/watchers.xml)")
        return _document(watchers_document(storage, uri.username, uri.domain))
    return None


def rls_global_index(storage: Storage) -> bytes:
    """RS6 from the service index; a storage without one has every document parsed."""
    services = storage.indexed_services()
    if services is None:
        return rls_services_global_index(storage.documents(RLS_SERVICES.doc_type))
    return rls_services_document(services)


def directory(storage: Storage, uri: XCAPURI, base_url: str) -> bytes:
    """The user's documents under this XCAP root, grouped by AUID (no other root leaks in, U5)."""
    users_of = {u.auid: f"{uri.xcap_root}{u.auid}/users/" for u in all_usages() if not u.generated}
    entries = []
    for doc_uri, etag, size in storage.owned(uri.username, uri.domain):
        auid = doc_uri[len(uri.xcap_root):].split("/", 1)[0]
        if doc_uri.startswith(users_of.get(auid, "\0")):
            entries.append(DirectoryEntry(auid, base_url + quote(doc_uri, safe=URI_SAFE), etag, size=size))
    return xcap_directory_document(entries, users_of)


def _document(body: bytes) -> Document:
    return Document(body, hashlib.sha256(body).hexdigest()[:32])
