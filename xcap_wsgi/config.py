"""Settings from the environment, mapped onto the middleware's keywords.

``create_app()`` is what ``gunicorn 'xcap_wsgi:create_app()'`` loads:

    XCAP_DB_URL=mysql://kamailio:secret@127.0.0.1/kamailio \\
        gunicorn -w 4 'xcap_wsgi:create_app()'

Every keyword of :class:`~xcap_wsgi.middleware.XCAPMiddleware` that has a plain value has
an ``XCAP_*`` variable (see ``ENVIRONMENT``); lists are comma-separated, booleans
``true``/``false``. The README's configuration table lists them all.

Every value is checked here, whatever the authentication mode (the middleware ignores the
auth options it does not use), and an error names the variable or flag that set the value.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from xcap_wsgi.access import LOG_FORMATS, configure_logging
from xcap_wsgi.auth import MODES, parse_realm
from xcap_wsgi.auth.credentials import HASHES, parse_account
from xcap_wsgi.auth.network import Networks
from xcap_wsgi.auth.nonces import MIN_SECRET
from xcap_wsgi.identity import parse_home_domain
from xcap_wsgi.middleware import XCAPMiddleware
from xcap_wsgi.storage import open_storage

#: keyword -> environment variable
ENVIRONMENT = {
    "db_url": "XCAP_DB_URL",
    "xcap_table": "XCAP_TABLE",
    "xcap_root": "XCAP_ROOT",
    "buf_size": "XCAP_BUF_SIZE",
    "auth": "XCAP_AUTH",
    "auth_secret": "XCAP_AUTH_SECRET",
    "credentials_url": "XCAP_CREDENTIALS_URL",
    "trusted_peers": "XCAP_TRUSTED_PEERS",
    "trusted_proxies": "XCAP_TRUSTED_PROXIES",
    "admins": "XCAP_ADMINS",
    "allow_basic_over_http": "XCAP_ALLOW_BASIC_OVER_HTTP",
    "upstream_header": "XCAP_UPSTREAM_HEADER",
    "nonce_lifetime": "XCAP_NONCE_LIFETIME",
    "digest_algorithms": "XCAP_DIGEST_ALGORITHMS",
    "realm": "XCAP_REALM",
    "global_auth": "XCAP_GLOBAL_AUTH",
    "notify": "XCAP_NOTIFY",
    "notify_max_attempts": "XCAP_NOTIFY_MAX_ATTEMPTS",
    "health_path": "XCAP_HEALTH_PATH",
    "metrics_path": "XCAP_METRICS_PATH",
    "log_format": "XCAP_LOG_FORMAT",
    "cors_origins": "XCAP_CORS_ORIGINS",
    "node_cache_size": "XCAP_NODE_CACHE_SIZE",
    "simservs_template": "XCAP_SIMSERVS_TEMPLATE",
    "ims_home_domain": "XCAP_IMS_HOME_DOMAIN",
    "ut_decision_path": "XCAP_UT_DECISION_PATH",
}
_INTEGERS = {"buf_size", "nonce_lifetime", "notify_max_attempts"}  # all positive
_SIZES = {"node_cache_size"}  # 0 turns the feature off
_LISTS = {"trusted_peers", "trusted_proxies", "admins", "digest_algorithms", "notify", "cors_origins"}  # comma-separated
_BOOLEANS = {"allow_basic_over_http", "global_auth"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _one_of(choices: Mapping[str, object] | tuple[str, ...]) -> Callable[[str], object]:
    def check(value: str) -> object:
        if value not in choices:
            raise ValueError(value)
        return value
    return check


#: keyword -> (what a value or list item must be, the owner's parser, which raises ValueError)
_CHECKS: dict[str, tuple[str, Callable[[str], object]]] = {
    "auth": (f"one of {', '.join(MODES)}", _one_of(MODES)),
    "trusted_peers": ("an IP address or CIDR block", lambda item: Networks([item])),
    "trusted_proxies": ("an IP address or CIDR block", lambda item: Networks([item])),
    "admins": ("an identity sip:user@domain", parse_account),
    "digest_algorithms": (f"one of {', '.join(HASHES)}", _one_of(HASHES)),
    "realm": ("a SIP domain such as example.com", parse_realm),
    "log_format": (f"one of {', '.join(LOG_FORMATS)}", _one_of(LOG_FORMATS)),
    "ims_home_domain": ("a domain name such as ims.example.com", parse_home_domain),
}


def _integer(value: str, source: str, minimum: int, kind: str, below: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{source} must be {kind}, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"{source} must be {below}, got {number}")
    return number


def positive_int(value: str, source: str) -> int:
    """An integer setting: each is a size, a count or a number of seconds, so at least 1."""
    return _integer(value, source, 1, "an integer", "at least 1")


def byte_count(value: str, source: str) -> int:
    """A size in bytes where 0 means off."""
    return _integer(value, source, 0, "a number of bytes", "0 (off) or more")


def convert(keyword: str, value: str, source: str) -> Any:
    """A setting's text (environment variable or flag named ``source``) as its keyword's
    type, checked by the module that will use it."""
    if keyword in _INTEGERS:
        return positive_int(value, source)
    if keyword in _SIZES:
        return byte_count(value, source)
    if keyword in _BOOLEANS:
        if value.lower() not in _TRUE | _FALSE:
            raise ValueError(f"{source} must be true or false, got {value!r}")
        return value.lower() in _TRUE
    items = [item.strip() for item in value.split(",") if item.strip()] if keyword in _LISTS else [value]
    what, check = _CHECKS.get(keyword, ("", str))
    for item in items:
        try:
            check(item)
        except ValueError:
            raise ValueError(f"{source} must be {what}, got {item!r}") from None
    if keyword == "digest_algorithms" and not items:
        raise ValueError(f"{source} must name at least one of {', '.join(HASHES)}")
    if keyword == "auth_secret" and len(value) < MIN_SECRET:
        raise ValueError(f"{source} must be at least {MIN_SECRET} characters")  # never echo a secret
    if keyword == "credentials_url":
        with named({"db_url": source}):
            open_storage(value)  # parses the URL; connects on first use only
    return items if keyword in _LISTS else value


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The middleware keywords set in ``environ`` (default ``os.environ``)."""
    env = os.environ if environ is None else environ
    return {
        keyword: convert(keyword, value, variable)
        for keyword, variable in ENVIRONMENT.items()
        if (value := env.get(variable, "").strip())
    }


def renamed(message: str, names: Mapping[str, str]) -> str:
    """``message`` with each keyword it mentions replaced by ``names[keyword]``, the flag or
    variable the operator set it by. The middleware's messages name the keyword before the
    value they quote, so only the first mention is replaced (a value may contain the word)."""
    for keyword, name in names.items():
        message = re.sub(rf"\b{keyword}\b", name, message, count=1)
    return message


@contextlib.contextmanager
def named(names: Mapping[str, str]) -> Iterator[None]:
    """A ValueError raised inside is raised again in the operator's terms (:func:`renamed`)."""
    try:
        yield
    except ValueError as exc:
        raise ValueError(renamed(str(exc), names)) from None


def create_app(**overrides: Any) -> XCAPMiddleware:
    """The standalone XCAP application (non-XCAP paths answer 404), configured from the
    environment; keyword arguments override it. Logging is given a handler when nothing
    configured it (gunicorn does not), so the access lines and warnings appear."""
    settings = settings_from_env()
    configure_logging(str({**settings, **overrides}.get("log_format", "text")))
    with named({keyword: ENVIRONMENT[keyword] for keyword in settings if keyword not in overrides}):
        return XCAPMiddleware(None, **{**settings, **overrides})
