"""U10: a directory and a document never share a name (RFC 4825 §6.2), on every backend.

``.../index`` and ``.../index/inner`` cannot both be stored, whichever is written first, at any
depth, in the global tree too, whoever wrote the first (another program included), and under
concurrency exactly one of two creations wins: the owner's claim row serialises them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import pytest
from werkzeug.test import Client, TestResponse

from tests.conftest import ALL_STORAGE_BACKENDS, MYSQL_URL, POSTGRESQL_URL, mysql_drop, postgresql_drop
from tests.docs import MINIMAL, RESOURCE_LISTS, RL_MIME
from tests.test_service_index import at_once, foreign_write
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.errors import ConstraintFailure, NoParent
from xcap_wsgi.storage import DocKey, Storage, open_storage, sql
from xcap_wsgi.storage.base import new_etag
from xcap_wsgi.storage.dbapi import DBAPIStorage
from xcap_wsgi.storage.paths import owner_hash
from xcap_wsgi.usages import get_usage

ROUNDS = 10
#: the backends whose writers run side by side, locking rows (every driver)
LOCKING_BACKENDS = [b for b in ALL_STORAGE_BACKENDS if b != "sqlite"]
HOME = "/xcap-root/resource-lists/users/sip:alice@example.com/"
GLOBAL = "/xcap-root/resource-lists/global/"


def put(client: Client, name: str, home: str = HOME) -> TestResponse:
    return client.put(home + name, data=RESOURCE_LISTS, content_type=RL_MIME)


def xcap_error(element: str, phrase: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<xcap-error xmlns="urn:ietf:params:xml:ns:xcap-error">'
            f"<{element} phrase={quoteattr(phrase)}/></xcap-error>\n").encode()


def below_a_document(document: str, new: str, home: str = HOME) -> bytes:
    """The 409 for ``new``, which a stored ``document`` would have to be the directory of."""
    return xcap_error("no-parent", f"{home}{document} is a document, so no directory of that name can hold {home}{new}"
                                   " (RFC 4825 section 6.2)")


def named_like_a_directory(new: str, document: str, home: str = HOME) -> bytes:
    """The 409 for ``new``, a directory holding the stored ``document``."""
    return xcap_error("constraint-failure", f"{home}{new} is a directory holding {home}{document}, so no document can"
                                            " have its name (RFC 4825 section 6.2)")


def assert_conflict(resp: TestResponse, body: bytes) -> None:
    assert (resp.status, resp.headers["Content-Type"], resp.data) == ("409 Conflict", "application/xcap-error+xml", body)


def kamailio_stores(storage: DBAPIStorage, doc_uri: str, username: str = "alice", domain: str = "example.com") -> None:
    """A row written behind xcap-wsgi's back, as Kamailio's xcap_server writes it."""
    storage.ensure_schema()
    foreign_write(storage, sql.INSERT_DOC, username, domain, RESOURCE_LISTS, 4, new_etag(), doc_uri)


def test_a_document_below_a_stored_document_is_refused_with_no_parent(client: Client) -> None:
    assert put(client, "index").status == "201 Created"
    assert_conflict(put(client, "index/inner"), below_a_document("index", "index/inner"))
    assert client.get(HOME + "index/inner").status == "404 Not Found"


def test_a_document_named_like_a_directory_is_refused_with_constraint_failure(client: Client) -> None:
    assert put(client, "index/inner").status == "201 Created"
    assert_conflict(put(client, "index"), named_like_a_directory("index", "index/inner"))
    assert client.get(HOME + "index").status == "404 Not Found"


@pytest.mark.parametrize(("name", "refusal"), [
    pytest.param("a", named_like_a_directory("a", "a/b/c"), id="top-directory"),
    pytest.param("a/b", named_like_a_directory("a/b", "a/b/c"), id="inner-directory"),
    pytest.param("a/b/c/d", below_a_document("a/b/c", "a/b/c/d"), id="below-the-document"),
    pytest.param("a/b/c/d/e", below_a_document("a/b/c", "a/b/c/d/e"), id="deep-below-the-document"),
    pytest.param("a/x", None, id="sibling-in-a-directory"),
    pytest.param("a/b/d", None, id="sibling-of-the-document"),
    pytest.param("a/b/c2", None, id="name-extending-the-document"),
    pytest.param("a/b.c/d", None, id="directory-extending-the-document"),
    pytest.param("a.b", None, id="name-extending-a-directory"),
])
def test_deeper_nestings_conflict_on_whole_segments_only(client: Client, name: str, refusal: bytes | None) -> None:
    assert put(client, "a/b/c").status == "201 Created"
    resp = put(client, name)
    if refusal is None:
        assert resp.status == "201 Created"
    else:
        assert_conflict(resp, refusal)


def test_names_that_only_begin_alike_do_not_conflict(client: Client) -> None:
    for name in ("index", "index2", "index.xml", "index-old/inner", "inde", "index0/inner"):
        assert put(client, name).status == "201 Created", name


def test_the_global_tree_keeps_its_names_apart_too(storage: Storage) -> None:
    """Written without HTTP (global writes need an administrator): the storage refuses alone."""
    def create(name: str) -> None:
        storage.update(DocKey(GLOBAL + name, "", "", 4), lambda current: RESOURCE_LISTS)
    create("index")
    create("dir/inner")
    with pytest.raises(NoParent) as below:
        create("index/inner")
    with pytest.raises(ConstraintFailure) as directory:
        create("dir")
    assert below.value.body_bytes() == below_a_document("index", "index/inner", GLOBAL)
    assert directory.value.body_bytes() == named_like_a_directory("dir", "dir/inner", GLOBAL)
    assert storage.get(GLOBAL + "index/inner") is None and storage.get(GLOBAL + "dir") is None


def test_replacing_a_stored_document_is_never_refused(storage: DBAPIStorage) -> None:
    """Even when another program stored a document and one below it."""
    kamailio_stores(storage, HOME + "index")
    kamailio_stores(storage, HOME + "index/inner")
    client = Client(XCAPMiddleware(None, storage=storage))
    assert put(client, "index").status == "200 OK"
    assert put(client, "index/inner").status == "200 OK"
    element = client.put(HOME + "index/~~/resource-lists/list%5B@name=%22new%22%5D", data=b'<list name="new"/>',
                         content_type="application/xcap-el+xml")
    assert element.status == "201 Created"


@pytest.mark.parametrize(("stored", "new"), [
    pytest.param("index", "index/inner", id="document-then-below"),
    pytest.param("index/inner", "index", id="below-then-document"),
    pytest.param("d/e/f", "d", id="deep-then-top"),
])
def test_documents_another_program_stored_count(storage: DBAPIStorage, stored: str, new: str) -> None:
    kamailio_stores(storage, HOME + stored)
    resp = put(Client(XCAPMiddleware(None, storage=storage)), new)
    assert resp.status == "409 Conflict"


@pytest.mark.parametrize(("first", "second"), [
    pytest.param("a/b/c", "a", id="directory-freed"),
    pytest.param("a", "a/b/c", id="document-name-freed"),
])
def test_deleting_the_only_document_frees_the_name(client: Client, first: str, second: str) -> None:
    put(client, first)
    assert put(client, second).status == "409 Conflict"
    assert client.delete(HOME + first).status == "200 OK"
    assert put(client, second).status == "201 Created"


def test_a_directory_keeps_its_name_while_a_document_remains_below_it(client: Client) -> None:
    put(client, "a/x")
    put(client, "a/y/z")
    client.delete(HOME + "a/x")
    assert_conflict(put(client, "a"), named_like_a_directory("a", "a/y/z"))
    client.delete(HOME + "a/y/z")
    assert put(client, "a").status == "201 Created"


def test_another_users_paths_never_conflict(client: Client) -> None:
    """``sip:alice@example.com%2Findex`` is one XUI: its documents share a doc_uri prefix with
    alice's ``index`` but live in another user's directory."""
    put(client, "index")
    other = "/xcap-root/resource-lists/users/sip:alice@example.com%2Findex/"
    assert put(client, "inner", home=other).status == "201 Created"
    assert client.get(HOME + "index").status == "200 OK"


def test_only_a_creation_claims(storage: DBAPIStorage) -> None:
    """The owner's claim row takes the creating write's ETag; replaces and deletes leave it."""
    client = Client(XCAPMiddleware(None, storage=storage))
    created = put(client, "index").headers["ETag"].strip('"')
    key = DocKey(HOME + "index", "alice", "example.com", 4)
    assert claimed(storage, key) == created
    put(client, "index")
    client.delete(HOME + "index")
    assert claimed(storage, key) == created


def claimed(storage: DBAPIStorage, key: DocKey) -> str | None:
    names = storage.paths._names

    def work(cursor: Any) -> str | None:
        cursor.execute(f"SELECT etag FROM {names['c']} WHERE owner = {names['p']}", (owner_hash(key),))
        row = cursor.fetchone()
        return None if row is None else str(row[0])
    result: str | None = storage.run(work)
    return result


# -- OpenSIPS's layout: no index on doc_uri alone, OMA pres-rules stored as doc_type 32 ---------

@pytest.fixture(params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql),
                        pytest.param("postgresql", marks=pytest.mark.postgresql)])
def opensips(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DBAPIStorage]:
    table = f"xcap_paths_os_{os.getpid()}"
    drop = {"sqlite": lambda t: None, "mysql": mysql_drop, "postgresql": postgresql_drop}[request.param]
    drop(table)
    url = {"sqlite": f"sqlite:///{tmp_path / 'os.db'}", "mysql": MYSQL_URL, "postgresql": POSTGRESQL_URL}[request.param]
    storage = open_storage(url, table, schema="opensips")
    assert isinstance(storage, DBAPIStorage)
    yield storage
    storage.close()
    drop(table)


@pytest.mark.parametrize("auid", ["resource-lists", "org.openmobilealliance.pres-rules"])
def test_opensips_layout_keeps_names_apart_too(opensips: DBAPIStorage, auid: str) -> None:
    client = Client(XCAPMiddleware(None, storage=opensips))
    home = f"/xcap-root/{auid}/users/sip:alice@example.com/"
    usage = get_usage(auid)
    assert usage is not None
    body, mime = MINIMAL[auid][1], usage.mime_type
    assert client.put(home + "index", data=body, content_type=mime).status == "201 Created"
    assert_conflict(client.put(home + "index/inner", data=body, content_type=mime),
                    below_a_document("index", "index/inner", home))
    assert client.put(home + "index", data=body, content_type=mime).status == "200 OK"


# -- under concurrency ---------------------------------------------------------------------------

def one_created(responses: list[TestResponse]) -> int:
    """Exactly one of two creations is a 201, the other a 409: the index of the winner."""
    statuses = [r.status for r in responses]
    assert sorted(statuses) == ["201 Created", "409 Conflict"], statuses
    return statuses.index("201 Created")


def assert_one_of_a_pair_stored(app: XCAPMiddleware, pair: tuple[str, str], responses: list[TestResponse]) -> None:
    document, below = pair
    refusals = (below_a_document(document, below), named_like_a_directory(document, below))
    winner = one_created(responses)
    assert_conflict(responses[1 - winner], refusals[winner])
    assert Client(app).get(HOME + pair[1 - winner]).status == "404 Not Found"


def test_a_document_and_one_below_it_created_at_once_exactly_one_is_stored(storage: Storage) -> None:
    app = XCAPMiddleware(None, storage=storage)
    for n in range(ROUNDS):
        pair = (f"r{n}", f"r{n}/inner")
        assert_one_of_a_pair_stored(app, pair, at_once(put, *((Client(app), name) for name in pair)))


@pytest.mark.parametrize("backend", LOCKING_BACKENDS, indirect=True)
def test_creations_that_meet_before_their_checks_serialise_on_the_owners_claim(
        storage: DBAPIStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both rows inserted, both transactions at the claim together: the second waits on the
    claim row until the first commits, so its query sees the first's row (SQLite's writers
    queue at BEGIN instead)."""
    app = XCAPMiddleware(None, storage=storage)
    write = storage.paths.write
    fresh = new_etag()[:8]  # names no earlier test used: a row deleted but not yet purged holds a gap lock
    for n in range(ROUNDS):
        met = threading.Barrier(2)

        def meet_then_write(*args: Any, barrier: threading.Barrier = met) -> None:
            barrier.wait(timeout=30)
            write(*args)
        monkeypatch.setattr(storage.paths, "write", meet_then_write)
        pair = (f"m{fresh}{n}", f"m{fresh}{n}/inner")
        responses = at_once(put, *((Client(app), name) for name in pair))
        monkeypatch.setattr(storage.paths, "write", write)
        assert_one_of_a_pair_stored(app, pair, responses)
