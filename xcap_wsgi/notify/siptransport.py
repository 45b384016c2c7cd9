"""A minimal SIP user agent client for non-INVITE requests (RFC 3261), over UDP or TCP.

::

    response = send_request("sip:127.0.0.1:5090", "PUBLISH", "sip:alice@example.com",
                            [("From", "<sip:alice@example.com>"), ("To", "<sip:alice@example.com>"),
                             ("Event", "xcap-diff"), ("Content-Type", "application/xcap-diff+xml")],
                            body)
    response.status, response.reason   # (200, 'OK'); response.ok is True for any 2xx

One call is one client transaction (RFC 3261 §17.1.2) on a socket of its own: over UDP
the request is retransmitted on Timer E (T1, doubling up to T2; every T2 once a
provisional response arrived) until a final response or Timer F (64*T1) fires; over TCP
it is sent once on a fresh connection. Responses are matched to the request by the Via
branch and the CSeq method (§17.1.3); anything else that arrives is ignored. The first
final response is returned, whatever its class, and ends the transaction (no Timer K
wait: the socket closes and a retransmitted response is dropped). Timer F raises
:class:`SIPTimeout`; a refused connection or an ICMP "port unreachable" (§17.1.4)
raises :class:`SIPTransportError`.

The transport writes Via (with ``rport``, RFC 3581) and Content-Length, and fills in
what the caller leaves out: Max-Forwards 70, a fresh Call-ID, ``CSeq: 1 METHOD``, a From
tag, and To = the Request-URI. The target is the next hop itself: no RFC 3263 SRV or
NAPTR lookups, no Route set, no TLS, no authentication. The message helpers
(:func:`parse_message`, :func:`encode_message`, :func:`header_params`) serve UAS-side
test code too.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeGuard

Transport = Literal["udp", "tcp"]

#: RFC 3261 §17.1.1.1 timer defaults, in seconds.
T1 = 0.5
T2 = 4.0
MAX_FORWARDS = 70
DEFAULT_PORT = 5060
#: RFC 3261 §8.1.1.7: a branch starting with this cookie is unique across space and time.
BRANCH_COOKIE = "z9hG4bK"
#: RFC 3261 §18.1.1: a larger request goes over TCP unless the target insists on UDP.
UDP_SIZE_LIMIT = 1300
#: Room kept for the Via header when sizing a request before its socket exists.
_VIA_ALLOWANCE = 128
_MAX_HEADER_BYTES = 65536

#: Compact header forms (RFC 3261 §7.3.3, RFC 6665 §8.2.3) and their full names.
COMPACT_FORMS = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length", "c": "content-type",
    "f": "from", "s": "subject", "k": "supported", "t": "to", "v": "via", "o": "event", "u": "allow-events",
}
#: Headers only the transport writes.
RESERVED_HEADERS = ("via", "content-length")
_TOKEN_RE = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
_TARGET_RE = re.compile(r"sip:(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?(?P<params>(?:;[^;]*)*)")
_PARAM_RE = re.compile(r";\s*([^=;\s]+)\s*(?:=\s*([^;]*?)\s*)?(?=;|$)")
_STATUS_LINE_RE = re.compile(r"SIP/2\.0 ([1-6][0-9]{2}) ?(.*)")
_REQUEST_LINE_RE = re.compile(r"([A-Za-z0-9.!%*_+`'~-]+) (\S+) SIP/2\.0")


class SIPError(Exception):
    """A request got no final response."""


class SIPTimeout(SIPError):
    """Timer F fired (RFC 3261 §17.1.2.2): no final response in time."""


class SIPTransportError(SIPError):
    """The request could not be sent or its answer not read (RFC 3261 §17.1.4)."""


@dataclass(frozen=True)
class SIPTarget:
    """The next hop, from ``sip:HOST[:PORT][;transport=udp|tcp]``.

    ``transport`` is None when the URI does not name one: UDP, or TCP for a request
    over 1300 bytes (RFC 3261 §18.1.1).
    """

    host: str
    port: int = DEFAULT_PORT
    transport: Transport | None = None

    @classmethod
    def parse(cls, uri: str) -> SIPTarget:
        """ValueError naming what is wrong: scheme, user part, port, parameter or headers."""
        if not uri.lower().startswith("sip:"):
            scheme = uri.split(":", 1)[0] if ":" in uri else uri
            raise ValueError(f"SIP target {uri!r}: scheme {scheme!r} is not supported, use sip:HOST[:PORT][;transport=udp|tcp]")
        if "@" in uri:
            raise ValueError(f"SIP target {uri!r}: names a user; a target is the proxy's host, sip:HOST[:PORT]")
        if "?" in uri:
            raise ValueError(f"SIP target {uri!r}: URI headers ('?') are not supported")
        match = _TARGET_RE.fullmatch("sip:" + uri[4:])
        if match is None:
            raise ValueError(f"SIP target {uri!r}: not sip:HOST[:PORT][;transport=udp|tcp]")
        port = int(match["port"]) if match["port"] else DEFAULT_PORT
        if not 0 < port < 65536:
            raise ValueError(f"SIP target {uri!r}: port {port} is out of range")
        return cls(match["host"].strip("[]"), port, _transport_param(uri, match["params"]))

    @property
    def hostport(self) -> str:
        """``host:port`` with an IPv6 address in brackets (RFC 3261 §25.1)."""
        return f"{_bracket(self.host)}:{self.port}"


def _transport_param(uri: str, params: str) -> Transport | None:
    transport: Transport | None = None
    for param in params.split(";")[1:]:
        name, _, value = (part.strip().lower() for part in param.partition("="))
        if name != "transport":
            raise ValueError(f"SIP target {uri!r}: parameter {name or param!r} is not supported (only transport=udp|tcp)")
        if value not in ("udp", "tcp"):
            raise ValueError(f"SIP target {uri!r}: transport {value!r} is not supported (udp or tcp)")
        transport = "udp" if value == "udp" else "tcp"
    return transport


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class _Message:
    """Header access shared by requests and responses: case-insensitive, compact forms too."""

    headers: tuple[tuple[str, str], ...]

    def header_values(self, name: str) -> list[str]:
        """Every value of header ``name`` in message order (one per header field line)."""
        wanted = header_key(name)
        return [value for key, value in self.headers if header_key(key) == wanted]

    def header(self, name: str) -> str | None:
        """The first value of header ``name``, or None."""
        values = self.header_values(name)
        return values[0] if values else None


@dataclass(frozen=True)
class SIPResponse(_Message):
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def ok(self) -> bool:
        """A 2xx: the request succeeded (RFC 3261 §21.2)."""
        return 200 <= self.status < 300


@dataclass(frozen=True)
class SIPRequest(_Message):
    method: str
    uri: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def header_key(name: str) -> str:
    """The lower-case full name of a header (``v`` → ``via``)."""
    lowered = name.strip().lower()
    return COMPACT_FORMS.get(lowered, lowered)


def header_params(value: str) -> dict[str, str]:
    """The ``;name=value`` parameters after a header's value (after ``>`` of a name-addr).

    Names are lower-cased; a parameter without a value maps to ``""``.
    """
    start = value.rfind(">") + 1 if ">" in value else value.find(";")
    params = value[start:] if start >= 0 else ""
    return {name.lower(): val for name, val in _PARAM_RE.findall(params)}


def topmost_via_branch(message: _Message) -> str | None:
    via = message.header("via")
    return header_params(via.split(",", 1)[0]).get("branch") if via else None


def cseq_method(message: _Message) -> str | None:
    cseq = (message.header("cseq") or "").split()
    return cseq[1] if len(cseq) == 2 else None


def parse_message(data: bytes) -> SIPRequest | SIPResponse:
    """One SIP message (RFC 3261 §7); ValueError when it is not one.

    The body is what follows the blank line, cut to Content-Length when that is given.
    """
    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        raise ValueError("no end of headers")
    lines = head.decode("utf-8", errors="replace").split("\r\n")
    headers = _parse_headers(lines[1:])
    length = _content_length(headers)
    if length is not None:
        if length > len(body):
            raise ValueError(f"body shorter than Content-Length {length}")
        body = body[:length]
    status = _STATUS_LINE_RE.fullmatch(lines[0])
    if status:
        return SIPResponse(int(status[1]), status[2], headers, body)
    request = _REQUEST_LINE_RE.fullmatch(lines[0])
    if request:
        return SIPRequest(request[1], request[2], headers, body)
    raise ValueError(f"not a SIP start line: {lines[0][:80]!r}")


def _parse_headers(lines: list[str]) -> tuple[tuple[str, str], ...]:
    fields: list[list[str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and fields:
            fields[-1][1] += " " + line.strip()  # folded continuation (RFC 3261 §7.3.1)
            continue
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN_RE.fullmatch(name.strip()):
            raise ValueError(f"malformed header line {line[:80]!r}")
        fields.append([name.strip(), value.strip()])
    return tuple((name, value) for name, value in fields)


def _content_length(headers: Iterable[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if header_key(name) == "content-length":
            if not value.isdigit():
                raise ValueError(f"bad Content-Length {value!r}")
            return int(value)
    return None


def stream_message_length(buffer: bytes) -> int | None:
    """The size of the message at the start of a TCP stream, None while incomplete.

    Stream transports frame messages by Content-Length, which is mandatory there
    (RFC 3261 §18.3); ValueError when it is missing or the headers never end.
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > _MAX_HEADER_BYTES:
            raise ValueError("headers longer than 64 KiB")
        return None
    lines = buffer[:end].decode("utf-8", errors="replace").split("\r\n")
    length = _content_length(_parse_headers(lines[1:]))
    if length is None:
        raise ValueError("a message on a stream transport without Content-Length")
    total = end + 4 + length
    return total if len(buffer) >= total else None


