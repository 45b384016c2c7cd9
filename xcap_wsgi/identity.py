"""One subscriber, several identities: the XUI a users-tree document is stored under (SS6, SS6a, SS6b).

::

    rule = IdentityRule(home_domain="ims.example.com", aliases=imsi_to_msisdn)
    rule.canonical_xui("tel:+1-555-123-4567")                           # 'sip:+15551234567@ims.example.com'
    rule.canonical_xui("sip:+15551234567@IMS.example.com;user=phone")   # 'sip:+15551234567@ims.example.com'
    rule.canonical_xui("sip:alice@example.com")                         # 'sip:alice@example.com' (unchanged)
    uri = rule.canonical_uri(uri)    # the request, addressed to the canonical XUI's document

An IMS subscriber has several public identities and a phone may use any of them as its
XUI (SS6): ``tel:+E164``, ``sip:+E164@home;user=phone``, ``sip:+E164@home``, an
IMSI-based ``sip:<IMSI>@ims.mnc...``. Without a rule each spelling is a document of its
own (U8). With ``home_domain`` set, the E.164 forms under that domain are one subscriber
whose documents are stored under the **canonical XUI** ``sip:+<E.164 digits>@<home
domain>`` (SS6b, decided): Kamailio's ``username`` column holds ``+15551234567``,
``domain`` the home domain, ``doc_uri`` the path with the canonical XUI, which is where
Kamailio's presence modules look for that IMPU's documents. The rule applies to every
usage's users tree (a buddy list has the same problem as simservs); the global tree has
no XUI.

Which spellings are the E.164 form (RFC 3966 §3, RFC 3261 §19.1.6):

- ``tel:`` with a global number: ``+`` and 1 to 15 digits once the visual separators
  ``- . ( )`` are removed; parameters ignored, except that an ``ext`` or ``isub``
  (another terminal behind the number) leaves the XUI as it is, and so does a local
  number (``tel:7042;phone-context=...``: only ``aliases`` can map it).
- ``sip:``/``sips:`` (or a bare ``user@host``) whose host is the home domain (any case,
  port and URI parameters dropped) and whose user part, percent-decoded (SS6a: an escaped
  ``%2B`` is ``+``; ``+`` is never a space), is ``+`` and digits; with ``;user=phone``
  the user part is a telephone-subscriber and may carry visual separators.

``aliases`` is the integrator's table for everything else (IMSI-based identities, a
second number of the same line): ``aliases(xui)`` gets the XUI as the client wrote it
(percent-decoded, or an asserted identity's URI) and answers the subscriber's XUI, or
None when it is not an alias. Its answer then passes through the E.164 rule (it may
answer ``tel:+15551234567``). It must be idempotent (a canonical XUI maps to None or to
itself) and fast, as it is called several times per request; cache it yourself if it
reads a database, and raise :class:`~xcap_wsgi.storage.StorageUnavailable` (503) when
that database is down.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote

from xcap_wsgi.uri import MAX_DOMAIN, XCAPURI, split_xui, with_xui

#: The integrator's alias table: a XUI -> its subscriber's canonical XUI, or None.
Aliases = Callable[[str], str | None]
#: RFC 3966 §3 visual-separator.
VISUAL_SEPARATORS = str.maketrans("", "", "-.()")
#: ITU-T E.164: at most 15 digits.
E164_DIGITS = 15
#: tel: parameters that name another terminal behind the number (RFC 3966 §5.1.4, §5.1.5).
OTHER_TERMINAL = ("ext", "isub")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_SCHEMES = ("sip:", "sips:", "tel:")
#: RFC 3261 §25.1 user characters that need no escape, but for those a XUI is split at.
USER_SAFE = "-_.!~*'()&=+$,/"


def parse_home_domain(value: str) -> str:
    """The configured home domain, canonical (lowercase, no trailing dot); ValueError
    unless it is a domain name that fits Kamailio's ``domain`` column."""
    domain = value.strip().lower().rstrip(".") if isinstance(value, str) else ""
    if not _DOMAIN.fullmatch(domain) or len(domain) > MAX_DOMAIN:
        raise ValueError(f"ims_home_domain must be a domain name such as ims.example.com, got {value!r}")
    return domain


