"""The OpenSIPS sink against a recording mi_http fake: exact JSON-RPC bodies per usage, both MI naming generations."""

from __future__ import annotations

import http.client
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.recording_rpc import RecordingRPCServer, RPCFault
from xcap_wsgi.notify.events import ChangeEvent
from xcap_wsgi.notify.sinks.base import DeliveryError
from xcap_wsgi.notify.sinks.opensips import OpenSIPSSink
from xcap_wsgi.usages import get_usage

ALICE = "sip:alice@example.com"
NEW = {"presence:refresh_watchers": "OK", "rls:update_subscriptions": "OK"}
OLD = {"refresh_watchers": "OK", "rls_update_subscriptions": "OK"}


def change(auid: str, *, deleted: bool = False, tree: str = "users", document: str = "index",
           previous: str | None = "e1") -> ChangeEvent:
    """One committed PUT (or DELETE) of Alice's ``auid`` document, or of a global one."""
    xui = ALICE if tree == "users" else None
    path = f"{auid}/users/{ALICE}/{document}" if xui else f"{auid}/global/{document}"
    usage = get_usage(auid)
    return ChangeEvent(
        auid=auid, tree=tree, xui=xui, username="alice" if xui else "", domain="example.com" if xui else "",
        doc_uri=f"/xcap-root/{path}", doc_type=usage.doc_type if usage else 0, document_selector=path,
        action="deleted" if deleted else "replaced", previous_etag=previous, new_etag=None if deleted else "e2",
    )


def rpc(method: str, params: dict[str, Any], id: int = 1) -> dict[str, Any]:
    """The whole JSON-RPC 2.0 request body the sink is expected to POST."""
    return {"jsonrpc": "2.0", "method": method, "params": params, "id": id}


def refresh(event: str = "presence", refresh_type: int = 0) -> dict[str, Any]:
    return {"presentity_uri": ALICE, "event": event, "refresh_type": refresh_type}


UPDATE = {"presentity_uri": ALICE}


@pytest.fixture
def new_opensips() -> Iterator[RecordingRPCServer]:
    with RecordingRPCServer(NEW) as server:
        yield server


@pytest.fixture
def old_opensips() -> Iterator[RecordingRPCServer]:
    with RecordingRPCServer(OLD) as server:
        yield server


def sink_for(server: RecordingRPCServer, timeout: float = 5.0) -> OpenSIPSSink:
    return OpenSIPSSink(f"opensips+{server.url}", timeout)


@pytest.mark.parametrize(
    ("event", "method", "params"),
    [
        pytest.param(change("pres-rules"), "presence:refresh_watchers", refresh(), id="pres-rules"),
        pytest.param(change("org.openmobilealliance.pres-rules"), "presence:refresh_watchers", refresh(), id="oma-pres-rules"),
        pytest.param(change("org.openxcap.dialog-rules"), "presence:refresh_watchers", refresh("dialog"), id="dialog-rules"),
        pytest.param(change("resource-lists"), "rls:update_subscriptions", UPDATE, id="resource-lists"),
        pytest.param(change("rls-services"), "rls:update_subscriptions", UPDATE, id="rls-services"),
        pytest.param(change("resource-lists", deleted=True), "rls:update_subscriptions", UPDATE, id="resource-lists-deleted"),
        pytest.param(change("pidf-manipulation"), "presence:refresh_watchers", refresh(refresh_type=1), id="pidf-manipulation"),
        pytest.param(change("pidf-manipulation", deleted=True), "presence:refresh_watchers", refresh(refresh_type=1),
                     id="pidf-manipulation-deleted"),
    ],
)
def test_each_usage_sends_its_mi_command_with_named_params(
        new_opensips: RecordingRPCServer, event: ChangeEvent, method: str, params: dict[str, Any]) -> None:
    sink_for(new_opensips).deliver([event])
    assert new_opensips.bodies() == [rpc(method, params)]


def test_request_is_a_json_post_to_the_target_path(new_opensips: RecordingRPCServer) -> None:
    sink_for(new_opensips).deliver([change("pres-rules")])
    (request,) = new_opensips.requests
    assert (request.path, request.headers["Content-Type"]) == ("/mi", "application/json")


def test_target_without_path_posts_to_mi_https_default_root() -> None:
    with RecordingRPCServer(NEW) as server:
        target = server.url.removesuffix("/mi").replace("http://", "opensips+http://")
        sink = OpenSIPSSink(target)
        sink.deliver([change("resource-lists")])
        assert (sink.name, server.requests[0].path) == (target, "/mi")


def test_https_target_is_accepted_and_keeps_its_name() -> None:
    sink = OpenSIPSSink("opensips+https://mi.example.com:8443/mi")
    assert (sink.name, sink.rpc.scheme, sink.rpc.host, sink.rpc.port, sink.rpc.path) == (
        "opensips+https://mi.example.com:8443/mi", "https", "mi.example.com", 8443, "/mi")


