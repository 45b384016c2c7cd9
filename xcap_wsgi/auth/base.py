"""Who is asking: the canonical :class:`Identity`, the :class:`Authenticator` protocol, the 401.

Every authenticator answers one question, ``authenticate(environ, uri) -> Identity``, and
raises :class:`Unauthorized` (a WSGI app carrying its ``WWW-Authenticate`` challenges)
when the request does not prove one::

    try:
        identity = authenticator.authenticate(environ, uri)
    except XCAPError as exc:
        return exc(environ, start_response)

Identities are compared canonically (requirements §3.9): the ``sip:``/``sips:`` scheme,
URI parameters and the port are dropped, SIP escapes are decoded, the host is lowercased.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

from xcap_wsgi.errors import XCAPError
from xcap_wsgi.uri import XCAPURI, split_xui


@dataclass(frozen=True)
class Identity:
    """An authenticated principal, canonical (see :func:`canonical_user`).

    ``trusted_peer`` marks a configured network peer (a presence server, an RLS) that
    reads without credentials; ``admin`` an identity listed as an administrator, the only
    ones who may modify the global tree (RFC 4825 §5.7, A1); ``global_reader`` anyone
    reading the global tree while it needs no credentials (``global_auth`` off, A1).
    """

    user: str
    domain: str
    trusted_peer: bool = False
    admin: bool = False
    global_reader: bool = False


#: What a public resource (xcap-caps, RFC 4825 §12) is read as: nobody in particular.
ANONYMOUS = Identity(user="", domain="")


class Authenticator(Protocol):
    def authenticate(self, environ: dict[str, Any], uri: XCAPURI) -> Identity:
        """The requester's identity; raises :class:`Unauthorized`, ``Forbidden`` or ``BadRequest``."""


class Unauthorized(XCAPError):
    """401 with one ``WWW-Authenticate`` header per challenge, preferred first (RFC 7616 §3.7)."""

    code = 401
    description = "authentication required"

    def __init__(self, challenges: Sequence[str], description: str | None = None) -> None:
        super().__init__(description)
        self.extra_headers = tuple(("WWW-Authenticate", c) for c in challenges)


def canonical_user(user: str, domain: str) -> tuple[str, str]:
    """(user, domain) as compared: SIP escapes decoded (RFC 3261 §19.1.4), host lowercased."""
    return unquote(user), domain.lower().rstrip(".")


def canonical_identity(text: str) -> tuple[str, str]:
    """``sip:Alice@Example.COM``, ``sips:alice%40example.com`` or ``alice@example.com``
    → ``("Alice", "example.com")`` (the user part stays case-sensitive, RFC 3261 §19.1.4)."""
    user, domain = split_xui(unquote(text.strip()))
    return canonical_user(user, domain)


def owner(uri: XCAPURI) -> tuple[str, str]:
    """The canonical owner of a users-tree document."""
    return canonical_user(uri.username, uri.domain)


def request_host(environ: dict[str, Any]) -> str:
    """The host the client addressed, lowercased and without port (the last-resort realm, :mod:`.realm`)."""
    host = str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or "localhost")
    if host.startswith("["):
        return host[: host.find("]") + 1].lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


def split_username(username: str, realm: str) -> tuple[str, str]:
    """A digest or basic user name: ``alice`` → (alice, realm); ``alice@example.com`` →
    (alice, example.com), Kamailio's ``ha1b`` form."""
    user, at, domain = username.rpartition("@")
    return (user, domain.lower()) if at else (username, realm)


def quoted_string(value: str) -> str:
    """An auth-param value as an HTTP quoted-string (RFC 9110 §5.6.4)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
