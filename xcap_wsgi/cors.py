"""CORS for browser-based XCAP clients, opt-in (``cors_origins=["https://app.example.com"]``).

::

    XCAPMiddleware(app, db_url=..., cors_origins=["https://phone.example.com"])

A preflight (``OPTIONS`` with ``Access-Control-Request-Method``) from a listed origin is
answered 204, without authentication (browsers send no credentials with it), allowing the
XCAP methods and the headers XCAP clients send; every XCAP answer to a listed origin
allows it, with credentials (digest and basic authentication), and exposes ``ETag`` and
``X-Request-ID``. ``*`` lists every origin (each is echoed back, as credentials require).
With no origins configured nothing is sent and ``OPTIONS`` stays a 405.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

METHODS = "GET, HEAD, PUT, DELETE"
REQUEST_HEADERS = "Authorization, Content-Type, If-Match, If-None-Match, X-Request-ID"
EXPOSED = "ETag, X-Request-ID"
MAX_AGE = "600"


def check_origin(origin: str) -> str:
    """``scheme://host[:port]`` exactly as browsers send it, or ``*``; ValueError otherwise."""
    if origin == "*":
        return origin
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment:
        raise ValueError(f"a CORS origin is scheme://host[:port] with nothing after it, got {origin!r}")
    return origin.lower()


class CORS:
    def __init__(self, origins: Sequence[str]) -> None:
        self.origins = frozenset(check_origin(o) for o in origins)
        self.any = "*" in self.origins

    def allowed(self, environ: dict[str, Any]) -> str | None:
        """The request's Origin when it may read the answer."""
        origin = environ.get("HTTP_ORIGIN")
        if not isinstance(origin, str) or not (self.any or origin.lower() in self.origins):
            return None
        return origin

    def headers(self, environ: dict[str, Any]) -> list[tuple[str, str]]:
        """What an actual (non-preflight) XCAP answer adds."""
        origin = self.allowed(environ)
        if origin is None:
            return [("Vary", "Origin")]
        return [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true"),
                ("Access-Control-Expose-Headers", EXPOSED), ("Vary", "Origin")]

    @staticmethod
    def is_preflight(environ: dict[str, Any]) -> bool:
        return environ.get("REQUEST_METHOD") == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ

    def preflight(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        origin = self.allowed(environ)
        if origin is None:
            start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "24"),
                                             ("Vary", "Origin")])
            return [b"origin not allowed here\n"]
        start_response("204 No Content", [
            ("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true"),
            ("Access-Control-Allow-Methods", METHODS), ("Access-Control-Allow-Headers", REQUEST_HEADERS),
            ("Access-Control-Max-Age", MAX_AGE), ("Vary", "Origin"),
        ])
        return [b""]
