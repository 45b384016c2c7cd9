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

# Export and import (xcap_wsgi.transfer): every row as stored, a batch at a time in id order
# (every xcap table has the auto-increment ``id``: Kamailio's, OpenXCAP's, ours).
DUMP_BATCH = 500
SELECT_DUMP = (
    f"SELECT id, doc_uri, username, domain, doc_type, etag, doc FROM {{t}} WHERE id > {{p}} ORDER BY id LIMIT {DUMP_BATCH}"
)

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
MYSQL_DOC_URI_COLLATION = (
    "SELECT collation_name FROM information_schema.columns"
    " WHERE table_schema = DATABASE() AND table_name = %s AND column_name = 'doc_uri'"
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

# -- authentication (xcap_wsgi.auth): Kamailio's ``subscriber`` table and the nonce counts --
#
# ``subscriber`` is Kamailio's version 7 layout (username, domain, password, ha1, ha1b; unique
# on username+domain) plus two optional SHA-256 HA1 columns that Kamailio ignores. Columns
# are written by name, so an existing Kamailio table without them works too.

SUBSCRIBER_TABLE_VERSION = 7
SUBSCRIBER_SELECT = "SELECT * FROM {t} WHERE username = {p} AND domain = {p}"
SUBSCRIBER_COLUMNS = "SELECT * FROM {t} WHERE 1 = 0"
SUBSCRIBER_INSERT = "INSERT INTO {t} ({columns}) VALUES ({values})"
SUBSCRIBER_UPDATE = "UPDATE {t} SET {assignments} WHERE username = {p} AND domain = {p}"
SUBSCRIBER_DELETE = "DELETE FROM {t} WHERE username = {p} AND domain = {p}"

_SUBSCRIBER_COLUMNS = """
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT '' NOT NULL,
    password VARCHAR(64) DEFAULT '' NOT NULL,
    ha1 VARCHAR(128) DEFAULT '' NOT NULL,
    ha1b VARCHAR(128) DEFAULT '' NOT NULL,
    ha1_sha256 VARCHAR(64) DEFAULT '' NOT NULL,
    ha1b_sha256 VARCHAR(64) DEFAULT '' NOT NULL"""

MYSQL_CREATE_SUBSCRIBER = (
    "CREATE TABLE IF NOT EXISTS {t} (\n    id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,"
    + _SUBSCRIBER_COLUMNS
    + ",\n    CONSTRAINT account_idx UNIQUE (username, domain),\n    INDEX username_idx (username)\n)"
    " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
)
SQLITE_CREATE_SUBSCRIBER = (
    "CREATE TABLE IF NOT EXISTS {t} (\n    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,"
    + _SUBSCRIBER_COLUMNS
    + ",\n    CONSTRAINT {n}account_idx UNIQUE (username, domain)\n)"
)
SQLITE_SUBSCRIBER_INDEX = "CREATE INDEX IF NOT EXISTS {n}username_idx ON {t} (username)"

# One row per digest nonce in use: the highest nonce-count accepted (RFC 7616 §3.4).
# The upserts change a row only when the new count is higher, so "rows affected" is the
# answer, atomically, for every worker process sharing the database.
MYSQL_CREATE_NONCE = (
    "CREATE TABLE IF NOT EXISTS {t} (nonce VARCHAR(64) NOT NULL PRIMARY KEY, nc BIGINT NOT NULL,"
    " expires BIGINT NOT NULL, INDEX expires_idx (expires)) ENGINE=InnoDB DEFAULT CHARSET=ascii"
)
SQLITE_CREATE_NONCE = (
    "CREATE TABLE IF NOT EXISTS {t} (nonce VARCHAR(64) NOT NULL PRIMARY KEY, nc BIGINT NOT NULL, expires BIGINT NOT NULL)"
)
SQLITE_NONCE_INDEX = "CREATE INDEX IF NOT EXISTS {n}expires_idx ON {t} (expires)"
MYSQL_NONCE_ADVANCE = (
    "INSERT INTO {t} (nonce, nc, expires) VALUES (%s, %s, %s)"
    " ON DUPLICATE KEY UPDATE nc = IF(nc < VALUES(nc), VALUES(nc), nc)"
)
SQLITE_NONCE_ADVANCE = (
    "INSERT INTO {t} (nonce, nc, expires) VALUES (?, ?, ?)"
    " ON CONFLICT (nonce) DO UPDATE SET nc = excluded.nc WHERE {t}.nc < excluded.nc"
)
NONCE_PURGE = "DELETE FROM {t} WHERE expires < {p}"

# -- the notifier's outbox (xcap_wsgi.notify): one row per change event and target ----------
#
# ``{o}`` is the outbox table, ``{l}`` its lease table (which process delivers to a target).
# Rows are written in the transaction that changes the document; the delivering process
# deletes a row once its target has it, or marks it failed (status 1) after the last attempt.

OUTBOX_PENDING, OUTBOX_FAILED = 0, 1
OUTBOX_INSERT = (
    "INSERT INTO {o} (sink, doc_uri, event, status, attempts, next_attempt, created, error)"
    " VALUES ({p}, {p}, {p}, 0, 0, {p}, {p}, '')"
)
OUTBOX_SELECT_PENDING = (
    "SELECT id, doc_uri, event, attempts, next_attempt FROM {o} WHERE sink = {p} AND status = 0 ORDER BY id LIMIT {limit}"
)
OUTBOX_DELETE = "DELETE FROM {o} WHERE id IN ({ids})"
OUTBOX_RETRY = "UPDATE {o} SET attempts = {p}, next_attempt = {p}, error = {p} WHERE id IN ({ids})"
OUTBOX_FAIL = "UPDATE {o} SET status = 1, attempts = {p}, error = {p} WHERE id IN ({ids})"
OUTBOX_BACKLOG = "SELECT sink, status, COUNT(*), MIN(created) FROM {o} GROUP BY sink, status"
OUTBOX_PRUNE_FAILED = "DELETE FROM {o} WHERE status = 1 AND created < {p}"
LEASE_TAKE = "UPDATE {l} SET owner = {p}, expires = {p} WHERE name = {p} AND (owner = {p} OR expires < {p})"
LEASE_STEAL = "UPDATE {l} SET owner = {p}, expires = {p} WHERE name = {p} AND owner = {p}"
LEASE_READ = "SELECT owner, expires FROM {l} WHERE name = {p}"
LEASE_RELEASE = "UPDATE {l} SET expires = 0 WHERE name = {p} AND owner = {p}"

_OUTBOX_COLUMNS = """
    sink VARCHAR(255) NOT NULL,
    doc_uri VARCHAR(255) NOT NULL,
    event MEDIUMTEXT NOT NULL,
    status SMALLINT NOT NULL,
    attempts INT NOT NULL,
    next_attempt DOUBLE PRECISION NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    error VARCHAR(255) NOT NULL"""
_LEASE_COLUMNS = "name VARCHAR(255) NOT NULL PRIMARY KEY, owner VARCHAR(128) NOT NULL, expires DOUBLE PRECISION NOT NULL"

MYSQL_CREATE_OUTBOX = (
    "CREATE TABLE IF NOT EXISTS {o} (\n    id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,"
    + _OUTBOX_COLUMNS
    + ",\n    INDEX sink_status_idx (sink, status, id)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
)
MYSQL_CREATE_LEASE = (
    f"CREATE TABLE IF NOT EXISTS {{l}} ({_LEASE_COLUMNS}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
)
MYSQL_LEASE_INSERT = "INSERT IGNORE INTO {l} (name, owner, expires) VALUES (%s, '', 0)"

SQLITE_CREATE_OUTBOX = (
    "CREATE TABLE IF NOT EXISTS {o} (\n    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL," + _OUTBOX_COLUMNS + "\n)"
)
SQLITE_OUTBOX_INDEX = "CREATE INDEX IF NOT EXISTS {n}sink_status_idx ON {o} (sink, status, id)"
SQLITE_CREATE_LEASE = f"CREATE TABLE IF NOT EXISTS {{l}} ({_LEASE_COLUMNS})"
SQLITE_LEASE_INSERT = "INSERT OR IGNORE INTO {l} (name, owner, expires) VALUES (?, '', 0)"

# -- the rls-services service index (xcap_wsgi.storage.services): RS3, RS6 -------------------
#
# ``{s}`` holds each service of every rls-services document (``{k}`` = its doc_type, 8): the
# SHA-256 of its percent-decoded URI (``uri_hash``), the document's doc_uri and etag, the
# position in the document, the URI itself and the standalone ``<service>`` element the global
# index copies. The key is (uri_hash, duplicate): ``duplicate`` is 0 in the one row holding the
# URI, so two documents taking one URI at once cannot both commit (RS3), and a number of its
# own in a row repeating a URI held already (another program's documents, imported or
# reindexed). A lookup by URI reads one place of that key (MySQL: the table's clustered
# index). ``{d}`` holds the (doc_uri, etag) indexed for each document, so a document another
# program wrote or changed shows as a row of ``{t}`` without its twin. Rows of a document gone
# from ``{t}`` never count (the lookups join ``{t}``) and are dropped by doc_uri and etag, so a
# writer re-creating the document meanwhile keeps its new rows. ``{m}`` is a list of placeholders.

SERVICES_DELETE = "DELETE FROM {s} WHERE doc_uri = {p}"
SERVICES_DELETE_DOCUMENT = "DELETE FROM {d} WHERE doc_uri = {p}"
SERVICES_DROP_VERSION = "DELETE FROM {s} WHERE doc_uri = {p} AND etag = {p}", "DELETE FROM {d} WHERE doc_uri = {p} AND etag = {p}"
SERVICES_CLEAR = "DELETE FROM {s}", "DELETE FROM {d}"
SERVICES_INSERT = (
    "INSERT INTO {s} (uri_hash, duplicate, doc_uri, etag, position, uri, service) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})"
)
SERVICES_INSERT_DOCUMENT = "INSERT INTO {d} (doc_uri, etag) VALUES ({p}, {p})"
SERVICES_HOLDERS = (
    "SELECT s.uri_hash, s.duplicate, s.doc_uri, s.etag, x.doc_uri FROM {s} s"
    " LEFT JOIN {t} x ON x.doc_uri = s.doc_uri AND x.doc_type = {k} WHERE s.uri_hash IN ({m})"
)
SERVICES_TAKEN = (
    "SELECT DISTINCT s.uri_hash FROM {s} s JOIN {t} x ON x.doc_uri = s.doc_uri AND x.doc_type = {k}"
    " WHERE s.uri_hash IN ({m}) AND s.doc_uri <> {p}"
)
# the global index: every row as stored (MySQL: in key order, one pass), kept when its document is
SERVICES_LISTING = "SELECT doc_uri, position, service FROM {s}"
SERVICES_STORED = "SELECT d.doc_uri FROM {d} d JOIN {t} x ON x.doc_uri = d.doc_uri AND x.doc_type = {k}"
SERVICES_UNINDEXED = (
    "SELECT COUNT(*) FROM {t} x LEFT JOIN {d} d ON d.doc_uri = x.doc_uri AND d.etag = x.etag"
    " WHERE x.doc_type = {k} AND d.doc_uri IS NULL"
)
SERVICES_GONE = (
    "SELECT d.doc_uri, d.etag FROM {d} d LEFT JOIN {t} x ON x.doc_uri = d.doc_uri AND x.doc_type = {k} WHERE x.doc_uri IS NULL"
)
SERVICES_SOURCE = f"SELECT id, doc_uri, etag, doc FROM {{t}} WHERE doc_type = {{k}} AND id > {{p}} ORDER BY id LIMIT {DUMP_BATCH}"

_SERVICES_COLUMNS = """
    uri_hash CHAR(64){ascii} NOT NULL,
    duplicate BIGINT NOT NULL,
    doc_uri VARCHAR(255){doc_uri} NOT NULL,
    etag VARCHAR(128){etag} NOT NULL,
    position INTEGER NOT NULL,
    uri TEXT NOT NULL,
    service {blob} NOT NULL,
    PRIMARY KEY (uri_hash, duplicate)"""
_SERVICE_DOCUMENTS_COLUMNS = "doc_uri VARCHAR(255){doc_uri} NOT NULL PRIMARY KEY, etag VARCHAR(128){etag} NOT NULL"

MYSQL_CREATE_SERVICES = (
    "CREATE TABLE IF NOT EXISTS {s} ("
    + _SERVICES_COLUMNS.replace("{ascii}", " CHARACTER SET ascii COLLATE ascii_bin").replace("{blob}", "MEDIUMBLOB")
    + ",\n    INDEX doc_uri_idx (doc_uri, position)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
)
MYSQL_CREATE_SERVICE_DOCUMENTS = (
    f"CREATE TABLE IF NOT EXISTS {{d}} ({_SERVICE_DOCUMENTS_COLUMNS}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
)
#: the character set and collation of the columns the index joins on (they must be the xcap table's)
MYSQL_JOIN_COLUMNS = (
    "SELECT table_name, column_name, character_set_name, collation_name, character_maximum_length"
    " FROM information_schema.columns WHERE table_schema = DATABASE() AND table_name IN (%s, %s, %s)"
    " AND column_name IN ('doc_uri', 'etag')"
)
MYSQL_ALTER_JOIN_COLUMN = (
    "ALTER TABLE {table} MODIFY {column} VARCHAR({length}) CHARACTER SET {charset} COLLATE {collation} NOT NULL"
)

def _plain(template: str) -> str:
    """A MySQL column list without its character set options, for SQLite."""
    return template.replace("{ascii}", "").replace("{doc_uri}", "").replace("{etag}", "").replace("{blob}", "BLOB")


SQLITE_CREATE_SERVICES = "CREATE TABLE IF NOT EXISTS {s} (" + _plain(_SERVICES_COLUMNS) + "\n)"
SQLITE_SERVICES_INDEX = "CREATE INDEX IF NOT EXISTS {n}rls_doc_uri_idx ON {s} (doc_uri, position)"
SQLITE_CREATE_SERVICE_DOCUMENTS = f"CREATE TABLE IF NOT EXISTS {{d}} ({_plain(_SERVICE_DOCUMENTS_COLUMNS)})"
