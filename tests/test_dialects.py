"""Kamailio's and OpenSIPS's ``xcap`` layouts (issue 11 item 1, table-dialects.md), on every backend.

``initdb --schema`` creates each layout as the upstream DDL does (compared with the DDL run
into an empty database), an existing table's layout is detected from its unique key and a
mismatch refused, the storage contract holds on OpenSIPS's layout, OMA pres-rules are stored
under OpenSIPS's code 32, and OpenSIPS's presence reads what xcap-wsgi writes with exactly
the queries of its ``xcap`` module (MySQL and PostgreSQL). On MySQL, EXPLAIN shows every statement on an OpenSIPS
table, the service index's joins included, going through its unique key.
"""

from __future__ import annotations

import inspect
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from tests import test_storage
from tests.conftest import (
    MYSQL_URL,
    POSTGRESQL_URL,
    mysql_connect,
    mysql_drop,
    postgresql_connect,
    postgresql_drop,
    scratch_database,
)
from tests.docs import MINIMAL, PRES_RULES, RESOURCE_LISTS
from tests.test_service_index import alternatives, assert_refused, put_doc
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.cli import main
from xcap_wsgi.storage import DocKey, Document, open_storage, sql
from xcap_wsgi.storage.dbapi import DBAPIStorage
from xcap_wsgi.storage.dialects import DIALECTS, OPENSIPS, auid_of, detect

SERVERS = [pytest.param("mysql", marks=pytest.mark.mysql), pytest.param("postgresql", marks=pytest.mark.postgresql)]
BACKENDS = ["sqlite", *SERVERS]
PEERS = Path(__file__).parent / "peers"
KAMAILIO_DDL = Path(os.environ.get("XCAP_TEST_KAMAILIO_DDL", "/usr/share/kamailio/mysql")).parent
#: the upstream DDL of each layout: (files run in order into an empty database)
UPSTREAM_DDL = {
    ("mysql", "kamailio"): (KAMAILIO_DDL / "mysql" / "standard-create.sql", KAMAILIO_DDL / "mysql" / "presence-create.sql"),
    ("mysql", "opensips"): (PEERS / "opensips-xcap-mysql.sql",),
    ("postgresql", "kamailio"): (KAMAILIO_DDL / "postgres" / "standard-create.sql",
                                 KAMAILIO_DDL / "postgres" / "presence-create.sql"),
    ("postgresql", "opensips"): (PEERS / "opensips-xcap-postgres.sql",),
}
OMA_URI = "/xcap-root/org.openmobilealliance.pres-rules/users/sip:alice@example.com/index"
TABLE = f"xcap_dialect_{os.getpid()}"


def scratch_name(*parts: str) -> str:
    return "_".join(("xcap_dialects", str(os.getpid()), *parts)).replace("-", "_")


def statements(path: Path) -> list[str]:
    """The statements of an SQL script (one per ``;``, comments dropped) that concern the
    ``xcap`` and ``version`` tables (Kamailio's presence script creates a dozen more)."""
    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in text.split(";") if re.search(r"\b(xcap|version)(\b|_id_seq)", s)]


def connect(backend: str, url: str) -> Any:
    """A raw autocommit connection to ``url``."""
    if backend == "mysql":
        import pymysql

        from xcap_wsgi.storage.mysql import parse_mysql_url
        return pymysql.connect(**parse_mysql_url(url), autocommit=True)
    import psycopg

    from xcap_wsgi.storage.postgresql import parse_postgresql_url
    return psycopg.connect(**parse_postgresql_url(url), autocommit=True)


