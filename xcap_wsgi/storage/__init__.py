"""Storage backends behind one small interface (:class:`~xcap_wsgi.storage.base.Storage`).

``open_storage(db_url, xcap_table)`` picks the backend from the URL scheme:
``sqlite:///relative.db``, ``sqlite:////absolute/path.db`` or
``mysql://user:pass@host[:port]/db``.
"""

from __future__ import annotations

from xcap_wsgi.storage.base import (
    DocKey,
    Document,
    Storage,
    StorageUnavailable,
    WriteResult,
    validate_table_name,
)

DEFAULT_DB_URL = "sqlite:///xcap.db"

__all__ = [
    "DEFAULT_DB_URL",
    "DocKey",
    "Document",
    "Storage",
    "StorageUnavailable",
    "WriteResult",
    "open_storage",
    "validate_table_name",
]


def open_storage(db_url: str | None, xcap_table: str = "xcap") -> Storage:
    """The backend for ``db_url`` (None: the embedded SQLite default). Raises ValueError."""
    url = db_url or DEFAULT_DB_URL
    if url.startswith("sqlite:///"):
        from xcap_wsgi.storage.sqlite import SQLiteStorage

        return SQLiteStorage(url[len("sqlite:///"):], xcap_table)
    if url.startswith(("mysql://", "mysql+pymysql://")):
        from xcap_wsgi.storage.mysql import MySQLStorage

        return MySQLStorage(url, xcap_table)
    raise ValueError(
        f"unsupported db_url {url!r}: use sqlite:///path/to/file.db or mysql://user:pass@host[:port]/db"
    )
