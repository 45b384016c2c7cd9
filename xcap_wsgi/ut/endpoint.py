"""The decision endpoint: a trusted SIP server asks what a subscriber's Ut settings do with a call.

::

    XCAPMiddleware(app, db_url=..., trusted_peers=["10.0.0.10"], ut_decision_path="/ut/decision")
    # GET /ut/decision?served=sip:+15551234567@ims.example.com&service=cdiv&condition=busy&caller=tel:+15550001111&media=audio
    # 200 application/json
    # {"action":"forward","notify_caller":true,"rule":"call-diversion-busy","target":"tel:+15557654321"}

The answer is :meth:`~xcap_wsgi.ut.decision.Decision.as_dict` as compact JSON with sorted
keys: ``action`` (``forward``, ``bar``, ``allow`` or ``none``), and when they apply
``target``, ``rule``, ``notify_caller`` and ``no_reply_timer`` (seconds, for
``condition=no-answer``). A user without a stored ``simservs.xml`` gets
``{"action":"none"}``; the lookup is one indexed read and never stores the default
document a phone's first GET would (SS40).

Query parameters (each at most once; ``+`` is a plus, never a space, SS6a):

- ``served`` (required): the served user, as the XUI of their simservs document (a
  ``P-Served-User`` or Request-URI; ``<...>`` is taken off). Resolved to its document
  exactly as an XCAP request for that XUI would be, aliases included
  (:mod:`xcap_wsgi.identity`).
- ``service`` (required): ``cdiv``, ``icb`` or ``ocb``; ``condition`` (required for
  ``cdiv``, refused otherwise): ``unconditional``, ``busy``, ``no-answer``,
  ``not-reachable``, ``not-registered``.
- ``caller`` (``cdiv``, ``icb``) or ``callee`` (``ocb``): the other party's URI, for
  identity conditions; a caller at ``anonymous.invalid`` is anonymous.
- ``media``: the call's media types, comma-separated (``audio,video``).
- booleans (``true``/``false``/``1``/``0``) named after the condition they answer:
  ``anonymous``, ``international``, ``international-exHC``, ``roaming``,
  ``communication-diverted``.
- ``sphere`` (the served user's current sphere) and ``time`` (an xs:dateTime for
  ``cp:validity``; default: now).

Only trusted peers may ask (the ``trusted_peers`` of the XCAP server, their address seen
through ``trusted_proxies``): anyone else gets 403. A bad parameter is a 400 with one line
of text saying what is wrong; 503 when the database does not answer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import quote, unquote

from xcap_wsgi.auth.ims import addr_spec
from xcap_wsgi.auth.network import Networks, client_address
from xcap_wsgi.errors import XCAPError
from xcap_wsgi.operations import document_key
from xcap_wsgi.storage import Storage, StorageUnavailable
from xcap_wsgi.uri import XCAPURI, XCAPRoot, parse_xcap_path
from xcap_wsgi.usages.simservs import DOCUMENT_NAME, SIMSERVS_AUID
from xcap_wsgi.ut.decision import Call, decide, parse_datetime

log = logging.getLogger("xcap_wsgi.ut")

#: query parameter -> Call field, for the facts that are booleans
BOOLEANS = {
    "anonymous": "anonymous",
    "international": "international",
    "international-exHC": "international_exhc",
    "roaming": "roaming",
    "communication-diverted": "diverted",
}
#: query parameter -> Call field, for the facts taken as text
TEXTS = {"service": "service", "condition": "condition", "caller": "caller", "callee": "callee", "sphere": "sphere"}
PARAMETERS = ("served", *TEXTS, "media", "time", *BOOLEANS)
_TRUE, _FALSE = {"true", "1"}, {"false", "0"}
#: characters of a XUI left as they are in the document path (the rest is percent-encoded)
_XUI_SAFE = ":@+;=,!$&'()*~.-_"


class BadParameter(ValueError):
    """A query the endpoint cannot answer: the 400's one line of text."""


