"""xcap-diff over SIP: a PUBLISH (RFC 3903) of the changes to a presence server.

::

    sink = SIPPublishSink("sip:127.0.0.1:5090;transport=udp", timeout=5.0)
    sink.deliver(events)   # events of one document, in commit order

For the events of one document the sink sends one PUBLISH to the proxy at HOST:PORT,
addressed to the document's owner (Request-URI, To and From = ``sip:user@domain``, as
OpenXCAP does), with ``Event: xcap-diff`` (RFC 5875 §4) and an RFC 5874 body from
:func:`~xcap_wsgi.notify.xcapdiff.build_xcap_diff`. The presence server stores it as the
owner's xcap-diff state and NOTIFYs every watcher of the owner's xcap-diff event with it
(Kamailio's presence_xml registers the event unless ``disable_xcapdiff`` is set).

Each PUBLISH is a fresh publication, without SIP-If-Match (RFC 3903 §4.1): a change is
a new state, not a refresh of the previous one, and remembering entity-tags would need
state shared by every process and lost on restart; a 412 for a forgotten tag would only
cost a retry. ``expires`` defaults to 3600 s, the default and maximum that Kamailio's
presence applies to xcap-diff: the latest change stays the state a new subscriber's
first NOTIFY carries for an hour. ``expires=0`` (what OpenXCAP sends) stores nothing, yet
Kamailio still NOTIFYs the current watchers with the body.

Outcome: a 2xx is delivered; Timer F (``timeout``) or an unreachable target raises
:class:`DeliveryError` with ``target_down``; 408, 480, 503 and every 5xx are retried;
any other answer (489 Bad Event: the server does not know xcap-diff; 400; 403 ...) is
permanent. Documents of the global tree have no owner to publish for and are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

from xcap_wsgi.notify.events import ChangeEvent
from xcap_wsgi.notify.sinks.base import DeliveryError, Sink
from xcap_wsgi.notify.siptransport import T1, SIPError, SIPTarget, SIPTimeout, send_request
from xcap_wsgi.notify.xcapdiff import CONTENT_TYPE, build_xcap_diff

EVENT = "xcap-diff"
DEFAULT_EXPIRES = 3600
DEFAULT_TIMEOUT_S = 5.0
#: Answers after which the same PUBLISH may succeed later (RFC 3261 §21.4.9, §21.4.18, §21.5).
RETRYABLE = frozenset({408, 480})


class SIPPublishSink(Sink):
    """PUBLISHes an xcap-diff document per changed document to ``target``."""

    def __init__(self, target: str, *, timeout: float = DEFAULT_TIMEOUT_S, expires: int = DEFAULT_EXPIRES, t1: float = T1) -> None:
        self.target = SIPTarget.parse(target)
        if isinstance(expires, bool) or not isinstance(expires, int) or expires < 0:
            raise ValueError(f"expires must be a whole number of seconds >= 0, got {expires!r}")
        if timeout <= 0 or t1 <= 0:
            raise ValueError("timeout and t1 must be positive")
        self.name = target
        self.timeout = timeout
        self.expires = expires
        self.t1 = t1

    def deliver(self, events: Sequence[ChangeEvent]) -> None:
        """One PUBLISH for these changes of one document; raises DeliveryError (see module)."""
        if not events or events[0].tree == "global" or not events[0].domain:
            return
        owner = events[0].presentity
        headers = [
            ("From", f"<{owner}>"),
            ("To", f"<{owner}>"),
            ("Event", EVENT),
            ("Expires", str(self.expires)),
            ("Content-Type", CONTENT_TYPE),
            ("User-Agent", "xcap-wsgi"),
        ]
        try:
            body = build_xcap_diff(events)
        except ValueError as exc:  # no XCAP root URL known: trying again cannot help
            raise DeliveryError(f"{self.name}: no xcap-diff for {owner}: {exc}", retry=False) from None
        try:
            response = send_request(self.target, "PUBLISH", owner, headers, body, t1=self.t1, timeout=self.timeout)
        except SIPTimeout as exc:
            raise DeliveryError(f"{self.name}: no answer to PUBLISH for {owner}: {exc}", target_down=True) from None
        except SIPError as exc:
            raise DeliveryError(f"{self.name}: PUBLISH for {owner} not sent: {exc}", target_down=True) from None
        if response.ok:
            return
        retry = response.status in RETRYABLE or 500 <= response.status < 600
        raise DeliveryError(f"{self.name} answered PUBLISH for {owner} with {response.status} {response.reason}", retry=retry)