def test_pending_events_of_one_document_make_one_request(new_opensips: RecordingRPCServer) -> None:
    sink_for(new_opensips).deliver([change("pres-rules", previous=None), change("pres-rules"), change("pres-rules")])
    assert new_opensips.bodies() == [rpc("presence:refresh_watchers", refresh())]


def test_rules_deleted_then_recreated_is_announced(new_opensips: RecordingRPCServer) -> None:
    sink_for(new_opensips).deliver([change("pres-rules", deleted=True), change("pres-rules", previous=None)])
    assert new_opensips.bodies() == [rpc("presence:refresh_watchers", refresh())]


@pytest.mark.parametrize("auid", ["pres-rules", "org.openmobilealliance.pres-rules", "org.openxcap.dialog-rules"])
def test_deleted_rules_document_sends_nothing_and_says_why(
        new_opensips: RecordingRPCServer, auid: str, caplog: pytest.LogCaptureFixture) -> None:
    sink = sink_for(new_opensips)
    with caplog.at_level(logging.INFO, "xcap_wsgi.notify"):
        sink.deliver([change(auid), change(auid, deleted=True)])
    assert new_opensips.requests == []
    assert caplog.messages == [f"{sink.name}: /xcap-root/{auid}/users/{ALICE}/index deleted; OpenSIPS cannot"
                               " re-evaluate watchers without a rules document, they keep their last status"]


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(change("resource-lists", tree="global"), id="global-resource-lists"),
        pytest.param(change("rls-services", tree="global"), id="global-rls-services"),
        pytest.param(change("pres-rules", tree="global", deleted=True), id="global-pres-rules-deleted"),
        pytest.param(change("xcap-caps", tree="global"), id="xcap-caps"),
        pytest.param(change("pidf"), id="pidf"),
        pytest.param(change("org.openmobilealliance.pres-content"), id="oma-pres-content"),
    ],
)
def test_documents_opensips_does_not_read_send_nothing(new_opensips: RecordingRPCServer, event: ChangeEvent) -> None:
    sink_for(new_opensips).deliver([event])
    assert new_opensips.requests == []


def test_current_names_are_used_alone_where_known(new_opensips: RecordingRPCServer) -> None:
    sink = sink_for(new_opensips)
    sink.deliver([change("pres-rules")])
    sink.deliver([change("pres-rules")])
    assert new_opensips.bodies() == [rpc("presence:refresh_watchers", refresh(), 1),
                                     rpc("presence:refresh_watchers", refresh(), 2)]


def test_old_name_is_tried_after_method_not_found_and_then_used_directly(old_opensips: RecordingRPCServer) -> None:
    sink = sink_for(old_opensips)
    sink.deliver([change("pres-rules")])
    sink.deliver([change("pidf-manipulation")])
    assert old_opensips.bodies() == [rpc("presence:refresh_watchers", refresh(), 1),
                                     rpc("refresh_watchers", refresh(), 2),
                                     rpc("refresh_watchers", refresh(refresh_type=1), 3)]


def test_name_is_remembered_per_command(old_opensips: RecordingRPCServer) -> None:
    sink = sink_for(old_opensips)
    sink.deliver([change("pres-rules")])
    sink.deliver([change("resource-lists")])
    sink.deliver([change("rls-services")])
    assert [body["method"] for body in old_opensips.bodies()] == [
        "presence:refresh_watchers", "refresh_watchers",
        "rls:update_subscriptions", "rls_update_subscriptions",
        "rls_update_subscriptions"]


def test_remembered_old_name_gone_after_an_upgrade_falls_forward(old_opensips: RecordingRPCServer) -> None:
    sink = sink_for(old_opensips)
    sink.deliver([change("resource-lists")])
    old_opensips.methods = dict(NEW)
    sink.deliver([change("resource-lists")])
    sink.deliver([change("resource-lists")])
    assert [body["method"] for body in old_opensips.bodies()] == [
        "rls:update_subscriptions", "rls_update_subscriptions",
        "rls_update_subscriptions", "rls:update_subscriptions",
        "rls:update_subscriptions"]


@pytest.mark.parametrize(
    ("event", "new", "old", "module"),
    [
        pytest.param(change("pres-rules"), "presence:refresh_watchers", "refresh_watchers", "presence", id="presence"),
        pytest.param(change("resource-lists"), "rls:update_subscriptions", "rls_update_subscriptions", "rls", id="rls"),
    ],
)
def test_neither_name_known_fails_permanently_naming_both(event: ChangeEvent, new: str, old: str, module: str) -> None:
    with RecordingRPCServer({"ps": "OK"}) as server:
        sink = sink_for(server)
        with pytest.raises(DeliveryError) as failure:
            sink.deliver([event])
        assert (str(failure.value), failure.value.retry, failure.value.target_down, failure.value.delivered) == (
            f"{sink.name}: OpenSIPS knows neither {new} nor {old} (is its {module} module loaded?)", False, False, 0)
        assert [body["method"] for body in server.bodies()] == [new, old]


