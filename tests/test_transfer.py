"""Data in and out: ``xcap-wsgi export``/``import`` (files, OpenXCAP) and ``doc get|put|delete``,
run as an operator would: real processes, exact output."""

from __future__ import annotations

import base64
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from tests.conftest import MYSQL_URL, mysql_connect, mysql_drop
from tests.docs import MINIMAL, PRES_RULES, RESOURCE_LISTS, RESOURCE_LISTS_TABS, RL_MIME
from tests.recording_rpc import RecordingRPCServer
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.storage import DocKey, Document
from xcap_wsgi.storage.mysql import MySQLStorage
from xcap_wsgi.storage.sqlite import SQLiteStorage

COMMAND = [sys.executable, "-m", "xcap_wsgi"]
HEADER = b'{"format":"xcap-wsgi-export","version":1}\n'
COLUMNS = "username, domain, doc, doc_type, etag, source, doc_uri, port"
ALICE = "sip:alice@example.com"
RULES_PATH = f"/xcap-root/pres-rules/users/{ALICE}/index"


def run(*args: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """The command in a clean environment (no XCAP_* settings of the developer's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("XCAP_")}
    return subprocess.run([*COMMAND, *args], cwd=cwd, input=stdin, capture_output=True, timeout=120, env=env,
                          check=False)


def outcome(result: subprocess.CompletedProcess[bytes]) -> tuple[int, bytes, str]:
    return result.returncode, result.stdout, result.stderr.decode()


def key(doc_uri: str, doc_type: int) -> DocKey:
    """The key of a users-tree document, its owner taken from the XUI in ``doc_uri``."""
    user, domain = doc_uri.split("/users/sip:", 1)[1].split("/", 1)[0].split("@")
    return DocKey(doc_uri, user, domain, doc_type)


def seed(path: Path, *documents: tuple[DocKey, Document]) -> None:
    storage = SQLiteStorage(str(path))
    storage.load(documents)
    storage.close()


def sqlite_rows(path: Path) -> list[tuple[Any, ...]]:
    """Every row of the file's xcap table (none when there is no table yet)."""
    conn = sqlite3.connect(path)
    try:
        if not conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'xcap'").fetchone()[0]:
            return []
        return conn.execute(f"SELECT {COLUMNS} FROM xcap ORDER BY id").fetchall()
    finally:
        conn.close()


def mysql_rows(table: str) -> list[tuple[Any, ...]]:
    conn = mysql_connect()
    with conn.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM `{table}` ORDER BY id")
        rows = [tuple(row) for row in cur.fetchall()]
    conn.close()
    return rows


def line(document_key: DocKey, document: Document) -> bytes:
    """A document line as the format documents it (xcap_wsgi.transfer)."""
    return (f'{{"doc_uri":"{document_key.doc_uri}","username":"{document_key.username}",'
            f'"domain":"{document_key.domain}","doc_type":{document_key.doc_type},"etag":"{document.etag}",'
            f'"doc":"{base64.b64encode(document.doc).decode()}"}}\n').encode()


RULES = (key(RULES_PATH, 2), Document(PRES_RULES, "e-rules"))
LIST = (key(f"/xcap-root/resource-lists/users/{ALICE}/index", 4), Document(RESOURCE_LISTS, "e-list"))
BLOB = (key("/xcap-root/com.example.blob/users/sip:zoë@example.com/ñandú", 1024), Document(bytes(range(256)), "e-blob"))


@pytest.fixture
def mysql_target() -> Iterator[str]:
    table = f"xcap_transfer_{os.getpid()}"
    mysql_connect().close()
    mysql_drop(table)
    yield table
    mysql_drop(table)


# -- export --------------------------------------------------------------------------------
def test_export_writes_the_header_then_each_document_with_owner_type_etag_and_base64_bytes(tmp_path: Path) -> None:
    seed(tmp_path / "a.db", RULES, BLOB)
    result = run("export", "--db-url", "sqlite:///a.db", "out.jsonl", cwd=tmp_path)
    assert outcome(result) == (0, b"", "xcap-wsgi: exported 2 documents from sqlite:///a.db\n")
    assert (tmp_path / "out.jsonl").read_bytes() == HEADER + line(*RULES) + line(*BLOB)
    assert line(*BLOB).decode().startswith(
        '{"doc_uri":"/xcap-root/com.example.blob/users/sip:zoë@example.com/ñandú","username":"zoë",')


def test_export_to_stdout_writes_the_export_there(tmp_path: Path) -> None:
    seed(tmp_path / "a.db", LIST)
    result = run("export", "--db-url", "sqlite:///a.db", "-", cwd=tmp_path)
    assert outcome(result) == (0, HEADER + line(*LIST), "xcap-wsgi: exported 1 document from sqlite:///a.db\n")


def test_export_of_a_missing_database_file_creates_nothing(tmp_path: Path) -> None:
    result = run("export", "--db-url", "sqlite:///nope.db", "out.jsonl", cwd=tmp_path)
    assert outcome(result) == (2, b"", "xcap-wsgi: configuration error: no database file nope.db\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.mysql
def test_round_trip_sqlite_mysql_sqlite_is_byte_exact_with_the_same_etags(tmp_path: Path, mysql_target: str) -> None:
    source = SQLiteStorage(str(tmp_path / "a.db"))
    client = Client(XCAPMiddleware(None, storage=source))
    for auid, (_, body) in MINIMAL.items():
        assert client.put(f"/xcap-root/{auid}/users/sip:j%C3%BCrgen@example.com/index", data=body).status_code == 201
    assert client.put(f"/xcap-root/resource-lists/users/{ALICE}/index", data=RESOURCE_LISTS,
                      content_type=RL_MIME).status_code == 201
    assert client.put(f"/xcap-root/resource-lists/users/{ALICE}/tabs", data=RESOURCE_LISTS_TABS).status_code == 201
    assert client.delete(f"/xcap-root/resource-lists/users/{ALICE}/tabs").status_code == 200
    source.load([BLOB])
    source.close()
    mysql_db = MySQLStorage(MYSQL_URL, mysql_target).description
    mysql = ["--db-url", MYSQL_URL, "--xcap-table", mysql_target]

    steps = [
        (["export", "--db-url", "sqlite:///a.db", "a.jsonl"], "exported 9 documents from sqlite:///a.db"),
        (["import", *mysql, "a.jsonl"], f"imported 9 documents into {mysql_db}"),
        (["export", *mysql, "b.jsonl"], f"exported 9 documents from {mysql_db}"),
        (["import", "--db-url", "sqlite:///c.db", "b.jsonl"], "imported 9 documents into sqlite:///c.db"),
        (["export", "--db-url", "sqlite:///c.db", "c.jsonl"], "exported 9 documents from sqlite:///c.db"),
    ]
    for args, said in steps:
        assert outcome(run(*args, cwd=tmp_path)) == (0, b"", f"xcap-wsgi: {said}\n")

    exported = (tmp_path / "a.jsonl").read_bytes()
    assert exported.endswith(line(*BLOB))
    assert (tmp_path / "b.jsonl").read_bytes() == exported
    assert (tmp_path / "c.jsonl").read_bytes() == exported
    rows = sqlite_rows(tmp_path / "a.db")
    assert len(rows) == 9
    assert mysql_rows(mysql_target) == rows
    assert sqlite_rows(tmp_path / "c.db") == rows


# -- import --------------------------------------------------------------------------------
def export_file(path: Path, *documents: tuple[DocKey, Document]) -> None:
    path.write_bytes(HEADER + b"".join(line(*d) for d in documents))


def test_import_refuses_to_overwrite_a_stored_document_and_writes_nothing(tmp_path: Path) -> None:
    seed(tmp_path / "t.db", (LIST[0], Document(b"<old/>", "e-old")))
    export_file(tmp_path / "in.jsonl", RULES, LIST, BLOB)
    result = run("import", "--db-url", "sqlite:///t.db", "in.jsonl", cwd=tmp_path)
    assert outcome(result) == (2, b"", f"xcap-wsgi: line 3: {LIST[0].doc_uri} exists already (--replace overwrites"
                                        " it); nothing was imported\n")
    assert sqlite_rows(tmp_path / "t.db") == [
        ("alice", "example.com", b"<old/>", 4, "e-old", 0, LIST[0].doc_uri, 0)]


def test_import_with_replace_overwrites_stored_documents_keeping_the_files_etags(tmp_path: Path) -> None:
    seed(tmp_path / "t.db", (LIST[0], Document(b"<old/>", "e-old")))
    export_file(tmp_path / "in.jsonl", RULES, LIST)
    result = run("import", "--db-url", "sqlite:///t.db", "--replace", "in.jsonl", cwd=tmp_path)
    assert outcome(result) == (0, b"", "xcap-wsgi: imported 2 documents into sqlite:///t.db (1 replaced)\n")
    assert sqlite_rows(tmp_path / "t.db") == [
        ("alice", "example.com", RESOURCE_LISTS, 4, "e-list", 0, LIST[0].doc_uri, 0),
        ("alice", "example.com", PRES_RULES, 2, "e-rules", 0, RULES_PATH, 0),
    ]


def test_import_reads_stdin_for_dash(tmp_path: Path) -> None:
    result = run("import", "--db-url", "sqlite:///t.db", "-", cwd=tmp_path, stdin=HEADER + line(*BLOB))
    assert outcome(result) == (0, b"", "xcap-wsgi: imported 1 document into sqlite:///t.db\n")
    assert sqlite_rows(tmp_path / "t.db") == [
        ("zoë", "example.com", bytes(range(256)), 1024, "e-blob", 0, BLOB[0].doc_uri, 0)]


GOOD = line(*RULES)
GOOD_FIELDS = json.loads(GOOD)


def document_line(**changes: Any) -> bytes:
    fields = {k: v for k, v in {**GOOD_FIELDS, **changes}.items() if v is not None}
    return json.dumps(fields).encode() + b"\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", "line 1: the file is empty; an export starts with "
                          '{"format":"xcap-wsgi-export","version":1}', id="empty-file"),
        pytest.param(b'{"format":"other"}\n', 'line 1: not an xcap-wsgi export: the header '
                                              '{"format":"xcap-wsgi-export","version":1} is missing', id="no-header"),
        pytest.param(b'{"format":"xcap-wsgi-export","version":2}\n',
                     "line 1: export format version 2 is not supported (this xcap-wsgi reads version 1)", id="version"),
        pytest.param(HEADER + GOOD + b'{"doc_uri": \n', "line 3: not JSON (Expecting value at column 13)",
                     id="bad-json"),
        pytest.param(HEADER + GOOD + b"\n", "line 3: not JSON (Expecting value at column 1)", id="empty-line"),
        pytest.param(HEADER + GOOD + b"[1, 2]\n", "line 3: expected a JSON object", id="not-an-object"),
        pytest.param(HEADER + GOOD + b'{"doc_uri": "\xff"}\n', "line 3: not UTF-8", id="not-utf-8"),
        pytest.param(HEADER + GOOD + document_line(doc_uri=LIST[0].doc_uri, etag=None),
                     "line 3: missing field 'etag'", id="missing-field"),
        pytest.param(HEADER + GOOD + document_line(doc_uri=LIST[0].doc_uri, doc="PD94bWwg*"),
                     "line 3: field 'doc' is not base64", id="bad-base64"),
        pytest.param(HEADER + GOOD + document_line(doc_uri=LIST[0].doc_uri, doc="PD94bWw"),
                     "line 3: field 'doc' is not base64", id="bad-padding"),
        pytest.param(HEADER + GOOD + document_line(doc_uri=LIST[0].doc_uri, doc_type="4"),
                     "line 3: field 'doc_type' must be an integer", id="doc-type-string"),
        pytest.param(HEADER + GOOD + document_line(doc_uri=LIST[0].doc_uri, username=7),
                     "line 3: field 'username' must be a string", id="username-number"),
        pytest.param(HEADER + GOOD + document_line(doc_uri=LIST[0].doc_uri, domain="x" * 65),
                     "line 3: field 'domain' is longer than the column's 64 characters", id="domain-too-long"),
        pytest.param(HEADER + GOOD + document_line(doc_uri="index"),
                     "line 3: field 'doc_uri' must be an absolute path", id="relative-doc-uri"),
        pytest.param(HEADER + GOOD + document_line(doc_uri=LIST[0].doc_uri, etag='"quoted"'),
                     "line 3: field 'etag' must be 1 to 128 visible ASCII characters other than '\"'", id="bad-etag"),
        pytest.param(HEADER + GOOD + GOOD, f"line 3: {RULES_PATH} is given twice (first in line 2)", id="twice"),
    ],
)
def test_import_names_the_first_malformed_line_and_writes_nothing(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "in.jsonl").write_bytes(content)
    result = run("import", "--db-url", "sqlite:///t.db", "in.jsonl", cwd=tmp_path)
    assert outcome(result) == (2, b"", f"xcap-wsgi: {message}; nothing was imported\n")
    assert sqlite_rows(tmp_path / "t.db") == []


