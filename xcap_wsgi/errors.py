"""Every way an XCAP request can fail, as one exception class each.

Each class is a :class:`werkzeug.exceptions.HTTPException`, so an instance is itself a
WSGI application that answers the request::

    try:
        ...
    except XCAPError as exc:
        return exc(environ, start_response)

Plain HTTP failures (404, 405, 412, 413, ...) answer ``text/plain`` with a short
sentence naming what is wrong. The 409 conflicts of RFC 4825 §11 answer
``application/xcap-error+xml`` whose ``<xcap-error>`` root holds exactly one
condition element, with the human-readable ``phrase`` attribute XML-escaped
(requirements §4 and pitfall 11.6).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from werkzeug.exceptions import HTTPException

XCAP_ERROR_NS = "urn:ietf:params:xml:ns:xcap-error"
XCAP_ERROR_MIME = "application/xcap-error+xml"


class XCAPError(HTTPException):
    """Base class: an HTTP status plus a short plain-text explanation."""

    code = 500
    description = "internal server error"
    extra_headers: Sequence[tuple[str, str]] = ()

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description)

    def body_bytes(self) -> bytes:
        return (str(self.description) + "\n").encode("utf-8")

    def content_type(self) -> str:
        return "text/plain; charset=utf-8"

    def get_body(self, environ: Any = None, scope: Any = None) -> str:
        return self.body_bytes().decode("utf-8")

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [("Content-Type", self.content_type()), *self.extra_headers]

    def __call__(self, environ: Any, start_response: Any) -> Iterable[bytes]:
        body = b"" if environ.get("REQUEST_METHOD") == "HEAD" else self.body_bytes()
        headers = self.get_headers()
        headers.append(("Content-Length", str(len(self.body_bytes()))))
        start_response(f"{self.code} {self.name}", headers)
        return [body]


class BadRequest(XCAPError):
    code = 400
    description = "bad request"


class NotFound(XCAPError):
    code = 404
    description = "not found"


class Forbidden(XCAPError):
    code = 403
    description = "forbidden"


class MethodNotAllowed(XCAPError):
    """405 with the ``Allow`` header HTTP requires (RFC 4825 §8.1, NS1)."""

    code = 405

    def __init__(self, allowed: Sequence[str], description: str | None = None) -> None:
        super().__init__(description or "method not allowed here; allowed: " + ", ".join(allowed))
        self.extra_headers = (("Allow", ", ".join(allowed)),)


class PreconditionFailed(XCAPError):
    code = 412
    description = "precondition failed"


class PayloadTooLarge(XCAPError):
    code = 413
    description = "request body too large"


class URITooLong(XCAPError):
    code = 414
    description = "request URI too long"


class UnsupportedMediaType(XCAPError):
    code = 415
    description = "unsupported media type"


class ServiceUnavailable(XCAPError):
    """The store cannot be reached; the client may retry (never a half-write)."""

    code = 503
    description = "document store unavailable, try again later"

    def __init__(self, description: str | None = None, retry_after: int = 5) -> None:
        super().__init__(description)
        self.extra_headers = (("Retry-After", str(retry_after)),)


class Conflict(XCAPError):
    """A 409 with an ``application/xcap-error+xml`` body (RFC 4825 §11).

    Subclasses name the condition element in ``element``; ``content`` is the
    already-serialised child content of that element (``<ancestor>``, ``<exists>``).
    """

    code = 409
    element = "constraint-failure"

    def __init__(self, phrase: str | None = None, content: str = "") -> None:
        super().__init__(phrase or self.element)
        self.phrase = phrase
        self.content = content

    def content_type(self) -> str:
        return XCAP_ERROR_MIME

    def body_bytes(self) -> bytes:
        attr = f" phrase={quoteattr(self.phrase)}" if self.phrase else ""
        inner = f"<{self.element}{attr}>{self.content}</{self.element}>" if self.content else f"<{self.element}{attr}/>"
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<xcap-error xmlns="{XCAP_ERROR_NS}">{inner}</xcap-error>\n'
        ).encode()


class NotWellFormed(Conflict):
    element = "not-well-formed"


class NotUTF8(Conflict):
    element = "not-utf-8"


class NotXMLFrag(Conflict):
    element = "not-xml-frag"


class NotXMLAttValue(Conflict):
    element = "not-xml-att-value"


class SchemaValidationError(Conflict):
    element = "schema-validation-error"


class CannotInsert(Conflict):
    element = "cannot-insert"


class CannotDelete(Conflict):
    element = "cannot-delete"


class ConstraintFailure(Conflict):
    element = "constraint-failure"


class NoParent(Conflict):
    """RFC 4825 §8.2.1 (PD2, PE2, PE3). ``ancestor`` is an absolute HTTP URI or path."""

    element = "no-parent"

    def __init__(self, phrase: str | None = None, ancestor: str | None = None) -> None:
        content = f"<ancestor>{escape(ancestor)}</ancestor>" if ancestor else ""
        super().__init__(phrase, content)
        self.ancestor = ancestor


class UniquenessFailure(Conflict):
    """RFC 4825 §11 / V4: one ``<exists field=...>`` per offending field.

    ``exists`` holds ``(field, alt_values)`` pairs; ``field`` is already percent-encoded.
    """

    element = "uniqueness-failure"

    def __init__(self, exists: Sequence[tuple[str, Sequence[str]]], phrase: str | None = None) -> None:
        parts = []
        for field, alts in exists:
            alt = "".join(f"<alt-value>{escape(a)}</alt-value>" for a in alts)
            parts.append(f"<exists field={quoteattr(field)}>{alt}</exists>" if alt else f"<exists field={quoteattr(field)}/>")
        super().__init__(phrase, "".join(parts))
        self.exists = list(exists)
