"""Every SQL statement of the storage backends, in one place.

``{t}`` is the validated, quoted table name; ``{p}`` the driver's placeholder; ``{where}`` the
condition naming one row by the dialect's unique key (:attr:`.dialects.Dialect.where`); ``{n}``
the prefix that keeps index names apart where they are global per database (SQLite,
PostgreSQL). The table is Kamailio's or OpenSIPS's ``xcap`` version 4 (table-dialects.md).
Backends are ``mysql``, ``sqlite`` and ``postgresql``; statements that differ between them
are dicts keyed by backend (and dialect).
"""

from __future__ import annotations

#: a row by doc_uri alone, for a caller that knows nothing else (indexed in Kamailio's layout only)
SELECT_DOC = "SELECT doc, etag FROM {t} WHERE doc_uri = {p}"
SELECT_ROW = "SELECT doc, etag FROM {t} WHERE {where}"
#: ``{by_uri}``: doc_uri in code point order (PostgreSQL would follow the database's locale)
BY_URI = {"mysql": "doc_uri", "sqlite": "doc_uri", "postgresql": 'doc_uri COLLATE "C"'}
SELECT_BY_TYPE = "SELECT doc_uri, doc FROM {t} WHERE doc_type = {p} ORDER BY {by_uri}"
SELECT_OWNED = "SELECT doc_uri, etag, LENGTH(doc) FROM {t} WHERE username = {p} AND domain = {p} ORDER BY {by_uri}"
INSERT_DOC = (
    "INSERT INTO {t} (username, domain, doc, doc_type, etag, source, doc_uri, port)"
    " VALUES ({p}, {p}, {p}, {p}, {p}, 0, {p}, 0)"
)
UPDATE_ROW = "UPDATE {t} SET doc = {p}, etag = {p}, username = {p}, domain = {p}, doc_type = {p} WHERE {where}"
#: Kamailio's own way of deleting a document (the tests write behind xcap-wsgi's back with it)
DELETE_DOC = "DELETE FROM {t} WHERE doc_uri = {p}"
DELETE_ROW = "DELETE FROM {t} WHERE {where}"
#: the row lock of a write: MySQL and PostgreSQL lock the row; SQLite's BEGIN IMMEDIATE locked the file
LOCK_ROW = {"mysql": SELECT_ROW + " FOR UPDATE", "postgresql": SELECT_ROW + " FOR UPDATE", "sqlite": SELECT_ROW}

# Export and import (xcap_wsgi.transfer): every row as stored, a batch at a time in id order
# (every xcap table has the auto-increment ``id``: Kamailio's, OpenSIPS's, OpenXCAP's, ours).
DUMP_BATCH = 500
SELECT_DUMP = (
    f"SELECT id, doc_uri, username, domain, doc_type, etag, doc FROM {{t}} WHERE id > {{p}} ORDER BY id LIMIT {DUMP_BATCH}"
)

SELECT_VERSION = "SELECT table_version FROM version WHERE table_name = {p}"
INSERT_VERSION = "INSERT INTO version (table_name, table_version) VALUES ({p}, {p})"

# -- the xcap table in each dialect (table-dialects.md §1) ------------------------------------
#
# Columns and keys as kamdbctl and opensips-cli create them. On MySQL, xcap-wsgi's own tables
# also name the utf8mb4_bin collation (paths are case-sensitive; an upstream table takes the
# server's default, which MySQLStorage warns about).

_KAMAILIO_COLUMNS = """
    username VARCHAR(64) NOT NULL,
    domain VARCHAR(64) NOT NULL,
    doc {blob} NOT NULL,
    doc_type {int} NOT NULL,
    etag VARCHAR(128) NOT NULL,
    source {int} NOT NULL,
    doc_uri VARCHAR(255) NOT NULL,
    port {int} NOT NULL"""
_OPENSIPS_COLUMNS = """
    username {char}(64) NOT NULL,
    domain {char}(64) NOT NULL,
    doc {blob} NOT NULL,
    doc_type {int} NOT NULL,
    etag {char}(64) NOT NULL,
    source {int} NOT NULL,
    doc_uri {char}(255) NOT NULL,
    port {int} NOT NULL"""
_UNIQUE = {"kamailio": "CONSTRAINT {n}doc_uri_idx UNIQUE (doc_uri)",
           "opensips": "CONSTRAINT {n}account_doc_type_idx UNIQUE (username, domain, doc_type, doc_uri)"}