def test_import_and_export_report_progress_every_1000_documents(tmp_path: Path) -> None:
    documents = [(key(f"/xcap-root/resource-lists/users/sip:u{n}@example.com/index", 4),
                  Document(MINIMAL["resource-lists"][1], f"e{n}")) for n in range(2500)]
    export_file(tmp_path / "in.jsonl", *documents)
    result = run("import", "--db-url", "sqlite:///t.db", "in.jsonl", cwd=tmp_path)
    assert outcome(result) == (0, b"", "xcap-wsgi: 1000 documents read\nxcap-wsgi: 2000 documents read\n"
                                        "xcap-wsgi: imported 2500 documents into sqlite:///t.db\n")
    result = run("export", "--db-url", "sqlite:///t.db", "out.jsonl", cwd=tmp_path)
    assert outcome(result) == (0, b"", "xcap-wsgi: 1000 documents exported\nxcap-wsgi: 2000 documents exported\n"
                                        "xcap-wsgi: exported 2500 documents from sqlite:///t.db\n")
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "in.jsonl").read_bytes()


def test_import_records_no_change_event(tmp_path: Path) -> None:
    assert run("initdb", "--db-url", "sqlite:///t.db", cwd=tmp_path).returncode == 0
    export_file(tmp_path / "in.jsonl", RULES)
    assert run("import", "--db-url", "sqlite:///t.db", "in.jsonl", cwd=tmp_path).returncode == 0
    conn = sqlite3.connect(tmp_path / "t.db")
    assert conn.execute("SELECT COUNT(*) FROM xcap_outbox").fetchall() == [(0,)]
    conn.close()


