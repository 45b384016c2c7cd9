"""Who may do what (RFC 4825 §5.7 and each usage's authorization policy, requirements §3.9).

::

    authorize(identity, uri, "PUT")      # returns, or raises errors.Forbidden (403)

- ``identity is None``: authentication is off; everything is allowed, including the
  rls-services global index (requirements §10 item 9), except writing the global tree,
  which needs an administrator and so authentication (A1).
- xcap-caps is public (RFC 4825 §12): anyone reads it.
- users tree: the owner reads and writes, after canonical comparison of the XUI
  (A1, A2); trusted peers (a presence server, an RLS) read; nobody else.
- global tree: any authenticated user reads (A1), and so does a ``global_reader``
  (reads that need no credentials, :class:`~xcap_wsgi.auth.gate.Gate`); administrators
  write; the rls-services global index is read by trusted peers only (RFC 4826 §4.4.9, A3).
"""

from __future__ import annotations

from xcap_wsgi.auth.base import Identity, owner
from xcap_wsgi.errors import Forbidden
from xcap_wsgi.uri import XCAPURI

READ_METHODS = frozenset({"GET", "HEAD"})
PUBLIC_AUIDS = frozenset({"xcap-caps"})
GLOBAL_WRITE = "documents in the global tree can only be changed by an administrator"


def is_public(uri: XCAPURI, method: str) -> bool:
    """Readable without credentials: the server's capabilities document."""
    return uri.auid in PUBLIC_AUIDS and method in READ_METHODS


def is_rls_global_index(uri: XCAPURI) -> bool:
    return uri.auid == "rls-services" and uri.tree == "global" and uri.document == "index"


def authorize(identity: Identity | None, uri: XCAPURI, method: str) -> None:
    """Raise Forbidden unless ``identity`` may apply ``method`` to ``uri`` (node selectors
    included: access is decided per document)."""
    read = method in READ_METHODS
    if identity is None:
        if uri.tree == "global" and not read:
            raise Forbidden(GLOBAL_WRITE)
        return
    if is_public(uri, method):
        return
    if uri.tree == "global":
        _authorize_global(identity, uri, read)
    elif not (read and identity.trusted_peer) and (identity.user, identity.domain) != owner(uri):
        raise Forbidden(f"{uri.xui} is not yours: users read and write only their own documents")


def _authorize_global(identity: Identity, uri: XCAPURI, read: bool) -> None:
    if read and is_rls_global_index(uri):
        if not identity.trusted_peer:
            raise Forbidden("the rls-services global index is readable only by trusted peers")
    elif read:
        if not (identity.user or identity.trusted_peer or identity.global_reader):
            raise Forbidden("global documents are readable by authenticated users")
    elif not identity.admin:
        raise Forbidden(GLOBAL_WRITE)
