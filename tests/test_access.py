"""Request ids and access lines (issue 9, observability): every XCAP response carries
``X-Request-ID``; one access line per request, errors included, naming the client as
the trusted proxies tell it, the user, the method, path, status, bytes and duration."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import pytest
from werkzeug.test import Client

from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.access import TEXT_FORMAT
from xcap_wsgi.storage import Storage, StorageUnavailable

PROXY = {"REMOTE_ADDR": "127.0.0.1"}
LINE = re.compile(r"request ([0-9a-f]{12}): (\S+) (\S+) (\S+) '(.*)' -> (\d{3}) (\d+) bytes (\d+\.\d) ms")


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "xcap_wsgi.access"]


@pytest.fixture
def proxied(storage: Storage) -> Client:
    return Client(XCAPMiddleware(None, storage=storage, auth="upstream", trusted_proxies=["127.0.0.1"],
                                 upstream_header="X-Authenticated-User"))


def test_every_answer_carries_its_request_id_and_one_access_line(proxied: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "xcap_wsgi.access")
    headers = {"X-Authenticated-User": "alice@example.com", "X-Forwarded-For": "203.0.113.7"}
    put = proxied.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME, headers=headers, environ_base=PROXY)
    missing = proxied.get(RL_URI.replace("index", "other"), headers=headers, environ_base=PROXY)
    refused = proxied.get(RL_URI, headers={"X-Authenticated-User": "bob@example.com"}, environ_base=PROXY)
    assert [r.status for r in (put, missing, refused)] == ["201 Created", "404 Not Found", "403 Forbidden"]
    ids = [r.headers["X-Request-ID"] for r in (put, missing, refused)]
    assert len(set(ids)) == 3
    parsed = [LINE.fullmatch(line).groups() for line in lines(caplog)]  # type: ignore[union-attr]
    assert [p[:7] for p in parsed] == [
        (ids[0], "203.0.113.7", "alice@example.com", "PUT", RL_URI, "201", "0"),
        (ids[1], "203.0.113.7", "alice@example.com", "GET", RL_URI.replace("index", "other"), "404",
         str(len(missing.data))),
        (ids[2], "127.0.0.1", "bob@example.com", "GET", RL_URI, "403", str(len(refused.data))),
    ]


def test_a_trusted_proxys_request_id_is_kept_and_anyone_elses_replaced(proxied: Client) -> None:
    headers = {"X-Authenticated-User": "alice@example.com", "X-Request-ID": "nginx-4f2a.9"}
    assert proxied.get(RL_URI, headers=headers, environ_base=PROXY).headers["X-Request-ID"] == "nginx-4f2a.9"
    elsewhere = proxied.get(RL_URI, headers=headers, environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert re.fullmatch("[0-9a-f]{12}", elsewhere.headers["X-Request-ID"])
    odd = {**headers, "X-Request-ID": "two words"}
    assert re.fullmatch("[0-9a-f]{12}", proxied.get(RL_URI, headers=odd, environ_base=PROXY).headers["X-Request-ID"])


class Broken:
    """A storage whose every call fails as given."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc
        self.url = self.description = "broken://"

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise self.exc
        return fail


@pytest.mark.parametrize(("exc", "status"), [
    pytest.param(StorageUnavailable("gone"), "503 Service Unavailable", id="503"),
    pytest.param(RuntimeError("bug"), "500 Internal Server Error", id="500"),
])
def test_server_errors_get_a_request_id_and_an_access_line(exc: Exception, status: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "xcap_wsgi")
    resp = Client(XCAPMiddleware(None, storage=Broken(exc))).get(RL_URI, environ_base=PROXY)  # type: ignore[arg-type]
    assert resp.status == status
    rid = resp.headers["X-Request-ID"]
    [line] = lines(caplog)
    assert line.startswith(f"request {rid}: 127.0.0.1 - GET '{RL_URI}' -> {status[:3]} {len(resp.data)} bytes ")
    assert any(rid in r.getMessage() for r in caplog.records if r.name == "xcap_wsgi" and r.levelno >= logging.ERROR)


def test_json_access_lines(storage: Storage, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "xcap_wsgi.access")
    resp = Client(XCAPMiddleware(None, storage=storage, log_format="json")).put(
        RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME, environ_base={"REMOTE_ADDR": "192.0.2.1"})
    [line] = lines(caplog)
    record = json.loads(line)
    assert record.pop("duration_ms") >= 0
    assert record == {"id": resp.headers["X-Request-ID"], "client": "192.0.2.1", "user": None, "method": "PUT",
                      "path": RL_URI, "status": 201, "bytes": 0}


def test_an_unknown_log_format_is_refused(storage: Storage) -> None:
    with pytest.raises(ValueError, match="log_format must be one of text, json, got 'xml'"):
        XCAPMiddleware(None, storage=storage, log_format="xml")


def test_paths_outside_the_root_get_no_request_id(storage: Storage) -> None:
    assert "X-Request-ID" not in Client(XCAPMiddleware(None, storage=storage)).get("/elsewhere").headers


@pytest.fixture
def own_handler() -> Any:
    """configure_logging on loggers nothing configured, restored afterwards."""
    from xcap_wsgi.access import access_log, configure_logging

    root, package = logging.getLogger(), logging.getLogger("xcap_wsgi")
    saved = (root.handlers[:], package.handlers[:], package.level, access_log.handlers[:], access_log.level,
             access_log.propagate)
    root.handlers[:] = []
    package.handlers[:] = []
    access_log.handlers[:] = []

    def configure(log_format: str) -> Any:
        kept = root.handlers[:]  # pytest's capture handlers, added again for each test phase
        root.handlers[:] = []
        configure_logging(log_format)
        root.handlers[:] = kept
        import io

        [handler] = access_log.handlers
        handler.stream = io.StringIO()
        return handler

    yield configure
    root.handlers[:], package.handlers[:], level, access_log.handlers[:], access_level, propagate = saved
    package.setLevel(level)
    access_log.setLevel(access_level)
    access_log.propagate = propagate


@pytest.mark.parametrize(("log_format", "pattern"), [
    pytest.param("text", r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO xcap_wsgi\.access: " + LINE.pattern + "\n",
                 id="text"),
    pytest.param("json", r"\{\"id\": \"[0-9a-f]{12}\", .*\"status\": 201, \"bytes\": 0, \"duration_ms\": [\d.]+\}\n",
                 id="json"),
])
def test_configured_access_lines_read_as_the_logging_formatter_writes_them(
    storage: Storage, own_handler: Any, log_format: str, pattern: str
) -> None:
    handler = own_handler(log_format)
    Client(XCAPMiddleware(None, storage=storage, log_format=log_format)).put(RL_URI, data=RESOURCE_LISTS,
                                                                               content_type=RL_MIME)
    logging.getLogger("xcap_wsgi.access").info("from elsewhere")
    written = handler.stream.getvalue().splitlines(keepends=True)
    assert len(written) == 2
    assert re.fullmatch(pattern, written[0])
    expected_tail = " INFO xcap_wsgi.access: from elsewhere\n" if log_format == "text" else "from elsewhere\n"
    assert written[1].endswith(expected_tail)
    if log_format == "text":
        formatted = logging.Formatter(TEXT_FORMAT).format(logging.makeLogRecord(
            {"name": "xcap_wsgi.access", "levelname": "INFO", "msg": "x"}))
        assert len(written[0].split(" INFO ")[0]) == len(formatted.split(" INFO ")[0])  # same timestamp shape
