"""Shared fixtures: every storage-backed test runs on SQLite, on MySQL/MariaDB, once
through each driver (``mysql`` is PyMySQL, ``mysql-mysqlclient`` mysqlclient), and on
PostgreSQL (``postgresql``, psycopg 3).

MySQL tests use ``XCAP_TEST_MYSQL_URL`` (default ``mysql://root@127.0.0.1:3306/test``)
and a table of their own. When the server is unreachable, or mysqlclient is not installed
(``pip install -e '.[test,mysqlclient]'``), they skip, saying why, on a developer's machine;
under CI (``CI`` set) they fail instead. A test on one driver has ``XCAP_MYSQL_DRIVER`` set
to it, so a storage it opens by URL (another process's included) takes the same driver.

PostgreSQL tests use ``XCAP_TEST_POSTGRESQL_URL`` (default
``postgresql://root@127.0.0.1:5432/test``) alike: a table of their own; skipped, saying why,
when the server is unreachable or psycopg is missing (``pip install -e '.[test,postgresql]'``),
failed under CI.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from werkzeug.test import Client

from tests.kamailio_peer import kamailio_presence  # noqa: F401  (session fixture: Kamailio's presence server)
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.storage import Storage
from xcap_wsgi.storage.mysql import MySQLStorage
from xcap_wsgi.storage.sqlite import SQLiteStorage

MYSQL_URL = os.environ.get("XCAP_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
MYSQL_TABLE = f"xcap_test_{os.getpid()}"
POSTGRESQL_URL = os.environ.get("XCAP_TEST_POSTGRESQL_URL", "postgresql://root@127.0.0.1:5432/test")
POSTGRESQL_TABLE = f"xcap_test_{os.getpid()}"
#: the databases
BACKENDS = ["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)]
#: the storage backends: the databases, MySQL once through each driver, and PostgreSQL (the
#: databases' list, which the auth store's tests take, has no PostgreSQL yet)
STORAGE_BACKENDS = [*BACKENDS, pytest.param("mysql-mysqlclient", marks=pytest.mark.mysql),
                    pytest.param("postgresql", marks=pytest.mark.postgresql)]
#: every storage backend, whatever ``XCAP_TEST_BACKENDS`` says: for a test about the databases
#: themselves (it then runs on every Python, as the backends' own test modules do)
ALL_STORAGE_BACKENDS = list(STORAGE_BACKENDS)
#: ``XCAP_TEST_BACKENDS`` (comma-separated names of STORAGE_BACKENDS) narrows the
#: backend-parametrised tests to those backends; unset, every one runs. tox sets it for the
#: Pythons other than the main one (tox.ini): a backend's behaviour is the database's and the
#: driver's, and the backends' own test modules still run on every Python.
_CHOSEN = [name.strip() for name in os.environ.get("XCAP_TEST_BACKENDS", "").split(",") if name.strip()]
_NAMES = [param if isinstance(param, str) else param.values[0] for param in STORAGE_BACKENDS]
if set(_CHOSEN) - set(_NAMES):
    raise pytest.UsageError(f"XCAP_TEST_BACKENDS names {sorted(set(_CHOSEN) - set(_NAMES))}; known: {_NAMES}")
if _CHOSEN:
    STORAGE_BACKENDS = [param for param, name in zip(STORAGE_BACKENDS, _NAMES, strict=True) if name in _CHOSEN]
MYSQL_DRIVERS = ["pymysql", "mysqlclient"]


def driver_of(backend: str) -> str:
    return "mysqlclient" if backend == "mysql-mysqlclient" else "pymysql"


def require_driver(driver: str) -> None:
    """Skip (fail under CI) unless ``driver`` imports."""
    if driver == "mysqlclient":
        try:
            importlib.import_module("MySQLdb")
        except ImportError as exc:
            message = f"mysqlclient cannot be imported ({exc}); pip install -e '.[test,mysqlclient]'"
            if os.environ.get("CI"):
                pytest.fail(message + " (CI requires the MySQL tests to run on both drivers)")
            pytest.skip(message)


def use_driver(driver: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``driver`` for every MySQL storage of the test, the ones opened by URL included."""
    require_driver(driver)
    monkeypatch.setenv("XCAP_MYSQL_DRIVER", driver)
    return driver


def mysql_connect(**extra: Any) -> Any:
    """A raw PyMySQL connection to the test database, or skip/fail when it is down."""
    import pymysql

    from xcap_wsgi.storage.mysql import parse_mysql_url

    try:
        return pymysql.connect(**parse_mysql_url(MYSQL_URL), connect_timeout=3, autocommit=True, **extra)
    except pymysql.err.OperationalError as exc:
        message = f"MySQL at {MYSQL_URL} unreachable ({exc}); set XCAP_TEST_MYSQL_URL"
        if os.environ.get("CI"):
            pytest.fail(message + " (CI requires the MySQL tests to run)")
        pytest.skip(message)


