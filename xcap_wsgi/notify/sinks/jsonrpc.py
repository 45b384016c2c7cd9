"""A JSON-RPC 2.0 client over HTTP(S), as Kamailio's jsonrpcs and OpenSIPS's mi_http speak it.

::

    rpc = JSONRPCClient("http://127.0.0.1:5091/RPC", timeout=5.0)
    rpc.call("presence.updateWatchers", ["sip:alice@example.com", "presence"])

A transport failure (refused, timeout, an answer that is not JSON-RPC) raises
:class:`DeliveryError` with ``target_down`` set; an error object in the answer raises
:class:`RPCError` carrying its code and message, whatever the HTTP status (Kamailio's
jsonrpcs answers a fault with the fault code as HTTP status, OpenSIPS with 200).
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
from typing import Any
from urllib.parse import urlsplit

from xcap_wsgi.notify.sinks.base import DeliveryError

#: JSON-RPC 2.0's "Method not found"; Kamailio's jsonrpcs also answers it for unknown commands.
METHOD_NOT_FOUND = -32601
DEFAULT_TIMEOUT_S = 5.0


class RPCError(Exception):
    """The target answered with a JSON-RPC error object."""

    def __init__(self, method: str, code: Any, message: str) -> None:
        super().__init__(f"{method}: error {code} {message}")
        self.method = method
        self.code = code
        self.message = message

    @property
    def method_not_found(self) -> bool:
        return self.code == METHOD_NOT_FOUND or "method not found" in self.message.lower()


class JSONRPCClient:
    """POSTs one JSON-RPC request per call to ``url`` (``http://`` or ``https://``), on
    kept-alive connections (one per concurrent caller, closed by :meth:`close`)."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []

    def call(self, method: str, params: list[Any] | dict[str, Any]) -> Any:
        """The ``result`` of ``method(params)``; raises RPCError or DeliveryError."""
        request_id = next(self._ids)
        body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}).encode()
        status, payload = self._post(body)
        try:
            answer = json.loads(payload)
        except ValueError:
            answer = None
        if not isinstance(answer, dict) or not ({"result", "error"} & answer.keys()):
            raise DeliveryError(f"{self.url} answered {method} with HTTP {status} and no JSON-RPC answer", target_down=True)
        error = answer.get("error")
        if error is not None:  # Kamailio also sets the HTTP status to the fault code
            code = error.get("code") if isinstance(error, dict) else None
            message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
            raise RPCError(method, code, message)
        if status != 200:
            raise DeliveryError(f"{self.url} answered {method} with HTTP {status}", target_down=True)
        return answer.get("result")

    def _post(self, body: bytes) -> tuple[int, bytes]:
        """POST on an idle kept-alive connection, or a new one; a kept-alive connection
        that the server has closed meanwhile is replaced once (the commands are idempotent)."""
        for kept in (True, False):
            conn = self._take() if kept else None
            fresh = conn is None
            if conn is None:
                conn = self._connection()
            try:
                conn.request("POST", self.path, body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if fresh:
                    raise DeliveryError(f"{self.url} unreachable: {exc.__class__.__name__}: {exc}",
                                        target_down=True) from None
                continue
            if response.will_close:
                conn.close()
            else:
                with self._lock:
                    self._idle.append(conn)
            return response.status, payload
        raise AssertionError("unreachable")  # pragma: no cover

    def _take(self) -> http.client.HTTPConnection | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