def test_import_needs_a_file_or_an_openxcap_database(tmp_path: Path) -> None:
    result = run("import", "--db-url", "sqlite:///t.db", cwd=tmp_path)
    assert outcome(result) == (2, b"", "xcap-wsgi: configuration error: import reads FILE or --from-openxcap URL:"
                                        " give one of them\n")


# -- OpenXCAP ------------------------------------------------------------------------------
# OpenXCAP's tables as its sources create them (github.com/AGProjects/openxcap), the table
# names made unique for the test database.
OPENXCAP_DDL = {
    # scripts/mysql-create-tables.sql at 731d99e (2010, "Updated mysql scripts")
    "mysql-create-tables-2010": [
        "CREATE TABLE `xcap` (\n  `id` int(10) NOT NULL auto_increment,\n  `username` varchar(66) NOT NULL,\n"
        "  `domain` varchar(128) NOT NULL,\n  `doc` mediumblob NOT NULL,\n  `doc_type` int(11) NOT NULL,\n"
        "  `etag` varchar(64) NOT NULL,\n  `source` int(11) NOT NULL,\n  `doc_uri` varchar(128) NOT NULL,\n"
        "  `port` int(11) NOT NULL,\n  PRIMARY KEY  (`id`),\n"
        "  UNIQUE KEY `udd_xcap` (`username`,`domain`,`doc_type`,`doc_uri`)\n) ENGINE=InnoDB",
    ],
    # scripts/mysql-create-tables.sql at b107d70 (2025, "Updated manual table definitions")
    "mysql-create-tables-2025": [
        "CREATE TABLE subscriber (\n    id INTEGER NOT NULL AUTO_INCREMENT,\n    username VARCHAR(64),\n"
        "    domain VARCHAR(64),\n    password VARCHAR(255),\n    ha1 VARCHAR(64),\n    PRIMARY KEY (id)\n)",
        "CREATE TABLE xcap (\n    id INTEGER NOT NULL AUTO_INCREMENT,\n    subscriber_id INTEGER,\n"
        "    username VARCHAR(64) NOT NULL,\n    domain VARCHAR(64) NOT NULL,\n    doc BLOB NOT NULL,\n"
        "    doc_type INTEGER NOT NULL,\n    etag VARCHAR(64) NOT NULL,\n    source INTEGER NOT NULL,\n"
        "    doc_uri VARCHAR(255) NOT NULL,\n    port INTEGER NOT NULL,\n    PRIMARY KEY (id),\n"
        "    FOREIGN KEY(subscriber_id) REFERENCES subscriber (id) ON DELETE CASCADE,\n"
        "    CONSTRAINT account_doc_type_idx UNIQUE (username, domain, doc_type, doc_uri)\n)",
        "CREATE INDEX source_idx ON xcap (source)",
        "CREATE INDEX xcap_subscriber_id_exists ON xcap (subscriber_id)",
    ],
}
DIALOG_RULES = b'<ruleset xmlns="urn:ietf:params:xml:ns:common-policy"/>'
#: (username, domain, doc_type, doc_uri, etag, doc) as OpenXCAP writes them: the document
#: path only, pres-rules always index.xml, OpenXCAP's doc_type codes
OPENXCAP_ROWS = [
    ("alice", "example.com", 2, "index.xml", "0f1e2d3c4b5a69788796a5b4c3d2e1f0", PRES_RULES),
    ("alice", "example.com", 4, "index", "11111111111111111111111111111111", RESOURCE_LISTS),
    ("alice", "example.com", 8, "index", "22222222222222222222222222222222", MINIMAL["rls-services"][1]),
    ("alice", "example.com", 16, "index", "33333333333333333333333333333333", MINIMAL["pidf-manipulation"][1]),
    ("jürgen", "example.org", 32, "index.xml", "44444444444444444444444444444444", MINIMAL["pres-rules"][1]),
    ("jürgen", "example.org", 64, "oma_status-icon/index", "55555555555555555555555555555555",
     MINIMAL["org.openmobilealliance.pres-content"][1]),
    ("jürgen", "example.org", 128, "index", "66666666666666666666666666666666", DIALOG_RULES),
    ("jürgen", "example.org", 0, "index", "77777777777777777777777777777777", b"<test/>"),
    ("jürgen", "example.org", 256, "index", "88888888888888888888888888888888", b"<what/>"),
]