def mysql_drop(table: str) -> None:
    conn = mysql_connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{table}`, `{table}_outbox`, `{table}_outbox_lease`, `{table}_rls_services`,"
                    f" `{table}_rls_documents`, `{table}_paths`")
        cur.execute("DELETE FROM version WHERE table_name = %s", (table,)) if _has_version(cur) else None
    conn.close()


def postgresql_connect() -> Any:
    """A raw psycopg connection (autocommit) to the test database, or skip/fail when it is down."""
    def unavailable(message: str) -> None:
        if os.environ.get("CI"):
            pytest.fail(message + " (CI requires the PostgreSQL tests to run)")
        pytest.skip(message)

    try:
        import psycopg
    except ImportError as exc:
        unavailable(f"psycopg cannot be imported ({exc}); pip install -e '.[test,postgresql]'")
    from xcap_wsgi.storage.postgresql import parse_postgresql_url

    try:
        return psycopg.connect(**parse_postgresql_url(POSTGRESQL_URL), connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        unavailable(f"PostgreSQL at {POSTGRESQL_URL} unreachable ({str(exc).strip()}); set XCAP_TEST_POSTGRESQL_URL")


def postgresql_drop(table: str) -> None:
    """The table, the tables xcap-wsgi keeps beside it and its version row."""
    with postgresql_connect() as conn:
        names = ", ".join(f'"{table}{suffix}"' for suffix in ("", "_outbox", "_outbox_lease", "_rls_services",
                                                                "_rls_documents", "_paths"))
        conn.execute(f"DROP TABLE IF EXISTS {names}")
        if conn.execute("SELECT to_regclass('version')").fetchone()[0] is not None:
            conn.execute("DELETE FROM version WHERE table_name = %s", (table,))


@contextlib.contextmanager
def scratch_database(backend: str, name: str) -> Iterator[str]:
    """An empty database of its own (``mysql`` or ``postgresql``) on the test server, for DDL
    that names its tables (``xcap``, ``version``); dropped afterwards. Yields its URL."""
    base = MYSQL_URL if backend == "mysql" else POSTGRESQL_URL
    url = urlunsplit(urlsplit(base)._replace(path="/" + name))
    if backend == "mysql":
        def execute(statement: str) -> None:
            conn = mysql_connect()
            with conn.cursor() as cur:
                cur.execute(statement)
            conn.close()
        drop, create = f"DROP DATABASE IF EXISTS `{name}`", f"CREATE DATABASE `{name}`"
    else:
        def execute(statement: str) -> None:
            with postgresql_connect() as conn:
                conn.execute(statement)
        drop, create = f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
    execute(drop)
    execute(create)
    try:
        yield url
    finally:
        execute(drop)


def create_ci_xcap_table(table: str) -> None:
    """Kamailio's ``xcap`` table as kamdbctl creates it on a server whose default collation
    is case-insensitive (``doc_uri`` ``utf8mb4_general_ci``)."""
    conn = mysql_connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE `{table}` (id INT AUTO_INCREMENT PRIMARY KEY, username VARCHAR(64) NOT NULL,"
                    " domain VARCHAR(64) NOT NULL, doc MEDIUMBLOB NOT NULL, doc_type INT NOT NULL,"
                    " etag VARCHAR(128) NOT NULL, source INT NOT NULL, doc_uri VARCHAR(255) NOT NULL,"
                    " port INT NOT NULL, UNIQUE (doc_uri)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci")
    conn.close()


def _has_version(cur: Any) -> bool:
    cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'version'")
    return bool(cur.fetchone()[0])


@pytest.fixture(scope="session")
def mysql_table() -> Iterator[str]:
    mysql_drop(MYSQL_TABLE)
    yield MYSQL_TABLE
    mysql_drop(MYSQL_TABLE)


@pytest.fixture(scope="session")
def postgresql_table() -> Iterator[str]:
    postgresql_drop(POSTGRESQL_TABLE)
    yield POSTGRESQL_TABLE
    postgresql_drop(POSTGRESQL_TABLE)


def make_storage(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Storage:
    if backend == "sqlite":
        return SQLiteStorage(str(tmp_path / "xcap.db"))
    if backend == "postgresql":
        from xcap_wsgi.storage.postgresql import PostgreSQLStorage

        table = request.getfixturevalue("postgresql_table")
        pg = PostgreSQLStorage(POSTGRESQL_URL, table)
        pg.ensure_schema()
        with postgresql_connect() as conn:
            conn.execute(f'DELETE FROM "{table}"')
        return pg
    table = request.getfixturevalue("mysql_table")
    conn = mysql_connect()
    storage = MySQLStorage(MYSQL_URL, table, driver=driver_of(backend))
    storage.ensure_schema()
    with conn.cursor() as cur:
        cur.execute(f"DELETE FROM `{table}`")
    conn.close()
    return storage


@pytest.fixture(params=STORAGE_BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param.startswith("mysql"):
        use_driver(driver_of(request.param), monkeypatch)
    return str(request.param)


@pytest.fixture(params=MYSQL_DRIVERS)
def mysql_driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each MySQL driver in turn, for a test that opens its own MySQLStorage."""
    return use_driver(request.param, monkeypatch)


@pytest.fixture
def storage(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Storage]:
    s = make_storage(backend, tmp_path, request)
    yield s
    s.close()


@pytest.fixture
def app(storage: Storage) -> XCAPMiddleware:
    return XCAPMiddleware(None, storage=storage)


@pytest.fixture
def client(app: XCAPMiddleware) -> Client:
    return Client(app)
