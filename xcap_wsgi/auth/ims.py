"""IMS Ut behind an authentication proxy: the proxy asserts who the user is (TS 24.109 §7, SS37, SS38).

::

    auth = IMSAuthenticator(trusted_proxies=["10.0.0.5"])
    identity = auth.authenticate(environ, uri)     # or raises Forbidden / NotFound / BadRequest
    canonical_ims_identity('"sip:+15551234567@IMS.example.com;user=phone"')  # ('+15551234567', 'ims.example.com')
    canonical_ims_identity("<tel:+1-555-123-4567>")                          # ('+15551234567', '')
    aliased(IdentityRule("ims.example.com").canonical_xui)("<tel:+15551234567>")  # ('+15551234567', 'ims.example.com')

The phone authenticates to the authentication proxy (GBA or digest: the proxy's job),
which forwards the request with ``X-3GPP-Asserted-Identity`` (and/or
``X-XCAP-Asserted-Identity``): one identity, or a comma-separated list of the
subscriber's identities, each a ``sip:``/``sips:``/``tel:`` URI, bare, in double quotes,
or in ``<...>`` (name-addr, with or without a display name). They are believed only when
``REMOTE_ADDR`` is a trusted proxy, exactly as :mod:`.upstream`: from anyone else, or
without the header, 403 and no identity. When both headers are present they must name
the same identities (a client that forged the one its proxy does not set is refused).

The phone may name the identity it acts as in ``X-3GPP-Intended-Identity: "<IMPU>"``
(TS 24.109 §7.2). It must be one of the asserted identities, where "one of" means equal
in canonical form to an identity the proxy listed. When present, only that identity
acts; otherwise any asserted identity does. A users-tree request is allowed only on a
XUI equal in canonical form to an acting identity.

By itself the canonical form knows no aliases: a ``tel:`` and a ``sip:`` form of one
number are different identities. With the subscriber rule of :mod:`xcap_wsgi.identity`
(``ims_home_domain``, ``identity_aliases``) every identity is first mapped to its
subscriber's canonical XUI (:func:`aliased`), so an asserted ``tel:+15551234567`` acts on
``sip:+15551234567@<home>;user=phone`` and an intended ``sip:`` form selects an asserted
``tel:`` one (SS6b).

A phone that gets 403 may disable Ut until it reboots (SS52), so the refusals a phone's
own request can cause answer 404, which RFC 9110 §15.5.5 allows for a resource the
server will not disclose: a XUI that is not the user's, an intended identity that is not
asserted. A malformed intended identity is a 400.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import unquote

from xcap_wsgi.auth.base import Identity, canonical_user, owner
from xcap_wsgi.auth.network import Networks
from xcap_wsgi.auth.upstream import NOT_NAMED, environ_key
from xcap_wsgi.errors import BadRequest, Forbidden, NotFound
from xcap_wsgi.identity import VISUAL_SEPARATORS
from xcap_wsgi.uri import XCAPURI

ASSERTED_HEADERS = ("X-3GPP-Asserted-Identity", "X-XCAP-Asserted-Identity")
INTENDED_HEADER = "X-3GPP-Intended-Identity"
_LOCAL_DIGITS = frozenset("0123456789ABCDEF*#")

#: An identity in canonical form, as Kamailio's username/domain columns hold an owner.
CanonicalIdentity = tuple[str, str]


def canonical_ims_identity(text: str) -> CanonicalIdentity:
    """(user, domain) of a ``sip:``/``sips:``/``tel:`` identity, bare, quoted or ``<...>``.

    - sip/sips (and bare ``user@host``): the user part percent-decoded and case-sensitive
      (RFC 3261 §19.1.4), the host lowercased; password, port, URI parameters
      (``;user=phone`` included) and headers dropped.
    - tel: a global number is ``+`` and its digits, visual separators ``- . ( )``
      removed, parameters ignored (RFC 3966 §3); domain ``""``. A local number keeps its
      ``phone-context``: ``tel:7042;phone-context=Example.com`` → ``("7042;phone-context=example.com", "")``.

    ValueError for anything else.
    """
    uri = addr_spec(text)
    scheme, colon, rest = uri.partition(":")
    if not colon or "@" in scheme:
        scheme, rest = "sip", uri
    scheme = scheme.lower()
    if scheme == "tel":
        return _tel(rest), ""
    if scheme in ("sip", "sips"):
        return _sip(rest)
    raise ValueError(f"not a sip:, sips: or tel: URI: {text!r}")


def aliased(canonical_xui: Callable[[str], str]) -> Callable[[str], CanonicalIdentity]:
    """:func:`canonical_ims_identity` of the subscriber's canonical XUI: ``canonical_xui``
    (:meth:`xcap_wsgi.identity.IdentityRule.canonical_xui`) maps the identity's URI first."""

    def canonical(text: str) -> CanonicalIdentity:
        return canonical_ims_identity(canonical_xui(addr_spec(text)))

    return canonical


def addr_spec(text: str) -> str:
    """The URI of ``"sip:a@b"``, ``<sip:a@b>``, ``"Alice" <sip:a@b>``, ``Alice <sip:a@b>`` or ``sip:a@b``."""
    text = text.strip()
    if text.startswith('"'):
        quoted, end = _quoted_string(text)
        text = text[end:].strip() or quoted.strip()
    if "<" in text:
        start = text.index("<") + 1
        end = text.find(">", start)
        if end < 0:
            raise ValueError(f"unterminated <...> in {text!r}")
        text = text[start:end]
    return text.strip()


