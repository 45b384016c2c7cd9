"""XCAP as WSGI middleware: requests under ``xcap_root`` are XCAP, the rest pass through.

Wrap any WSGI application::

    from xcap_wsgi import XCAPMiddleware

    application = XCAPMiddleware(
        application,
        db_url="mysql://kamailio:secret@127.0.0.1/kamailio",
        xcap_root="/xcap-root/",
    )

or mount it in Flask with ``app.wsgi_app = XCAPMiddleware(app.wsgi_app, ...)``. With
``app=None`` every request outside the root gets 404. The parameters keep the names of
Kamailio's ``xcap_server`` module (``db_url``, ``xcap_table``, ``xcap_root``,
``buf_size``); a bad value raises ``ValueError`` here, not on the first request.
``auth`` (``none``, ``digest``, ``basic``, ``upstream``, ``ims``) and its options are those of
:func:`xcap_wsgi.auth.make_authenticator`; credentials default to the ``subscriber``
table of the same database. ``notify`` lists where every committed change is announced
(:mod:`xcap_wsgi.notify`): Kamailio or OpenSIPS JSON-RPC URLs, a SIP proxy for xcap-diff
PUBLISH, or callables; or a :class:`~xcap_wsgi.notify.NotifySettings`.
``node_cache_size`` bounds the bytes of documents whose parsed element index each
worker keeps for element, attribute and namespace requests (:mod:`xcap_wsgi.parsecache`;
0 turns it off). ``simservs_template`` is the file a GET of a user's missing IMS Ut
``simservs.xml`` stores and returns (default: the built-in one,
:class:`~xcap_wsgi.usages.simservs.FirstRead`). ``ims_home_domain`` and
``identity_aliases`` make a subscriber's identities (``tel:+E164``,
``sip:+E164@home;user=phone``, aliases) address the documents of one canonical XUI
(:mod:`xcap_wsgi.identity`). ``ut_decision_path`` answers trusted peers (SIP servers)
what a subscriber's simservs settings decide for a call (:mod:`xcap_wsgi.ut.endpoint`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from xcap_wsgi import operations
from xcap_wsgi.access import AccessLog, Request
from xcap_wsgi.auth import authorize, make_authenticator
from xcap_wsgi.auth.credentials import CredentialLookup
from xcap_wsgi.auth.digest import DEFAULT_ALGORITHMS
from xcap_wsgi.auth.network import Networks
from xcap_wsgi.conditions import Preconditions
from xcap_wsgi.cors import CORS
from xcap_wsgi.errors import (
    BadRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    XCAPError,
)
from xcap_wsgi.health import HealthCheck
from xcap_wsgi.identity import Aliases, IdentityRule
from xcap_wsgi.metrics import Metrics
from xcap_wsgi.notify import Notifier, NotifySettings, Target
from xcap_wsgi.parsecache import DEFAULT_MAX_BYTES as DEFAULT_NODE_CACHE_SIZE
from xcap_wsgi.parsecache import ParseCache
from xcap_wsgi.storage import Storage, StorageUnavailable, open_storage
from xcap_wsgi.uri import XCAPRoot, parse_cached, raw_request_path
from xcap_wsgi.usages.simservs import FirstRead
from xcap_wsgi.ut.endpoint import UtDecision

log = logging.getLogger("xcap_wsgi")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
#: environ key of a request made in process (:mod:`xcap_wsgi.api`): the Identity it acts as,
#: instead of authenticating (no HTTP client can set a key without the ``HTTP_`` prefix)
API_IDENTITY = "xcap_wsgi.api.identity"

#: Default largest request body (and so document), in bytes: 4 MiB. An address book of
#: 10 000 contacts is about 1.5 MB, so this holds some 25 000 with room for per-contact
#: extras, and a 4 MB document; it stays a quarter of the MEDIUMBLOB limit (and of
#: MariaDB's default max_allowed_packet, 16 MiB). Bodies are read only after
#: authentication, so unauthenticated clients cannot make a worker hold them.
#: Kamailio's 8192 is far too small.
DEFAULT_BUF_SIZE = 4 * 1024 * 1024
#: The ``doc`` column is a MEDIUMBLOB: 16 MiB - 1.
MAX_BUF_SIZE = 16 * 1024 * 1024 - 1
READ_CHUNK = 64 * 1024


def base_url(environ: dict[str, Any]) -> str:
    """scheme://host[:port] of the request, as the client addressed it."""
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"


class InternalError(XCAPError):
    code = 500


