"""What a subscriber's simservs document says about one call: forward, bar, allow, or nothing.

::

    from xcap_wsgi.ut import Call, decide

    decision = decide(document, Call("cdiv", condition="busy", caller="tel:+15550001111", media=("audio",)))
    (decision.action, decision.target, decision.rule)   # ('forward', 'tel:+15557654321', 'cfb')
    decide(document, Call("icb", anonymous=True)).action  # 'bar' when anonymous calls are rejected (ACR)

A pure function over the document (bytes or a parsed root) and the call's facts; the
served user only selects the document. Names are matched by namespace, never by local
name alone: simservs elements in ``http://uri.etsi.org/ngn/params/xml/simservs/xcap``
(SS4, SS5), ``cp:`` in RFC 4745's, ``ocp:`` in OMA's, whatever prefixes the document uses.

Communication diversion (TS 24.604, SS12-SS14, SS17, SS25): no decision (``none``) when
the service is missing or ``active`` is false (SS11: missing means true); otherwise the
first rule in document order whose conditions all hold (RFC 4745: ANDed; no conditions =
always, CFU) and whose actions hold a ``forward-to`` with a ``target`` forwards; a rule
without a target (its ``forward-to`` erased, SS17) is passed over. ``no_reply_timer`` is
given for the ``no-answer`` condition: the rule's own ``NoReplyTimer`` (inside
``cp:actions``, SS25), else the service's, else :data:`DEFAULT_NO_REPLY_TIMER` (20 s, the
value phones write and Clearwater assumes, SS62). ``notify-caller`` defaults to true and
the reveal options to ``true`` (SS13).

Communication barring (TS 24.611, ICB and OCB, SS18-SS20): allowed when the service is
missing or inactive, when no rule matches, or when any matching rule says ``allow`` true;
otherwise barred by the first matching rule (a matching rule without ``<allow>`` bars, as
Clearwater does, SS20).

Conditions (SS14, SS19, SS22): ``rule-deactivated`` never matches (SS17; Clearwater
ignores it, SS62: not followed); ``busy``, ``no-answer``, ``not-reachable``,
``not-registered`` match the diversion condition of the call exactly; ``media`` matches
when the call carries that media type; ``anonymous`` and ``ocp:anonymous-request`` when the
caller withholds its identity; ``international``, ``international-exHC``, ``roaming`` and
``communication-diverted`` when the call's fact of that name is true; ``cp:identity``
(``one``, ``many`` with ``except``) against the other party's identity, never for an
anonymous or unknown party (RFC 4745 §7.1: only authenticated identities match);
``cp:sphere`` against the served user's current sphere; ``cp:validity`` against the
call's time; ``ocp:other-identity`` when the party is known and no other rule of the
ruleset names it in an identity condition. Any other condition (``presence-status``,
``ocp:external-list``, an unknown extension) matches nothing, so a rule that needs a
fact this evaluation does not have never fires (contrary to Clearwater, which drops
conditions it does not know, SS62).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from lxml import etree

from xcap_wsgi.auth.ims import canonical_ims_identity
from xcap_wsgi.usages.pres_rules import CP_NS
from xcap_wsgi.usages.pres_rules import OMA_CP_NS as OCP_NS
from xcap_wsgi.usages.simservs import SIMSERVS_NS as SS_NS
from xcap_wsgi.xmlcheck import parser

#: the services a call is evaluated against, by the short name a SIP server asks with
SERVICES = {
    "cdiv": "communication-diversion",
    "icb": "incoming-communication-barring",
    "ocb": "outgoing-communication-barring",
}
#: the diversion conditions of a call (CFU is ``unconditional``: no busy/no-answer/... rule holds)
CDIV_CONDITIONS = ("unconditional", "busy", "no-answer", "not-reachable", "not-registered")
#: seconds before a call counts as unanswered when the document names no NoReplyTimer (SS62)
DEFAULT_NO_REPLY_TIMER = 20
#: RFC 3323 §4.1.1.3: the host of the URI a caller withholding its identity is sent as
ANONYMOUS_HOST = "anonymous.invalid"

Action = Literal["forward", "bar", "allow", "none"]
Party = tuple[str, str]


def _ss(name: str) -> str:
    return f"{{{SS_NS}}}{name}"


def _cp(name: str) -> str:
    return f"{{{CP_NS}}}{name}"


def _ocp(name: str) -> str:
    return f"{{{OCP_NS}}}{name}"


@dataclass(frozen=True)
class Call:
    """The facts of one call the served user's settings are applied to. ValueError when
    the service, condition or an identity is not one this evaluation knows.

    ``caller`` is the other party for ``cdiv`` and ``icb``, ``callee`` for ``ocb``
    (``cp:identity`` matches it). ``anonymous`` is true when the caller withholds its
    identity; a caller URI at ``anonymous.invalid`` counts as anonymous too. ``time``
    (for ``cp:validity``) defaults to the moment the call is evaluated; without a time
    zone it is UTC.
    """

    service: str
    condition: str | None = None
    caller: str | None = None
    callee: str | None = None
    anonymous: bool = False
    media: Iterable[str] = ()
    international: bool = False
    international_exhc: bool = False
    roaming: bool = False
    diverted: bool = False
    sphere: str | None = None
    time: datetime | None = None
    party: Party | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.service not in SERVICES:
            raise ValueError(f"service must be one of {', '.join(SERVICES)}, got {self.service!r}")
        if self.service == "cdiv" and self.condition not in CDIV_CONDITIONS:
            raise ValueError(f"condition must be one of {', '.join(CDIV_CONDITIONS)}, got {self.condition!r}")
        if self.service != "cdiv" and self.condition is not None:
            raise ValueError("condition applies to service cdiv only")
        other, unused = ("callee", "caller") if self.service == "ocb" else ("caller", "callee")
        if getattr(self, unused) is not None:
            raise ValueError(f"{unused} does not apply to service {self.service}")
        uri = getattr(self, other)
        object.__setattr__(self, "media", frozenset(self.media))
        object.__setattr__(self, "party", None if uri is None else _identity(uri, other))
        if self.party is not None and self.party[1] == ANONYMOUS_HOST:
            object.__setattr__(self, "anonymous", True)
        if self.time is not None and self.time.tzinfo is None:
            object.__setattr__(self, "time", self.time.replace(tzinfo=timezone.utc))


@dataclass(frozen=True)
class Decision:
    """What to do with the call; fields that do not apply are None.

    ``rule`` is the id of the rule that decided (none when nothing matched). A forward
    carries the ``forward-to`` options (SS13); ``no_reply_timer`` (seconds) only for the
    ``no-answer`` condition.
    """

    action: Action
    rule: str | None = None
    target: str | None = None
    notify_caller: bool | None = None
    no_reply_timer: int | None = None
    reveal_identity_to_caller: str | None = None
    reveal_served_user_identity_to_caller: str | None = None
    notify_served_user: bool | None = None
    notify_served_user_on_outbound_call: bool | None = None
    reveal_identity_to_target: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The decision as the endpoint answers it: action, target, rule, notify_caller,
        no_reply_timer, each only when it applies."""
        fields = {"action": self.action, "target": self.target, "rule": self.rule,
                  "notify_caller": self.notify_caller, "no_reply_timer": self.no_reply_timer}
        return {name: value for name, value in fields.items() if value is not None}