def global_number(number: str, *, separators: bool = True) -> str | None:
    """``+`` and the digits of an E.164 number (``+1-555-123-4567`` → ``+15551234567``;
    ``separators=False`` refuses visual separators), or None."""
    digits = number.translate(VISUAL_SEPARATORS) if separators else number
    if digits[:1] != "+" or not digits[1:].isascii() or not digits[1:].isdigit() or len(digits) > E164_DIGITS + 1:
        return None
    return digits


def _telephone_subscriber(text: str) -> str | None:
    """The global number of a RFC 3966 telephone-subscriber (``+1-555;npdi``), None for a
    local number or one with an extension or sub-address."""
    number, *params = text.split(";")
    if any(p.split("=", 1)[0].strip().lower() in OTHER_TERMINAL for p in params):
        return None
    return global_number(unquote(number))


@lru_cache(maxsize=4096)
def e164_xui(xui: str, home_domain: str) -> str | None:
    """``sip:+<digits>@<home_domain>`` when ``xui`` is an E.164 form under the home
    domain (see the module docstring), else None. Pure, so remembered."""
    scheme, colon, rest = xui.partition(":")
    scheme = scheme.lower() + ":"
    if not colon or scheme not in _SCHEMES:
        scheme, rest = "sip:", xui
    if scheme == "tel:":
        number = _telephone_subscriber(rest)
    else:
        userinfo, at, hostpart = rest.split("?", 1)[0].rpartition("@")
        host, *params = hostpart.split(";")
        if not at or host.split(":", 1)[0].lower().rstrip(".") != home_domain:
            return None
        user = userinfo.split(":", 1)[0]
        phone = any(p.strip().lower() == "user=phone" for p in params)
        number = _telephone_subscriber(user) if phone else global_number(unquote(user), separators=False)
    return None if number is None else f"sip:{number}@{home_domain}"


@dataclass(frozen=True)
class IdentityRule:
    """Maps each XUI to its subscriber's canonical XUI. ValueError for a bad configuration.

    ``home_domain`` turns on the E.164 rule; ``aliases`` adds the integrator's table.
    """

    home_domain: str | None = None
    aliases: Aliases | None = None

    def __post_init__(self) -> None:
        if self.home_domain is not None:
            object.__setattr__(self, "home_domain", parse_home_domain(self.home_domain))
        if self.aliases is not None and not callable(self.aliases):
            raise ValueError("identity_aliases must be a callable xui -> canonical xui or None")

    def canonical_xui(self, xui: str) -> str:
        """The XUI ``xui``'s documents are stored under (``xui`` itself when no rule applies)."""
        if self.aliases is not None:
            alias = self.aliases(xui)
            if alias is not None:
                if not isinstance(alias, str) or not alias.lower().startswith(_SCHEMES):
                    raise ValueError(f"identity_aliases answered {alias!r} for {xui!r}: not a sip:, sips: or tel: XUI")
                xui = alias
        if self.home_domain is None:
            return xui
        return e164_xui(xui, self.home_domain) or xui

    def canonical_uri(self, uri: XCAPURI) -> XCAPURI:
        """``uri`` addressed to the canonical XUI: its ``xui``, ``username``, ``domain`` and
        ``doc_uri`` are the canonical ones (the selector, query and usage stay). A
        global-tree URI is returned as is."""
        if uri.xui is None:
            return uri
        xui = self.canonical_xui(uri.xui)
        return uri if xui == uri.xui else with_xui(uri, xui)

    def canonical_owner(self, user: str, domain: str) -> tuple[str, str]:
        """The canonical (user, domain) of an authenticated user (a digest account
        ``+15551234567@home``, the API's ``tel:+15551234567``, an IMSI alias): the owner
        of the canonical XUI's documents. ``domain`` "" names a ``tel:`` number."""
        xui = f"sip:{quote(user, safe=USER_SAFE)}@{domain}" if domain else f"tel:{user}"
        canonical = self.canonical_xui(xui)
        if canonical == xui:
            return user, domain
        owner, host = split_xui(canonical)
        return unquote(owner), host.lower().rstrip(".")
