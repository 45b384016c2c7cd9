"""Request ids and the access log: one line per XCAP request, whatever its outcome.

::

    access = AccessLog(trusted_proxies=Networks(["127.0.0.1"]), log_format="json")
    request = access.begin(environ)            # id: the trusted proxy's X-Request-ID, or new
    ...                                        # request.user = the authenticated identity
    access.end(request, "200 OK", 412)

Every XCAP response carries ``X-Request-ID``; a 500 names it, and so does the traceback
logged with it. Lines go to the ``xcap_wsgi.access`` logger at INFO, as text::

    request 3e73dca12e0b: 203.0.113.7 alice@example.com GET '/xcap-root/...' -> 200 412 bytes 1.8 ms

or, with ``log_format="json"``, one JSON object per line (``id``, ``client``, ``user``,
``method``, ``path``, ``status``, ``bytes``, ``duration_ms``). Nothing is formatted when the
logger is off. The handler :func:`configure_logging` installs writes each line itself, in
the format the logging module would give it: a LogRecord costs more than the rest of a
document GET (issue 10, ``bench/profile_request.py``).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from xcap_wsgi.auth.network import Networks, client_address

access_log = logging.getLogger("xcap_wsgi.access")

LOG_FORMATS = ("text", "json")
#: what an incoming X-Request-ID may look like to be reused (anything else: a new id)
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id() -> str:
    return secrets.token_hex(6)


@dataclass
class Request:
    """What the access line says about one request; ``user`` is set once authenticated."""

    id: str
    method: str
    path: str
    client: str
    started: float = field(default_factory=time.perf_counter)
    user: str | None = None
    auid: str = ""


class AccessLog:
    def __init__(self, trusted_proxies: Networks, log_format: str = "text") -> None:
        if log_format not in LOG_FORMATS:
            raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}, got {log_format!r}")
        self.trusted_proxies = trusted_proxies
        self.json = log_format == "json"

    def begin(self, environ: dict[str, Any], method: str, path: str) -> Request:
        """The request's id (a trusted proxy's ``X-Request-ID`` is kept) and client address."""
        remote = str(environ.get("REMOTE_ADDR", ""))
        incoming = environ.get("HTTP_X_REQUEST_ID")
        trusted = bool(self.trusted_proxies) and self.trusted_proxies.contains(remote)
        rid = incoming if trusted and isinstance(incoming, str) and REQUEST_ID_RE.match(incoming) else new_request_id()
        client = client_address(environ, self.trusted_proxies) if self.trusted_proxies else remote
        return Request(rid, method, path, client)

    def end(self, request: Request, status: str, size: int) -> float:
        """Write the access line; the request's duration in seconds."""
        seconds = time.perf_counter() - request.started
        if not access_log.isEnabledFor(logging.INFO):
            return seconds
        code = status.split(" ", 1)[0]
        duration = seconds * 1000
        if self.json:
            line = json.dumps({
                "id": request.id, "client": request.client, "user": request.user, "method": request.method,
                "path": request.path, "status": int(code), "bytes": size, "duration_ms": round(duration, 3),
            }, ensure_ascii=False)
        else:
            line = (f"request {request.id}: {request.client or '-'} {request.user or '-'} {request.method}"
                    f" {request.path!r} -> {code} {size} bytes {duration:.1f} ms")
        handlers = access_log.handlers
        if len(handlers) == 1 and type(handlers[0]) is AccessLines and not access_log.propagate:
            handlers[0].write(line)
        else:
            access_log.info("%s", line)
        return seconds


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class AccessLines(logging.StreamHandler):  # type: ignore[type-arg]
    """The access logger's handler from :func:`configure_logging`: :meth:`write` puts out a
    line as ``Formatter(TEXT_FORMAT)`` (or the bare message, for JSON) would, without a
    LogRecord; records from elsewhere go through :meth:`emit` as usual."""

    def __init__(self, bare: bool) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s" if bare else TEXT_FORMAT))
        self.prefix = "" if bare else f" INFO {access_log.name}: "
        self._second, self._stamp = -1, ""

    def write(self, message: str) -> None:
        if self.prefix:
            now = time.time()
            second = int(now)
            if second != self._second:
                self._second, self._stamp = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
            message = f"{self._stamp},{int((now - second) * 1000):03d}{self.prefix}{message}"
        with self.lock:  # type: ignore[union-attr]
            try:
                self.stream.write(message + self.terminator)
                self.stream.flush()
            except Exception:  # as logging does: a broken stderr must not break the request
                self.handleError(logging.makeLogRecord({"msg": message}))


def configure_logging(log_format: str = "text") -> None:
    """Give xcap-wsgi's loggers a stderr handler when the application configured none
    (under gunicorn nothing does, and Python would print warnings bare and drop INFO).
    With ``json`` the access lines go out as they are, one JSON object per line."""
    package = logging.getLogger("xcap_wsgi")
    configured = bool(logging.getLogger().handlers or package.handlers)
    if not configured:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
        package.addHandler(handler)
        package.setLevel(logging.INFO)
    if (log_format == "json" or not configured) and not access_log.handlers:
        access_log.addHandler(AccessLines(bare=log_format == "json"))
        access_log.setLevel(logging.INFO)
        access_log.propagate = False
