"""Kamailio's presence server, told over its JSON-RPC interface (jsonrpcs over xhttp).

Target ``kamailio+http://127.0.0.1:5091/RPC`` (or ``kamailio+https://``). What each usage
needs, as observed on Kamailio 5.6 (reference/presence-integration.md):

=====================================  ====================================================
pres-rules, OMA pres-rules              ``presence.updateWatchers [owner, "presence"]``:
                                        re-reads the rules, re-authorises every watcher and
                                        NOTIFYs those whose status changed
org.openxcap.dialog-rules               the same for event ``dialog``
resource-lists, rls-services            ``rls.update_subs [owner, "presence"]``
pidf-manipulation                       ``presence.refreshWatchers [owner, "presence", 2,
                                        doc_uri, document name]``: (re)loads the hard state,
                                        or removes it when the document is gone
=====================================  ====================================================

A deleted rules document cannot be announced: Kamailio re-evaluates watchers only from a
rules document that exists (both commands fail without one), so nothing is sent and the
watchers keep their last status; this is logged. Other usages mean nothing to Kamailio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xcap_wsgi.notify.events import ChangeEvent, fold
from xcap_wsgi.notify.sinks.base import DeliveryError, Sink
from xcap_wsgi.notify.sinks.jsonrpc import DEFAULT_TIMEOUT_S, JSONRPCClient, RPCError
from xcap_wsgi.notify.sinks.presence import LIST_USAGES, PIDF_MANIPULATION, RULES_EVENTS, unannounceable

SCHEMES = ("kamailio+http://", "kamailio+https://")


def kamailio_call(event: ChangeEvent) -> tuple[str, list[Any]] | None:
    """The JSON-RPC command that makes Kamailio re-read ``event``'s document, or None."""
    if event.tree != "users":
        return None
    if event.auid in RULES_EVENTS:
        return None if event.document_deleted else ("presence.updateWatchers", [event.presentity, RULES_EVENTS[event.auid]])
    if event.auid in LIST_USAGES:
        return "rls.update_subs", [event.presentity, "presence"]
    if event.auid == PIDF_MANIPULATION:
        return "presence.refreshWatchers", [event.presentity, "presence", 2, event.doc_uri, event.document_name]
    return None


class KamailioSink(Sink):
    """One JSON-RPC command per document and delivery: Kamailio reads the state itself."""

    def __init__(self, target: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not target.startswith(SCHEMES):
            raise ValueError(f"not a Kamailio target: {target!r} (kamailio+http://host:port/RPC)")
        self.name = target
        self.rpc = JSONRPCClient(target[len("kamailio+"):], timeout)

    def close(self) -> None:
        self.rpc.close()

    def deliver(self, events: Sequence[ChangeEvent]) -> None:
        event = fold(events)
        call = kamailio_call(event)
        if call is None:
            unannounceable(self.name, "Kamailio", event)
            return
        method, params = call
        try:
            self.rpc.call(method, params)
        except RPCError as exc:
            if exc.method_not_found:
                raise DeliveryError(f"{self.name}: Kamailio does not know {method} (is its module loaded?)",
                                    retry=False) from None
            raise DeliveryError(f"{self.name}: {exc}") from None