def query(backend: str, url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = connect(backend, url)
    try:
        cursor = conn.cursor()
        cursor.execute(statement, params or None)
        rows = [tuple(row) for row in cursor.fetchall()] if cursor.description else []
        cursor.close()
        return rows
    finally:
        conn.close()


def run_script(backend: str, url: str, path: Path) -> None:
    if not path.exists():
        message = f"{path} is missing (Kamailio's DDL: kamailio-mysql-modules / kamailio-postgres-modules)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    for statement in statements(path):
        query(backend, url, statement)


def layout(backend: str, url: str, table: str) -> dict[str, Any]:
    """What makes a table's layout (column types, nullability, keys, indexes), names included."""
    if backend == "mysql":
        columns = "SELECT column_name, column_type, is_nullable, column_key, extra FROM information_schema.columns" \
                  " WHERE table_schema = DATABASE() AND table_name = %s ORDER BY ordinal_position"
        indexes = "SELECT index_name, non_unique, GROUP_CONCAT(column_name ORDER BY seq_in_index)" \
                  " FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = %s" \
                  " GROUP BY index_name, non_unique ORDER BY index_name"
        engine = "SELECT engine FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = %s"
        return {"columns": query(backend, url, columns, table), "indexes": query(backend, url, indexes, table),
                "engine": query(backend, url, engine, table)}
    columns = "SELECT column_name, data_type, character_maximum_length, is_nullable, column_default" \
              " FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = %s" \
              " ORDER BY ordinal_position"
    indexes = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s" \
              " ORDER BY indexname"
    sequence = "SELECT max_value, cycle FROM pg_sequences WHERE sequencename = %s"
    return {"columns": query(backend, url, columns, table), "indexes": query(backend, url, indexes, table),
            "sequence": query(backend, url, sequence, table + "_id_seq")}


# -- detection --------------------------------------------------------------------------

@pytest.mark.parametrize(("keys", "name"), [
    pytest.param([("doc_uri",)], "kamailio", id="kamailio"),
    pytest.param([("username", "domain", "doc_type", "doc_uri")], "opensips", id="opensips"),
    pytest.param([("USERNAME", "Domain", "doc_type", "doc_uri"), ("source",)], "opensips", id="opensips-case-and-more"),
])
def test_the_unique_key_names_the_layout(keys: list[tuple[str, ...]], name: str) -> None:
    assert detect("xcap", keys) is DIALECTS[name]


@pytest.mark.parametrize(("keys", "shown"), [
    pytest.param([], "none", id="no-unique-key"),
    pytest.param([("doc_uri", "doc_type")], "(doc_uri, doc_type)", id="other-key"),
    pytest.param([("domain", "username", "doc_type", "doc_uri")], "(domain, username, doc_type, doc_uri)", id="other-order"),
    pytest.param([("doc_uri",), ("username", "domain", "doc_type", "doc_uri")],
                 "(doc_uri); (username, domain, doc_type, doc_uri)", id="both"),
])
def test_a_table_of_neither_layout_is_refused_naming_what_was_found(keys: list[tuple[str, ...]], shown: str) -> None:
    with pytest.raises(ValueError) as refused:
        detect("docs", keys)
    assert str(refused.value) == (
        "table 'docs' is neither Kamailio's xcap layout (unique key on doc_uri) nor OpenSIPS's"
        f" (unique key on username, domain, doc_type, doc_uri): its unique keys are {shown}")


@pytest.mark.parametrize(("doc_uri", "auid"), [
    ("/xcap-root/org.openmobilealliance.pres-rules/users/sip:alice@example.com/index", "org.openmobilealliance.pres-rules"),
    ("/org.openmobilealliance.pres-rules/users/sip:alice@example.com/org.openmobilealliance.pres-rules/users/x",
     "org.openmobilealliance.pres-rules"),
    ("/xcap-root/pres-rules/users/sip:alice@example.com/org.openmobilealliance.pres-rules/users/x", "pres-rules"),
    ("/xcap-root/xcap-caps/global/index", "xcap-caps"),
    ("", ""),
])
def test_the_auid_of_a_doc_uri_is_the_segment_before_its_tree(doc_uri: str, auid: str) -> None:
    assert auid_of(doc_uri) == auid


def test_a_table_of_neither_layout_is_refused_at_start_but_exported_as_stored(tmp_path: Path) -> None:
    """Another program's table (an export reads it as it is, doc_types untouched)."""
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE xcap (id INTEGER PRIMARY KEY, username TEXT, domain TEXT, doc BLOB, doc_type INT,"
                 " etag TEXT, source INT, doc_uri TEXT, port INT, UNIQUE (doc_uri, doc_type))")
    conn.execute("INSERT INTO xcap VALUES (1, 'alice', 'example.com', x'3c612f3e', 32, 'e1', 0, 'index.xml', 0)")
    conn.commit()
    conn.close()
    storage = open_storage(f"sqlite:///{path}")
    assert isinstance(storage, DBAPIStorage)
    with pytest.raises(ValueError, match=r"its unique keys are \(doc_uri, doc_type\)$"):
        storage.ensure_schema()
    assert [(row.key, row.document) for row in storage.dump()] == [
        (DocKey("index.xml", "alice", "example.com", 32), Document(b"<a/>", "e1"))]
    storage.close()


# -- each backend, each layout ----------------------------------------------------------------

def open_table(backend: str, tmp_path: Path, table: str, schema: str | None = None) -> DBAPIStorage:
    url = {"sqlite": f"sqlite:///{tmp_path / 'dialects.db'}", "mysql": MYSQL_URL, "postgresql": POSTGRESQL_URL}[backend]
    storage = open_storage(url, table, schema=schema)
    assert isinstance(storage, DBAPIStorage)
    return storage


@pytest.fixture
def drop(request: pytest.FixtureRequest) -> Iterator[Callable[[str, str], str]]:
    """``drop(backend, table)``: the table dropped now and after the test; returns the table."""
    dropped: list[tuple[str, str]] = []

    def drop_table(backend: str, table: str) -> str:
        if backend != "sqlite":
            (mysql_drop if backend == "mysql" else postgresql_drop)(table)
            dropped.append((backend, table))
        return table
    yield drop_table
    for backend, table in dropped:
        (mysql_drop if backend == "mysql" else postgresql_drop)(table)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_existing_tables_layout_is_detected_and_the_other_refused(
        backend: str, tmp_path: Path, drop: Callable[[str, str], str]) -> None:
    table = drop(backend, TABLE + "_detect")
    open_table(backend, tmp_path, table, "opensips").ensure_schema()
    detected = open_table(backend, tmp_path, table)
    detected.ensure_schema()
    assert detected.dialect is DIALECTS[OPENSIPS]
    with pytest.raises(ValueError) as refused:
        open_table(backend, tmp_path, table, "kamailio").ensure_schema()
    assert str(refused.value) == (f"table {table!r} has OpenSIPS's xcap layout, but the schema 'kamailio' was asked"
                                  " for; use --schema opensips or another table")


@pytest.mark.parametrize("backend", BACKENDS)
def test_initdb_refuses_a_table_of_the_other_layout_with_exit_2(
        backend: str, tmp_path: Path, drop: Callable[[str, str], str], capsys: pytest.CaptureFixture[str]) -> None:
    table = drop(backend, TABLE + "_cli")
    storage = open_table(backend, tmp_path, table, "kamailio")
    storage.ensure_schema()
    assert main(["initdb", "--db-url", storage.url, "--xcap-table", table, "--schema", "opensips"]) == 2
    assert capsys.readouterr().err == (f"xcap-wsgi: configuration error: table {table!r} has Kamailio's xcap layout, but"
                                       " the schema 'opensips' was asked for; use --schema kamailio or another table\n")
    assert main(["initdb", "--db-url", storage.url, "--xcap-table", table]) == 0


def both_layouts(backend: str, schema: str) -> tuple[dict[str, Any], ...]:
    """(ours, upstream): each table's layout after ``initdb --schema`` and after the upstream
    DDL, each in an empty database, the xcap row of our ``version`` table, and the layout
    xcap-wsgi detects in the upstream table."""
    with scratch_database(backend, scratch_name("up", backend, schema)) as upstream, \
            scratch_database(backend, scratch_name("ours", backend, schema)) as ours:
        for script in UPSTREAM_DDL[backend, schema]:
            run_script(backend, upstream, script)
        assert main(["initdb", "--db-url", ours, "--schema", schema]) == 0
        version = query(backend, ours, "SELECT table_version FROM version WHERE table_name = 'xcap'")
        theirs = open_storage(upstream)
        assert isinstance(theirs, DBAPIStorage)
        detected = theirs.read_dialect().name  # from the key's columns (PostgreSQL: one index name, two meanings)
        theirs.close()
        return ({table: layout(backend, ours, table) for table in ("xcap", "version")} | {"row": version, "is": schema},
                {table: layout(backend, upstream, table) for table in ("xcap", "version")} | {"row": [(4,)], "is": detected})


@pytest.fixture(scope="module")
def upstream_layouts() -> Iterator[Callable[[str, str], tuple[dict[str, Any], ...]]]:
    """Both layouts of a backend compared at once (each comparison waits on DDL and fsyncs)."""
    results: dict[tuple[str, str], Future[tuple[dict[str, Any], ...]]] = {}
    with ThreadPoolExecutor(2) as pool:
        def compare(backend: str, schema: str) -> tuple[dict[str, Any], ...]:
            if (backend, schema) not in results:
                for each in ("kamailio", "opensips"):
                    results[backend, each] = pool.submit(both_layouts, backend, each)
            return results[backend, schema].result()
        yield compare


@pytest.mark.parametrize("schema", ["kamailio", "opensips"])
@pytest.mark.parametrize("backend", SERVERS)
def test_initdb_creates_the_layout_the_upstream_ddl_creates(
        backend: str, schema: str, upstream_layouts: Callable[[str, str], tuple[dict[str, Any], ...]]) -> None:
    """Column types, nullability, keys and index names as kamdbctl / opensips-cli make them,
    and the ``version`` table of that project when there was none (with the row 4)."""
    (mysql_connect if backend == "mysql" else postgresql_connect)().close()  # skip, or fail under CI, when down
    ours, upstream = upstream_layouts(backend, schema)
    assert ours == upstream


@pytest.mark.parametrize("schema", ["kamailio", "opensips"])
def test_sqlite_initdb_creates_each_layout(tmp_path: Path, schema: str) -> None:
    storage = open_table("sqlite", tmp_path, "xcap", schema)
    storage.ensure_schema()
    conn = storage.run(lambda cursor: cursor.connection)
    columns = [(name, kind) for _, name, kind, *_ in conn.execute("PRAGMA table_info(xcap)")]
    version = [(name, kind) for _, name, kind, *_ in conn.execute("PRAGMA table_info(version)")]
    text, char = ("VARCHAR", "VARCHAR") if schema == "kamailio" else ("CHAR", "CHAR")
    assert columns == [("id", "INTEGER"), ("username", f"{text}(64)"), ("domain", f"{text}(64)"),
                       ("doc", "MEDIUMBLOB" if schema == "kamailio" else "LONGBLOB"), ("doc_type", "INT(11)"),
                       ("etag", f"{char}(128)" if schema == "kamailio" else "CHAR(64)"), ("source", "INT(11)"),
                       ("doc_uri", f"{text}(255)"), ("port", "INT(11)")]
    assert version == [("table_name", f"{text}(32)"), ("table_version", "INTEGER")]
    assert storage.run(storage._unique_keys) == [DIALECTS[schema].unique_key]
    storage.close()


# -- the storage contract on OpenSIPS's layout --------------------------------------------------

CONTRACT = [pytest.param(test, id=name) for name, test in vars(test_storage).items()
            if name.startswith("test_") and list(inspect.signature(test).parameters) == ["storage"]]


@pytest.fixture(params=BACKENDS)
def opensips_storage(request: pytest.FixtureRequest, tmp_path: Path, drop: Callable[[str, str], str]) -> Iterator[DBAPIStorage]:
    backend = str(request.param)
    storage = open_table(backend, tmp_path, drop(backend, TABLE + "_os"), "opensips")
    storage.ensure_schema()
    yield storage
    storage.close()


@pytest.mark.parametrize("contract", CONTRACT)
def test_the_storage_contract_holds_on_opensips_layout(opensips_storage: DBAPIStorage, contract: Any) -> None:
    assert len(CONTRACT) >= 10
    contract(opensips_storage)


def raw_rows(storage: DBAPIStorage) -> list[tuple[Any, ...]]:
    def work(cursor: Any) -> list[tuple[Any, ...]]:
        cursor.execute(f"SELECT username, domain, doc_type, doc_uri, etag FROM {storage.quoted_table} ORDER BY doc_uri")
        return [tuple(row) for row in cursor.fetchall()]
    rows: list[tuple[Any, ...]] = storage.run(work)
    return rows


def test_oma_pres_rules_are_stored_under_32_in_opensips_layout_and_read_back_as_2(opensips_storage: DBAPIStorage) -> None:
    """OpenSIPS's OMA_PRES_RULES; its presence_xml reads doc_type 32 with
    ``pres_rules_auid = org.openmobilealliance.pres-rules``. Export gives Kamailio's code."""
    client = Client(XCAPMiddleware(None, storage=opensips_storage))
    doc_type, body = MINIMAL["org.openmobilealliance.pres-rules"]
    created = client.put(OMA_URI, data=body)
    assert created.status == "201 Created"
    assert raw_rows(opensips_storage) == [("alice", "example.com", 32, OMA_URI, created.headers["ETag"].strip('"'))]
    got = client.get(OMA_URI)
    assert (got.status, got.data, got.headers["ETag"]) == ("200 OK", body, created.headers["ETag"])
    [row] = opensips_storage.dump()
    assert (row.key, row.document) == (DocKey(OMA_URI, "alice", "example.com", doc_type),
                                       Document(body, created.headers["ETag"].strip('"')))
    assert client.delete(OMA_URI).status == "200 OK"
    assert raw_rows(opensips_storage) == []
    assert opensips_storage.load([(row.key, row.document)]) == (1, 0)
    assert raw_rows(opensips_storage) == [("alice", "example.com", 32, OMA_URI, row.document.etag)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_oma_pres_rules_keep_kamailios_code_2_in_kamailio_layout(
        backend: str, tmp_path: Path, drop: Callable[[str, str], str]) -> None:
    storage = open_table(backend, tmp_path, drop(backend, TABLE + "_km"), "kamailio")
    created = Client(XCAPMiddleware(None, storage=storage)).put(OMA_URI, data=MINIMAL["org.openmobilealliance.pres-rules"][1])
    assert raw_rows(storage) == [("alice", "example.com", 2, OMA_URI, created.headers["ETag"].strip('"'))]
    storage.close()


def test_one_service_uri_in_two_documents_is_refused_on_opensips_layout(opensips_storage: DBAPIStorage) -> None:
    """RS3 through the service index, whose rows carry the owner in this layout."""
    client = Client(XCAPMiddleware(None, storage=opensips_storage))
    assert put_doc(client, "bob", "sip:friends@example.com").status == "201 Created"
    assert_refused(put_doc(client, "carol", "sip:friends@example.com"), (1, alternatives("sip:friends@example.com")))
    assert put_doc(client, "carol", "sip:carols@example.com").status == "201 Created"


# -- what OpenSIPS reads ------------------------------------------------------------------------

#: (AUID, OpenSIPS doc_type, body, whether OpenSIPS's presence_xml names the doc_uri)
OPENSIPS_READS = [
    ("pres-rules", 2, PRES_RULES, False),
    ("org.openmobilealliance.pres-rules", 32, MINIMAL["org.openmobilealliance.pres-rules"][1], False),
    ("resource-lists", 4, RESOURCE_LISTS, True),
    ("pidf-manipulation", 16, MINIMAL["pidf-manipulation"][1], False),
]
#: OpenSIPS modules/xcap get_xcap_doc(): the first row's doc and etag
OPENSIPS_QUERY = "SELECT doc, etag FROM xcap WHERE username=%s AND domain=%s AND doc_type=%s"


@pytest.mark.parametrize("created_by", ["initdb", "opensips-ddl"])
@pytest.mark.parametrize("backend", SERVERS)
def test_opensips_presence_reads_each_document_with_its_own_query(backend: str, created_by: str) -> None:
    with scratch_database(backend, scratch_name("reads", backend, created_by)) as url:
        if created_by == "initdb":
            assert main(["initdb", "--db-url", url, "--schema", "opensips"]) == 0
        else:
            run_script(backend, url, UPSTREAM_DDL[backend, "opensips"][0])
        app = XCAPMiddleware(None, db_url=url)
        client = Client(app)
        etags = {}
        for auid, _, body, _ in OPENSIPS_READS:
            uri = f"/xcap-root/{auid}/users/sip:alice@example.com/index"
            resp = client.put(uri, data=body)
            assert resp.status == "201 Created", resp.data
            etags[auid] = resp.headers["ETag"].strip('"')
        app.storage.close()
        for auid, doc_type, body, by_uri in OPENSIPS_READS:
            statement, params = OPENSIPS_QUERY, ["alice", "example.com", doc_type]
            if by_uri:
                statement, params = statement + " AND doc_uri=%s", [*params, f"/xcap-root/{auid}/users/sip:alice@example.com/index"]
            assert query(backend, url, statement, *params) == [(body, etags[auid])], auid
        assert {len(etag) for etag in etags.values()} == {32}  # etag CHAR(64)


# -- indexed in OpenSIPS's layout (MySQL's plans) --------------------------------------------------

def plan(conn: Any, statement: str, params: tuple[Any, ...]) -> dict[str, tuple[str, str | None]]:
    """EXPLAIN's access type and key for each table alias of ``statement``."""
    with conn.cursor() as cur:
        cur.execute("EXPLAIN " + statement, params)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    return {row["table"]: (row["type"], row["key"]) for row in rows}


@pytest.mark.mysql
@pytest.mark.parametrize("created_by", ["initdb", "opensips-ddl"])
def test_every_statement_on_an_opensips_table_goes_through_its_unique_key(created_by: str) -> None:
    """No read, lock or write by doc_uri alone (a scan, and in InnoDB a lock on every row), and
    the service index's joins probe the xcap table by its key, also where OpenSIPS's DDL left
    the columns in the database's case-insensitive collation (the index follows it)."""
    with scratch_database("mysql", scratch_name("plan", created_by)) as url:
        if created_by == "initdb":
            assert main(["initdb", "--db-url", url, "--schema", "opensips"]) == 0
        else:
            run_script("mysql", url, UPSTREAM_DDL["mysql", "opensips"][0])
        storage = open_storage(url)
        assert isinstance(storage, DBAPIStorage)
        client = Client(XCAPMiddleware(None, storage=storage))
        for user in ("bob", "carol", "dave"):
            assert put_doc(client, user, f"sip:{user}s@example.com").status == "201 Created"
            assert client.put(f"/xcap-root/resource-lists/users/sip:{user}@example.com/index",
                              data=RESOURCE_LISTS).status == "201 Created"
        key = ("bob", "example.com", 8, "/xcap-root/rls-services/users/sip:bob@example.com/index")
        services = storage.services
        conn = connect("mysql", url)
        unique = "account_doc_type_idx"
        try:
            for name in ("get", "lock", "update", "delete"):
                params = (b"", "e", *key[:3], *key) if name == "update" else key
                assert plan(conn, storage._sql[name], params)["xcap"] in {("const", unique), ("range", unique)}, name
            for statement, params in ((sql.SERVICES_HOLDERS, ("0" * 64,)), (sql.SERVICES_TAKEN, ("0" * 64, key[3])),
                                      (sql.SERVICES_STORED, ()), (sql.SERVICES_GONE, ())):
                found = plan(conn, services._sql(statement, len(params) and 1), params)
                assert found["x"] in {("eq_ref", unique), ("const", unique), (None, None)}, (statement, found)
        finally:
            conn.close()
            storage.close()