def encode_message(start_line: str, headers: Iterable[tuple[str, str]], body: bytes = b"") -> bytes:
    """The wire form, with Content-Length appended; ValueError on CR or LF in a header."""
    lines = [start_line]
    for name, value in headers:
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} contains a line break")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def new_tag() -> str:
    return secrets.token_hex(8)


def new_branch() -> str:
    return BRANCH_COOKIE + secrets.token_hex(16)


def send_request(
    target: SIPTarget | str,
    method: str,
    request_uri: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    t1: float = T1,
    t2: float = T2,
    timeout: float | None = None,
) -> SIPResponse:
    """Send one non-INVITE request and return its final response (RFC 3261 §17.1.2).

    ``headers`` must carry From; see the module docstring for what is filled in.
    ``timeout`` is Timer F, 64*``t1`` unless given. Raises :class:`SIPTimeout`,
    :class:`SIPTransportError`, or ValueError for a request that cannot be built.
    """
    hop = SIPTarget.parse(target) if isinstance(target, str) else target
    method, fields = _request_headers(method, request_uri, headers)
    request_line = f"{method} {request_uri} SIP/2.0"
    transport = hop.transport or _default_transport(request_line, fields, body)
    deadline = time.monotonic() + (64 * t1 if timeout is None else timeout)
    branch = new_branch()
    with _connect(hop, transport, deadline) as sock:
        local_host, local_port = sock.getsockname()[:2]
        via = f"SIP/2.0/{transport.upper()} {_bracket(local_host)}:{local_port};branch={branch};rport"
        data = encode_message(request_line, [("Via", via), *fields], body)
        if transport == "udp":
            return _udp_transaction(sock, data, branch, method, deadline, t1, t2)
        return _tcp_transaction(sock, data, branch, method, deadline)