NONE = Decision("none")
ALLOW = Decision("allow")


def decide(document: bytes | etree._Element | None, call: Call) -> Decision:
    """The decision ``document`` (a simservs document, or None when the user has none:
    ``none``) takes for ``call``. ValueError when the document is not simservs XML."""
    if document is None:
        return NONE
    root = _root(document)
    service = root.find(_ss(SERVICES[call.service]))
    if call.service == "cdiv":
        return NONE if service is None or not _active(service) else _divert(service, call)
    return ALLOW if service is None or not _active(service) else _bar(service, call)


def _root(document: bytes | etree._Element) -> etree._Element:
    if isinstance(document, bytes):
        try:
            document = etree.fromstring(document, parser())
        except etree.XMLSyntaxError as exc:
            raise ValueError(f"the simservs document is not well-formed: {exc}") from None
    if document.tag != _ss("simservs"):
        raise ValueError(f"not a simservs document: the root element is {document.tag!r}")
    return document


def _boolean(text: str | None, default: bool) -> bool:
    """An xs:boolean (``true``/``false``/``1``/``0``, whitespace collapsed); ``default``
    when absent or unreadable (the stored document was validated, SS11)."""
    value = (text or "").strip()
    return {"true": True, "1": True, "false": False, "0": False}.get(value, default)


