"""Authentication and authorization (RFC 4825 §5.7, §8, §14; requirements §3.1 step 4-5, §3.9).

::

    from xcap_wsgi.auth import authorize, make_authenticator

    authenticator = make_authenticator(
        "digest", secret="32+ random characters",
        credentials_url="mysql://kamailio:pw@127.0.0.1/kamailio",   # Kamailio's subscriber table
        trusted_peers=["10.1.0.0/16"], trusted_proxies=["127.0.0.1"],
        admins=["sip:admin@example.com"],
    )
    identity = authenticator.authenticate(environ, uri) if authenticator else None
    authorize(identity, uri, environ["REQUEST_METHOD"])

Modes: ``none`` (no authenticator), ``digest`` (RFC 7616, :mod:`.digest`), ``basic`` (RFC
7617 over HTTPS, :mod:`.basic`), ``upstream`` (a trusted proxy names the user,
:mod:`.upstream`), ``ims`` (an IMS authentication proxy asserts the user's identities,
:mod:`.ims`). Passwords come from :class:`~.credentials.SubscriberStore` or a callable.
Global documents are read without credentials unless ``global_auth``; the realm of their
challenges is ``realm``, else the subscriber table's only domain (:mod:`.realm`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from xcap_wsgi.auth.base import ANONYMOUS, Authenticator, Identity, Unauthorized
from xcap_wsgi.auth.basic import BasicAuthenticator
from xcap_wsgi.auth.credentials import CredentialLookup, Credentials, SubscriberStore
from xcap_wsgi.auth.digest import DEFAULT_ALGORITHMS, DigestAuthenticator
from xcap_wsgi.auth.gate import Gate
from xcap_wsgi.auth.ims import ASSERTED_HEADERS, IMSAuthenticator, aliased, canonical_ims_identity
from xcap_wsgi.auth.network import client_address
from xcap_wsgi.auth.nonces import MemoryNonceCounter, NonceCounter, SQLNonceCounter
from xcap_wsgi.auth.policy import authorize
from xcap_wsgi.auth.realm import Realms, parse_realm
from xcap_wsgi.auth.upstream import UpstreamAuthenticator

MODES = ("none", "digest", "basic", "upstream", "ims")

__all__ = [
    "ANONYMOUS",
    "MODES",
    "Authenticator",
    "Credentials",
    "Identity",
    "SubscriberStore",
    "Unauthorized",
    "authorize",
    "canonical_ims_identity",
    "client_address",
    "make_authenticator",
    "parse_realm",
]


def make_authenticator(
    mode: str,
    *,
    secret: str | None = None,
    credentials_url: str | None = None,
    credentials: CredentialLookup | None = None,
    trusted_peers: Sequence[str] = (),
    trusted_proxies: Sequence[str] = (),
    admins: Sequence[str] = (),
    allow_basic_over_http: bool = False,
    upstream_header: str | None = None,
    nonce_lifetime: int = 300,
    credentials_table: str = "subscriber",
    nonce_db_url: str | None = None,
    digest_algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
    realm: str | None = None,
    global_auth: bool = False,
    canonical_xui: Callable[[str], str] | None = None,
) -> Authenticator | None:
    """The authenticator for ``mode``, None for ``none``; ValueError for bad configuration.

    ``credentials_url`` (Kamailio's ``subscriber`` table, named ``credentials_table``) or
    ``credentials`` (a callable) supplies passwords for digest and basic. Digest
    nonce-counts are kept in ``nonce_db_url`` (default: ``credentials_url``), shared by
    every worker; with neither, per process. In ``ims`` mode ``upstream_header``, when
    set, is the one header carrying the asserted identities, and ``canonical_xui`` (the
    subscriber rule, :mod:`xcap_wsgi.identity`) maps each identity before comparison.
    """
    if mode not in MODES:
        raise ValueError(f"auth mode must be one of {', '.join(MODES)}, got {mode!r}")
    if realm is not None:
        parse_realm(realm)
    if mode == "none":
        return None
    inner: Authenticator
    if mode == "upstream":
        inner = UpstreamAuthenticator(trusted_proxies=trusted_proxies, header=upstream_header)
    elif mode == "ims":
        inner = IMSAuthenticator(trusted_proxies=trusted_proxies,
                                 headers=(upstream_header,) if upstream_header else ASSERTED_HEADERS,
                                 canonical=canonical_ims_identity if canonical_xui is None else aliased(canonical_xui))
    else:
        lookup = _lookup(credentials_url, credentials, credentials_table)
        realms = Realms(realm, lookup.domains if isinstance(lookup, SubscriberStore) else None)
        if mode == "basic":
            inner = BasicAuthenticator(lookup, trusted_proxies=trusted_proxies, allow_http=allow_basic_over_http,
                                       realms=realms)
        else:
            inner = _digest(lookup, secret, nonce_db_url or credentials_url, realms,
                            nonce_lifetime=nonce_lifetime, algorithms=digest_algorithms)
    return Gate(inner, trusted_peers=trusted_peers, trusted_proxies=trusted_proxies, admins=admins,
                global_auth=global_auth)


def _digest(lookup: CredentialLookup, secret: str | None, counter_url: str | None, realms: Realms,
            **options: Any) -> DigestAuthenticator:
    if secret is None:
        raise ValueError("digest authentication needs a secret to sign nonces (shared by all workers)")
    counter: NonceCounter = SQLNonceCounter(counter_url) if counter_url else MemoryNonceCounter()
    return DigestAuthenticator(lookup, secret, counter=counter, realms=realms, **options)


def _lookup(url: str | None, callable_: CredentialLookup | None, table: str) -> CredentialLookup:
    if (url is None) == (callable_ is None):
        raise ValueError("pass exactly one of credentials_url (a subscriber table) and credentials (a callable)")
    if url is not None:
        return SubscriberStore(url, table)
    if not callable(callable_):
        raise ValueError("credentials must be a callable lookup(user, domain)")
    return callable_