def _request_headers(
    method: str, request_uri: str, headers: Mapping[str, str] | Iterable[tuple[str, str]]
) -> tuple[str, list[tuple[str, str]]]:
    """The caller's headers completed (RFC 3261 §8.1.1), Max-Forwards to CSeq first."""
    method = method.upper()
    if not _TOKEN_RE.fullmatch(method) or method in ("INVITE", "ACK", "CANCEL"):
        raise ValueError(f"{method!r}: only non-INVITE requests that get a response are sent here")
    if not request_uri or any(c.isspace() for c in request_uri):
        raise ValueError(f"bad Request-URI {request_uri!r}")
    given = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    keys = {header_key(name): value for name, value in reversed(given)}
    for reserved in RESERVED_HEADERS:
        if reserved in keys:
            raise ValueError(f"the {reserved} header is written by the transport")
    if "from" not in keys:
        raise ValueError("a request needs a From header")
    from_value = keys["from"] if "tag" in header_params(keys["from"]) else f"{keys['from']};tag={new_tag()}"
    cseq = keys.get("cseq", f"1 {method}")
    if cseq.split()[1:] != [method]:
        raise ValueError(f"CSeq {cseq!r} does not name method {method}")
    first = [
        ("Max-Forwards", keys.get("max-forwards", str(MAX_FORWARDS))),
        ("To", keys.get("to", f"<{request_uri}>")),
        ("From", from_value),
        ("Call-ID", keys.get("call-id", secrets.token_hex(16))),
        ("CSeq", cseq),
    ]
    written = {header_key(name) for name, _ in first}
    return method, first + [(name, value) for name, value in given if header_key(name) not in written]


