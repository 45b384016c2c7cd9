"""HTTP Basic authentication (RFC 7617), only over HTTPS unless the operator allows HTTP.

::

    auth = BasicAuthenticator(SubscriberStore(db_url), trusted_proxies=["127.0.0.1"])
    identity = auth.authenticate(environ, uri)

RFC 4825 §14 forbids Basic without TLS (A4). HTTPS is ``wsgi.url_scheme`` or, from a
trusted proxy only, ``X-Forwarded-Proto: https``. Over plain HTTP the request is refused
with 403 and no challenge, so that no client is invited to send its password in clear;
``allow_http=True`` lifts this (e.g. behind a TLS tunnel the server cannot see).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from xcap_wsgi.auth.base import Identity, Unauthorized, canonical_user, quoted_string, split_username
from xcap_wsgi.auth.credentials import CredentialLookup, as_credentials
from xcap_wsgi.auth.network import Networks, is_https
from xcap_wsgi.auth.realm import RealmFor, Realms
from xcap_wsgi.errors import BadRequest, Forbidden
from xcap_wsgi.uri import XCAPURI


class BasicAuthenticator:
    """Verifies ``Authorization: Basic`` against the cleartext password or stored HA1s."""

    def __init__(self, lookup: CredentialLookup, *, trusted_proxies: Sequence[str] = (), allow_http: bool = False,
                 realms: RealmFor | None = None) -> None:
        self.lookup = lookup
        self.proxies = Networks(trusted_proxies)
        self.allow_http = allow_http
        self.realms = realms or Realms()

    def authenticate(self, environ: dict[str, Any], uri: XCAPURI) -> Identity:
        if not self.allow_http and not is_https(environ, self.proxies):
            raise Forbidden("Basic authentication is only accepted over HTTPS (RFC 4825 §14)")
        realm = self.realms(environ, uri)
        scheme, _, token = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
        if scheme.lower() != "basic":
            raise self.challenge(realm, "authentication required")
        username, password = _decode(token.strip())
        user, domain = split_username(username, realm)
        credentials = as_credentials(self.lookup(user, domain))
        if credentials is None or not credentials.check_password(username, domain, password):
            raise self.challenge(realm, "wrong user name or password")
        return Identity(*canonical_user(user, domain))

    @staticmethod
    def challenge(realm: str, why: str) -> Unauthorized:
        return Unauthorized([f'Basic realm={quoted_string(realm)}, charset="UTF-8"'], why)


def _decode(token: str) -> tuple[str, str]:
    """user-id:password, base64 of UTF-8 (RFC 7617 §2.1)."""
    try:
        username, colon, password = base64.b64decode(token, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise BadRequest("malformed Basic credentials") from None
    if not colon or not username:
        raise BadRequest("malformed Basic credentials: expected user:password")
    return username, password
