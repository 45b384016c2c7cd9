"""Kamailio's presence server follows what alice writes through xcap-wsgi (issue 8).

A real Kamailio (tests/peers/kamailio-presence.cfg: presence, presence_xml with
``integrated_xcap_server=1``, rls, jsonrpcs) reads the ``xcap`` table of the database
that a real ``xcap-wsgi serve --workers 4 --notify kamailio+http://.../RPC --notify sip:...``
writes. Watchers subscribe once; every change of state they see comes from the notifier,
within a second of the write, without re-subscribing (reference/presence-integration.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kamailio_peer import KamailioPresence
from tests.processes import kill_all, spawn
from tests.sipclient import Subscription, Watcher
from tests.test_cli import request
from xcap_wsgi.notify.events import ChangeEvent
from xcap_wsgi.notify.xcapdiff import build_xcap_diff

pytestmark = pytest.mark.kamailio

ALICE = "sip:alice@example.com"
RULES_URI = "/xcap-root/pres-rules/users/sip:alice@example.com/index"
RULES_MIME = "application/auth-policy+xml"
CP = "urn:ietf:params:xml:ns:common-policy"
PR = "urn:ietf:params:xml:ns:pres-rules"
#: within a second of the PUT's answer (the issue's bound)
WITHIN_S = 1.0


def rules(**handling: str) -> bytes:
    """alice's pres-rules: one rule per watcher (``bob="allow"``), as clients write them."""
    body = "".join(
        f'<cr:rule id="{who}"><cr:conditions><cr:identity><cr:one id="sip:{who}@example.com"/></cr:identity>'
        f"</cr:conditions><cr:actions><sub-handling>{what}</sub-handling></cr:actions></cr:rule>"
        for who, what in handling.items()
    )
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<cr:ruleset xmlns="{PR}" xmlns:cr="{CP}">{body}</cr:ruleset>\n').encode()


def sub_handling_uri(who: str) -> str:
    selector = f"cr:ruleset/cr:rule%5B@id=%22{who}%22%5D/cr:actions/pr:sub-handling"
    return f"{RULES_URI}/~~/{selector}?xmlns(cr={CP})xmlns(pr={PR})"


@pytest.fixture
def xcap(kamailio_presence: KamailioPresence, tmp_path: Path) -> Iterator[int]:
    """``serve`` with 4 workers on Kamailio's database, announcing to its RPC and SIP ports."""
    kamailio_presence.clear_presence_state(ALICE)
    conn = kamailio_presence._connect(database=kamailio_presence.database)
    with conn.cursor() as cur:
        cur.execute("DELETE FROM xcap WHERE username = 'alice' AND domain = 'example.com'")
    conn.close()
    port, proc = spawn(tmp_path, "--workers", "4", "--db-url", kamailio_presence.db_url,
                       "--notify", "kamailio+" + kamailio_presence.rpc_url, "--notify", kamailio_presence.sip_target)
    yield port
    kill_all(proc)


def put(port: int, uri: str, body: bytes, mime: str, **headers: str) -> tuple[int, dict[str, str], float]:
    status, answer, _ = request(port, "PUT", uri, body, {"Content-Type": mime, **headers})
    return status, answer, time.monotonic()


def state_after(subscription: Subscription, answered: float, state: str) -> Any:
    """The NOTIFY that brought ``state``, asserting it came within a second of ``answered``."""
    notify = subscription.wait_for(lambda n: n.state == state and n.received_at >= answered - 0.5, timeout=3.0)
    assert notify.received_at - answered < WITHIN_S, f"{state} NOTIFY {notify.received_at - answered:.3f} s after the PUT"
    return notify


def test_a_watcher_goes_active_then_blocked_as_alice_rewrites_her_rules(kamailio_presence: KamailioPresence,
                                                                        xcap: int) -> None:
    with Watcher("sip:bob@example.com", ("127.0.0.1", kamailio_presence.sip_port)) as bob:
        subscription = bob.subscribe(ALICE)
        assert subscription.response is not None and subscription.response.status in (200, 202)
        assert subscription.wait_for(timeout=2.0).state == "pending"  # no rules yet: not authorised
        status, _, answered = put(xcap, RULES_URI, rules(bob="allow"), RULES_MIME)
        assert status == 201
        state_after(subscription, answered, "active")
        status, _, answered = put(xcap, RULES_URI, rules(bob="block"), RULES_MIME)
        assert status == 200
        blocked = state_after(subscription, answered, "terminated")
        assert blocked.subscription_state == "terminated;reason=rejected"
        assert [n.state for n in subscription.notifies] == ["pending", "active", "terminated"]


def test_an_element_put_of_sub_handling_alone_reauthorises_the_watcher(kamailio_presence: KamailioPresence,
                                                                       xcap: int) -> None:
    status, _, _ = put(xcap, RULES_URI, rules(carol="confirm", bob="allow"), RULES_MIME)
    assert status == 201
    with Watcher("sip:carol@example.com", ("127.0.0.1", kamailio_presence.sip_port)) as carol:
        subscription = carol.subscribe(ALICE)
        assert subscription.wait_for(timeout=2.0).state == "pending"
        el = "application/xcap-el+xml"
        status, _, answered = put(xcap, sub_handling_uri("carol"), f'<sub-handling xmlns="{PR}">allow</sub-handling>'.encode(), el)
        assert status == 200
        state_after(subscription, answered, "active")
        status, _, answered = put(xcap, sub_handling_uri("carol"), f'<sub-handling xmlns="{PR}">block</sub-handling>'.encode(), el)
        assert status == 200
        assert state_after(subscription, answered, "terminated").subscription_state == "terminated;reason=rejected"
    _, _, stored = request(xcap, "GET", RULES_URI)
    # only the element's bytes changed: the body as PUT, its namespace declaration included
    assert stored == rules(carol="block", bob="allow").replace(
        b"<sub-handling>block", f'<sub-handling xmlns="{PR}">block'.encode())


def test_an_xcap_diff_watcher_gets_the_diff_of_each_change(kamailio_presence: KamailioPresence, xcap: int) -> None:
    with Watcher("sip:alice@example.com", ("127.0.0.1", kamailio_presence.sip_port)) as device:
        subscription = device.subscribe(ALICE, event="xcap-diff")
        assert subscription.wait_for(timeout=2.0).state == "active"
        status, headers, answered = put(xcap, RULES_URI, rules(bob="allow"), RULES_MIME)
        assert status == 201
        notify = subscription.wait_for(lambda n: n.body != b"", timeout=3.0)
        assert notify.received_at - answered < WITHIN_S
    event = ChangeEvent(
        auid="pres-rules", tree="users", xui=ALICE, username="alice", domain="example.com", doc_uri=RULES_URI,
        doc_type=2, document_selector=RULES_URI[len("/xcap-root/"):], action="created", previous_etag=None,
        new_etag=headers["ETag"].strip('"'), xcap_root_url=f"http://127.0.0.1:{xcap}/xcap-root/",
    )
    assert notify.body == build_xcap_diff([event])
    assert notify.content_type == "application/xcap-diff+xml"