def _default_transport(request_line: str, fields: list[tuple[str, str]], body: bytes) -> Transport:
    size = len(encode_message(request_line, fields, body)) + _VIA_ALLOWANCE
    return "tcp" if size > UDP_SIZE_LIMIT else "udp"


def _connect(hop: SIPTarget, transport: Transport, deadline: float) -> socket.socket:
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    try:
        family, _, proto, _, address = socket.getaddrinfo(hop.host, hop.port, type=kind)[0]
    except OSError as exc:
        raise SIPTransportError(f"{hop.hostport}: cannot resolve {hop.host!r}: {exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.connect(address)
    except TimeoutError:
        sock.close()
        raise SIPTimeout(f"{hop.hostport}: TCP connect timed out") from None
    except OSError as exc:
        sock.close()
        raise SIPTransportError(f"{hop.hostport}: cannot connect over {transport}: {exc}") from None
    return sock


def _matches(message: SIPRequest | SIPResponse | None, branch: str, method: str) -> TypeGuard[SIPResponse]:
    """RFC 3261 §17.1.3: same topmost Via branch and same CSeq method."""
    return isinstance(message, SIPResponse) and topmost_via_branch(message) == branch and cseq_method(message) == method


def _udp_transaction(
    sock: socket.socket, data: bytes, branch: str, method: str, deadline: float, t1: float, t2: float
) -> SIPResponse:
    """Trying/Proceeding of RFC 3261 §17.1.2.2: Timer E retransmits, Timer F gives up."""
    timer_e, next_send, proceeding = t1, time.monotonic(), False
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise SIPTimeout(f"no final response to {method} (Timer F)")
        if now >= next_send:
            _transmit(sock, data)
            next_send = now + timer_e
            timer_e = t2 if proceeding else min(2 * timer_e, t2)
        sock.settimeout(max(min(next_send, deadline) - now, 0.001))
        try:
            datagram = sock.recv(65535)
        except TimeoutError:
            continue
        except OSError as exc:  # ICMP port unreachable on the connected socket
            raise SIPTransportError(f"{method} not delivered: {exc}") from None
        response = _parse_or_none(datagram)
        if not _matches(response, branch, method):
            continue
        if response.status >= 200:
            return response
        if not proceeding:
            proceeding, timer_e = True, t2


def _transmit(sock: socket.socket, data: bytes) -> None:
    try:
        sock.send(data)
    except OSError as exc:
        raise SIPTransportError(f"cannot send: {exc}") from None


def _parse_or_none(data: bytes) -> SIPRequest | SIPResponse | None:
    try:
        return parse_message(data)
    except ValueError:
        return None


def _tcp_transaction(sock: socket.socket, data: bytes, branch: str, method: str, deadline: float) -> SIPResponse:
    """Send once, then read responses framed by Content-Length until a final one (§17.1.2.2, §18.3)."""
    _transmit(sock, data)
    buffer = b""
    while True:
        buffer = buffer.lstrip(b"\r\n")  # keep-alive CRLFs between messages (RFC 5626 §3.5.1)
        try:
            length = stream_message_length(buffer)
        except ValueError as exc:
            raise SIPTransportError(f"unreadable answer to {method}: {exc}") from None
        if length is not None:
            message, buffer = _parse_or_none(buffer[:length]), buffer[length:]
            if _matches(message, branch, method) and message.status >= 200:
                return message
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SIPTimeout(f"no final response to {method} (Timer F)")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError as exc:
            raise SIPTransportError(f"connection lost waiting for the answer to {method}: {exc}") from None
        if not chunk:
            raise SIPTransportError(f"connection closed before a final response to {method}")
        buffer += chunk