def identity_list(value: str) -> list[str]:
    """The identities of a header value, split at commas outside quotes and ``<...>``."""
    return [item for item in (part.strip() for part in _split_commas(value)) if item]


def _split_commas(value: str) -> Iterator[str]:
    start, depth, quoted, escaped = 0, 0, False, False
    for i, char in enumerate(value):
        if escaped:
            escaped = False
        elif quoted:
            escaped, quoted = char == "\\", char != '"'
        elif char == '"':
            quoted = True
        elif char in "<>":
            depth = max(0, depth + (1 if char == "<" else -1))
        elif char == "," and depth == 0:
            yield value[start:i]
            start = i + 1
    yield value[start:]


def _quoted_string(text: str) -> tuple[str, int]:
    """The content of the quoted-string opening ``text`` (backslash escapes undone) and
    where it ends (RFC 3261 §25.1)."""
    out, i = [], 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if char == '"':
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise ValueError(f"unterminated quoted string in {text!r}")


def _sip(rest: str) -> CanonicalIdentity:
    userinfo, at, hostport = rest.split("?", 1)[0].rpartition("@")
    user = userinfo.split(":", 1)[0]
    host = hostport.split(";", 1)[0]
    host = host[: host.find("]") + 1] if host.startswith("[") else host.split(":", 1)[0]
    if not at or not user or not host:
        raise ValueError(f"a sip: identity needs user@host, got {rest!r}")
    return canonical_user(user, host)


def _tel(rest: str) -> str:
    number, _, params = rest.partition(";")
    number = unquote(number).translate(VISUAL_SEPARATORS)
    if number.startswith("+"):
        if not number[1:].isdigit() or not number[1:].isascii():
            raise ValueError(f"a global tel: number is + and digits, got {rest!r}")
        return number
    number = number.upper()
    if not number or not set(number) <= _LOCAL_DIGITS:
        raise ValueError(f"not a tel: number: {rest!r}")
    for param in params.split(";"):
        name, _, value = param.partition("=")
        context = unquote(value.strip()).lower()
        if name.strip().lower() == "phone-context" and context:
            # a global-number prefix loses its separators; a domain keeps its dots
            return f"{number};phone-context={context.translate(VISUAL_SEPARATORS) if context[0] == '+' else context}"
    return number


class IMSAuthenticator:
    """Trusts the identities a trusted proxy asserts. Raises ValueError without proxies.

    ``headers`` carry the asserted identities (default :data:`ASSERTED_HEADERS`);
    ``canonical`` maps an identity to its canonical form (default
    :func:`canonical_ims_identity`; :func:`aliased` adds the subscriber rule).
    """

    def __init__(self, *, trusted_proxies: Sequence[str], headers: Sequence[str] = ASSERTED_HEADERS,
                 canonical: Callable[[str], CanonicalIdentity] = canonical_ims_identity) -> None:
        self.proxies = Networks(trusted_proxies)
        if not self.proxies:
            raise ValueError("ims authentication needs trusted_proxies: the authentication proxies allowed to assert"
                             " identities")
        if not headers:
            raise ValueError("ims authentication needs at least one asserted-identity header")
        self.keys = tuple(environ_key(header) for header in headers)
        self.canonical = canonical

    def authenticate(self, environ: dict[str, Any], uri: XCAPURI) -> Identity:
        if not self.proxies.contains(str(environ.get("REMOTE_ADDR", ""))):
            raise Forbidden(NOT_NAMED)
        acting = self.acting(environ, self.asserted(environ))
        if uri.tree != "users":
            return Identity(*acting[0])
        if self._xui(uri) not in acting:
            raise NotFound(f"{uri.xui} is not the identity this request acts as")
        return Identity(*owner(uri))

    def asserted(self, environ: dict[str, Any]) -> list[CanonicalIdentity]:
        """The asserted identities in header order; Forbidden when there are none, one is
        not an identity, or two headers disagree."""
        lists = []
        for key in self.keys:
            value = str(environ.get(key, "")).strip()
            if value:
                lists.append([self._asserted_one(item) for item in identity_list(value)])
        if not any(lists):
            raise Forbidden(NOT_NAMED)
        if any(set(other) != set(lists[0]) for other in lists[1:]):
            raise Forbidden("the asserted identity headers name different users")
        return lists[0]

    def acting(self, environ: dict[str, Any], asserted: list[CanonicalIdentity]) -> list[CanonicalIdentity]:
        """The identities this request acts as: the intended one (TS 24.109 §7.2), which
        must be asserted, or else every asserted identity."""
        value = str(environ.get(environ_key(INTENDED_HEADER), "")).strip()
        if not value:
            return asserted
        try:
            intended = self.canonical(value)
        except ValueError:
            raise BadRequest(f"{INTENDED_HEADER} must be a quoted sip:, sips: or tel: URI, got {value!r}") from None
        if intended not in asserted:
            raise NotFound(f"the intended identity {addr_spec(value)} is not an identity of the authenticated user")
        return [intended]

    def _asserted_one(self, item: str) -> CanonicalIdentity:
        try:
            return self.canonical(item)
        except ValueError:
            raise Forbidden(f"the asserted identity {item!r} names no user") from None

    def _xui(self, uri: XCAPURI) -> CanonicalIdentity | None:
        try:
            return self.canonical(uri.xui or "")
        except ValueError:
            return None
