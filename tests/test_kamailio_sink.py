"""The Kamailio notifier: which jsonrpcs command each usage's change sends (issue 8,
reference/presence-integration.md), against a recording server that answers as
Kamailio's jsonrpcs does (errors also as the HTTP status)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tests.recording_rpc import RecordingRPCServer, RPCFault
from xcap_wsgi.notify import DeliveryError, make_sink
from xcap_wsgi.notify.events import ChangeEvent
from xcap_wsgi.notify.sinks.kamailio import KamailioSink


def change(auid: str, action: str = "replaced", doc_type: int = 2, tree: str = "users") -> ChangeEvent:
    doc_uri = f"/xcap-root/{auid}/users/sip:alice@example.com/index"
    return ChangeEvent(
        auid=auid, tree=tree, xui="sip:alice@example.com", username="alice", domain="example.com", doc_uri=doc_uri,
        doc_type=doc_type, document_selector=doc_uri[len("/xcap-root/"):], action=action,  # type: ignore[arg-type]
        previous_etag=None if action == "created" else "e1", new_etag=None if action == "deleted" else "e2",
        xcap_root_url="http://xcap.example.com/xcap-root/",
    )


@pytest.fixture
def kamailio() -> Iterator[RecordingRPCServer]:
    with RecordingRPCServer(error_style="kamailio") as server:
        yield server


def sink_for(server: RecordingRPCServer) -> KamailioSink:
    sink = make_sink("kamailio+" + server.url, timeout=2.0)
    assert isinstance(sink, KamailioSink)
    return sink


@pytest.mark.parametrize(("auid", "action", "method", "params"), [
    pytest.param("pres-rules", "created", "presence.updateWatchers", ["sip:alice@example.com", "presence"], id="pres-rules"),
    pytest.param("org.openmobilealliance.pres-rules", "replaced", "presence.updateWatchers",
                 ["sip:alice@example.com", "presence"], id="oma-pres-rules"),
    pytest.param("org.openxcap.dialog-rules", "replaced", "presence.updateWatchers", ["sip:alice@example.com", "dialog"],
                 id="dialog-rules"),
    pytest.param("resource-lists", "replaced", "rls.update_subs", ["sip:alice@example.com", "presence"], id="resource-lists"),
    pytest.param("rls-services", "deleted", "rls.update_subs", ["sip:alice@example.com", "presence"], id="rls-services"),
    pytest.param("pidf-manipulation", "replaced", "presence.refreshWatchers",
                 ["sip:alice@example.com", "presence", 2, "/xcap-root/pidf-manipulation/users/sip:alice@example.com/index",
                  "index"], id="pidf-manipulation"),
    pytest.param("pidf-manipulation", "deleted", "presence.refreshWatchers",
                 ["sip:alice@example.com", "presence", 2, "/xcap-root/pidf-manipulation/users/sip:alice@example.com/index",
                  "index"], id="pidf-manipulation-deleted"),
])
def test_each_usage_sends_its_command(kamailio: RecordingRPCServer, auid: str, action: str, method: str,
                                      params: list[Any]) -> None:
    sink_for(kamailio).deliver([change(auid, action)])
    [request] = kamailio.requests
    assert request.path == "/RPC"
    assert request.headers["Content-Type"] == "application/json"
    assert request.body == {"jsonrpc": "2.0", "method": method, "params": params, "id": 1}


@pytest.mark.parametrize("event", [
    pytest.param(change("pres-rules", "deleted"), id="deleted-rules"),
    pytest.param(change("org.openmobilealliance.pres-content", doc_type=128), id="pres-content"),
    pytest.param(change("org.openmobilealliance.user-profile", doc_type=64), id="user-profile"),
    pytest.param(replace(change("resource-lists"), tree="global", xui=None, username="", domain=""), id="global-tree"),
])
def test_changes_kamailio_cannot_use_send_nothing(kamailio: RecordingRPCServer, event: ChangeEvent) -> None:
    sink_for(kamailio).deliver([event])
    assert kamailio.requests == []


def test_several_pending_changes_send_one_command(kamailio: RecordingRPCServer) -> None:
    sink_for(kamailio).deliver([change("pres-rules", "created"), change("pres-rules"), change("pres-rules")])
    assert [r.method for r in kamailio.requests] == ["presence.updateWatchers"]


def test_a_rules_document_deleted_after_changes_sends_nothing(kamailio: RecordingRPCServer) -> None:
    sink_for(kamailio).deliver([change("pres-rules", "created"), change("pres-rules", "deleted")])
    assert kamailio.requests == []


def test_a_method_kamailio_does_not_know_fails_for_good() -> None:
    with RecordingRPCServer({}, error_style="kamailio") as server, pytest.raises(DeliveryError) as failure:
        sink_for(server).deliver([change("resource-lists")])
    assert str(failure.value) == (f"kamailio+{server.url}: Kamailio does not know rls.update_subs (is its module loaded?)")
    assert (failure.value.retry, failure.value.target_down) == (False, False)


def test_an_rpc_error_is_retried() -> None:
    methods = {"presence.updateWatchers": RPCFault(500, "Processing error")}
    with RecordingRPCServer(methods, error_style="kamailio") as server, pytest.raises(DeliveryError) as failure:
        sink_for(server).deliver([change("pres-rules")])
    assert str(failure.value) == f"kamailio+{server.url}: presence.updateWatchers: error 500 Processing error"
    assert (failure.value.retry, failure.value.target_down) == (True, False)


def test_an_unreachable_kamailio_is_a_target_down(kamailio: RecordingRPCServer) -> None:
    sink = sink_for(kamailio)
    kamailio.stop()
    with pytest.raises(DeliveryError) as failure:
        sink.deliver([change("pres-rules")])
    assert str(failure.value).startswith(f"{kamailio.url} unreachable: ConnectionRefusedError")
    assert (failure.value.retry, failure.value.target_down) == (True, True)


@pytest.mark.parametrize("target", ["kamailio+ftp://x/RPC", "kamailio+http:///RPC"])
def test_bad_kamailio_urls_are_refused(target: str) -> None:
    with pytest.raises(ValueError):
        make_sink(target)
