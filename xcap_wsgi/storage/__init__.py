"""Storage backends behind one small interface (:class:`~xcap_wsgi.storage.base.Storage`).

``open_storage(db_url, xcap_table)`` picks the backend from the URL scheme:
``sqlite:///relative.db``, ``sqlite:////absolute/path.db``,
``mysql://user:pass@host[:port]/db`` or ``postgresql://user:pass@host[:port]/db``
(also ``postgres://``; ``pip install 'xcap-wsgi[postgresql]'``).
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


def open_storage(db_url: str | None, xcap_table: str = "xcap", *, schema: str | None = None) -> Storage:
    """The backend for ``db_url`` (None: the embedded SQLite default). Raises ValueError.

    ``schema`` (``kamailio``, ``opensips``; None: an existing table's, else Kamailio's) is the
    table's layout (:mod:`.dialects`)."""
    url = db_url or DEFAULT_DB_URL
    if url.startswith("sqlite:///"):
        from xcap_wsgi.storage.sqlite import SQLiteStorage

        return SQLiteStorage(url[len("sqlite:///"):], xcap_table, schema=schema)
    if url.startswith(("mysql://", "mysql+pymysql://")):
        from xcap_wsgi.storage.mysql import MySQLStorage

        return MySQLStorage(url, xcap_table, schema=schema)
    if url.startswith(("postgresql://", "postgres://")):
        from xcap_wsgi.storage.postgresql import PostgreSQLStorage

        return PostgreSQLStorage(url, xcap_table, schema=schema)
    raise ValueError(
        f"unsupported db_url {url!r}: use sqlite:///path/to/file.db, mysql://user:pass@host[:port]/db"
        " or postgresql://user:pass@host[:port]/db"
    )
