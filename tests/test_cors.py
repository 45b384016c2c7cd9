"""CORS, opt-in (issue 9): preflights for the XCAP methods and headers, ETag exposed,
nothing sent when no origin is configured."""

from __future__ import annotations

import pytest
from werkzeug.test import Client

from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.storage import Storage

APP_ORIGIN = "https://phone.example.com"
PREFLIGHT = {"Origin": APP_ORIGIN, "Access-Control-Request-Method": "PUT",
             "Access-Control-Request-Headers": "if-match, content-type, authorization"}


def cors_client(storage: Storage, *origins: str, **settings: object) -> Client:
    return Client(XCAPMiddleware(None, storage=storage, cors_origins=origins, **settings))  # type: ignore[arg-type]


def test_a_preflight_from_a_listed_origin_is_answered_without_credentials(storage: Storage) -> None:
    client = cors_client(storage, APP_ORIGIN, auth="digest", auth_secret="s" * 32)
    resp = client.options(RL_URI, headers=PREFLIGHT)
    assert (resp.status, resp.data) == ("204 No Content", b"")
    assert dict(resp.headers) == {
        "Access-Control-Allow-Origin": APP_ORIGIN, "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": "GET, HEAD, PUT, DELETE",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match, If-None-Match, X-Request-ID",
        "Access-Control-Max-Age": "600", "Vary": "Origin",
    }


def test_a_preflight_from_another_origin_is_refused(storage: Storage) -> None:
    resp = cors_client(storage, APP_ORIGIN).options(RL_URI, headers={**PREFLIGHT, "Origin": "https://evil.example"})
    assert (resp.status, resp.data) == ("403 Forbidden", b"origin not allowed here\n")
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_answers_to_a_listed_origin_expose_the_etag(storage: Storage) -> None:
    client = cors_client(storage, APP_ORIGIN)
    put = client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME, headers={"Origin": APP_ORIGIN})
    missing = client.get(RL_URI + "x", headers={"Origin": APP_ORIGIN})
    for resp in (put, missing):
        assert resp.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        assert resp.headers["Access-Control-Expose-Headers"] == "ETag, X-Request-ID"
        assert resp.headers["Vary"] == "Origin"
    other = client.get(RL_URI, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers and other.headers["Vary"] == "Origin"


def test_a_star_allows_every_origin_by_echoing_it(storage: Storage) -> None:
    resp = cors_client(storage, "*").options(RL_URI, headers={**PREFLIGHT, "Origin": "http://localhost:3000"})
    assert resp.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"


def test_without_origins_nothing_is_sent_and_options_stays_405(storage: Storage) -> None:
    client = Client(XCAPMiddleware(None, storage=storage))
    resp = client.options(RL_URI, headers=PREFLIGHT)
    assert resp.status == "405 Method Not Allowed"
    assert not [k for k, _ in resp.headers.items() if k.startswith("Access-Control") or k == "Vary"]


@pytest.mark.parametrize("origin", ["phone.example.com", "https://phone.example.com/", "ftp://x", "https://x?y"])
def test_bad_origins_are_refused(storage: Storage, origin: str) -> None:
    with pytest.raises(ValueError, match="a CORS origin is scheme://host"):
        cors_client(storage, origin)
