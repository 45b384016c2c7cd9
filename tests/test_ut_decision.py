"""The simservs evaluation (issue 12, "Acting on the settings"): TS 24.604 diversion and
TS 24.611 barring, rule by rule, over the documents in tests/documents/simservs-decision/."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from xcap_wsgi.ut import DEFAULT_NO_REPLY_TIMER, Call, Decision, decide
from xcap_wsgi.ut.decision import parse_datetime, same_party

DOCS = Path(__file__).parent / "documents" / "simservs-decision"


def doc(name: str) -> bytes:
    return (DOCS / f"{name}.xml").read_bytes()


def forward(rule: str, target: str, notify_caller: bool = True, no_reply_timer: int | None = None) -> Decision:
    """A forward with the default forward-to options (SS13)."""
    return Decision("forward", rule, target, notify_caller, no_reply_timer, "true", "true", False, False, "true")


CDIV = [
    pytest.param({"condition": "unconditional"}, Decision("none"), id="cfu-deactivated-never-matches"),
    pytest.param({"condition": "busy", "media": ["audio"]},
                 forward("cfb", "sip:+15550000002@ims.example.net;user=phone"), id="busy-audio-skips-erased-rule"),
    pytest.param({"condition": "busy", "media": ["video"]},
                 forward("cfb-video", "tel:+15550000003", notify_caller=False), id="busy-video"),
    pytest.param({"condition": "busy", "media": ["video", "audio"]},
                 forward("cfb", "sip:+15550000002@ims.example.net;user=phone"), id="busy-audio-and-video-first-rule-wins"),
    pytest.param({"condition": "busy"}, Decision("none"), id="busy-media-unknown-matches-no-media-rule"),
    pytest.param({"condition": "not-reachable"}, forward("cfnrc", "tel:+15550000004"), id="not-reachable"),
    pytest.param({"condition": "not-registered"}, forward("cfnl", "tel:+15550000005"), id="not-registered-ss-prefix"),
    pytest.param({"condition": "unconditional", "caller": "tel:+15559990001"},
                 forward("cf-family", "tel:+15550000006"), id="identity-one"),
    pytest.param({"condition": "busy", "caller": "sip:+15559990001@ims.example.net;user=phone"},
                 forward("cf-family", "tel:+15550000006"), id="identity-one-tel-names-the-sip-form"),
    pytest.param({"condition": "unconditional", "caller": "sip:aunt@Family.Example.ORG"},
                 forward("cf-family", "tel:+15550000006"), id="identity-many-domain"),
    pytest.param({"condition": "unconditional", "caller": "sip:black.sheep@family.example.org"}, Decision("none"),
                 id="identity-many-except"),
    pytest.param({"condition": "unconditional", "caller": "sip:aunt@family.example.org", "anonymous": True},
                 forward("cf-anonymous", "sip:announcement@ims.example.net"), id="identity-never-matches-anonymous"),
    pytest.param({"condition": "unconditional", "caller": "sip:anonymous@anonymous.invalid"},
                 forward("cf-anonymous", "sip:announcement@ims.example.net"), id="anonymous-invalid-caller-is-anonymous"),
    pytest.param({"condition": "unconditional", "caller": "sip:bob@example.com"}, Decision("none"),
                 id="other-caller-nothing"),
    pytest.param({"condition": "unconditional", "time": datetime(2026, 7, 1, tzinfo=timezone.utc)},
                 forward("cf-holiday", "tel:+15550000007"), id="validity-from-inclusive"),
    pytest.param({"condition": "unconditional", "time": datetime(2026, 7, 14, 21, 59, 59, tzinfo=timezone.utc)},
                 forward("cf-holiday", "tel:+15550000007"), id="validity-inside-offset-until"),
    pytest.param({"condition": "unconditional", "time": datetime(2026, 7, 14, 22, tzinfo=timezone.utc)},
                 Decision("none"), id="validity-until-exclusive"),
    pytest.param({"condition": "unconditional", "time": datetime(2026, 6, 30, 23, 59, 59)}, Decision("none"),
                 id="validity-before-naive-time-is-utc"),
    pytest.param({"condition": "unconditional", "sphere": "meeting"}, forward("cf-at-work", "tel:+15550000008"),
                 id="sphere-one-of-the-values"),
    pytest.param({"condition": "unconditional", "sphere": "home"}, Decision("none"), id="sphere-other"),
]


@pytest.mark.parametrize(("facts", "expected"), CDIV)
def test_diversion_takes_the_first_matching_rule_with_a_target(facts: dict[str, Any], expected: Decision) -> None:
    facts = {"time": datetime(2026, 1, 1, tzinfo=timezone.utc), **facts}
    assert decide(doc("cdiv-rules"), Call("cdiv", **facts)) == expected


def test_no_answer_forwards_with_the_rules_own_timer_and_every_forward_to_option() -> None:
    decision = decide(doc("cdiv-rules"), Call("cdiv", condition="no-answer"))
    assert decision == Decision("forward", "cfnr", "sip:voicemail@ims.example.net", True, 25,
                                "not-reveal-GRUU", "false", True, True, "false")
    assert decision.as_dict() == {"action": "forward", "target": "sip:voicemail@ims.example.net", "rule": "cfnr",
                                  "notify_caller": True, "no_reply_timer": 25}


def test_no_answer_timer_falls_back_to_the_service_level_then_20_seconds() -> None:
    root = etree.fromstring(doc("cdiv-rules"))
    rule_timer = root.find(".//{*}actions/{http://uri.etsi.org/ngn/params/xml/simservs/xcap}NoReplyTimer")
    parent = None if rule_timer is None else rule_timer.getparent()
    assert rule_timer is not None and parent is not None
    parent.remove(rule_timer)
    assert decide(root, Call("cdiv", condition="no-answer")).no_reply_timer == 30
    assert decide(doc("cdiv-unconditional"), Call("cdiv", condition="no-answer")) == forward(
        "call-diversion-unconditional", "tel:+15557654321", no_reply_timer=DEFAULT_NO_REPLY_TIMER)
    assert DEFAULT_NO_REPLY_TIMER == 20


@pytest.mark.parametrize("condition", ["unconditional", "busy", "not-reachable"])
def test_an_active_cfu_rule_with_empty_conditions_forwards_every_call(condition: str) -> None:
    decision = decide(doc("cdiv-unconditional"), Call("cdiv", condition=condition))
    assert decision == forward("call-diversion-unconditional", "tel:+15557654321")
    assert decision.as_dict() == {"action": "forward", "target": "tel:+15557654321",
                                  "rule": "call-diversion-unconditional", "notify_caller": True}


@pytest.mark.parametrize("condition", ["unconditional", "busy", "no-answer"])
def test_names_of_other_namespaces_are_neither_conditions_nor_actions(condition: str) -> None:
    expected = forward("cfnr", "tel:+15550000014", no_reply_timer=20) if condition == "no-answer" else Decision("none")
    assert decide(doc("cdiv-foreign-names"), Call("cdiv", condition=condition)) == expected


@pytest.mark.parametrize(("service", "expected"), [("cdiv", "none"), ("icb", "allow"), ("ocb", "allow")])
def test_an_inactive_or_missing_service_decides_nothing(service: str, expected: str) -> None:
    facts: dict[str, Any] = {"condition": "unconditional"} if service == "cdiv" else {}
    assert decide(doc("cdiv-inactive"), Call(service, **facts)) == Decision(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize("service", ["cdiv", "icb", "ocb"])
def test_no_document_decides_nothing(service: str) -> None:
    facts: dict[str, Any] = {"condition": "busy"} if service == "cdiv" else {}
    assert decide(None, Call(service, **facts)).as_dict() == {"action": "none"}


BARRING = [
    pytest.param("barring", "icb", {"caller": "sip:bob@example.com"}, Decision("allow"), id="icb-no-rule-matches"),
    pytest.param("barring", "icb", {"anonymous": True}, Decision("bar", "call-barring-anonymous-incoming"), id="acr"),
    pytest.param("barring", "icb", {"caller": "sip:anonymous@anonymous.invalid"},
                 Decision("bar", "call-barring-anonymous-incoming"), id="acr-anonymous-invalid"),
    pytest.param("barring", "icb", {"caller": "tel:+15559990000"}, Decision("bar", "call-barring-incoming-blocklist"),
                 id="blocklist-tel-with-visual-separators"),
    pytest.param("barring", "icb", {"caller": "sip:+15559990000@ims.example.net;user=phone"},
                 Decision("bar", "call-barring-incoming-blocklist"), id="blocklist-tel-names-sip-form"),
    pytest.param("barring", "icb", {"caller": "tel:+15559990002"}, Decision("bar", "call-barring-incoming-blocklist"),
                 id="blocklist-sip-form-names-tel"),
    pytest.param("barring", "icb", {"caller": "sip:+15559990002@other.example.net"}, Decision("allow"),
                 id="blocklist-sip-forms-of-two-domains-differ"),
    pytest.param("barring", "icb", {"caller": "sip:robot@spam.example.com"},
                 Decision("bar", "call-barring-incoming-blocklist"), id="blocklist-many-domain"),
    pytest.param("barring", "icb", {"caller": "sip:bob@example.com", "roaming": True},
                 Decision("bar", "call-barring-incoming-in-roaming"), id="bic-roam"),
    pytest.param("barring", "icb", {"caller": "sip:bob@example.com", "media": ["audio", "video"]},
                 Decision("bar", "call-barring-all-incoming-video"), id="video-barred"),
    pytest.param("barring", "icb", {"caller": "sip:bob@example.com", "media": ["audio"]}, Decision("allow"),
                 id="audio-not-barred-by-video-rule"),
    pytest.param("barring", "icb", {"caller": "sip:bob@example.com", "diverted": True},
                 Decision("bar", "call-barring-incoming-diverted"), id="rule-without-allow-bars"),
    pytest.param("barring", "icb", {"caller": "sip:friend@example.org", "roaming": True, "media": ["video"]},
                 Decision("allow", "friend"), id="any-allow-true-wins-over-bars"),
    pytest.param("barring", "ocb", {"callee": "tel:+441632960000", "international": True},
                 Decision("bar", "call-barring-outgoing-international"), id="boic"),
    pytest.param("barring", "ocb", {"callee": "tel:+15551230000", "international_exhc": True}, Decision("allow"),
                 id="boic-exhc-deactivated"),
    pytest.param("barring", "ocb", {"callee": "tel:+1-900-555-0100"}, Decision("bar", "call-barring-premium"),
                 id="ocb-identity-is-the-callee"),
    pytest.param("barring", "ocb", {"callee": "tel:+15551230000"}, Decision("allow"), id="baoc-deactivated"),
    pytest.param("barring-exhc-roaming", "ocb", {"international": True, "international_exhc": True},
                 Decision("bar", "call-barring-outgoing-internationalExHC"), id="boic-exhc"),
    pytest.param("barring-exhc-roaming", "ocb", {"international": True}, Decision("allow"),
                 id="boic-exhc-allows-home-country"),
    pytest.param("barring-exhc-roaming", "ocb", {"roaming": True, "media": ["video"]},
                 Decision("bar", "call-barring-outgoing-roaming-video"), id="roaming-and-media-anded"),
    pytest.param("barring-exhc-roaming", "ocb", {"roaming": True, "media": ["audio"]}, Decision("allow"),
                 id="roaming-without-video"),
    pytest.param("barring-exhc-roaming", "icb", {"caller": "tel:+15551110000"}, Decision("allow", "allowed-callers"),
                 id="listed-caller"),
    pytest.param("barring-exhc-roaming", "icb", {"caller": "tel:+15552220000"}, Decision("bar", "everyone-else"),
                 id="other-identity"),
    pytest.param("barring-exhc-roaming", "icb", {}, Decision("allow"), id="other-identity-needs-a-known-caller"),
    pytest.param("barring-all", "icb", {"caller": "sip:friend@example.org"}, Decision("bar", "call-barring-all-incoming"),
                 id="baic"),
    pytest.param("barring-all", "ocb", {}, Decision("bar", "call-barring-all-outgoing"), id="baoc-no-conditions"),
    pytest.param("cdiv-rules", "icb", {"anonymous": True}, Decision("allow"), id="no-barring-service"),
]


@pytest.mark.parametrize(("name", "service", "facts", "expected"), BARRING)
def test_barring(name: str, service: str, facts: dict[str, Any], expected: Decision) -> None:
    assert decide(doc(name), Call(service, **facts)) == expected


def test_barring_decisions_as_the_endpoint_answers_them() -> None:
    assert decide(doc("barring"), Call("icb", anonymous=True)).as_dict() == {
        "action": "bar", "rule": "call-barring-anonymous-incoming"}
    assert decide(doc("barring"), Call("icb")).as_dict() == {"action": "allow"}


def test_validity_defaults_to_now() -> None:
    now = datetime.now(timezone.utc)
    document = (b'<simservs xmlns="http://uri.etsi.org/ngn/params/xml/simservs/xcap" '
                b'xmlns:cp="urn:ietf:params:xml:ns:common-policy"><communication-diversion><cp:ruleset>'
                b'<cp:rule id="now"><cp:conditions><cp:validity><cp:from>%s</cp:from><cp:until>%s</cp:until>'
                b'</cp:validity></cp:conditions><cp:actions><forward-to><target>tel:+1</target></forward-to>'
                b'</cp:actions></cp:rule></cp:ruleset></communication-diversion></simservs>')
    around = document % ((now - timedelta(hours=1)).isoformat().encode(), (now + timedelta(hours=1)).isoformat().encode())
    assert decide(around, Call("cdiv", condition="busy")).rule == "now"
    past = document % (b"2000-01-01T00:00:00Z", b"2000-01-02T00:00:00Z")
    assert decide(past, Call("cdiv", condition="busy")).action == "none"


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-07-15T00:00:00+02:00", datetime(2026, 7, 14, 22, tzinfo=timezone.utc)),
    (" 2026-07-15T00:00:00.5Z ", datetime(2026, 7, 15, 0, 0, 0, 500000, tzinfo=timezone.utc)),
    ("2026-07-15T12:30:00", datetime(2026, 7, 15, 12, 30, tzinfo=timezone.utc)),
    ("2026-07-15T24:00:00-05:00", datetime(2026, 7, 16, 5, tzinfo=timezone.utc)),
])
def test_xs_datetime(text: str, expected: datetime) -> None:
    assert parse_datetime(text) == expected


@pytest.mark.parametrize("text", ["2026-07-15", "yesterday", "2026-07-15T12:30"])
def test_a_bad_xs_datetime_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not an xs:dateTime"):
        parse_datetime(text)


@pytest.mark.parametrize(("uri", "party", "same"), [
    ("sip:Alice@Example.COM", ("Alice", "example.com"), True),
    ("sip:alice@example.com", ("Alice", "example.com"), False),
    ("tel:+1-555-0100", ("+15550100", "ims.example.net"), True),
    ("sip:+15550100@ims.example.net;user=phone", ("+15550100", ""), True),
    ("sip:+15550100@a.example", ("+15550100", "b.example"), False),
    ("tel:5550100;phone-context=example.com", ("5550100;phone-context=example.com", "x.example"), False),
    ("not a uri", ("alice", "example.com"), False),
])
def test_identity_comparison(uri: str, party: tuple[str, str], same: bool) -> None:
    assert same_party(uri, party) is same


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"service": "cfu"}, "service must be one of cdiv, icb, ocb, got 'cfu'"),
    ({"service": "cdiv"}, "condition must be one of unconditional, busy, no-answer, not-reachable, not-registered"),
    ({"service": "cdiv", "condition": "not-logged-in"}, "condition must be one of"),
    ({"service": "icb", "condition": "busy"}, "condition applies to service cdiv only"),
    ({"service": "ocb", "caller": "tel:+1"}, "caller does not apply to service ocb"),
    ({"service": "icb", "callee": "tel:+1"}, "callee does not apply to service icb"),
    ({"service": "icb", "caller": "mailto:a@b"}, "caller must be a sip:, sips: or tel: URI"),
])
def test_facts_that_are_not_a_call_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Call(**kwargs)


@pytest.mark.parametrize(("document", "message"), [
    (b"<simservs", "not well-formed"),
    (b'<simservs xmlns="urn:example:other"/>', "not a simservs document"),
    (b"<simservs/>", "not a simservs document"),
])
def test_a_document_that_is_not_simservs_is_refused(document: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        decide(document, Call("icb"))
