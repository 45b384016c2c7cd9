"""HTTP Digest authentication (RFC 7616) with SHA-256 and MD5, ``qop=auth``.

::

    auth = DigestAuthenticator(SubscriberStore(db_url), secret="32+ random characters",
                               counter=SQLNonceCounter(db_url))
    identity = auth.authenticate(environ, uri)     # or raises Unauthorized / BadRequest

The realm is the domain of the XUI being accessed (for the global tree the configured
realm, see :mod:`xcap_wsgi.auth.realm`): urllib-based XCAP clients answer only a
challenge whose realm is the user's SIP domain, and Kamailio's stored HA1s are computed
with realm = domain. The digest username may be ``alice`` or ``alice@example.com``
(Kamailio's ``ha1b``).

One 401 carries one challenge per algorithm, the preferred first (RFC 7616 §3.7). Python's
``urllib`` before 3.14 reads only the first challenge and knows only MD5; put ``"MD5"``
first in ``algorithms`` for such clients.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

from werkzeug.http import parse_dict_header

from xcap_wsgi.auth.base import Identity, Unauthorized, canonical_user, quoted_string, split_username
from xcap_wsgi.auth.credentials import HASHES, CredentialLookup, as_credentials, hash_hex
from xcap_wsgi.auth.nonces import MemoryNonceCounter, NonceCounter, NonceSigner
from xcap_wsgi.auth.realm import RealmFor, Realms
from xcap_wsgi.errors import BadRequest
from xcap_wsgi.uri import XCAPURI

DEFAULT_ALGORITHMS = ("MD5", "SHA-256")
REQUIRED = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")


class DigestAuthenticator:
    """Verifies ``Authorization: Digest`` against ``lookup(user, domain)``.

    ``counter`` remembers nonce-counts (default: per process, see
    :mod:`xcap_wsgi.auth.nonces`); ``algorithms`` are offered in this order; ``realms``
    names the realm of each request (default: no configured realm).
    """

    def __init__(
        self,
        lookup: CredentialLookup,
        secret: str,
        *,
        nonce_lifetime: int = 300,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        counter: NonceCounter | None = None,
        clock: Callable[[], float] = time.time,
        realms: RealmFor | None = None,
    ) -> None:
        unknown = [a for a in algorithms if a not in HASHES]
        if unknown or not algorithms:
            raise ValueError(f"digest algorithms must be a non-empty list of {', '.join(HASHES)}, got {list(algorithms)!r}")
        self.lookup = lookup
        self.signer = NonceSigner(secret, nonce_lifetime, clock)
        self.algorithms = tuple(algorithms)
        self.counter = counter if counter is not None else MemoryNonceCounter(clock)
        self.realms = realms or Realms()

    def authenticate(self, environ: dict[str, Any], uri: XCAPURI) -> Identity:
        realm = self.realms(environ, uri)
        scheme, _, rest = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
        if scheme.lower() != "digest":
            raise self.challenge(realm, "authentication required")
        return self.verify(environ, realm, parse_dict_header(rest))

    def verify(self, environ: dict[str, Any], realm: str, params: dict[str, str | None]) -> Identity:
        """RFC 7616 §3.4: every check, cheapest first; the password store is read last."""
        p = _required(params)
        algorithm = self._algorithm(p.get("algorithm") or "MD5", realm)
        if p["qop"] != "auth":
            raise self.challenge(realm, "only qop=auth is supported")
        if p["realm"].lower() != realm:
            raise self.challenge(realm, f"wrong realm: the realm for this document is {realm}")
        if not _same_target(p["uri"], request_target(environ)):
            raise BadRequest("the digest uri does not match the request URI (RFC 7616 §3.4.6)")
        verdict = self.signer.check(p["nonce"])
        if verdict == "bad" or p.get("opaque", self.signer.opaque) != self.signer.opaque:
            raise self.challenge(realm, "unknown nonce")
        user, domain = split_username(p["username"], realm)
        if not self._response_ok(p, algorithm, str(environ.get("REQUEST_METHOD", "GET")), user, domain):
            raise self.challenge(realm, "wrong user name or password")
        if verdict == "stale":
            raise self.challenge(realm, "nonce expired", stale=True)
        if not self.counter.advance(p["nonce"], _nonce_count(p["nc"]), self.signer.expires(p["nonce"])):
            raise self.challenge(realm, "nonce-count already used", stale=True)
        return Identity(*canonical_user(user, domain))

    def _algorithm(self, name: str, realm: str) -> str:
        for algorithm in self.algorithms:
            if algorithm.lower() == name.lower():
                return algorithm
        raise self.challenge(realm, f"algorithm {name} is not offered")

    def _response_ok(self, p: dict[str, str], algorithm: str, method: str, user: str, domain: str) -> bool:
        credentials = as_credentials(self.lookup(user, domain))
        ha1 = credentials.ha1_for(algorithm, p["username"], p["realm"]) if credentials else None
        if ha1 is None:
            return False
        ha2 = hash_hex(algorithm, f"{method}:{p['uri']}")
        expected = hash_hex(algorithm, f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{p['qop']}:{ha2}")
        return hmac.compare_digest(expected, p["response"].lower())

    def challenge(self, realm: str, why: str, stale: bool = False) -> Unauthorized:
        """A 401 offering every algorithm with one fresh nonce (RFC 7616 §3.3, §3.7)."""
        nonce = self.signer.mint()
        tail = ", stale=true" if stale else ""
        return Unauthorized(
            [f'Digest realm={quoted_string(realm)}, qop="auth", algorithm={algorithm}, nonce="{nonce}",'
             f' opaque="{self.signer.opaque}"{tail}' for algorithm in self.algorithms],
            why,
        )


def _required(params: dict[str, str | None]) -> dict[str, str]:
    present = {k.lower(): v for k, v in params.items() if v is not None}
    missing = [name for name in REQUIRED if not present.get(name)]
    if missing:
        raise BadRequest(f"the Digest credentials lack {', '.join(missing)}")
    if not all(v.isascii() for v in present.values()):
        raise BadRequest("the Digest credentials are not ASCII")
    return present


def _nonce_count(nc: str) -> int:
    if len(nc) != 8:
        raise BadRequest(f"nc must be 8 hexadecimal digits, got {nc!r}")
    try:
        return int(nc, 16)
    except ValueError:
        raise BadRequest(f"nc must be 8 hexadecimal digits, got {nc!r}") from None


def request_target(environ: dict[str, Any]) -> str:
    """The path and query as sent on the request line (RAW_URI/REQUEST_URI when the server
    provides it, else rebuilt from the decoded path)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw:
        return raw
    path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    query = str(environ.get("QUERY_STRING", ""))
    return path.encode("latin-1").decode("utf-8", "replace") + (f"?{query}" if query else "")


def _same_target(a: str, b: str) -> bool:
    """Equal request targets, whether absolute-form or not and however percent-encoded."""
    def normal(target: str) -> tuple[str, str]:
        parts = urlsplit(target)
        return unquote(parts.path), unquote(parts.query)

    return normal(a) == normal(b)
