"""``python -m xcap_wsgi`` is the ``xcap-wsgi`` command."""

from __future__ import annotations

import sys

from xcap_wsgi.cli import main

sys.exit(main())