def parse_query(query: str) -> tuple[str, Call]:
    """The served identity and the call of a decision query; BadParameter otherwise."""
    values: dict[str, str] = {}
    for pair in query.split("&") if query else ():
        name, _, value = pair.partition("=")
        name, value = unquote(name), unquote(value).strip()
        if name not in PARAMETERS:
            raise BadParameter(f"unknown parameter {name!r}; the parameters are {', '.join(PARAMETERS)}")
        if name in values:
            raise BadParameter(f"{name} is given twice")
        values[name] = value
    if not values.get("served"):
        raise BadParameter("served is required: the served user's identity, e.g. sip:+15551234567@ims.example.com")
    if not values.get("service"):
        raise BadParameter("service is required: cdiv, icb or ocb")
    facts: dict[str, Any] = {TEXTS[name]: values[name] for name in TEXTS if name in values}
    for name, field in BOOLEANS.items():
        if name in values:
            facts[field] = _boolean(name, values[name])
    if "media" in values:
        facts["media"] = [item.strip() for item in values["media"].split(",") if item.strip()]
    if "time" in values:
        try:
            facts["time"] = parse_datetime(values["time"])
        except ValueError:
            raise BadParameter(f"time must be an xs:dateTime such as 2026-07-01T09:00:00Z, got {values['time']!r}") from None
    try:
        return addr_spec(values["served"]), Call(**facts)
    except ValueError as exc:
        raise BadParameter(str(exc)) from None


def _boolean(name: str, value: str) -> bool:
    if value.lower() not in _TRUE | _FALSE:
        raise BadParameter(f"{name} must be true or false, got {value!r}")
    return value.lower() in _TRUE


class UtDecision:
    """Answers decision queries at ``path`` from the simservs documents in ``storage``.

    ``canonical`` maps the served user's document URI to the one it is stored under (the
    middleware's identity rule); ValueError for a bad path or no trusted peers.
    """

    def __init__(self, storage: Storage, path: str, root: XCAPRoot, *, trusted_peers: Sequence[str],
                 trusted_proxies: Sequence[str] = (),
                 canonical: Callable[[XCAPURI], XCAPURI] | None = None) -> None:
        if not isinstance(path, str) or not path.startswith("/") or "?" in path:
            raise ValueError(f"ut_decision_path must be an absolute URL path, got {path!r}")
        self.peers = Networks(trusted_peers)
        if not self.peers:
            raise ValueError("ut_decision_path needs trusted_peers: the SIP servers allowed to ask for decisions")
        self.proxies = Networks(trusted_proxies)
        self.storage = storage
        self.path = path
        self.root = root
        self.canonical = canonical

    def document_of(self, served: str) -> XCAPURI:
        """The URI of ``served``'s simservs document, as an XCAP request for it
        would address it; BadParameter when ``served`` is no user's identity."""
        raw = f"{self.root.path}{SIMSERVS_AUID}/users/{quote(served, safe=_XUI_SAFE)}/{DOCUMENT_NAME}"
        try:
            uri = parse_xcap_path(raw, "", self.root)
            return uri if self.canonical is None else self.canonical(uri)
        except XCAPError as exc:
            raise BadParameter(f"served {served!r} names no user's document: {exc.description}") from None
        except ValueError as exc:
            raise BadParameter(f"served {served!r} names no user's document: {exc}") from None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "")
        status, body, extra = self.answer(environ, method)
        content_type = "application/json" if status.startswith("200") else "text/plain; charset=utf-8"
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                ("Cache-Control", "no-store"), *extra])
        return [b"" if method == "HEAD" else body]

    def answer(self, environ: dict[str, Any], method: str) -> tuple[str, bytes, list[tuple[str, str]]]:
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", b"GET or HEAD\n", [("Allow", "GET, HEAD")]
        if not self.peers.contains(client_address(environ, self.proxies)):
            return "403 Forbidden", b"only trusted peers may ask for call decisions\n", []
        try:
            served, call = parse_query(str(environ.get("QUERY_STRING", "")))
            uri = self.document_of(served)
            stored = self.storage.get(document_key(uri))  # one probe of the table's unique key
        except BadParameter as exc:
            return "400 Bad Request", f"{exc}\n".encode(), []
        except StorageUnavailable as exc:
            log.error("ut decision: database unavailable: %s", exc)
            return "503 Service Unavailable", b"database unavailable\n", [("Retry-After", "5")]
        try:
            decision = decide(None if stored is None else stored.doc, call)
        except ValueError as exc:
            log.error("ut decision: the stored document %s cannot be evaluated: %s", uri.doc_uri, exc)
            return "500 Internal Server Error", b"the stored simservs document cannot be evaluated\n", []
        log.debug("ut decision for %s: %s", uri.doc_uri, decision)
        return "200 OK", json.dumps(decision.as_dict(), sort_keys=True, separators=(",", ":")).encode(), []
