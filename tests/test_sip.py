"""The SIP client transaction (RFC 3261 §17.1.2), the xcap-diff PUBLISH sink, and Kamailio's answer to it.

Transport tests run against fake servers on 127.0.0.1 with a small T1; the last tests
talk to a real Kamailio presence server (tests/kamailio_peer.py).
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.kamailio_peer import KamailioPresence, KamailioUnavailable, free_port, unavailable
from tests.sipclient import Watcher, response_to
from xcap_wsgi.notify.events import ChangeEvent
from xcap_wsgi.notify.sinks.base import DeliveryError
from xcap_wsgi.notify.sinks.sip import SIPPublishSink
from xcap_wsgi.notify.siptransport import (
    SIPRequest,
    SIPTarget,
    SIPTimeout,
    SIPTransportError,
    header_params,
    parse_message,
    send_request,
    stream_message_length,
    topmost_via_branch,
)
from xcap_wsgi.notify.xcapdiff import build_xcap_diff

T1 = 0.05
ALICE = "sip:alice@example.com"
FROM_ALICE = [("From", f"<{ALICE}>")]
EVENT = ChangeEvent(
    auid="pres-rules", tree="users", xui=ALICE, username="alice", domain="example.com",
    doc_uri="/xcap-root/pres-rules/users/sip:alice@example.com/index", doc_type=2,
    document_selector="pres-rules/users/sip:alice@example.com/index", action="replaced",
    previous_etag="e1", new_etag="e2", xcap_root_url="http://xcap.example.com/xcap-root/",
)

#: Given the request and how many copies arrived so far (1 for the first), the datagrams to send back.
Handler = Callable[[SIPRequest, int], list[bytes]]


class FakeUDPServer:
    """A UDP SIP server on 127.0.0.1 that records every request and answers through ``handler``."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.requests: list[tuple[float, SIPRequest, tuple[str, int]]] = []
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.05)
        self.target = f"sip:{SIPTarget(host, self.sock.getsockname()[1]).hostport}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            request = parse_message(data)
            assert isinstance(request, SIPRequest)
            self.requests.append((time.monotonic(), request, peer[:2]))
            for datagram in self.handler(request, len(self.requests)):
                self.sock.sendto(datagram, peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def udp_server() -> Iterator[Callable[..., FakeUDPServer]]:
    servers: list[FakeUDPServer] = []

    def start(handler: Handler, host: str = "127.0.0.1") -> FakeUDPServer:
        servers.append(FakeUDPServer(handler, host))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def answer(status: int, reason: str, *, after: int = 1, headers: tuple[tuple[str, str], ...] = ()) -> Handler:
    """A handler answering ``status`` to the ``after``-th copy and later ones, dropping earlier ones."""
    return lambda request, count: [response_to(request, status, reason, headers)] if count >= after else []


def gaps(server: FakeUDPServer) -> list[float]:
    times = [at for at, _, _ in server.requests]
    return [later - earlier for earlier, later in itertools.pairwise(times)]


# --- target URIs --------------------------------------------------------------------------------


@pytest.mark.parametrize(("uri", "expected"), [
    pytest.param("sip:127.0.0.1", SIPTarget("127.0.0.1", 5060, None), id="default-port-and-transport"),
    pytest.param("sip:127.0.0.1:5090", SIPTarget("127.0.0.1", 5090, None), id="port"),
    pytest.param("sip:proxy.example.com;transport=tcp", SIPTarget("proxy.example.com", 5060, "tcp"), id="hostname-tcp"),
    pytest.param("sip:[::1]:5070;transport=udp", SIPTarget("::1", 5070, "udp"), id="ipv6-udp"),
    pytest.param("SIP:Proxy.example.com:5061;Transport=TCP", SIPTarget("Proxy.example.com", 5061, "tcp"), id="case-insensitive"),
])
def test_target_parses_host_port_and_transport(uri: str, expected: SIPTarget) -> None:
    assert SIPTarget.parse(uri) == expected


@pytest.mark.parametrize(("uri", "problem"), [
    pytest.param("sips:proxy.example.com", "scheme 'sips'", id="sips"),
    pytest.param("http://proxy.example.com/", "scheme 'http'", id="http"),
    pytest.param("sip:alice@example.com", "names a user", id="user-part"),
    pytest.param("sip:proxy.example.com;lr", "parameter 'lr'", id="lr-param"),
    pytest.param("sip:proxy.example.com;maddr=10.0.0.1", "parameter 'maddr'", id="maddr-param"),
    pytest.param("sip:proxy.example.com;transport=tls", "transport 'tls'", id="tls"),
    pytest.param("sip:proxy.example.com;transport=", "transport ''", id="empty-transport"),
    pytest.param("sip:proxy.example.com:0", "port 0", id="port-zero"),
    pytest.param("sip:proxy.example.com:65536", "port 65536", id="port-too-big"),
    pytest.param("sip:proxy.example.com?subject=x", "headers", id="uri-headers"),
    pytest.param("sip:", "not sip:HOST", id="no-host"),
    pytest.param("sip:::1", "not sip:HOST", id="ipv6-without-brackets"),
])
def test_target_rejects_what_it_cannot_reach_naming_the_problem(uri: str, problem: str) -> None:
    with pytest.raises(ValueError, match="SIP target") as caught:
        SIPTarget.parse(uri)
    assert problem in str(caught.value)


def test_target_hostport_brackets_ipv6() -> None:
    assert SIPTarget.parse("sip:[::1]:5090").hostport == "[::1]:5090"


# --- UDP client transaction ---------------------------------------------------------------------


def test_udp_request_is_retransmitted_on_timer_e_until_answered(udp_server: Callable[..., FakeUDPServer]) -> None:
    server = udp_server(answer(200, "OK", after=3))
    response = send_request(server.target, "PUBLISH", ALICE, FROM_ALICE, b"<x/>", t1=T1)
    assert (response.status, response.reason) == (200, "OK")
    assert len(server.requests) == 3
    assert len({topmost_via_branch(request) for _, request, _ in server.requests}) == 1
    assert len({request for _, request, _ in server.requests}) == 1  # byte-identical copies
    first, second = gaps(server)
    assert T1 * 0.9 <= first < T1 * 2.5
    assert 2 * T1 * 0.9 <= second < 2 * T1 * 2.5


def test_udp_after_a_provisional_response_retransmits_every_t2(udp_server: Callable[..., FakeUDPServer]) -> None:
    def handler(request: SIPRequest, count: int) -> list[bytes]:
        if count == 1:
            return [response_to(request, 100, "Trying")]
        return [response_to(request, 202, "Accepted")] if count == 4 else []

    server = udp_server(handler)
    response = send_request(server.target, "SUBSCRIBE", ALICE, FROM_ALICE, t1=0.02, t2=0.1)
    assert (response.status, response.reason) == (202, "Accepted")
    assert len(server.requests) == 4
    first, *later = gaps(server)
    assert first < 0.06  # Timer E as scheduled before the 100 arrived
    assert all(0.09 <= gap < 0.25 for gap in later)


def test_udp_timer_f_raises_timeout_after_64_t1(udp_server: Callable[..., FakeUDPServer]) -> None:
    server = udp_server(lambda request, count: [])
    started = time.monotonic()
    with pytest.raises(SIPTimeout, match="Timer F"):
        send_request(server.target, "PUBLISH", ALICE, FROM_ALICE, t1=0.01, t2=0.04)
    assert 0.64 <= time.monotonic() - started < 1.0
    assert len(server.requests) >= 10
    assert len({topmost_via_branch(request) for _, request, _ in server.requests}) == 1


def test_udp_ignores_stray_datagrams_and_responses_of_other_transactions(udp_server: Callable[..., FakeUDPServer]) -> None:
    def handler(request: SIPRequest, count: int) -> list[bytes]:
        real = response_to(request, 204, "No Notification")
        other_branch = real.replace(str(topmost_via_branch(request)).encode(), b"z9hG4bKsomeoneelse")
        other_method = real.replace(b" PUBLISH\r\n", b" SUBSCRIBE\r\n")
        return [b"garbage\r\n\r\n", b"\r\n\r\n", other_branch, other_method, real]

    server = udp_server(handler)
    response = send_request(server.target, "PUBLISH", ALICE, FROM_ALICE, t1=T1)
    assert (response.status, response.reason) == (204, "No Notification")
    assert len(server.requests) == 1


def test_udp_port_unreachable_is_a_transport_error() -> None:
    started = time.monotonic()
    with pytest.raises(SIPTransportError):
        send_request(f"sip:127.0.0.1:{free_port()}", "PUBLISH", ALICE, FROM_ALICE, t1=T1)
    assert time.monotonic() - started < 1.0


def test_request_carries_via_of_its_socket_max_forwards_and_content_length(udp_server: Callable[..., FakeUDPServer]) -> None:
    server = udp_server(answer(200, "OK"))
    send_request(server.target, "PUBLISH", ALICE, [*FROM_ALICE, ("Event", "xcap-diff")], b"<body/>", t1=T1)
    _, request, (host, port) = server.requests[0]
    assert request.header("via") == f"SIP/2.0/UDP {host}:{port};branch={topmost_via_branch(request)};rport"
    assert str(topmost_via_branch(request)).startswith("z9hG4bK")
    assert [name for name, _ in request.headers] == [
        "Via", "Max-Forwards", "To", "From", "Call-ID", "CSeq", "Event", "Content-Length"]
    assert request.header("max-forwards") == "70"
    assert request.header("to") == f"<{ALICE}>"
    assert request.header("cseq") == "1 PUBLISH"
    assert request.header("content-length") == "7"
    assert request.body == b"<body/>"


def test_ipv6_target_gets_a_bracketed_via(udp_server: Callable[..., FakeUDPServer]) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = udp_server(answer(200, "OK"), "::1")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback: {exc}")
    assert server.target.startswith("sip:[::1]:")
    send_request(server.target, "PUBLISH", ALICE, FROM_ALICE, t1=T1)
    _, request, (_, port) = server.requests[0]
    assert str(request.header("via")).startswith(f"SIP/2.0/UDP [::1]:{port};branch=z9hG4bK")


def test_each_request_gets_a_fresh_call_id_from_tag_and_branch(udp_server: Callable[..., FakeUDPServer]) -> None:
    server = udp_server(answer(200, "OK"))
    for _ in range(2):
        send_request(server.target, "PUBLISH", ALICE, FROM_ALICE, t1=T1)
    (_, one, _), (_, two, _) = server.requests
    assert one.header("call-id") != two.header("call-id")
    assert header_params(one.header("from") or "")["tag"] != header_params(two.header("from") or "")["tag"]
    assert topmost_via_branch(one) != topmost_via_branch(two)


@pytest.mark.parametrize(("headers", "problem"), [
    pytest.param([("To", f"<{ALICE}>")], "needs a From", id="no-from"),
    pytest.param([*FROM_ALICE, ("Via", "SIP/2.0/UDP 10.0.0.1")], "via header is written by the transport", id="via"),
    pytest.param([*FROM_ALICE, ("l", "5")], "content-length header is written", id="compact-content-length"),
    pytest.param([*FROM_ALICE, ("CSeq", "1 SUBSCRIBE")], "does not name method PUBLISH", id="cseq-method"),
    pytest.param([*FROM_ALICE, ("Subject", "a\r\nVia: x")], "line break", id="header-injection"),
])
def test_request_that_cannot_be_built_is_refused_before_sending(headers: list[tuple[str, str]], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        send_request("sip:127.0.0.1:9", "PUBLISH", ALICE, headers)


def test_invite_is_not_a_non_invite_request() -> None:
    with pytest.raises(ValueError, match="non-INVITE"):
        send_request("sip:127.0.0.1:9", "INVITE", ALICE, FROM_ALICE)


# --- TCP ----------------------------------------------------------------------------------------


def serve_tcp_once(chunks: Callable[[SIPRequest], list[bytes]], hold: float = 0.0) -> tuple[str, list[SIPRequest]]:
    """A TCP server for one connection: reads one request, writes ``chunks`` with pauses between,
    keeps the connection open ``hold`` seconds more."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    received: list[SIPRequest] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            buffer = b""
            while (length := stream_message_length(buffer)) is None:
                buffer += conn.recv(4096)
            request = parse_message(buffer[:length])
            assert isinstance(request, SIPRequest)
            received.append(request)
            for chunk in chunks(request):
                conn.sendall(chunk)
                time.sleep(0.02)
            time.sleep(hold)

    threading.Thread(target=serve, daemon=True).start()
    return f"sip:127.0.0.1:{listener.getsockname()[1]};transport=tcp", received


def test_tcp_reads_responses_split_across_reads_and_returns_the_final_one() -> None:
    def chunks(request: SIPRequest) -> list[bytes]:
        trying = response_to(request, 100, "Trying")
        final = response_to(request, 200, "OK", [("Content-Type", "text/plain")], b"all good")
        stream = b"\r\n\r\n" + trying + final
        return [stream[:10], stream[10:len(trying) + 20], stream[len(trying) + 20:-3], stream[-3:]]

    target, received = serve_tcp_once(chunks)
    response = send_request(target, "PUBLISH", ALICE, FROM_ALICE, b"<x/>")
    assert (response.status, response.reason, response.body) == (200, "OK", b"all good")
    assert response.header("content-type") == "text/plain"
    assert str(received[0].header("via")).startswith("SIP/2.0/TCP 127.0.0.1:")


def test_tcp_connection_refused_is_a_transport_error() -> None:
    with pytest.raises(SIPTransportError, match="cannot connect over tcp"):
        send_request(f"sip:127.0.0.1:{free_port()};transport=tcp", "PUBLISH", ALICE, FROM_ALICE)


def test_tcp_without_a_final_response_times_out_on_timer_f() -> None:
    target, _ = serve_tcp_once(lambda request: [response_to(request, 100, "Trying")], hold=1.0)
    started = time.monotonic()
    with pytest.raises(SIPTimeout):
        send_request(target, "PUBLISH", ALICE, FROM_ALICE, timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 0.8


def test_request_over_1300_bytes_goes_over_tcp_unless_the_target_says_udp() -> None:
    target, received = serve_tcp_once(lambda request: [response_to(request, 200, "OK")])
    response = send_request(target.replace(";transport=tcp", ""), "PUBLISH", ALICE, FROM_ALICE, b"x" * 1300)
    assert response.status == 200
    assert str(received[0].header("via")).startswith("SIP/2.0/TCP ")


# --- the PUBLISH sink ---------------------------------------------------------------------------


def test_publish_sink_sends_one_xcap_diff_publish_to_the_owner(udp_server: Callable[..., FakeUDPServer]) -> None:
    server = udp_server(answer(200, "OK"))
    later = replace(EVENT, previous_etag="e2", new_etag="e3")
    SIPPublishSink(server.target, t1=T1).deliver([EVENT, later])
    assert len(server.requests) == 1
    _, request, _ = server.requests[0]
    assert (request.method, request.uri) == ("PUBLISH", ALICE)
    assert request.header("to") == f"<{ALICE}>"
    assert str(request.header("from")).startswith(f"<{ALICE}>;tag=")
    assert request.header("event") == "xcap-diff"
    assert request.header("content-type") == "application/xcap-diff+xml"
    assert request.header("expires") == "3600"
    assert request.header("sip-if-match") is None
    assert request.body == build_xcap_diff([EVENT, later])


@pytest.mark.parametrize("expires", [0, 60])
def test_publish_sink_sends_the_configured_expires(udp_server: Callable[..., FakeUDPServer], expires: int) -> None:
    server = udp_server(answer(200, "OK"))
    SIPPublishSink(server.target, t1=T1, expires=expires).deliver([EVENT])
    assert server.requests[0][1].header("expires") == str(expires)


@pytest.mark.parametrize("expires", [-1, True, 1.5])
def test_publish_sink_rejects_an_expires_that_is_not_whole_seconds(expires: object) -> None:
    with pytest.raises(ValueError, match="expires must be"):
        SIPPublishSink("sip:127.0.0.1", expires=expires)  # type: ignore[arg-type]


def test_publish_sink_is_named_after_its_target() -> None:
    assert SIPPublishSink("sip:127.0.0.1:5090;transport=tcp").name == "sip:127.0.0.1:5090;transport=tcp"


@pytest.mark.parametrize("target", ["sips:127.0.0.1", "sip:127.0.0.1;transport=sctp", "sip:bob@127.0.0.1"])
def test_publish_sink_rejects_a_bad_target_at_construction(target: str) -> None:
    with pytest.raises(ValueError, match="SIP target"):
        SIPPublishSink(target)


def test_publish_sink_skips_global_documents(udp_server: Callable[..., FakeUDPServer]) -> None:
    server = udp_server(answer(200, "OK"))
    index = replace(EVENT, auid="rls-services", tree="global", xui=None, username="", domain="",
                    document_selector="rls-services/global/index", doc_uri="/xcap-root/rls-services/global/index")
    SIPPublishSink(server.target, t1=T1).deliver([index])
    time.sleep(0.1)
    assert server.requests == []


@pytest.mark.parametrize(("status", "reason"), [
    pytest.param(200, "OK", id="200"),
    pytest.param(202, "Accepted", id="202"),
])
def test_publish_sink_treats_2xx_as_delivered(udp_server: Callable[..., FakeUDPServer], status: int, reason: str) -> None:
    server = udp_server(answer(status, reason))
    SIPPublishSink(server.target, t1=T1).deliver([EVENT])  # returns: nothing raised
    assert len(server.requests) == 1


@pytest.mark.parametrize(("status", "reason", "retry"), [
    pytest.param(503, "Service Unavailable", True, id="503-retry"),
    pytest.param(500, "Server Internal Error", True, id="500-retry"),
    pytest.param(408, "Request Timeout", True, id="408-retry"),
    pytest.param(480, "Temporarily Unavailable", True, id="480-retry"),
    pytest.param(489, "Bad Event", False, id="489-permanent"),
    pytest.param(400, "Bad Request", False, id="400-permanent"),
    pytest.param(403, "Forbidden", False, id="403-permanent"),
    pytest.param(603, "Decline", False, id="603-permanent"),
])
def test_publish_sink_maps_failure_status_to_retry_or_permanent(
    udp_server: Callable[..., FakeUDPServer], status: int, reason: str, retry: bool
) -> None:
    server = udp_server(answer(status, reason))
    with pytest.raises(DeliveryError) as caught:
        SIPPublishSink(server.target, t1=T1).deliver([EVENT])
    assert (caught.value.retry, caught.value.target_down) == (retry, False)
    assert str(caught.value) == f"{server.target} answered PUBLISH for {ALICE} with {status} {reason}"


def test_publish_sink_without_an_answer_reports_the_target_down(udp_server: Callable[..., FakeUDPServer]) -> None:
    server = udp_server(lambda request, count: [])
    with pytest.raises(DeliveryError, match="no answer to PUBLISH") as caught:
        SIPPublishSink(server.target, timeout=0.2, t1=0.01).deliver([EVENT])
    assert (caught.value.retry, caught.value.target_down) == (True, True)


def test_publish_sink_refused_reports_the_target_down() -> None:
    with pytest.raises(DeliveryError) as caught:
        SIPPublishSink(f"sip:127.0.0.1:{free_port()};transport=tcp").deliver([EVENT])
    assert (caught.value.retry, caught.value.target_down) == (True, True)


def test_publish_sink_without_an_xcap_root_fails_permanently(udp_server: Callable[..., FakeUDPServer]) -> None:
    server = udp_server(answer(200, "OK"))
    with pytest.raises(DeliveryError, match="XCAP root") as caught:
        SIPPublishSink(server.target, t1=T1).deliver([replace(EVENT, xcap_root_url="")])
    assert caught.value.retry is False
    assert server.requests == []


# --- against Kamailio's presence server ---------------------------------------------------------


@pytest.mark.kamailio
def test_kamailio_notifies_an_xcap_diff_watcher_with_the_published_body(kamailio_presence: KamailioPresence) -> None:
    kamailio_presence.clear_presence_state(ALICE)
    with Watcher("sip:bob@example.com", ("127.0.0.1", kamailio_presence.sip_port)) as bob:
        subscription = bob.subscribe(ALICE, event="xcap-diff", expires=300)
        assert subscription.response is not None
        assert subscription.response.status == 200
        initial = subscription.wait_for(timeout=2.0)
        assert (initial.event, initial.subscription_state, initial.body) == ("xcap-diff", "active;expires=300", b"")
        started = time.monotonic()
        SIPPublishSink(kamailio_presence.sip_target).deliver([EVENT])
        notify = subscription.wait_for(lambda n: n.body != b"", timeout=2.0)
        assert notify.received_at - started < 2.0
        assert notify.body == build_xcap_diff([EVENT])
        assert notify.content_type == "application/xcap-diff+xml"
        assert notify.state == "active"
        assert subscription.unsubscribe().status == 200


@pytest.mark.kamailio
def test_kamailio_refuses_a_publish_of_an_unknown_event_with_489(kamailio_presence: KamailioPresence) -> None:
    response = send_request(kamailio_presence.sip_target, "PUBLISH", ALICE, [*FROM_ALICE, ("Event", "no-such-event")], b"<x/>")
    assert (response.status, response.reason) == (489, "Bad Event")
    assert response.header("allow-events") == "xcap-diff, presence.winfo, presence"


@pytest.mark.kamailio
def test_kamailio_stores_the_sink_publish_over_tcp_as_alices_xcap_diff_state(kamailio_presence: KamailioPresence) -> None:
    kamailio_presence.clear_presence_state(ALICE)
    SIPPublishSink(kamailio_presence.sip_target + ";transport=tcp").deliver([EVENT])
    assert kamailio_presence.publications(ALICE) == [build_xcap_diff([EVENT])]


# --- the peer fixture itself --------------------------------------------------------------------


def test_peer_without_the_kamailio_program_is_unavailable_naming_the_packages(tmp_path: Path) -> None:
    with pytest.raises(KamailioUnavailable, match="apt-get install kamailio kamailio-presence-modules"):
        KamailioPresence(kamailio="no-such-kamailio-binary", run_dir=tmp_path).start()


def test_unavailable_peer_skips_outside_ci_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"^no kamailio$"):
        unavailable("no kamailio")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI requires the Kamailio tests to run"):
        unavailable("no kamailio")
