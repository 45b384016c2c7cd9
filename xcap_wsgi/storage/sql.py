"""Every SQL statement of the storage backends, in one place.

``{t}`` is the validated, quoted table name; ``{p}`` the driver's placeholder. The
table is Kamailio's ``xcap`` version 4 (kamailio-compat.md), identical on both backends.
"""

from __future__ import annotations

SELECT_DOC = "SELECT doc, etag FROM {t} WHERE doc_uri = {p}"
SELECT_DOC_FOR_UPDATE = SELECT_DOC + " FOR UPDATE"
SELECT_BY_TYPE = "SELECT doc_uri, doc FROM {t} WHERE doc_type = {p} ORDER BY doc_uri"
SELECT_OWNED = "SELECT doc_uri, etag, LENGTH(doc) FROM {t} WHERE username = {p} AND domain = {p} ORDER BY doc_uri"
INSERT_DOC = (
    "INSERT INTO {t} (username, domain, doc, doc_type, etag, source, doc_uri, port)"
    " VALUES ({p}, {p}, {p}, {p}, {p}, 0, {p}, 0)"
)
UPDATE_DOC = "UPDATE {t} SET doc = {p}, etag = {p}, username = {p}, domain = {p}, doc_type = {p} WHERE doc_uri = {p}"
DELETE_DOC = "DELETE FROM {t} WHERE doc_uri = {p}"

SELECT_VERSION = "SELECT table_version FROM version WHERE table_name = {p}"
INSERT_VERSION = "INSERT INTO version (table_name, table_version) VALUES ({p}, {p})"

_COLUMNS = """
    username VARCHAR(64) NOT NULL,
    domain VARCHAR(64) NOT NULL,
    doc MEDIUMBLOB NOT NULL,
    doc_type INT(11) NOT NULL,
    etag VARCHAR(128) NOT NULL,
    source INT(11) NOT NULL,
    doc_uri VARCHAR(255) NOT NULL,
    port INT(11) NOT NULL"""

INDEXES = (
    "CREATE INDEX {n}account_doc_type_idx ON {t} (username, domain, doc_type)",
    "CREATE INDEX {n}account_doc_type_uri_idx ON {t} (username, domain, doc_type, doc_uri)",
    "CREATE INDEX {n}account_doc_uri_idx ON {t} (username, domain, doc_uri)",
)

MYSQL_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS {t} (\n    id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,"
    + _COLUMNS
    + ",\n    CONSTRAINT doc_uri_idx UNIQUE (doc_uri)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
)
MYSQL_CREATE_VERSION = (
    "CREATE TABLE IF NOT EXISTS version (table_name VARCHAR(32) NOT NULL,"
    " table_version INT UNSIGNED DEFAULT 0 NOT NULL, CONSTRAINT t_idx UNIQUE (table_name))"
    " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
)
MYSQL_TABLE_EXISTS = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s"

SQLITE_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS {t} (\n    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
    + _COLUMNS
    + ",\n    CONSTRAINT {n}doc_uri_idx UNIQUE (doc_uri)\n)"
)
SQLITE_CREATE_VERSION = (
    "CREATE TABLE IF NOT EXISTS version (table_name VARCHAR(32) NOT NULL,"
    " table_version INTEGER DEFAULT 0 NOT NULL, CONSTRAINT t_idx UNIQUE (table_name))"
)
SQLITE_TABLE_EXISTS = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
