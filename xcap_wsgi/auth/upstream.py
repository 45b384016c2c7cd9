"""Authentication done upstream: a proxy or the wrapping application names the user.

::

    auth = UpstreamAuthenticator(trusted_proxies=["127.0.0.1"], header="X-Authenticated-User")
    identity = auth.authenticate(environ, uri)

The identity comes from ``REMOTE_USER`` or, when ``header`` is set, from that request
header, as ``sip:alice@example.com`` or ``alice@example.com``. Either is client-forgeable
unless the request really came through the proxy, so both are honoured only when
``REMOTE_ADDR`` is a trusted proxy; anyone else gets 403 (there is nothing to challenge).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xcap_wsgi.auth.base import Identity, canonical_identity
from xcap_wsgi.auth.network import Networks
from xcap_wsgi.errors import Forbidden
from xcap_wsgi.uri import XCAPURI

NOT_NAMED = "not authenticated: no user named by a trusted proxy"


def environ_key(header: str) -> str:
    """Where WSGI puts a request header: ``X-Authenticated-User`` → ``HTTP_X_AUTHENTICATED_USER``."""
    return "HTTP_" + header.upper().replace("-", "_")


class UpstreamAuthenticator:
    """Trusts the user named by a trusted proxy. Raises ValueError without proxies."""

    def __init__(self, *, trusted_proxies: Sequence[str], header: str | None = None) -> None:
        self.proxies = Networks(trusted_proxies)
        if not self.proxies:
            raise ValueError("upstream authentication needs trusted_proxies: the addresses allowed to name the user")
        self.key = environ_key(header) if header else "REMOTE_USER"

    def authenticate(self, environ: dict[str, Any], uri: XCAPURI) -> Identity:
        name = str(environ.get(self.key, "")).strip()
        if not name or not self.proxies.contains(str(environ.get("REMOTE_ADDR", ""))):
            raise Forbidden(NOT_NAMED)
        user, domain = canonical_identity(name)
        if not user:
            raise Forbidden(f"the authenticated identity {name!r} names no user")
        return Identity(user, domain)
