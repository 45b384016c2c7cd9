"""A SIP watcher for tests (UDP): subscribes, answers every NOTIFY 200 OK and records it.

::

    with Watcher("sip:bob@example.com", ("127.0.0.1", 5090)) as bob:
        subscription = bob.subscribe("sip:alice@example.com", event="xcap-diff")
        assert subscription.response.status == 200
        notify = subscription.wait_for(lambda n: n.body != b"", timeout=2.0)
        subscription.unsubscribe()

SUBSCRIBEs go out through :func:`xcap_wsgi.notify.siptransport.send_request` (their
Via names its own socket); the Contact names the watcher's socket, where the NOTIFYs of
every dialog arrive (RFC 6665 §4.1.2). A NOTIFY whose Call-ID and To tag match a
subscription is answered 200 and recorded once (retransmissions are answered again but
not recorded twice); any other request gets 481 (RFC 3261 §12.2.2).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from xcap_wsgi.notify.siptransport import (
    SIPRequest,
    SIPResponse,
    encode_message,
    header_key,
    header_params,
    new_tag,
    parse_message,
    send_request,
)

#: The body type each event package's NOTIFYs carry (RFC 3856, RFC 3857, RFC 5875).
ACCEPT = {
    "presence": "application/pidf+xml",
    "presence.winfo": "application/watcherinfo+xml",
    "xcap-diff": "application/xcap-diff+xml",
}
_COPIED = ("via", "from", "to", "call-id", "cseq")


@dataclass(frozen=True)
class Notify:
    """One NOTIFY as received: what a test asserts on."""

    event: str
    subscription_state: str
    content_type: str | None
    body: bytes
    cseq: int
    received_at: float

    @property
    def state(self) -> str:
        """``active``, ``pending`` or ``terminated`` (RFC 6665 §8.2.3), without parameters."""
        return self.subscription_state.split(";", 1)[0].strip().lower()


@dataclass
class Subscription:
    """One SUBSCRIBE dialog of a :class:`Watcher` (RFC 6665 §4.1)."""

    watcher: Watcher
    presentity: str
    event: str
    call_id: str
    from_tag: str
    accept: str
    cseq: int = 1
    to_tag: str | None = None
    remote_target: str | None = None
    response: SIPResponse | None = None
    notifies: list[Notify] = field(default_factory=list)

    def wait_for(self, predicate: Callable[[Notify], bool] = lambda n: True, timeout: float = 2.0) -> Notify:
        """The first recorded NOTIFY satisfying ``predicate``; AssertionError after ``timeout`` s."""
        with self.watcher.arrived:
            if self.watcher.arrived.wait_for(lambda: any(predicate(n) for n in self.notifies), timeout):
                return next(n for n in self.notifies if predicate(n))
            raise AssertionError(f"no matching NOTIFY for {self.event} of {self.presentity} in {timeout} s; got {self.notifies}")

    def refresh(self, expires: int) -> SIPResponse:
        """An in-dialog SUBSCRIBE; ``expires=0`` ends the subscription (RFC 6665 §4.1.2.3)."""
        self.cseq += 1
        return self.watcher.send_subscribe(self, expires)

    def unsubscribe(self) -> SIPResponse:
        return self.refresh(0)


class Watcher:
    """A watcher at ``uri`` talking to the presence server at ``server`` over UDP."""

    def __init__(self, uri: str, server: tuple[str, int], *, t1: float = 0.5) -> None:
        self.uri = uri
        self.server = server
        self.t1 = t1
        self.arrived = threading.Condition()
        self._subscriptions: dict[tuple[str, str], Subscription] = {}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self.contact = "<sip:watcher@{}:{}>".format(*self._sock.getsockname())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"watcher {uri}", daemon=True)
        self._thread.start()

    def subscribe(self, presentity: str, event: str = "presence", expires: int = 300, accept: str | None = None) -> Subscription:
        """SUBSCRIBE to ``event`` of ``presentity``; the answer is in ``.response``.

        ``accept`` defaults to the event package's body type (:data:`ACCEPT`).
        """
        accept = accept or ACCEPT.get(event, "*/*")
        subscription = Subscription(self, presentity, event, new_tag() + new_tag(), new_tag(), accept)
        with self.arrived:
            self._subscriptions[(subscription.call_id, subscription.from_tag)] = subscription
        self.send_subscribe(subscription, expires)
        return subscription

    def send_subscribe(self, subscription: Subscription, expires: int) -> SIPResponse:
        """The initial SUBSCRIBE, or one in the dialog once the 2xx gave a To tag (RFC 3261 §12.2.1.1)."""
        to = f"<{subscription.presentity}>" + (f";tag={subscription.to_tag}" if subscription.to_tag else "")
        headers = [
            ("From", f"<{self.uri}>;tag={subscription.from_tag}"),
            ("To", to),
            ("Call-ID", subscription.call_id),
            ("CSeq", f"{subscription.cseq} SUBSCRIBE"),
            ("Contact", self.contact),
            ("Event", subscription.event),
            ("Accept", subscription.accept),
            ("Expires", str(expires)),
        ]
        target = "sip:{}:{}".format(*self.server)
        request_uri = subscription.remote_target or subscription.presentity
        response = send_request(target, "SUBSCRIBE", request_uri, headers, t1=self.t1)
        subscription.response = response
        if response.ok and subscription.to_tag is None:
            subscription.to_tag = header_params(response.header("to") or "").get("tag")
            contact = response.header("contact") or ""
            subscription.remote_target = contact[contact.find("<") + 1 : contact.find(">")] if "<" in contact else None
        return response

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._sock.close()

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                message = parse_message(data)
            except ValueError:
                continue
            if isinstance(message, SIPRequest):
                self._sock.sendto(self._answer(message), peer)

    def _answer(self, request: SIPRequest) -> bytes:
        """200 to a NOTIFY of one of our dialogs (recording it), 481 to anything else."""
        key = (request.header("call-id") or "", header_params(request.header("to") or "").get("tag", ""))
        with self.arrived:
            subscription = self._subscriptions.get(key)
            if subscription is None or request.method != "NOTIFY":
                return response_to(request, 481, "Call/Transaction Does Not Exist")
            cseq = int((request.header("cseq") or "0").split()[0])
            if all(n.cseq != cseq for n in subscription.notifies):
                subscription.notifies.append(Notify(
                    event=request.header("event") or "",
                    subscription_state=request.header("subscription-state") or "",
                    content_type=request.header("content-type"),
                    body=request.body,
                    cseq=cseq,
                    received_at=time.monotonic(),
                ))
                self.arrived.notify_all()
        return response_to(request, 200, "OK")


def response_to(
    request: SIPRequest, status: int, reason: str, headers: Sequence[tuple[str, str]] = (), body: bytes = b""
) -> bytes:
    """A response copying Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2), then ``headers``."""
    copied = [(name, value) for name, value in request.headers if header_key(name) in _COPIED]
    return encode_message(f"SIP/2.0 {status} {reason}", [*copied, *headers], body)
