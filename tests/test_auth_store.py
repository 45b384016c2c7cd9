"""Kamailio's subscriber table and the shared nonce-counts, on SQLite and MySQL/MariaDB."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from tests.conftest import BACKENDS, MYSQL_URL, mysql_connect, mysql_drop
from tests.test_auth import ALICE_DOC, SECRET, Protected, challenges, digest
from xcap_wsgi.auth import SubscriberStore
from xcap_wsgi.auth.digest import DigestAuthenticator
from xcap_wsgi.auth.nonces import SQLNonceCounter

SUBSCRIBER_TABLE = f"subscriber_test_{os.getpid()}"
NONCE_TABLE = f"xcap_auth_nonce_test_{os.getpid()}"
ALICE = "sip:alice@example.com"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Database:
    """Raw access to the test database, to see what the store wrote."""

    def __init__(self, backend: str, tmp_path: Path) -> None:
        self.backend = backend
        self.path = tmp_path / "auth.db"
        self.url = f"sqlite:///{self.path}" if backend == "sqlite" else MYSQL_URL
        self.p = "?" if backend == "sqlite" else "%s"

    def query(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path) if self.backend == "sqlite" else mysql_connect()
        try:
            cursor = conn.cursor()
            cursor.execute(statement.replace("?", self.p), args)
            rows = list(cursor.fetchall())
            conn.commit()
            return rows
        finally:
            conn.close()


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    database = Database(str(request.param), tmp_path)
    if database.backend == "mysql":
        mysql_drop(SUBSCRIBER_TABLE)
        mysql_drop(NONCE_TABLE)
    yield database
    if database.backend == "mysql":
        mysql_drop(SUBSCRIBER_TABLE)
        mysql_drop(NONCE_TABLE)


@pytest.fixture
def store(db: Database) -> Iterator[SubscriberStore]:
    s = SubscriberStore(db.url, SUBSCRIBER_TABLE)
    yield s
    s.close()


def row(db: Database) -> tuple[Any, ...]:
    rows = db.query(f"SELECT username, domain, password, ha1, ha1b, ha1_sha256, ha1b_sha256 FROM {SUBSCRIBER_TABLE}")
    assert len(rows) == 1
    return rows[0]


def test_add_user_stores_ha1_not_cleartext(db: Database, store: SubscriberStore) -> None:
    store.add_user("sips:alice@Example.COM", "s3cret")
    assert row(db) == ("alice", "example.com", "",
                       md5("alice:example.com:s3cret"), md5("alice@example.com:example.com:s3cret"),
                       sha256("alice:example.com:s3cret"), sha256("alice@example.com:example.com:s3cret"))


def test_add_user_stores_cleartext_only_when_asked(db: Database, store: SubscriberStore) -> None:
    store.add_user(ALICE, "s3cret", store_cleartext=True)
    assert row(db)[2:4] == ("s3cret", md5("alice:example.com:s3cret"))


def test_table_created_with_kamailio_version_row(db: Database, store: SubscriberStore) -> None:
    store.add_user(ALICE, "s3cret")
    assert db.query("SELECT table_version FROM version WHERE table_name = ?", SUBSCRIBER_TABLE) == [(7,)]


def test_add_existing_user_is_refused(store: SubscriberStore) -> None:
    store.add_user(ALICE, "one")
    with pytest.raises(ValueError, match="already exists"):
        store.add_user("alice@example.com", "two")


def test_set_password_replaces_the_hashes_and_clears_cleartext(db: Database, store: SubscriberStore) -> None:
    store.add_user(ALICE, "old", store_cleartext=True)
    store.set_password(ALICE, "new")
    store.set_password(ALICE, "new")  # the same password again: not "no such user"
    assert row(db)[2:4] == ("", md5("alice:example.com:new"))


def test_delete_user_removes_the_row(db: Database, store: SubscriberStore) -> None:
    store.add_user(ALICE, "s3cret")
    store.delete_user(ALICE)
    assert store("alice", "example.com") is None
    assert db.query(f"SELECT COUNT(*) FROM {SUBSCRIBER_TABLE}") == [(0,)]


@pytest.mark.parametrize("action", ["delete_user", "set_password"])
def test_changing_an_unknown_user_raises_lookup_error(store: SubscriberStore, action: str) -> None:
    args = (ALICE,) if action == "delete_user" else (ALICE, "pw")
    with pytest.raises(LookupError, match=r"no user alice@example\.com"):
        getattr(store, action)(*args)


@pytest.mark.parametrize("xui", ["example.com", "sip:example.com", "alice", ""])
def test_add_user_needs_user_and_domain(store: SubscriberStore, xui: str) -> None:
    with pytest.raises(ValueError, match="expected a user@domain"):
        store.add_user(xui, "pw")


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
@pytest.mark.parametrize("username", ["alice", "alice@example.com"])
@pytest.mark.parametrize("cleartext", [False, True], ids=["ha1", "cleartext"])
def test_digest_against_the_subscriber_table(store: SubscriberStore, algorithm: str, username: str, cleartext: bool) -> None:
    store.add_user(ALICE, "s3cret", store_cleartext=cleartext)
    client = Client(Protected(DigestAuthenticator(store, SECRET)))
    challenge = next(c for c in challenges(client.get(ALICE_DOC)) if c["algorithm"] == algorithm)
    good = client.get(ALICE_DOC, headers={"Authorization": digest(challenge, username, "s3cret", ALICE_DOC)})
    bad = client.get(ALICE_DOC, headers={"Authorization": digest(challenge, username, "wrong", ALICE_DOC, nc=2)})
    assert [good.status_code, good.data, bad.status_code] == [200, b"alice@example.com", 401]


def test_existing_kamailio_table_without_sha256_columns_works(db: Database) -> None:
    serial = "INTEGER PRIMARY KEY" if db.backend == "sqlite" else "INT AUTO_INCREMENT PRIMARY KEY"
    kamailio = (f"CREATE TABLE {SUBSCRIBER_TABLE} (id {serial}, username VARCHAR(64) DEFAULT '' NOT NULL,"
                " domain VARCHAR(64) DEFAULT '' NOT NULL, password VARCHAR(64) DEFAULT '' NOT NULL,"
                " ha1 VARCHAR(128) DEFAULT '' NOT NULL, ha1b VARCHAR(128) DEFAULT '' NOT NULL)")
    db.query(kamailio)
    db.query(f"INSERT INTO {SUBSCRIBER_TABLE} (username, domain, ha1, ha1b) VALUES (?, ?, ?, ?)",
             "bob", "example.com", md5("bob:example.com:pw"), md5("bob@example.com:example.com:pw"))
    store = SubscriberStore(db.url, SUBSCRIBER_TABLE)
    store.add_user(ALICE, "s3cret")
    found = store("bob", "example.com")
    assert found is not None and found.check_password("bob", "example.com", "pw")
    assert db.query(f"SELECT username, password, ha1 FROM {SUBSCRIBER_TABLE} ORDER BY username") == [
        ("alice", "", md5("alice:example.com:s3cret")), ("bob", "", md5("bob:example.com:pw"))]
    store.close()


def test_kamailio_sha256_ha1_in_the_ha1_column_is_recognised(db: Database, store: SubscriberStore) -> None:
    store.add_user(ALICE, "unused")
    db.query(f"UPDATE {SUBSCRIBER_TABLE} SET ha1 = ?, ha1_sha256 = '' WHERE username = 'alice'", sha256("alice:example.com:pw"))
    found = store("alice", "example.com")
    assert found is not None
    assert found.ha1_for("SHA-256", "alice", "example.com") == sha256("alice:example.com:pw")
    assert found.ha1_for("MD5", "alice", "example.com") is None


def test_nonce_count_is_shared_between_workers(db: Database) -> None:
    one, two = SQLNonceCounter(db.url, NONCE_TABLE), SQLNonceCounter(db.url, NONCE_TABLE)
    results = [one.advance("n1", 1, 2_000_000_000), two.advance("n1", 1, 2_000_000_000),
               two.advance("n1", 2, 2_000_000_000), one.advance("n1", 2, 2_000_000_000),
               one.advance("n2", 1, 2_000_000_000)]
    assert results == [True, False, True, False, True]
    one.close()
    two.close()


def test_expired_nonce_rows_are_purged(db: Database) -> None:
    now = [2_000_000_000.0]
    counter = SQLNonceCounter(db.url, NONCE_TABLE, clock=lambda: now[0])
    counter.advance("old", 1, int(now[0]) - 1)
    now[0] += 120
    counter.advance("new", 1, int(now[0]) + 300)
    assert db.query(f"SELECT nonce FROM {NONCE_TABLE}") == [("new",)]
    counter.close()