@pytest.fixture(params=list(OPENXCAP_DDL))
def openxcap_table(request: pytest.FixtureRequest) -> Iterator[str]:
    suffix = f"{os.getpid()}"
    names = {"xcap": f"oxc_xcap_{suffix}", "subscriber": f"oxc_subscriber_{suffix}"}
    conn = mysql_connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{names['xcap']}`, `{names['subscriber']}`")
        for statement in OPENXCAP_DDL[request.param]:
            cur.execute(re.sub(r"\b(xcap|subscriber)\b", lambda m: names[m[1]], statement))
        cur.executemany(f"INSERT INTO `{names['xcap']}` (username, domain, doc_type, doc_uri, etag, doc, source, port)"
                        " VALUES (%s, %s, %s, %s, %s, %s, 0, 0)", OPENXCAP_ROWS)
    yield names["xcap"]
    with conn.cursor() as cur:
        cur.execute(f"DROP TABLE IF EXISTS `{names['xcap']}`, `{names['subscriber']}`")
    conn.close()


@pytest.mark.mysql
def test_import_from_openxcap_maps_each_row_onto_our_document_uri_and_doc_type(tmp_path: Path,
                                                                               openxcap_table: str) -> None:
    result = run("import", "--db-url", "sqlite:///t.db", "--from-openxcap", MYSQL_URL,
                 "--openxcap-table", openxcap_table, cwd=tmp_path)
    assert outcome(result) == (0, b"", (
        "xcap-wsgi: skipped OpenXCAP row 8: /xcap-root/test-app/users/sip:jürgen@example.org/index:"
        " unknown application usage (AUID) 'test-app'\n"
        "xcap-wsgi: skipped OpenXCAP row 9: doc_type 256 is none of OpenXCAP's application usages\n"
        "xcap-wsgi: imported 7 documents into sqlite:///t.db; skipped 2 OpenXCAP rows\n"))
    assert sqlite_rows(tmp_path / "t.db") == [
        ("alice", "example.com", PRES_RULES, 2, "0f1e2d3c4b5a69788796a5b4c3d2e1f0", 0,
         "/xcap-root/pres-rules/users/sip:alice@example.com/index.xml", 0),
        ("alice", "example.com", RESOURCE_LISTS, 4, "11111111111111111111111111111111", 0,
         "/xcap-root/resource-lists/users/sip:alice@example.com/index", 0),
        ("alice", "example.com", MINIMAL["rls-services"][1], 8, "22222222222222222222222222222222", 0,
         "/xcap-root/rls-services/users/sip:alice@example.com/index", 0),
        ("alice", "example.com", MINIMAL["pidf-manipulation"][1], 16, "33333333333333333333333333333333", 0,
         "/xcap-root/pidf-manipulation/users/sip:alice@example.com/index", 0),
        ("jürgen", "example.org", MINIMAL["pres-rules"][1], 2, "44444444444444444444444444444444", 0,
         "/xcap-root/org.openmobilealliance.pres-rules/users/sip:jürgen@example.org/index.xml", 0),
        ("jürgen", "example.org", MINIMAL["org.openmobilealliance.pres-content"][1], 128,
         "55555555555555555555555555555555", 0,
         "/xcap-root/org.openmobilealliance.pres-content/users/sip:jürgen@example.org/oma_status-icon/index", 0),
        ("jürgen", "example.org", DIALOG_RULES, 1024, "66666666666666666666666666666666", 0,
         "/xcap-root/org.openxcap.dialog-rules/users/sip:jürgen@example.org/index", 0),
    ]
    app = XCAPMiddleware(None, db_url="sqlite:///" + str(tmp_path / "t.db"))
    migrated = Client(app).get("/xcap-root/pres-rules/users/sip:alice@example.com/index.xml")
    app.storage.close()
    assert (migrated.status_code, migrated.headers["ETag"], migrated.data) == (
        200, '"0f1e2d3c4b5a69788796a5b4c3d2e1f0"', PRES_RULES)


@pytest.mark.mysql
def test_import_from_openxcap_names_a_missing_table(tmp_path: Path) -> None:
    mysql_connect().close()
    result = run("import", "--db-url", "sqlite:///t.db", "--from-openxcap", MYSQL_URL,
                 "--openxcap-table", "no_such_openxcap_table", cwd=tmp_path)
    database = MySQLStorage(MYSQL_URL).description
    assert outcome(result) == (2, b"", f"xcap-wsgi: configuration error: no table 'no_such_openxcap_table' in"
                                        f" {database}\n")


# -- doc get | put | delete ------------------------------------------------------------------
def stored_etag(db: Path, doc_uri: str) -> str:
    conn = sqlite3.connect(db)
    (etag,), = conn.execute("SELECT etag FROM xcap WHERE doc_uri = ?", (doc_uri,)).fetchall()
    conn.close()
    return str(etag)


def put_rules(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
    (tmp_path / "rules.xml").write_bytes(PRES_RULES)
    return run("doc", "put", "pres-rules/users/sip:alice@example.com/index", "--as", ALICE, "--file", "rules.xml",
               "--db-url", "sqlite:///x.db", *extra, cwd=tmp_path)


def test_doc_put_stores_the_document_and_prints_the_status_line_and_etag(tmp_path: Path) -> None:
    result = put_rules(tmp_path)
    etag = stored_etag(tmp_path / "x.db", RULES_PATH)
    assert outcome(result) == (0, b"", f'HTTP/1.1 201 Created\nETag: "{etag}"\n')
    assert sqlite_rows(tmp_path / "x.db") == [("alice", "example.com", PRES_RULES, 2, etag, 0, RULES_PATH, 0)]


def test_doc_with_ims_home_domain_stores_a_tel_xui_under_the_canonical_sip_form(tmp_path: Path) -> None:
    """``doc`` takes --ims-home-domain as ``serve`` does: tel:+E164 is the subscriber's sip: form."""
    (tmp_path / "rules.xml").write_bytes(PRES_RULES)
    result = run("doc", "put", "pres-rules/users/tel:+15551234567/index", "--as", "sip:+15551234567@ims.example.com", "--file",
                 "rules.xml", "--db-url", "sqlite:///x.db", "--ims-home-domain", "ims.example.com", cwd=tmp_path)
    canonical = "/xcap-root/pres-rules/users/sip:+15551234567@ims.example.com/index"
    etag = stored_etag(tmp_path / "x.db", canonical)
    assert outcome(result) == (0, b"", f'HTTP/1.1 201 Created\nETag: "{etag}"\n')
    assert sqlite_rows(tmp_path / "x.db") == [("+15551234567", "ims.example.com", PRES_RULES, 2, etag, 0, canonical, 0)]


def test_doc_get_prints_the_stored_bytes_on_stdout(tmp_path: Path) -> None:
    put_rules(tmp_path)
    result = run("doc", "get", RULES_PATH, "--as", ALICE, "--db-url", "sqlite:///x.db", cwd=tmp_path)
    etag = stored_etag(tmp_path / "x.db", RULES_PATH)
    assert outcome(result) == (0, PRES_RULES, f'HTTP/1.1 200 OK\nETag: "{etag}"\n')


def test_doc_get_of_a_node_selects_it_as_over_http(tmp_path: Path) -> None:
    put_rules(tmp_path)
    result = run("doc", "get", RULES_PATH + "/~~/cr:ruleset/cr:rule/@id?xmlns(cr=urn:ietf:params:xml:ns:common-policy)",
                 "--as", ALICE, "--db-url", "sqlite:///x.db", cwd=tmp_path)
    etag = stored_etag(tmp_path / "x.db", RULES_PATH)
    assert outcome(result) == (0, b'"a"', f'HTTP/1.1 200 OK\nETag: "{etag}"\n')


def test_doc_delete_removes_the_document(tmp_path: Path) -> None:
    put_rules(tmp_path)
    result = run("doc", "delete", RULES_PATH, "--as", ALICE, "--db-url", "sqlite:///x.db", cwd=tmp_path)
    assert outcome(result) == (0, b"", "HTTP/1.1 200 OK\n")
    assert sqlite_rows(tmp_path / "x.db") == []


def test_doc_get_of_a_missing_document_exits_1_with_the_404(tmp_path: Path) -> None:
    result = run("doc", "get", RULES_PATH, "--as", ALICE, "--db-url", "sqlite:///x.db", cwd=tmp_path)
    assert outcome(result) == (1, b"", "HTTP/1.1 404 Not Found\nno such document\n")


def test_doc_put_of_an_invalid_document_exits_1_with_the_409_body(tmp_path: Path) -> None:
    result = run("doc", "put", RULES_PATH, "--as", ALICE, "--file", "-", "--db-url", "sqlite:///x.db",
                 cwd=tmp_path, stdin=b"<foo/>")
    assert outcome(result) == (1, b"", (
        "HTTP/1.1 409 Conflict\n"
        '<?xml version="1.0" encoding="UTF-8"?>\n<xcap-error xmlns="urn:ietf:params:xml:ns:xcap-error">'
        '<schema-validation-error phrase="root element is &lt;foo&gt; in no namespace; this application usage'
        ' needs {urn:ietf:params:xml:ns:common-policy}ruleset"/></xcap-error>\n'))
    assert sqlite_rows(tmp_path / "x.db") == []


def test_doc_put_labels_a_document_with_its_usage_type_unless_told(tmp_path: Path) -> None:
    result = put_rules(tmp_path, "--content-type", "application/xml")
    assert outcome(result) == (1, b"", "HTTP/1.1 415 Unsupported Media Type\n"
                                        "Content-Type must be application/auth-policy+xml, got application/xml\n")


def test_doc_put_of_an_element_goes_through_the_selector(tmp_path: Path) -> None:
    put_rules(tmp_path)
    result = run("doc", "put", RULES_PATH + '/~~/cr:ruleset/cr:rule[@id="b"]?xmlns(cr=urn:ietf:params:xml:ns:common-policy)',
                 "--as", ALICE, "--file", "-", "--db-url", "sqlite:///x.db", cwd=tmp_path,
                 stdin=b'<cr:rule xmlns:cr="urn:ietf:params:xml:ns:common-policy" id="b"/>')
    etag = stored_etag(tmp_path / "x.db", RULES_PATH)
    assert outcome(result) == (0, b"", f'HTTP/1.1 201 Created\nETag: "{etag}"\n')
    assert sqlite_rows(tmp_path / "x.db")[0][2] == PRES_RULES.replace(
        b"</cr:rule>\n", b'</cr:rule><cr:rule xmlns:cr="urn:ietf:params:xml:ns:common-policy" id="b"/>\n')


def test_doc_put_as_another_user_is_forbidden(tmp_path: Path) -> None:
    (tmp_path / "rules.xml").write_bytes(PRES_RULES)
    result = run("doc", "put", RULES_PATH, "--as", "sip:bob@example.com", "--file", "rules.xml",
                 "--db-url", "sqlite:///x.db", cwd=tmp_path)
    assert outcome(result) == (1, b"", "HTTP/1.1 403 Forbidden\n"
                                        "sip:alice@example.com is not yours: users read and write only their own"
                                        " documents\n")


@pytest.mark.parametrize(("admin", "status"), [
    pytest.param(["--admin", "sip:admin@example.com"], "201 Created", id="admin"),
    pytest.param([], "403 Forbidden", id="not-admin"),
])
def test_doc_put_into_the_global_tree_needs_an_administrator(tmp_path: Path, admin: list[str], status: str) -> None:
    result = run("doc", "put", "resource-lists/global/index", "--as", "sip:admin@example.com", "--file", "-",
                 "--db-url", "sqlite:///x.db", *admin, cwd=tmp_path, stdin=MINIMAL["resource-lists"][1])
    assert result.stderr.decode().startswith(f"HTTP/1.1 {status}\n")
    assert result.returncode == (0 if admin else 1)


def test_doc_refuses_an_identity_that_is_no_user(tmp_path: Path) -> None:
    result = run("doc", "get", RULES_PATH, "--as", "alice", cwd=tmp_path)
    assert outcome(result) == (2, b"", "xcap-wsgi: configuration error: --as must be an identity sip:user@domain,"
                                        " got 'alice'\n")


def test_doc_put_with_notify_delivers_the_change_event_before_exiting(tmp_path: Path) -> None:
    with RecordingRPCServer(error_style="kamailio") as server:
        result = put_rules(tmp_path, "--notify", "kamailio+" + server.url)
        calls = [(r.method, r.body["params"]) for r in server.requests]
    etag = stored_etag(tmp_path / "x.db", RULES_PATH)
    assert outcome(result) == (0, b"", f'HTTP/1.1 201 Created\nETag: "{etag}"\n')
    assert calls == [("presence.updateWatchers", [ALICE, "presence"])]
    conn = sqlite3.connect(tmp_path / "x.db")
    assert conn.execute("SELECT COUNT(*) FROM xcap_outbox").fetchall() == [(0,)]
    assert conn.execute("SELECT expires FROM xcap_outbox_lease").fetchall() == [(0,)]
    conn.close()
