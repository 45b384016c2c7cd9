"""Settings from the environment, mapped onto the middleware's keywords.

``create_app()`` is what ``gunicorn 'xcap_wsgi:create_app()'`` loads:

    XCAP_DB_URL=mysql://kamailio:secret@127.0.0.1/kamailio \\
        gunicorn -w 4 'xcap_wsgi:create_app()'

| keyword      | environment variable | default              |
|--------------|----------------------|----------------------|
| db_url       | XCAP_DB_URL          | sqlite:///xcap.db    |
| xcap_table   | XCAP_TABLE           | xcap                 |
| xcap_root    | XCAP_ROOT            | /xcap-root/          |
| buf_size     | XCAP_BUF_SIZE        | 1048576              |
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
}
_INTEGERS = {"buf_size"}


def settings_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The middleware keywords set in ``environ`` (default ``os.environ``)."""
    env = os.environ if environ is None else environ
    settings: dict[str, Any] = {}
    for keyword, variable in ENVIRONMENT.items():
        value = env.get(variable, "").strip()
        if not value:
            continue
        if keyword in _INTEGERS:
            try:
                settings[keyword] = int(value)
            except ValueError:
                raise ValueError(f"{variable} must be an integer number of bytes, got {value!r}") from None
        else:
            settings[keyword] = value
    return settings


def create_app(**overrides: Any) -> XCAPMiddleware:
    """The standalone XCAP application (non-XCAP paths answer 404), configured from the
    environment; keyword arguments override it."""
    return XCAPMiddleware(None, **{**settings_from_env(), **overrides})