_ID = {"mysql": "id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL",
       "sqlite": "id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL", "postgresql": "id SERIAL PRIMARY KEY NOT NULL"}
_TYPES = {"mysql": {"int": "INT(11)", "char": "CHAR"}, "sqlite": {"int": "INT(11)", "char": "CHAR"},
          "postgresql": {"int": "INTEGER", "char": "VARCHAR"}}
_BLOB = {("mysql", "kamailio"): "MEDIUMBLOB", ("mysql", "opensips"): "LONGBLOB", ("sqlite", "kamailio"): "MEDIUMBLOB",
         ("sqlite", "opensips"): "LONGBLOB", ("postgresql", "kamailio"): "BYTEA", ("postgresql", "opensips"): "BYTEA"}
_TABLE_OPTIONS = {"mysql": " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin", "sqlite": "", "postgresql": ""}


def create_table(backend: str, dialect: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` of the xcap table in ``dialect``'s layout on ``backend``."""
    columns = (_KAMAILIO_COLUMNS if dialect == "kamailio" else _OPENSIPS_COLUMNS).format(
        blob=_BLOB[backend, dialect], **_TYPES[backend])
    return (f"CREATE TABLE IF NOT EXISTS {{t}} (\n    {_ID[backend]},{columns},\n    {_UNIQUE[dialect]}\n)"
            + _TABLE_OPTIONS[backend])


#: the non-unique indexes of each layout; SQLite and PostgreSQL create them ``IF NOT EXISTS``,
#: MySQL ignores "duplicate key name" (another process created them first)
INDEXES = {
    "kamailio": (
        "CREATE INDEX {n}account_doc_type_idx ON {t} (username, domain, doc_type)",
        "CREATE INDEX {n}account_doc_type_uri_idx ON {t} (username, domain, doc_type, doc_uri)",
        "CREATE INDEX {n}account_doc_uri_idx ON {t} (username, domain, doc_uri)",
    ),
    "opensips": ("CREATE INDEX {n}source_idx ON {t} (source)",),
}
#: OpenSIPS's PostgreSQL ids wrap as its C code expects (a 32-bit int)
POSTGRESQL_OPENSIPS_SEQUENCE = "ALTER SEQUENCE {q} MAXVALUE 2147483647 CYCLE"

#: the ``version`` table, when missing, as the dialect's own tools create it (table-dialects.md §2)
CREATE_VERSION = {
    ("mysql", "kamailio"): "CREATE TABLE IF NOT EXISTS version (id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,"
                           " table_name VARCHAR(32) NOT NULL, table_version INT UNSIGNED DEFAULT 0 NOT NULL,"
                           " CONSTRAINT table_name_idx UNIQUE (table_name)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
    ("mysql", "opensips"): "CREATE TABLE IF NOT EXISTS version (table_name CHAR(32) NOT NULL,"
                           " table_version INT UNSIGNED DEFAULT 0 NOT NULL, CONSTRAINT t_name_idx UNIQUE (table_name))"
                           " ENGINE=InnoDB",
    ("sqlite", "kamailio"): "CREATE TABLE IF NOT EXISTS version (table_name VARCHAR(32) NOT NULL,"
                            " table_version INTEGER DEFAULT 0 NOT NULL, CONSTRAINT t_idx UNIQUE (table_name))",
    ("sqlite", "opensips"): "CREATE TABLE IF NOT EXISTS version (table_name CHAR(32) NOT NULL,"
                            " table_version INTEGER DEFAULT 0 NOT NULL, CONSTRAINT t_name_idx UNIQUE (table_name))",
    ("postgresql", "kamailio"): "CREATE TABLE IF NOT EXISTS version (id SERIAL PRIMARY KEY NOT NULL,"
                                " table_name VARCHAR(32) NOT NULL, table_version INTEGER DEFAULT 0 NOT NULL,"
                                " CONSTRAINT version_table_name_idx UNIQUE (table_name))",
    ("postgresql", "opensips"): "CREATE TABLE IF NOT EXISTS version (table_name VARCHAR(32) NOT NULL,"
                                " table_version INTEGER DEFAULT 0 NOT NULL,"
                                " CONSTRAINT version_t_name_idx UNIQUE (table_name))",
}
MYSQL_CREATE_VERSION = CREATE_VERSION["mysql", "kamailio"]
SQLITE_CREATE_VERSION = CREATE_VERSION["sqlite", "kamailio"]

TABLE_EXISTS = {
    "mysql": "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s",
    "sqlite": "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
    "postgresql": "SELECT COUNT(*) FROM pg_class WHERE oid = to_regclass(%s) AND relkind IN ('r', 'p')",
}
MYSQL_TABLE_EXISTS = TABLE_EXISTS["mysql"]
SQLITE_TABLE_EXISTS = TABLE_EXISTS["sqlite"]

#: (key name, column, position) of each unique, non-primary key of a table (table-dialects.md §4)
UNIQUE_KEYS = {
    "mysql": "SELECT index_name, column_name, seq_in_index FROM information_schema.statistics"
             " WHERE table_schema = DATABASE() AND table_name = %s AND non_unique = 0 AND index_name <> 'PRIMARY'",
    "postgresql": "SELECT i.relname, a.attname, k.ord FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
                  " CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord)"
                  " JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum"
                  " WHERE x.indrelid = to_regclass(%s) AND x.indisunique AND NOT x.indisprimary",
    # SQLite: PRAGMA index_list / index_info (sqlite.py), which take no parameters
}

MYSQL_DOC_URI_COLLATION = (
    "SELECT collation_name FROM information_schema.columns"
    " WHERE table_schema = DATABASE() AND table_name = %s AND column_name = 'doc_uri'"
)

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

# PostgreSQL runs SQLite's subscriber and nonce statements (auth/sqldb.py), but for these:
POSTGRESQL_CREATE_SUBSCRIBER = SQLITE_CREATE_SUBSCRIBER.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "SERIAL PRIMARY KEY")
POSTGRESQL_NONCE_ADVANCE = SQLITE_NONCE_ADVANCE.replace("?", "%s")
POSTGRESQL_INSTEAD_OF_SQLITE = {
    SQLITE_CREATE_SUBSCRIBER: POSTGRESQL_CREATE_SUBSCRIBER,
    SQLITE_NONCE_ADVANCE: POSTGRESQL_NONCE_ADVANCE,
    SQLITE_CREATE_VERSION: CREATE_VERSION["postgresql", "kamailio"],
}

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

#: each backend's statements creating the outbox and lease tables, and taking a lease row
CREATE_OUTBOX = {
    "mysql": (MYSQL_CREATE_OUTBOX, MYSQL_CREATE_LEASE),
    "sqlite": (SQLITE_CREATE_OUTBOX, SQLITE_OUTBOX_INDEX, SQLITE_CREATE_LEASE),
    "postgresql": ("CREATE TABLE IF NOT EXISTS {o} (\n    id BIGSERIAL PRIMARY KEY NOT NULL,"
                   + _OUTBOX_COLUMNS.replace("MEDIUMTEXT", "TEXT") + "\n)", SQLITE_OUTBOX_INDEX, SQLITE_CREATE_LEASE),
}
LEASE_INSERT = {
    "mysql": MYSQL_LEASE_INSERT,
    "sqlite": SQLITE_LEASE_INSERT,
    "postgresql": "INSERT INTO {l} (name, owner, expires) VALUES (%s, '', 0) ON CONFLICT (name) DO NOTHING",
}

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

# ``{oc}``/``{ov}`` add the owner columns (username, domain) and ``{js}``/``{jd}`` join the xcap row
# ``x`` by the dialect's unique key (:meth:`.dialects.Dialect.join`): in OpenSIPS's layout, where
# doc_uri alone is not indexed, the index rows carry the owner so each join is one index probe.

SERVICES_DELETE = "DELETE FROM {s} WHERE doc_uri = {p}"
SERVICES_DELETE_DOCUMENT = "DELETE FROM {d} WHERE doc_uri = {p}"
SERVICES_DROP_VERSION = "DELETE FROM {s} WHERE doc_uri = {p} AND etag = {p}", "DELETE FROM {d} WHERE doc_uri = {p} AND etag = {p}"
SERVICES_CLEAR = "DELETE FROM {s}", "DELETE FROM {d}"
SERVICES_INSERT = (
    "INSERT INTO {s} (uri_hash, duplicate, doc_uri, etag, position, uri, service{oc})"
    " VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}{ov})"
)
SERVICES_INSERT_DOCUMENT = "INSERT INTO {d} (doc_uri, etag{oc}) VALUES ({p}, {p}{ov})"
SERVICES_HOLDERS = (
    "SELECT s.uri_hash, s.duplicate, s.doc_uri, s.etag, x.doc_uri FROM {s} s"
    " LEFT JOIN {t} x ON {js} WHERE s.uri_hash IN ({m})"
)
SERVICES_TAKEN = "SELECT DISTINCT s.uri_hash FROM {s} s JOIN {t} x ON {js} WHERE s.uri_hash IN ({m}) AND s.doc_uri <> {p}"
# the global index: every row as stored (MySQL: in key order, one pass), kept when its document is
SERVICES_LISTING = "SELECT doc_uri, position, service FROM {s}"
SERVICES_STORED = "SELECT d.doc_uri FROM {d} d JOIN {t} x ON {jd}"
SERVICES_UNINDEXED = (
    "SELECT COUNT(*) FROM {t} x LEFT JOIN {d} d ON d.doc_uri = x.doc_uri AND d.etag = x.etag"
    " WHERE x.doc_type = {k} AND d.doc_uri IS NULL"
)
SERVICES_GONE = "SELECT d.doc_uri, d.etag FROM {d} d LEFT JOIN {t} x ON {jd} WHERE x.doc_uri IS NULL"
SERVICES_SOURCE = (
    f"SELECT id, doc_uri, etag, doc, username, domain FROM {{t}} WHERE doc_type = {{k}} AND id > {{p}}"
    f" ORDER BY id LIMIT {DUMP_BATCH}"
)
#: the owner columns of the index tables in OpenSIPS's layout (``{owner}`` in their DDL; on MySQL
#: in the xcap table's character set and collation, as doc_uri)
SERVICES_OWNER_COLUMNS = "\n    username VARCHAR(64){username} NOT NULL,\n    domain VARCHAR(64){domain} NOT NULL,"

_SERVICES_COLUMNS = """
    uri_hash CHAR(64){ascii} NOT NULL,
    duplicate BIGINT NOT NULL,
    doc_uri VARCHAR(255){doc_uri} NOT NULL,
    etag VARCHAR(128){etag} NOT NULL,{owner}
    position INTEGER NOT NULL,
    uri TEXT NOT NULL,
    service {blob} NOT NULL,
    PRIMARY KEY (uri_hash, duplicate)"""
_SERVICE_DOCUMENTS_COLUMNS = "doc_uri VARCHAR(255){doc_uri} NOT NULL PRIMARY KEY,{owner} etag VARCHAR(128){etag} NOT NULL"

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
    " AND column_name IN ('doc_uri', 'etag', 'username', 'domain')"
)
MYSQL_ALTER_JOIN_COLUMN = (
    "ALTER TABLE {table} MODIFY {column} VARCHAR({length}) CHARACTER SET {charset} COLLATE {collation} NOT NULL"
)


def _plain(template: str, blob: str = "BLOB") -> str:
    """A MySQL column list without its character set options, for SQLite and PostgreSQL."""
    return template.replace("{ascii}", "").replace("{doc_uri}", "").replace("{etag}", "").replace("{blob}", blob)


SQLITE_CREATE_SERVICES = "CREATE TABLE IF NOT EXISTS {s} (" + _plain(_SERVICES_COLUMNS) + "\n)"
SQLITE_SERVICES_INDEX = "CREATE INDEX IF NOT EXISTS {n}rls_doc_uri_idx ON {s} (doc_uri, position)"
SQLITE_CREATE_SERVICE_DOCUMENTS = f"CREATE TABLE IF NOT EXISTS {{d}} ({_plain(_SERVICE_DOCUMENTS_COLUMNS)})"

#: each backend's statements creating the index tables, in order
CREATE_SERVICES = {
    "mysql": (MYSQL_CREATE_SERVICES, MYSQL_CREATE_SERVICE_DOCUMENTS),
    "sqlite": (SQLITE_CREATE_SERVICES, SQLITE_SERVICES_INDEX, SQLITE_CREATE_SERVICE_DOCUMENTS),
    "postgresql": ("CREATE TABLE IF NOT EXISTS {s} (" + _plain(_SERVICES_COLUMNS, "BYTEA") + "\n)",
                   SQLITE_SERVICES_INDEX, SQLITE_CREATE_SERVICE_DOCUMENTS),
}