def _active(service: etree._Element) -> bool:
    return _boolean(service.get("active"), True)


def _rules(service: etree._Element) -> list[etree._Element]:
    ruleset = service.find(_cp("ruleset"))
    return [] if ruleset is None else ruleset.findall(_cp("rule"))


def _divert(service: etree._Element, call: Call) -> Decision:
    rules = _rules(service)
    for rule in rules:
        actions = rule.find(_cp("actions"))
        forward = None if actions is None else actions.find(_ss("forward-to"))
        if actions is None or forward is None or not _text(forward, "target") or not _matches(rule, call, rules):
            continue
        timer = None
        if call.condition == "no-answer":
            timer = _timer(actions) or _timer(service) or DEFAULT_NO_REPLY_TIMER
        return Decision(
            "forward", rule.get("id"), _text(forward, "target"), _boolean(_text(forward, "notify-caller"), True), timer,
            _reveal(forward, "reveal-identity-to-caller"), _reveal(forward, "reveal-served-user-identity-to-caller"),
            _boolean(_text(forward, "notify-served-user"), False),
            _boolean(_text(forward, "notify-served-user-on-outbound-call"), False),
            _reveal(forward, "reveal-identity-to-target"),
        )
    return NONE


def _bar(service: etree._Element, call: Call) -> Decision:
    rules = _rules(service)
    matching = [rule for rule in rules if _matches(rule, call, rules)]
    for rule in matching:
        actions = rule.find(_cp("actions"))
        if actions is not None and _boolean(_text(actions, "allow"), False):
            return Decision("allow", rule.get("id"))
    return Decision("bar", matching[0].get("id")) if matching else ALLOW


def _text(parent: etree._Element, name: str) -> str | None:
    """The whitespace-trimmed text of ``parent``'s first simservs child ``name``."""
    child = parent.find(_ss(name))
    return None if child is None else (child.text or "").strip()


def _reveal(forward: etree._Element, name: str) -> str:
    """A reveal-URI-options value (``false``, ``not-reveal-GRUU``, ``true``; default true, SS13)."""
    return _text(forward, name) or "true"


def _timer(parent: etree._Element) -> int | None:
    """The NoReplyTimer under ``parent`` in seconds (5-180, SS12), None when absent or out of range."""
    text = _text(parent, "NoReplyTimer")
    return int(text) if text and text.isdigit() and 5 <= int(text) <= 180 else None


def _matches(rule: etree._Element, call: Call, rules: list[etree._Element]) -> bool:
    """Every condition of ``rule`` holds (RFC 4745: ANDed; none means always)."""
    conditions = rule.find(_cp("conditions"))
    if conditions is None:
        return True
    return all(_holds(condition, call, rule, rules) for condition in _elements(conditions))


def _elements(parent: etree._Element) -> Iterator[etree._Element]:
    return (child for child in parent if isinstance(child.tag, str))  # not comments or PIs


