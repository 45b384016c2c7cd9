"""Which realm a digest or basic challenge names (RFC 7616 §3.3, RFC 7617 §2).

::

    realms = Realms("example.com")                      # --realm example.com
    realms = Realms(None, domains=store.domains)        # the subscriber table's one domain
    realms(environ, uri)                                # -> "example.com"

Kamailio's accounts hold HA1 = H(user:domain:password), so a client can answer only a
challenge whose realm is its SIP domain, and urllib-based clients (python3-xcaplib, Blink)
register their password for that realm alone. A users-tree document names the domain in
its XUI. The global tree (and a XUI without a domain, such as ``tel:``) names none: there
the realm is the configured ``realm``, else the only domain of the subscriber table, else,
as a last resort, the request host, with one WARNING asking for ``--realm``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from xcap_wsgi.auth.base import canonical_user, owner, request_host
from xcap_wsgi.uri import XCAPURI

log = logging.getLogger("xcap_wsgi.auth")

#: What an authenticator asks: the realm for this request.
RealmFor = Callable[[dict[str, Any], XCAPURI], str]

#: How long the subscriber table's answer is believed (an operator may add the first
#: account, or a second domain, while the server runs).
DOMAINS_TTL = 300.0
#: A domain name or IP literal, as long as Kamailio's ``domain`` column allows.
_REALM = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,62}[A-Za-z0-9.])?|\[[0-9A-Fa-f:.]{2,60}\]")


def parse_realm(value: str) -> str:
    """A configured realm, canonical (lowercase, no trailing dot); ValueError unless it is a
    domain name or IP literal (it is quoted into every challenge and into HA1)."""
    if not isinstance(value, str) or not _REALM.fullmatch(value.strip()):
        raise ValueError(f"realm must be a SIP domain such as example.com, got {value!r}")
    return canonical_user("", value.strip())[1]


class Realms:
    """``realms(environ, uri)``: the realm for a request; ``domains()`` lists (at most two
    of) the subscriber table's domains, asked at most every :data:`DOMAINS_TTL` seconds."""

    def __init__(self, realm: str | None = None, domains: Callable[[], Sequence[str]] | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.realm = None if realm is None else parse_realm(realm)
        self.domains = domains
        self.clock = clock
        self._lock = threading.Lock()
        self._found: str | None = None
        self._expires = float("-inf")
        self._warned = False

    def __call__(self, environ: dict[str, Any], uri: XCAPURI) -> str:
        if uri.tree == "users" and uri.domain:
            return owner(uri)[1]
        return self.global_realm() or request_host(environ)

    def global_realm(self) -> str | None:
        """The configured realm, or the subscriber table's only domain, or None."""
        if self.realm is not None:
            return self.realm
        with self._lock:
            if self.clock() >= self._expires:
                self._found = self._only_domain()
                self._expires = self.clock() + DOMAINS_TTL
            return self._found

    def _only_domain(self) -> str | None:
        found = sorted({canonical_user("", d.strip())[1] for d in self.domains()}) if self.domains else []
        if len(found) == 1:
            return found[0]
        if not self._warned:
            self._warned = True
            source = ("no subscriber table was given" if self.domains is None else
                      "the subscriber table has " + (f"several domains ({', '.join(found)})" if found else "no accounts"))
            log.warning("global documents are challenged with the request host as realm because %s: set --realm"
                        " ($XCAP_REALM, realm=) to the SIP domain of the accounts", source)
        return None
