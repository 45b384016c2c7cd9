"""OpenSIPS's presence and RLS modules, told over the Management Interface (mi_http).

::

    sink = OpenSIPSSink("opensips+http://127.0.0.1:8888/mi", timeout=5.0)
    sink.deliver(events)    # the pending events of one document, in commit order

mi_http takes a JSON-RPC 2.0 POST on its ``root`` path (``/mi`` by default, also when the
target has no path) and the MI commands take their parameters by name, as a JSON object
(https://opensips.org/docs/modules/4.0.x/mi_http.html,
https://www.opensips.org/Documentation/Interface-MI-3-4). One command per document and
delivery, folded: OpenSIPS reads the new state back from the xcap table itself.

=====================================  ====================================================
pres-rules, OMA pres-rules              ``refresh_watchers {presentity_uri, event:
                                        "presence", refresh_type: 0}``: re-reads the rules
                                        and re-authorises the watchers
org.openxcap.dialog-rules               the same with event ``dialog``; OpenSIPS's dialog
                                        event takes no rules yet and answers
                                        ``-32000 Server error`` (retried, then failed)
resource-lists, rls-services            ``update_subscriptions {presentity_uri}``: rebuilds
                                        the owner's back-end subscriptions
pidf-manipulation                       ``refresh_watchers {presentity_uri, event:
                                        "presence", refresh_type: 1}``: NOTIFYs the
                                        aggregated state, which includes the
                                        pidf-manipulation document when presence_xml's
                                        ``pidf_manipulation`` is set (RFC 4827)
=====================================  ====================================================

OpenSIPS documents ``refresh_type`` as 0 (watchers' authorisation changed) or anything
else (published state changed: ``query_db_notify``); unlike Kamailio it has no type 2 and
no file URI / file name parameters: its command takes exactly ``presentity_uri``,
``event`` and ``refresh_type`` (the doc writes "refresh type"; the code's name has the
underscore), and extra named parameters fail with ``-32602 Invalid params``
(https://opensips.org/docs/modules/3.4.x/presence.html, Exported MI Functions;
``mi_cmds`` in ``modules/presence/presence.c``, ``get_cmd_recipe`` in ``mi/mi.c``).

A deleted rules document is not announced: with ``refresh_type`` 0 OpenSIPS fetches the
rules document and, finding none, answers ``-32000 Server error`` without touching the
watchers (``mi_refresh_watchers`` in ``modules/presence/presence.c``), so they keep the
status it last computed; this is logged. Other usages and the global tree mean nothing
to OpenSIPS.

Naming generations: since the 2026 MI renaming (OpenSIPS 4.0) a command is named after
its module (``presence:refresh_watchers``, ``rls:update_subscriptions``), and the old
names (``refresh_watchers``, ``rls_update_subscriptions``), the only ones older releases
know, are not to be relied on. The sink tries the new name, falls back to the old one on
"Method not found" (``-32601``, which mi_http answers with HTTP 200: ``handle_mi_request``
in ``mi/mi.c``), and remembers per instance and command the name that worked, trying the
other again only if that one becomes unknown. Neither name known is a permanent failure:
the module is not loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from xcap_wsgi.notify.events import ChangeEvent, fold
from xcap_wsgi.notify.sinks.base import DeliveryError, Sink
from xcap_wsgi.notify.sinks.jsonrpc import DEFAULT_TIMEOUT_S, JSONRPCClient, RPCError
from xcap_wsgi.notify.sinks.presence import LIST_USAGES, PIDF_MANIPULATION, RULES_EVENTS, unannounceable

log = logging.getLogger("xcap_wsgi.notify")

PREFIX = "opensips+"
SCHEMES = ("opensips+http://", "opensips+https://")
#: mi_http's default ``root`` parameter.
DEFAULT_PATH = "/mi"
#: ``refresh_type`` values of OpenSIPS's refresh_watchers.
AUTHORISATION_CHANGED = 0
PUBLISHED_STATE_CHANGED = 1


@dataclass(frozen=True)
class MICommand:
    """One MI command under both of its names, the current one first, and the module exporting it."""

    names: tuple[str, str]
    module: str


REFRESH_WATCHERS = MICommand(("presence:refresh_watchers", "refresh_watchers"), "presence")
UPDATE_SUBSCRIPTIONS = MICommand(("rls:update_subscriptions", "rls_update_subscriptions"), "rls")


def opensips_call(event: ChangeEvent) -> tuple[MICommand, dict[str, Any]] | None:
    """The MI command and named parameters that make OpenSIPS re-read ``event``'s document, or None."""
    if event.tree != "users":
        return None
    if event.auid in RULES_EVENTS:
        if event.document_deleted:
            return None
        return REFRESH_WATCHERS, {"presentity_uri": event.presentity, "event": RULES_EVENTS[event.auid],
                                  "refresh_type": AUTHORISATION_CHANGED}
    if event.auid in LIST_USAGES:
        return UPDATE_SUBSCRIPTIONS, {"presentity_uri": event.presentity}
    if event.auid == PIDF_MANIPULATION:
        return REFRESH_WATCHERS, {"presentity_uri": event.presentity, "event": "presence",
                                  "refresh_type": PUBLISHED_STATE_CHANGED}
    return None


def mi_url(target: str) -> str:
    """The mi_http URL of an ``opensips+http(s)://host[:port][/path]`` target; ValueError if it is not one."""
    form = "opensips+http://host:port/mi"
    if not target.startswith(SCHEMES):
        raise ValueError(f"not an OpenSIPS target: {target!r} ({form})")
    parts = urlsplit(target[len(PREFIX):])
    try:
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number in range)
    except ValueError:
        raise ValueError(f"bad port in OpenSIPS target {target!r} ({form})") from None
    if not parts.hostname:
        raise ValueError(f"no host in OpenSIPS target {target!r} ({form})")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"OpenSIPS target {target!r} has credentials, which mi_http does not take")
    if parts.query or parts.fragment:
        raise ValueError(f"OpenSIPS target {target!r} has a query or fragment ({form})")
    return urlunsplit((parts.scheme, parts.netloc, parts.path or DEFAULT_PATH, "", ""))


class OpenSIPSSink(Sink):
    """One MI command per document and delivery, under whichever name this OpenSIPS knows."""

    def __init__(self, target: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        self.name = target
        self.rpc = JSONRPCClient(mi_url(target), timeout)
        self._known: dict[MICommand, str] = {}

    def close(self) -> None:
        self.rpc.close()

    def deliver(self, events: Sequence[ChangeEvent]) -> None:
        event = fold(events)
        call = opensips_call(event)
        if call is None:
            unannounceable(self.name, "OpenSIPS", event)
            return
        self._call(*call)

    def _call(self, command: MICommand, params: dict[str, Any]) -> None:
        """Run ``command`` under the name that worked last, else each name in turn."""
        for method in self._names(command):
            try:
                self.rpc.call(method, params)
            except RPCError as exc:
                if exc.method_not_found:
                    continue
                raise DeliveryError(f"{self.name}: {exc}") from None
            self._known[command] = method
            return
        self._known.pop(command, None)
        new, old = command.names
        raise DeliveryError(f"{self.name}: OpenSIPS knows neither {new} nor {old}"
                            f" (is its {command.module} module loaded?)", retry=False)

    def _names(self, command: MICommand) -> list[str]:
        known = self._known.get(command)
        return list(command.names) if known is None else [known, *(n for n in command.names if n != known)]
