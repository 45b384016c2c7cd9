-- OpenSIPS layout of the `xcap` table (table version 4) for MySQL/MariaDB, with its `version` row
-- (shared/reference/ddl/opensips-mysql.sql, kept here so that the tests of a clean clone have it).
-- Column definitions copied verbatim from OpenSIPS/opensips master
-- (commit 8f4f1e1b4015a52f88953e6c16758f800bd0e9fb, 2026-08-20):
--   scripts/mysql/standard-create.sql (version), scripts/mysql/presence-create.sql (xcap).
-- Run into an empty or OpenSIPS database:  mariadb -uroot DBNAME < opensips-mysql.sql
-- Differences from Kamailio's layout: UNIQUE (username, domain, doc_type, doc_uri) instead of
-- UNIQUE (doc_uri); CHAR (not VARCHAR) columns; etag CHAR(64); doc LONGBLOB; index on source.
-- No CHARSET/COLLATE clause upstream: the database default applies (on MariaDB 10.11 with
-- utf8mb4_general_ci the unique key compares username/domain/doc_uri case-insensitively).

CREATE TABLE IF NOT EXISTS version (
    table_name CHAR(32) NOT NULL,
    table_version INT UNSIGNED DEFAULT 0 NOT NULL,
    CONSTRAINT t_name_idx UNIQUE (table_name)
) ENGINE=InnoDB;

INSERT INTO version (table_name, table_version) values ('xcap','4');
CREATE TABLE xcap (
    id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,
    username CHAR(64) NOT NULL,
    domain CHAR(64) NOT NULL,
    doc LONGBLOB NOT NULL,
    doc_type INT(11) NOT NULL,
    etag CHAR(64) NOT NULL,
    source INT(11) NOT NULL,
    doc_uri CHAR(255) NOT NULL,
    port INT(11) NOT NULL,
    CONSTRAINT account_doc_type_idx UNIQUE (username, domain, doc_type, doc_uri)
) ENGINE=InnoDB;

CREATE INDEX source_idx ON xcap (source);
