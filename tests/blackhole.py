"""Databases that never answer, for the bounded-wait tests (issue 9).

::

    with BlackHole("silent") as hole:          # accepts, never sends a byte
        MySQLStorage(hole.url()).get(uri)      # StorageUnavailable after the read timeout

    with BlackHole("silent", forward_to=("127.0.0.1", 3306)) as hole:
        storage = MySQLStorage(hole.url(MYSQL_URL))  # a working database ...
        hole.silence()                               # ... that stops answering mid-session

``silent`` accepts and holds each connection open without a word; ``close`` accepts and
closes at once (a port forwarded to nothing); ``full`` never accepts and its backlog is
full, so the SYN of a new connection is dropped and only the connect timeout ends it.
With ``forward_to``, connections reach that server until :meth:`BlackHole.silence`;
from then on every byte either way is swallowed and new connections are held silent.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

MODES = ("silent", "close", "full")


class BlackHole:
    def __init__(self, mode: str, *, forward_to: tuple[str, int] | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.forward_to = forward_to
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=0 if mode == "full" else 16)
        self.port: int = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        if mode == "full":  # Linux queues one connection at backlog 0; this one fills the queue
            self._held.append(socket.create_connection(("127.0.0.1", self.port)))
        else:
            threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db_url: str = "mysql://root@127.0.0.1/test") -> str:
        """``db_url`` with its host and port replaced by this black hole's."""
        parts = urlsplit(db_url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def silence(self) -> None:
        """Stop forwarding: the server seems to hang, every connection stays open."""
        self.forward_to = None

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == "close":
                conn.close()
                continue
            self._held.append(conn)
            if self.forward_to is not None:
                upstream = socket.create_connection(self.forward_to, timeout=5)
                upstream.settimeout(None)
                self._held.append(upstream)
                for source, sink in ((conn, upstream), (upstream, conn)):
                    threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if self.forward_to is not None:
                    sink.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for conn in self._held:
            with contextlib.suppress(OSError):
                conn.close()

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
