"""Slow clients and a probe, for measuring how a server copes with connections that
trickle their request (issue 9).

::

    with Trickle(port, 50, "headers"):            # 50 connections, one byte a second each
        latencies = probe(port, RL_URI, seconds=10)

Every loop is bounded in time: the trickle stops when its block ends, each probe request
gives up after ``timeout`` seconds (counted as that long).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from types import TracebackType

#: what each kind of slow client sends before it starts trickling, and the byte it trickles
OPENINGS = {
    "headers": (b"GET /xcap-root/xcap-caps/global/index HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ", b"a"),
    "body": (b"PUT /xcap-root/resource-lists/users/sip:slow@example.com/index HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Content-Type: application/resource-lists+xml\r\nContent-Length: 100000\r\n\r\n", b" "),
}


class Trickle:
    """``count`` connections to ``port`` sending ``kind`` (:data:`OPENINGS`) one byte per
    ``interval`` seconds from one thread, until the ``with`` block ends."""

    def __init__(self, port: int, count: int, kind: str, *, interval: float = 1.0) -> None:
        self.port, self.count, self.interval = port, count, interval
        self.opening, self.byte = OPENINGS[kind]
        self.stop = threading.Event()
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Trickle:
        try:
            for _ in range(self.count):
                self.sockets.append(socket.create_connection(("127.0.0.1", self.port), timeout=5))
                self.sockets[-1].sendall(self.opening)
        except OSError:
            self._close()
            raise
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            for sock in self.sockets:
                with contextlib.suppress(OSError):  # the server gave up on this one
                    sock.send(self.byte)

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop.set()
        self.thread.join()
        self._close()

    def _close(self) -> None:
        for sock in self.sockets:
            sock.close()


def probe(port: int, path: str, *, seconds: float = 10.0, every: float = 0.2, timeout: float = 5.0) -> list[float]:
    """The latency of a GET of ``path`` on a new connection every ``every`` seconds for
    ``seconds``; a request that fails or takes longer than ``timeout`` counts as ``timeout``."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", path)
            conn.getresponse().read()
            latencies.append(time.monotonic() - started)
        except OSError:
            latencies.append(timeout)
        finally:
            conn.close()
        time.sleep(max(0.0, every - (time.monotonic() - started)))
    return latencies
