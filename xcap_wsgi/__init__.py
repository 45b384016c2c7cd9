"""xcap-wsgi: an XCAP server (RFC 4825) as framework-agnostic WSGI middleware.

::

    from xcap_wsgi import XCAPMiddleware
    application = XCAPMiddleware(application, db_url="sqlite:///xcap.db")
"""

from __future__ import annotations

from xcap_wsgi.config import create_app
from xcap_wsgi.middleware import DEFAULT_BUF_SIZE, XCAPMiddleware

__version__ = "0.1.0"
__all__ = ["DEFAULT_BUF_SIZE", "XCAPMiddleware", "__version__", "create_app"]
