"""Parse once per ETag (issue 10 item 2): element, attribute and namespace requests reuse the
element index of a document they have parsed before, node writes parse only their result,
and a cached tree is never answered for bytes it was not built from.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from werkzeug.test import Client

from tests.conftest import make_storage
from tests.docs import RL_MIME, RL_URI
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.nodes import parse
from xcap_wsgi.parsecache import DEFAULT_MAX_BYTES, ParseCache
from xcap_wsgi.storage import DocKey, Document

EL = "application/xcap-el+xml"
DOC = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">\n'
    b'  <list name="friends">\n'
    b'    <entry uri="sip:bob@example.com"><display-name>Bob</display-name></entry>\n'
    b"  </list>\n"
    b"</resource-lists>\n"
)
FRIENDS = RL_URI + "/~~/resource-lists/list%5B@name=%22friends%22%5D"
BOB = FRIENDS + "/entry%5B@uri=%22sip:bob@example.com%22%5D"
CAROL = FRIENDS + "/entry%5B@uri=%22sip:carol@example.com%22%5D"
BOB_BYTES = b'<entry uri="sip:bob@example.com"><display-name>Bob</display-name></entry>'


@pytest.fixture
def app(storage: object) -> XCAPMiddleware:
    return XCAPMiddleware(None, storage=storage)  # type: ignore[arg-type]


def cache_of(client: Client) -> ParseCache:
    cache = client.application.parse_cache  # type: ignore[attr-defined]
    assert isinstance(cache, ParseCache)
    return cache


def stored(client: Client) -> str:
    resp = client.put(RL_URI, data=DOC, content_type=RL_MIME)
    assert resp.status == "201 Created"
    return str(resp.headers["ETag"])


def test_repeated_element_gets_parse_the_document_once(client: Client) -> None:
    etag = stored(client)
    answers = [client.get(BOB) for _ in range(3)]
    assert {(r.status, r.headers["Content-Type"], r.headers["ETag"], r.data) for r in answers} == {
        ("200 OK", EL, etag, BOB_BYTES)}
    assert (cache_of(client).misses, cache_of(client).hits) == (1, 2)


def test_attribute_and_namespace_gets_share_the_documents_tree(client: Client) -> None:
    stored(client)
    assert client.get(BOB + "/@uri").data == b'"sip:bob@example.com"'
    assert client.get(BOB + "/namespace::*").data == b'<entry xmlns="urn:ietf:params:xml:ns:resource-lists"/>'
    assert (cache_of(client).misses, cache_of(client).hits) == (1, 1)


def test_a_node_put_parses_only_its_result_and_the_next_get_parses_nothing(client: Client) -> None:
    stored(client)
    assert client.get(BOB).status == "200 OK"  # the one parse of the stored document
    resp = client.put(CAROL, data=b'<entry uri="sip:carol@example.com"/>', content_type=EL)
    assert resp.status == "201 Created"
    got = client.get(CAROL)
    assert (got.status, got.headers["ETag"], got.data) == ("200 OK", resp.headers["ETag"],
                                                            b'<entry uri="sip:carol@example.com"/>')
    assert (cache_of(client).misses, cache_of(client).hits) == (1, 2)


def test_a_node_delete_hands_on_its_result_too(client: Client) -> None:
    stored(client)
    client.get(BOB)
    resp = client.delete(BOB)
    assert resp.status == "200 OK"
    assert client.get(BOB).status == "404 Not Found"
    assert client.get(FRIENDS).data == b'<list name="friends">\n    \n  </list>'
    assert (cache_of(client).misses, cache_of(client).hits) == (1, 3)


def test_a_document_delete_forgets_its_tree(client: Client) -> None:
    stored(client)
    client.get(BOB)
    assert client.delete(RL_URI).status == "200 OK"
    assert len(cache_of(client)) == 0
    assert client.get(BOB).status == "404 Not Found"


def test_a_row_rewritten_elsewhere_with_the_same_etag_is_parsed_again(client: Client) -> None:
    """Another program (or an import) may store other bytes under an ETag seen before: the
    bytes decide, so the answer is always the stored document's element."""
    etag = stored(client).strip('"')
    client.get(BOB)
    other = DOC.replace(b"Bob", b"Robert")
    storage = client.application.storage  # type: ignore[attr-defined]
    storage.load([(DocKey(RL_URI, "alice", "example.com", 4), Document(other, etag))], replace=True)
    resp = client.get(BOB)
    assert (resp.status, resp.data) == ("200 OK", BOB_BYTES.replace(b"Bob", b"Robert"))
    assert cache_of(client).misses == 2


def test_the_middleware_without_a_cache_answers_the_same(storage: object) -> None:
    client = Client(XCAPMiddleware(None, storage=storage, node_cache_size=0))  # type: ignore[arg-type]
    assert client.application.parse_cache is None  # type: ignore[attr-defined]
    etag = stored(client)
    resp = client.get(BOB)
    assert (resp.status, resp.headers["ETag"], resp.data) == ("200 OK", etag, BOB_BYTES)


def test_the_cache_is_shared_by_the_workers_threads_and_survives_a_backend_roundtrip(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    app = XCAPMiddleware(None, storage=make_storage(backend, tmp_path, request))
    client = Client(app)
    stored(client)
    answers: list[bytes] = []
    threads = [threading.Thread(target=lambda: answers.append(client.get(BOB).data)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [BOB_BYTES] * 8
    assert app.parse_cache is not None and app.parse_cache.hits + app.parse_cache.misses == 8
    app.storage.close()


# -- the cache itself ---------------------------------------------------------------------

def doc(n: int, size: int = 100) -> Document:
    body = b"<r>" + b"x" * (size - 7) + b"</r>"
    return Document(body, f"etag{n}")


def test_least_recently_used_documents_leave_first_when_the_bytes_run_out() -> None:
    cache = ParseCache(max_bytes=250)
    for n in range(3):
        cache.tree(f"/d{n}", doc(n))
    assert (len(cache), cache.size) == (2, 200)
    cache.tree("/d1", doc(1))  # a hit: /d1 becomes the most recent
    cache.tree("/d3", doc(3))
    cache.tree("/d1", doc(1))
    assert (cache.hits, cache.misses, len(cache)) == (2, 4, 2)


def test_a_document_larger_than_the_bound_is_parsed_but_not_kept() -> None:
    cache = ParseCache(max_bytes=50)
    tree = cache.tree("/big", doc(1))
    assert tree.document == doc(1).doc
    assert (len(cache), cache.size) == (0, 0)


def test_a_new_version_replaces_the_documents_old_tree() -> None:
    cache = ParseCache()
    cache.tree("/d", doc(1))
    new = Document(b"<r>new</r>", "etag2")
    cache.store("/d", "etag2", parse(new.doc))
    assert (len(cache), cache.size) == (1, len(new.doc))
    assert cache.tree("/d", new).document == b"<r>new</r>"
    assert cache.hits == 1


@pytest.mark.parametrize("size", [-1, 1.5, True, "2"])
def test_a_bad_size_is_refused_when_built(size: object) -> None:
    with pytest.raises(ValueError, match="node_cache_size must be a number of bytes >= 0, got"):
        XCAPMiddleware(None, db_url="sqlite:////nonexistent/never-opened.db", node_cache_size=size)  # type: ignore[arg-type]


def test_the_default_bound_is_two_mebibytes() -> None:
    assert DEFAULT_MAX_BYTES == 2 * 1024 * 1024
    assert ParseCache().max_bytes == DEFAULT_MAX_BYTES
