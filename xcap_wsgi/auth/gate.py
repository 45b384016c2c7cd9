"""What every authentication mode shares: public reads, trusted peers, administrators.

::

    gate = Gate(DigestAuthenticator(...), trusted_peers=["10.1.0.0/16"],
                trusted_proxies=["127.0.0.1"], admins=["sip:admin@example.com"])
    identity = gate.authenticate(environ, uri)

A read of a public document (xcap-caps) needs no credentials and yields
:data:`~xcap_wsgi.auth.base.ANONYMOUS`. A request from a trusted peer's address (seen
through trusted proxies only, see :func:`~xcap_wsgi.auth.network.client_address`) yields a
``trusted_peer`` identity without credentials. A read of the global tree needs none
either (any user may read it, A1) and yields :data:`GLOBAL_READER`, unless
``global_auth`` asks for credentials there too; the rls-services global index stays
readable by trusted peers only (A3). Everyone else goes through the mode's
authenticator; identities listed in ``admins`` come back with ``admin=True``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from xcap_wsgi.auth.base import ANONYMOUS, Authenticator, Identity
from xcap_wsgi.auth.credentials import parse_account
from xcap_wsgi.auth.network import Networks, client_address
from xcap_wsgi.auth.policy import READ_METHODS, is_public
from xcap_wsgi.uri import XCAPURI

TRUSTED_PEER = Identity(user="", domain="", trusted_peer=True)
GLOBAL_READER = Identity(user="", domain="", global_reader=True)


class Gate:
    """Wraps one mode's authenticator; bad configuration raises ValueError here."""

    def __init__(self, inner: Authenticator, *, trusted_peers: Sequence[str] = (),
                 trusted_proxies: Sequence[str] = (), admins: Sequence[str] = (), global_auth: bool = False) -> None:
        self.inner = inner
        self.peers = Networks(trusted_peers)
        self.proxies = Networks(trusted_proxies)
        self.admins = {parse_account(name) for name in admins}
        self.global_auth = global_auth

    def authenticate(self, environ: dict[str, Any], uri: XCAPURI) -> Identity:
        method = str(environ.get("REQUEST_METHOD", "GET"))
        if is_public(uri, method):
            return ANONYMOUS
        if self.peers and self.peers.contains(client_address(environ, self.proxies)):
            return TRUSTED_PEER
        if uri.tree == "global" and method in READ_METHODS and not self.global_auth:
            return GLOBAL_READER
        identity = self.inner.authenticate(environ, uri)
        return replace(identity, admin=(identity.user, identity.domain) in self.admins)