def _holds(condition: etree._Element, call: Call, rule: etree._Element, rules: list[etree._Element]) -> bool:
    tag = condition.tag
    if tag in _DIVERSION_CONDITIONS:
        return call.condition == _DIVERSION_CONDITIONS[tag]
    if tag in _FACTS:
        return _FACTS[tag](call)
    if tag == _ss("media"):
        return (condition.text or "").strip() in call.media
    if tag == _cp("identity"):
        return _identity_matches(condition, call)
    if tag == _cp("sphere"):
        return call.sphere is not None and call.sphere in (condition.get("value") or "").split()
    if tag == _cp("validity"):
        return _valid_at(condition, call.time or datetime.now(timezone.utc))
    if tag == _ocp("other-identity"):
        return call.party is not None and not call.anonymous and not any(
            _identity_matches(identity, call) for other in rules if other is not rule
            for identity in other.iterfind(f"{_cp('conditions')}/{_cp('identity')}"))
    return False  # rule-deactivated (SS17), presence-status, ocp:external-list, unknown extensions


_DIVERSION_CONDITIONS = {_ss(name): name for name in ("busy", "no-answer", "not-reachable", "not-registered")}
_FACTS: dict[str, Callable[[Call], bool]] = {
    _ss("anonymous"): lambda call: call.anonymous,
    _ocp("anonymous-request"): lambda call: call.anonymous,
    _ss("international"): lambda call: call.international,
    _ss("international-exHC"): lambda call: call.international_exhc,
    _ss("roaming"): lambda call: call.roaming,
    _ss("communication-diverted"): lambda call: call.diverted,
}


def _identity(text: str, what: str) -> Party:
    try:
        return canonical_ims_identity(text)
    except ValueError:
        raise ValueError(f"{what} must be a sip:, sips: or tel: URI, got {text!r}") from None


def same_party(uri: str, party: Party) -> bool:
    """Whether ``uri`` (a ``cp:one`` id) names ``party`` (a canonical (user, domain)).

    Compared in canonical form (:func:`~xcap_wsgi.auth.ims.canonical_ims_identity`); a
    ``tel:`` global number also names the ``sip:`` URI with that number as its user
    part, whatever its domain (TS 24.604 lets the phone write either form)."""
    try:
        user, domain = canonical_ims_identity(uri)
    except ValueError:
        return False
    if (user, domain) == party:
        return True
    return user == party[0] and user.startswith("+") and "" in (domain, party[1])


def _identity_matches(identity: etree._Element, call: Call) -> bool:
    """RFC 4745 §7.1: any ``one`` or ``many`` (minus its ``except``) names the party, which
    must be known and not anonymous."""
    party = call.party
    if party is None or call.anonymous:
        return False
    for child in _elements(identity):
        if child.tag == _cp("one") and same_party(child.get("id", ""), party):
            return True
        if child.tag == _cp("many") and _in_domain(child.get("domain"), party) and not any(
                _excepted(exception, party) for exception in child.iterfind(_cp("except"))):
            return True
    return False


def _in_domain(domain: str | None, party: Party) -> bool:
    return domain is None or domain.strip().lower().rstrip(".") == party[1]


def _excepted(exception: etree._Element, party: Party) -> bool:
    domain, uri = exception.get("domain"), exception.get("id")
    return (domain is not None and _in_domain(domain, party)) or (uri is not None and same_party(uri, party))


_DATETIME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?")


def parse_datetime(text: str) -> datetime:
    """An xs:dateTime; UTC when it names no time zone. ValueError otherwise."""
    match = _DATETIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an xs:dateTime: {text!r}")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction, zone = match.group(7) or "0", match.group(8) or "Z"
    offset = timezone.utc
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    if hour == 24 and minute == second == 0:  # xs:dateTime allows 24:00:00, the next day's start
        return datetime(year, month, day, tzinfo=offset) + timedelta(days=1)
    microsecond = int(fraction[:6].ljust(6, "0"))
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=offset)


def _valid_at(validity: etree._Element, when: datetime) -> bool:
    """RFC 4745 §7.3: ``when`` falls in one of the ``from``-``until`` intervals (from
    inclusive, until exclusive); an unreadable interval holds nothing."""
    children = list(_elements(validity))
    for start, end in zip(children[::2], children[1::2], strict=False):
        if start.tag != _cp("from") or end.tag != _cp("until"):
            continue
        try:
            if parse_datetime(start.text or "") <= when < parse_datetime(end.text or ""):
                return True
        except ValueError:
            continue
    return False
