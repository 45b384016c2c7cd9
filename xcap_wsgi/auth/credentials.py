"""Passwords: Kamailio's ``subscriber`` table, or a callable the integrator passes.

::

    store = SubscriberStore("mysql://kamailio:pw@127.0.0.1/kamailio")   # or sqlite:///xcap.db
    store.add_user("sip:alice@example.com", "s3cret")          # HA1 only (Kamailio's ha1/ha1b)
    store.set_password("sip:alice@example.com", "n3w", store_cleartext=True)
    store.delete_user("sip:alice@example.com")
    store("alice", "example.com")                               # -> Credentials | None

An operator's existing SIP accounts work unchanged: Kamailio's v7 columns are read as
Kamailio writes them (``password`` cleartext when stored, ``ha1`` = H(user:domain:pw),
``ha1b`` = H(user@domain:domain:pw); 32 hex digits are MD5, 64 are SHA-256, which is what
Kamailio's auth module stores when configured with ``algorithm`` SHA-256). A table this
module creates also has ``ha1_sha256``/``ha1b_sha256``, so SHA-256 digest (RFC 7616) works
without a cleartext password; Kamailio ignores those columns.

The integrator's alternative is any ``lookup(user, domain)`` returning the cleartext
password, a :class:`Credentials`, or None for an unknown user.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from xcap_wsgi.auth.base import canonical_identity
from xcap_wsgi.auth.sqldb import SQLTable
from xcap_wsgi.storage import sql

#: RFC 7616 §3.3 / §6.1 algorithm names → hash functions.
HASHES: dict[str, Callable[..., Any]] = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
#: Column → (algorithm or None for "by length", digest username includes @domain).
HA1_COLUMNS: dict[str, tuple[str | None, bool]] = {
    "ha1": (None, False),
    "ha1b": (None, True),
    "ha1_sha256": ("SHA-256", False),
    "ha1b_sha256": ("SHA-256", True),
}
_BY_LENGTH = {32: "MD5", 64: "SHA-256"}
MAX_PASSWORD = 64  # Kamailio's password column
#: Up to two distinct domains of the subscriber table: enough to tell "exactly one" (the
#: global tree's realm, :mod:`xcap_wsgi.auth.realm`) on every backend.
SUBSCRIBER_DOMAINS = "SELECT DISTINCT domain FROM {t} WHERE domain <> '' LIMIT 2"


def hash_hex(algorithm: str, text: str) -> str:
    """H(data) of RFC 7616 §3.4.1: lowercase hex of the named hash of the UTF-8 bytes."""
    return str(HASHES[algorithm](text.encode("utf-8")).hexdigest())


@dataclass(frozen=True)
class Credentials:
    """What is known of one account: the cleartext password (rarely) and/or its HA1s,
    keyed by (algorithm, whether the digest username is ``user@domain``)."""

    password: str = ""
    ha1: Mapping[tuple[str, bool], str] = field(default_factory=dict)

    def ha1_for(self, algorithm: str, username: str, realm: str) -> str | None:
        """HA1 = H(username:realm:password) (RFC 7616 §3.4.2), or None when unknown."""
        if self.password:
            return hash_hex(algorithm, f"{username}:{realm}:{self.password}")
        return self.ha1.get((algorithm, "@" in username))

    def check_password(self, username: str, realm: str, password: str) -> bool:
        """A Basic password (RFC 7617) against the cleartext or any stored HA1."""
        if self.password:
            return hmac.compare_digest(self.password.encode("utf-8"), password.encode("utf-8"))
        return any(
            hmac.compare_digest(hash_hex(alg, f"{username}:{realm}:{password}"), stored)
            for (alg, with_domain), stored in self.ha1.items()
            if with_domain == ("@" in username)
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Credentials:
        """From a subscriber row as Kamailio (or this module) wrote it."""
        hashes: dict[tuple[str, bool], str] = {}
        for column, (algorithm, with_domain) in HA1_COLUMNS.items():
            value = str(row.get(column) or "").strip().lower()
            algorithm = algorithm or _BY_LENGTH.get(len(value))
            if value and algorithm and len(value) == 2 * HASHES[algorithm]().digest_size:
                hashes.setdefault((algorithm, with_domain), value)
        return cls(str(row.get("password") or ""), hashes)


#: The integrator's password source: cleartext, Credentials, or None (unknown user).
CredentialLookup = Callable[[str, str], "Credentials | str | None"]


def as_credentials(found: Credentials | str | None) -> Credentials | None:
    if found is None or isinstance(found, Credentials):
        return found
    return Credentials(password=found) if found else None


def account_columns(user: str, domain: str, password: str, store_cleartext: bool) -> dict[str, str]:
    """Every credential column for a new password: Kamailio's MD5 ``ha1``/``ha1b``, the
    SHA-256 pair, and ``password`` (cleartext only when asked, else emptied)."""
    if len(password) > MAX_PASSWORD and store_cleartext:
        raise ValueError(f"a cleartext password is stored in at most {MAX_PASSWORD} characters")
    columns = {"password": password if store_cleartext else ""}
    for column, (algorithm, with_domain) in HA1_COLUMNS.items():
        username = f"{user}@{domain}" if with_domain else user
        columns[column] = hash_hex(algorithm or "MD5", f"{username}:{domain}:{password}")
    return columns


def parse_account(xui: str) -> tuple[str, str]:
    """``sip:alice@example.com`` (or ``alice@example.com``) → canonical (user, domain)."""
    user, domain = canonical_identity(xui)
    if not user or not domain:
        raise ValueError(f"expected a user@domain or sip:user@domain identity, got {xui!r}")
    return user, domain


class SubscriberStore:
    """Kamailio's ``subscriber`` table (created with its ``version`` row when missing)."""

    def __init__(self, db_url: str, table: str = "subscriber") -> None:
        self.db = SQLTable(db_url, table, _create_subscriber)
        self._columns: frozenset[str] | None = None

    def __call__(self, user: str, domain: str) -> Credentials | None:
        return self.db.run(self._lookup, user, domain)

    def _lookup(self, cursor: Any, user: str, domain: str) -> Credentials | None:
        cursor.execute(self.db.sql(sql.SUBSCRIBER_SELECT), (user, domain))
        row = cursor.fetchone()
        if row is None:
            return None
        return Credentials.from_row({d[0].lower(): v for d, v in zip(cursor.description, row, strict=True)})

    def domains(self) -> list[str]:
        """At most two of the table's domains (CHAR padding stripped, OpenSIPS's columns)."""
        return self.db.run(self._domains)

    def _domains(self, cursor: Any) -> list[str]:
        cursor.execute(self.db.sql(SUBSCRIBER_DOMAINS))
        return [str(row[0]).strip() for row in cursor.fetchall()]

    def add_user(self, xui: str, password: str, store_cleartext: bool = False) -> None:
        """Create the account (ValueError if it exists). Stores HA1s; cleartext only if asked."""
        user, domain = parse_account(xui)
        self.db.run(self._insert, user, domain, account_columns(user, domain, password, store_cleartext))

    def set_password(self, xui: str, password: str, store_cleartext: bool = False) -> None:
        """Replace the password of an existing account (LookupError if unknown)."""
        user, domain = parse_account(xui)
        self.db.run(self._update, user, domain, account_columns(user, domain, password, store_cleartext))

    def delete_user(self, xui: str) -> None:
        """Remove the account (LookupError if unknown)."""
        user, domain = parse_account(xui)
        self.db.run(self._delete, user, domain)

    def _insert(self, cursor: Any, user: str, domain: str, values: dict[str, str]) -> None:
        cursor.execute(self.db.sql(sql.SUBSCRIBER_SELECT), (user, domain))
        if cursor.fetchone() is not None:
            raise ValueError(f"user {user}@{domain} already exists")
        values = {"username": user, "domain": domain, **self._existing(cursor, values)}
        p = self.db.storage.placeholder
        cursor.execute(self.db.sql(sql.SUBSCRIBER_INSERT, columns=", ".join(values), values=", ".join([p] * len(values))),
                       tuple(values.values()))

    def _update(self, cursor: Any, user: str, domain: str, values: dict[str, str]) -> None:
        values = self._existing(cursor, values)
        assignments = ", ".join(f"{column} = {self.db.storage.placeholder}" for column in values)
        cursor.execute(self.db.sql(sql.SUBSCRIBER_UPDATE, assignments=assignments), (*values.values(), user, domain))
        if cursor.rowcount == 0:  # MySQL counts changed rows: the same password changes none
            cursor.execute(self.db.sql(sql.SUBSCRIBER_SELECT), (user, domain))
            _require_row(cursor.fetchone(), user, domain)

    def _delete(self, cursor: Any, user: str, domain: str) -> None:
        cursor.execute(self.db.sql(sql.SUBSCRIBER_DELETE), (user, domain))
        _require_row(cursor.rowcount or None, user, domain)

    def _existing(self, cursor: Any, values: dict[str, str]) -> dict[str, str]:
        """Only the credential columns this table has (an operator's Kamailio table may
        lack the SHA-256 pair); names come from :data:`HA1_COLUMNS`, never from input."""
        if self._columns is None:
            cursor.execute(self.db.sql(sql.SUBSCRIBER_COLUMNS))
            cursor.fetchall()
            self._columns = frozenset(d[0].lower() for d in cursor.description)
        return {column: value for column, value in values.items() if column in self._columns}

    def close(self) -> None:
        self.db.close()


def _require_row(found: Any, user: str, domain: str) -> None:
    if found is None:
        raise LookupError(f"no user {user}@{domain}")


def _create_subscriber(db: SQLTable, cursor: Any) -> None:
    """Kamailio's v7 table and its ``version`` row, only when missing (never altered)."""
    if db.mysql:
        cursor.execute(db.sql(sql.MYSQL_CREATE_SUBSCRIBER))
        cursor.execute(sql.MYSQL_CREATE_VERSION)
    else:
        cursor.execute(db.sql(sql.SQLITE_CREATE_SUBSCRIBER))
        cursor.execute(db.sql(sql.SQLITE_SUBSCRIBER_INDEX))
        cursor.execute(sql.SQLITE_CREATE_VERSION)
    version = sql.SELECT_VERSION.format(p=db.storage.placeholder)
    cursor.execute(version, (db.table,))
    if cursor.fetchone() is None:
        cursor.execute(sql.INSERT_VERSION.format(p=db.storage.placeholder), (db.table, sql.SUBSCRIBER_TABLE_VERSION))
