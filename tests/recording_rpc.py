"""A recording fake JSON-RPC 2.0 server over HTTP, for the notifier sinks' tests.

::

    with RecordingRPCServer({"presence:refresh_watchers": "OK"}) as rpc:
        OpenSIPSSink(f"opensips+{rpc.url}").deliver([event])
        assert rpc.requests[0].body["method"] == "presence:refresh_watchers"
        rpc.stop()          # the port refuses connections: the target is down
        rpc.start()         # listening again, on the same port

It stands in for what cannot run here (style.md §10), so it answers the way the real
servers do:

* ``error_style="opensips"`` — OpenSIPS's MI core behind mi_http: every JSON-RPC answer
  comes with HTTP 200, errors included; an unknown command is
  ``{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": ...}``
  (``mi/mi.h``, ``mi/mi.c`` ``handle_mi_request``, ``modules/mi_http/mi_http.c``).
  Default path ``/mi`` (mi_http's ``root`` parameter).
* ``error_style="kamailio"`` — Kamailio's jsonrpcs over xhttp: an error is also the HTTP
  status (the fault code when above 100, else 500, reason phrase = the message), and an
  unknown command is ``{"jsonrpc": "2.0", "error": {"code": 500, "message": "Method Not
  Found"}, "id": ...}`` with HTTP 500 (``src/modules/jsonrpcs/jsonrpcs_mod.c``
  ``jsonrpc_fault``). Default path ``/RPC``.

``methods`` maps each known method to a canned result, an :class:`RPCFault` (answered as
an error object), or a callable taking the request's ``params`` and returning the result
(or raising :class:`RPCFault`). ``None`` knows every method and answers ``"OK"``
(OpenSIPS's ``init_mi_result_ok``). ``delay`` (seconds) holds every answer back.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal

ErrorStyle = Literal["opensips", "kamailio"]
DEFAULT_PATHS: dict[ErrorStyle, str] = {"opensips": "/mi", "kamailio": "/RPC"}
#: Each server's own wording of the standard JSON-RPC error codes.
MESSAGES: dict[ErrorStyle, dict[int, str]] = {
    "opensips": {-32700: "Parse error", -32600: "Invalid Request", -32601: "Method not found",
                 -32602: "Invalid params", -32000: "Server error"},
    "kamailio": {-32700: "Parse Error", -32600: "Invalid Request", -32601: "Method Not Found",
                 -32602: "Invalid Parameters", -32603: "Internal Error", -32000: "Execution Error"},
}
#: What each server answers for a method it does not know (code, message).
UNKNOWN_METHOD: dict[ErrorStyle, tuple[int, str]] = {
    "opensips": (-32601, MESSAGES["opensips"][-32601]),
    "kamailio": (500, "Method Not Found"),
}
OK = "OK"
#: How often the serving loop looks for stop(): short, so stopping is quick.
POLL_S = 0.01


class RPCFault(Exception):
    """A JSON-RPC error object to answer; ``data`` is added only when given (as OpenSIPS does)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{code} {message}")
        self.code = code
        self.message = message
        self.data = data


#: A canned result, an RPCFault to answer as an error, or a callable ``params -> result``.
Behaviour = object


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request as received: ``body`` is the parsed JSON, or None if it was not JSON."""

    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes

    @property
    def method(self) -> Any:
        return self.body.get("method") if isinstance(self.body, dict) else None


class RecordingRPCServer:
    """A threaded HTTP server on 127.0.0.1 (port chosen at the first start) that records every request."""

    def __init__(self, methods: Mapping[str, Behaviour] | None = None, *, error_style: ErrorStyle = "opensips",
                 path: str | None = None, delay: float = 0.0) -> None:
        if error_style not in DEFAULT_PATHS:
            raise ValueError(f"unknown error_style {error_style!r}: use 'opensips' or 'kamailio'")
        self.methods: dict[str, Behaviour] | None = None if methods is None else dict(methods)
        self.error_style: ErrorStyle = error_style
        self.path = path or DEFAULT_PATHS[error_style]
        self.delay = delay
        self.port = 0
        self._requests: list[RecordedRequest] = []
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._changed:
            return list(self._requests)

    def bodies(self) -> list[Any]:
        """The parsed JSON body of every request so far, in arrival order."""
        return [r.body for r in self.requests]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """The requests once at least ``count`` have arrived; AssertionError after ``timeout``."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._requests) >= count, timeout):
                raise AssertionError(f"{len(self._requests)} requests after {timeout}s, wanted {count}: {self._requests}")
            return list(self._requests)

    def start(self) -> None:
        """Listen (again, on the same port once one was chosen) and answer in a daemon thread."""
        if self._server is not None:
            return
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(POLL_S,), name=f"rpc-fake-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: connections to the port are refused until :meth:`start`."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(5.0)

    def __enter__(self) -> RecordingRPCServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _record(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def answer(self, body: Any) -> tuple[int, str, dict[str, Any]]:
        """HTTP status, reason phrase and JSON-RPC answer for one parsed request body."""
        if not isinstance(body, dict) or body.get("jsonrpc") != "2.0" or not isinstance(body.get("method"), str):
            code = -32700 if body is None else -32600
            return self._fault(None, code, MESSAGES[self.error_style][code])
        request_id, method = body.get("id"), body["method"]
        behaviour = OK if self.methods is None else self.methods.get(method, _UNKNOWN)
        if behaviour is _UNKNOWN:
            return self._fault(request_id, *UNKNOWN_METHOD[self.error_style])
        try:
            result = behaviour(body.get("params")) if callable(behaviour) else behaviour
            if isinstance(result, RPCFault):
                raise result
        except RPCFault as fault:
            return self._fault(request_id, fault.code, fault.message, fault.data)
        return 200, "OK", {"jsonrpc": "2.0", "result": result, "id": request_id}

    def _fault(self, request_id: Any, code: int, message: str, data: Any = None) -> tuple[int, str, dict[str, Any]]:
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        answer = {"jsonrpc": "2.0", "error": error, "id": request_id}
        if self.error_style == "kamailio":
            return (code if code > 100 else 500), message, answer
        return 200, "OK", answer


_UNKNOWN = object()


def _handler_for(fake: RecordingRPCServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            fake._record(RecordedRequest(self.path, dict(self.headers.items()), body, raw))
            if fake.delay:
                time.sleep(fake.delay)
            if self.path != fake.path:
                self._send(404, "Not Found", b"")
                return
            status, reason, answer = fake.answer(body)
            self._send(status, reason, json.dumps(answer).encode())

        def _send(self, status: int, reason: str, payload: bytes) -> None:
            try:
                self.send_response(status, reason)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the client gave up (its timeout): nothing left to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
