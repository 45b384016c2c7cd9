"""Settings from the environment, mapped onto the middleware's keywords.

``create_app()`` is what ``gunicorn 'xcap_wsgi:create_app()'`` loads:

    XCAP_DB_URL=mysql://kamailio:secret@127.0.0.1/kamailio \\
        gunicorn -w 4 'xcap_wsgi:create_app()'

Every keyword of :class:`~xcap_wsgi.middleware.XCAPMiddleware` that has a plain value has
an ``XCAP_*`` variable (see ``ENVIRONMENT``); lists are comma-separated, booleans
``true``/``false``. The README's configuration table lists them all.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from xcap_wsgi.middleware import XCAPMiddleware

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
    "notify": "XCAP_NOTIFY",
    "notify_max_attempts": "XCAP_NOTIFY_MAX_ATTEMPTS",
}
_INTEGERS = {"buf_size", "nonce_lifetime", "notify_max_attempts"}
_LISTS = {"trusted_peers", "trusted_proxies", "admins", "digest_algorithms", "notify"}  # comma-separated
_BOOLEANS = {"allow_basic_over_http"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def convert(keyword: str, value: str, source: str) -> Any:
    """A setting's text (environment variable or flag named ``source``) as its keyword's type."""
    if keyword in _INTEGERS:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{source} must be an integer, got {value!r}") from None
    if keyword in _LISTS:
        return [item.strip() for item in value.split(",") if item.strip()]
    if keyword in _BOOLEANS:
        if value.lower() not in _TRUE | _FALSE:
            raise ValueError(f"{source} must be true or false, got {value!r}")
        return value.lower() in _TRUE
    return value


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The middleware keywords set in ``environ`` (default ``os.environ``)."""
    env = os.environ if environ is None else environ
    return {
        keyword: convert(keyword, value, variable)
        for keyword, variable in ENVIRONMENT.items()
        if (value := env.get(variable, "").strip())
    }


def create_app(**overrides: Any) -> XCAPMiddleware:
    """The standalone XCAP application (non-XCAP paths answer 404), configured from the
    environment; keyword arguments override it."""
    return XCAPMiddleware(None, **{**settings_from_env(), **overrides})