def make_notifier(storage: Storage, notify: Sequence[Target] | NotifySettings, max_attempts: int | None,
                  observe: Callable[[str, str, int], None] | None = None) -> Notifier | None:
    """The notifier for ``notify`` (None without targets: nothing extra is written);
    ``observe`` counts outcomes unless the settings name their own."""
    if isinstance(notify, NotifySettings):
        if max_attempts is not None:
            raise ValueError("pass notify_max_attempts inside NotifySettings, not beside it")
        settings = notify
    else:
        settings = NotifySettings(targets=notify)  # type: ignore[arg-type]  # checked there
        if max_attempts is not None:
            settings = dataclasses.replace(settings, max_attempts=max_attempts)
    if observe is not None and settings.observe is None:
        settings = dataclasses.replace(settings, observe=observe)
    return Notifier(storage, settings) if settings.targets else None


class XCAPMiddleware:
    """Serve XCAP (RFC 4825) under ``xcap_root`` from ``storage`` or ``db_url``."""

    def __init__(
        self,
        app: WSGIApp | None,
        *,
        db_url: str | None = None,
        xcap_table: str = "xcap",
        xcap_root: str = "/xcap-root/",
        buf_size: int = DEFAULT_BUF_SIZE,
        storage: Storage | None = None,
        auth: str = "none",
        auth_secret: str | None = None,
        credentials_url: str | None = None,
        credentials: CredentialLookup | None = None,
        trusted_peers: Sequence[str] = (),
        trusted_proxies: Sequence[str] = (),
        admins: Sequence[str] = (),
        allow_basic_over_http: bool = False,
        upstream_header: str | None = None,
        nonce_lifetime: int = 300,
        digest_algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        realm: str | None = None,
        global_auth: bool = False,
        notify: Sequence[Target] | NotifySettings = (),
        notify_max_attempts: int | None = None,
        log_format: str = "text",
        health_path: str | None = None,
        cors_origins: Sequence[str] = (),
        metrics_path: str | None = None,
        node_cache_size: int = DEFAULT_NODE_CACHE_SIZE,
        simservs_template: str | None = None,
        ims_home_domain: str | None = None,
        identity_aliases: Aliases | None = None,
        ut_decision_path: str | None = None,
    ) -> None:
        if app is not None and not callable(app):
            raise ValueError("app must be a WSGI application or None")
        if isinstance(buf_size, bool) or not isinstance(buf_size, int) or not 0 < buf_size <= MAX_BUF_SIZE:
            raise ValueError(f"buf_size must be an integer between 1 and {MAX_BUF_SIZE} bytes, got {buf_size!r}")
        if storage is not None and db_url is not None:
            raise ValueError("pass either db_url or storage, not both")
        self.app = app
        self.root = XCAPRoot(xcap_root)
        self.buf_size = buf_size
        self.storage = storage if storage is not None else open_storage(db_url, xcap_table)
        self.identities = None if ims_home_domain is None and identity_aliases is None else IdentityRule(
            ims_home_domain, identity_aliases)
        if auth in ("digest", "basic") and credentials_url is None and credentials is None:
            credentials_url = self.storage.url  # Kamailio keeps subscriber beside xcap
        self.authenticator = make_authenticator(
            auth, secret=auth_secret, credentials_url=credentials_url, credentials=credentials,
            trusted_peers=trusted_peers, trusted_proxies=trusted_proxies, admins=admins,
            allow_basic_over_http=allow_basic_over_http, upstream_header=upstream_header,
            nonce_lifetime=nonce_lifetime, digest_algorithms=digest_algorithms, realm=realm, global_auth=global_auth,
            canonical_xui=None if self.identities is None else self.identities.canonical_xui,
        )
        readers = Networks([*trusted_peers, *trusted_proxies])
        self.metrics = None if metrics_path is None else Metrics(
            metrics_path, lambda environ: self.authenticator is None or readers.contains(str(environ.get("REMOTE_ADDR", ""))))
        self.notifier = make_notifier(self.storage, notify, notify_max_attempts,
                                      None if self.metrics is None else self.metrics.notification)
        if self.metrics is not None and self.notifier is not None:
            self.metrics.outbox = self.notifier.outbox
        self.access = AccessLog(Networks(trusted_proxies), log_format)
        self.health = None if health_path is None else HealthCheck(self.storage, health_path)
        self.cors = CORS(cors_origins) if cors_origins else None
        self.parse_cache = ParseCache(node_cache_size) if node_cache_size else None
        self.first_read = FirstRead(simservs_template, limit=buf_size)
        self.ut_decision = None if ut_decision_path is None else UtDecision(
            self.storage, ut_decision_path, self.root, trusted_peers=trusted_peers, trusted_proxies=trusted_proxies,
            canonical=None if self.identities is None else self.identities.canonical_uri)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if self.health is not None and path == self.health.path:
            return self.health(environ, start_response)
        if self.metrics is not None and path == self.metrics.path:
            return self.metrics(environ, start_response)
        if self.ut_decision is not None and path == self.ut_decision.path:
            return self.ut_decision(environ, start_response)
        if not self.root.contains(path):
            if self.app is None:
                return NotFound(f"nothing here; XCAP is served under {self.root.path}")(environ, start_response)
            return self.app(environ, start_response)
        method = environ.get("REQUEST_METHOD", "")
        if self.cors is not None and self.cors.is_preflight(environ):
            return self.cors.preflight(environ, start_response)
        request = self.access.begin(environ, method, path)
        if self.notifier is not None:
            self.notifier.ensure_running()
        sent: list[str] = []

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append(("X-Request-ID", request.id))
            if self.cors is not None:
                headers.extend(self.cors.headers(environ))
            sent.append(status)
            return start_response(status, headers) if exc_info is None else start_response(status, headers, exc_info)

        try:
            response = self.handle(environ, request)
        except XCAPError as exc:
            body = exc(environ, start)
        except StorageUnavailable as exc:
            log.error("request %s: %s %r: database unavailable: %s", request.id, method, path, exc)
            if self.metrics is not None:
                self.metrics.db_errors.inc()
            body = ServiceUnavailable()(environ, start)
        except Exception:
            log.exception("request %s: %s %r failed", request.id, method, path)
            body = InternalError(f"internal error (request id {request.id})")(environ, start)
        else:
            start(response.status, response.headers)
            body = [b""] if method == "HEAD" else [response.body]
        seconds = self.access.end(request, sent[-1], sum(len(chunk) for chunk in body))
        if self.metrics is not None:
            self.metrics.request(method, request.auid, sent[-1], seconds)
        return body

    def handle(self, environ: dict[str, Any], request: Request | None = None) -> operations.Response:
        """Route one XCAP request (RFC 4825 §8 order: URI, authentication and
        authorization, node selector, then the method)."""
        method = environ["REQUEST_METHOD"]
        uri = parse_cached(raw_request_path(environ), environ.get("QUERY_STRING", ""), self.root)
        if self.identities is not None:
            uri = self.identities.canonical_uri(uri)
        if request is not None:
            request.auid = uri.auid
        if method in ("PUT", "DELETE"):
            operations.check_writable(uri)
        identity = environ.get(API_IDENTITY) or (self.authenticator.authenticate(environ, uri) if self.authenticator else None)
        if self.identities is not None and identity is not None and identity.user and uri.xui is not None \
                and (identity.user, identity.domain) != (uri.username, uri.domain):
            user, domain = self.identities.canonical_owner(identity.user, identity.domain)
            identity = dataclasses.replace(identity, user=user, domain=domain)
        if request is not None and identity is not None and identity.user:
            request.user = f"{identity.user}@{identity.domain}" if identity.domain else identity.user
        authorize(identity, uri, method)
        selector = operations.parse_selector(uri)
        pre = Preconditions.from_environ(environ)
        root_url = None if self.notifier is None else base_url(environ) + self.root.path
        if method in operations.READ_METHODS:
            response = operations.get(self.storage, uri, selector, pre, base_url(environ), self.parse_cache,
                                      self.first_read, root_url)
            if response.stored and self.notifier is not None:
                self.notifier.wake()
            return response
        if method == "PUT":
            body = self.read_body(environ)
            response = operations.put(self.storage, uri, selector, pre, environ.get("CONTENT_TYPE"), body,
                                      self.buf_size, root_url, self.parse_cache)
        elif method == "DELETE":
            response = operations.delete(self.storage, uri, selector, pre, root_url, self.parse_cache)
        else:
            raise MethodNotAllowed(operations.DOCUMENT_METHODS)
        if self.notifier is not None:
            self.notifier.wake()
        return response

    def read_body(self, environ: dict[str, Any]) -> bytes:
        """The request body, never more than ``buf_size`` bytes (413 beyond, never truncated).

        A declared Content-Length over the limit is refused without reading; a chunked
        body is read until it ends or passes the limit. A body the server cannot
        decode (bad chunk framing, client gone) is a 400, not a 500.
        """
        length = environ.get("CONTENT_LENGTH", "")
        try:
            size = int(length) if length else None
        except ValueError:
            size = -1
        if size is not None and size < 0:
            raise BadRequest(f"invalid Content-Length {length!r}")
        if size is not None:
            self._check_size(size)
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if size is None and not (chunked or environ.get("wsgi.input_terminated")):
            return b""
        try:
            body = self._read(environ["wsgi.input"], size)
        except XCAPError:
            raise
        except Exception as exc:
            raise BadRequest(f"the request body could not be read: {exc.__class__.__name__}") from None
        if size is not None and len(body) != size:
            raise BadRequest(f"the body ended after {len(body)} of {size} bytes")
        return body

    def _read(self, stream: Any, size: int | None) -> bytes:
        if size is not None:
            return bytes(stream.read(size)) if size else b""
        chunks, total = [], 0
        while chunk := stream.read(min(READ_CHUNK, self.buf_size + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            self._check_size(total)
        return b"".join(chunks)

    def _check_size(self, size: int) -> None:
        if size > self.buf_size:
            raise PayloadTooLarge(
                f"request body too large: the limit (buf_size) is {self.buf_size} bytes"
            )