def test_rpc_error_is_retryable_and_carries_code_and_message() -> None:
    fault = RPCFault(-32000, "Server error", "Command handler returned null")
    with RecordingRPCServer({"presence:refresh_watchers": fault}) as server:
        sink = sink_for(server)
        with pytest.raises(DeliveryError) as failure:
            sink.deliver([change("org.openxcap.dialog-rules")])
        assert (str(failure.value), failure.value.retry, failure.value.target_down) == (
            f"{sink.name}: presence:refresh_watchers: error -32000 Server error", True, False)
        assert server.bodies() == [rpc("presence:refresh_watchers", refresh("dialog"))]


def test_rpc_error_other_than_method_not_found_does_not_try_the_old_name() -> None:
    fault = RPCFault(-32602, "Invalid params", "Named parameters do not match")
    with RecordingRPCServer({"rls:update_subscriptions": fault, "rls_update_subscriptions": "OK"}) as server:
        with pytest.raises(DeliveryError):
            sink_for(server).deliver([change("rls-services")])
        assert [body["method"] for body in server.bodies()] == ["rls:update_subscriptions"]


def test_target_down_is_reported_and_delivery_resumes_when_it_is_back(new_opensips: RecordingRPCServer) -> None:
    sink = sink_for(new_opensips)
    new_opensips.stop()
    with pytest.raises(DeliveryError) as failure:
        sink.deliver([change("pres-rules")])
    assert (failure.value.target_down, failure.value.retry) == (True, True)
    new_opensips.start()
    sink.deliver([change("pres-rules")])
    assert new_opensips.bodies() == [rpc("presence:refresh_watchers", refresh(), 2)]


def test_target_too_slow_is_reported_down(new_opensips: RecordingRPCServer) -> None:
    new_opensips.delay = 0.5
    with pytest.raises(DeliveryError) as failure:
        sink_for(new_opensips, timeout=0.1).deliver([change("pres-rules")])
    assert failure.value.target_down is True


@pytest.mark.parametrize(
    ("target", "message"),
    [
        pytest.param("http://127.0.0.1:8888/mi", "not an OpenSIPS target: 'http://127.0.0.1:8888/mi'", id="no-prefix"),
        pytest.param("opensips+ftp://127.0.0.1/mi", "not an OpenSIPS target: 'opensips+ftp://127.0.0.1/mi'", id="scheme"),
        pytest.param("opensips+http:///mi", "no host in OpenSIPS target 'opensips+http:///mi'", id="no-host"),
        pytest.param("opensips+http://:8888/mi", "no host in OpenSIPS target 'opensips+http://:8888/mi'", id="port-only"),
        pytest.param("opensips+http://h:mi/mi", "bad port in OpenSIPS target 'opensips+http://h:mi/mi'", id="port-name"),
        pytest.param("opensips+http://h:70000/mi", "bad port in OpenSIPS target 'opensips+http://h:70000/mi'", id="port-range"),
        pytest.param("opensips+http://u:p@h/mi", "OpenSIPS target 'opensips+http://u:p@h/mi' has credentials", id="userinfo"),
        pytest.param("opensips+http://h/mi?x=1", "OpenSIPS target 'opensips+http://h/mi?x=1' has a query or fragment",
                     id="query"),
        pytest.param("opensips+http://h/mi#top", "OpenSIPS target 'opensips+http://h/mi#top' has a query or fragment",
                     id="fragment"),
    ],
)
def test_invalid_target_is_rejected_at_construction(target: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        OpenSIPSSink(target)


@pytest.mark.parametrize("timeout", [0.0, -1.0])
def test_non_positive_timeout_is_rejected(timeout: float) -> None:
    with pytest.raises(ValueError, match=f"^timeout must be positive, not {timeout}$"):
        OpenSIPSSink("opensips+http://127.0.0.1:8888/mi", timeout)


def post(server: RecordingRPCServer, body: dict[str, Any]) -> tuple[int, str, Any]:
    """Status, reason and parsed answer of one raw POST to the fake."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("POST", server.path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.reason, json.loads(response.read())
    finally:
        conn.close()


def test_fake_answers_an_unknown_command_as_mi_http_does() -> None:
    with RecordingRPCServer({}) as server:
        assert post(server, rpc("presence:refresh_watchers", refresh(), 7)) == (
            200, "OK", {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 7})


def test_fake_answers_an_unknown_command_as_kamailio_jsonrpcs_does() -> None:
    with RecordingRPCServer({}, error_style="kamailio") as server:
        assert server.path == "/RPC"
        assert post(server, rpc("presence.updateWatchers", {}, 7)) == (
            500, "Method Not Found", {"jsonrpc": "2.0", "error": {"code": 500, "message": "Method Not Found"}, "id": 7})
