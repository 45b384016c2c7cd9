"""The middleware as a WSGI citizen: pass-through, mounting, configuration."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import flask
import pytest
from werkzeug.test import Client

from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI
from xcap_wsgi import XCAPMiddleware, create_app
from xcap_wsgi.config import settings_from_env
from xcap_wsgi.storage import Storage
from xcap_wsgi.storage.sqlite import SQLiteStorage


class NullApp:
    """A wrapped app that records what reached it and answers a fixed body."""

    def __init__(self) -> None:
        self.environ: dict[str, Any] | None = None
        self.snapshot: dict[str, Any] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.environ = environ
        self.snapshot = dict(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"wrapped app"]


class UnreadableInput:
    def read(self, *args: Any) -> bytes:
        raise AssertionError("the middleware read the body of a pass-through request")

    readline = read


@pytest.fixture
def null_app() -> NullApp:
    return NullApp()


@pytest.fixture
def wrapped(null_app: NullApp, storage: Storage) -> XCAPMiddleware:
    return XCAPMiddleware(null_app, storage=storage)


@pytest.mark.parametrize("path", ["/", "/index.html", "/xcap-rootless/x", "/xcap", "/api/xcap-root/x"])
def test_other_paths_pass_through_untouched(wrapped: XCAPMiddleware, null_app: NullApp, path: str) -> None:
    environ = {
        "REQUEST_METHOD": "PUT", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "a=1",
        "CONTENT_LENGTH": "5", "wsgi.input": UnreadableInput(), "HTTP_X_CUSTOM": "kept",
    }
    before = dict(environ)
    statuses: list[str] = []
    body = b"".join(wrapped(environ, lambda s, h: statuses.append(s)))
    assert (statuses, body) == (["200 OK"], b"wrapped app")
    assert null_app.environ is environ
    assert null_app.snapshot == before


def test_xcap_paths_do_not_reach_the_wrapped_app(wrapped: XCAPMiddleware, null_app: NullApp) -> None:
    resp = Client(wrapped).put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME)
    assert resp.status == "201 Created"
    assert null_app.environ is None


def test_without_app_other_paths_are_404(storage: Storage) -> None:
    resp = Client(XCAPMiddleware(None, storage=storage)).get("/index.html")
    assert (resp.status, resp.data) == ("404 Not Found", b"nothing here; XCAP is served under /xcap-root/\n")


def test_custom_root_is_served_and_stored_in_doc_uri(storage: Storage) -> None:
    client = Client(XCAPMiddleware(None, storage=storage, xcap_root="/services"))
    uri = "/services/resource-lists/users/sip:alice@example.com/index"
    assert client.put(uri, data=RESOURCE_LISTS, content_type=RL_MIME).status == "201 Created"
    assert storage.get(uri) is not None
    assert client.get(RL_URI).status == "404 Not Found"


def test_flask_mount_serves_xcap_and_the_flask_routes(tmp_path: Path) -> None:
    app = flask.Flask(__name__)

    @app.route("/hello")
    def hello() -> str:
        return "hello from flask"

    app.wsgi_app = XCAPMiddleware(app.wsgi_app, db_url=f"sqlite:///{tmp_path}/x.db")  # type: ignore[method-assign]
    client = app.test_client()
    assert client.get("/hello").data == b"hello from flask"
    put = client.put(RL_URI, data=RESOURCE_LISTS, content_type=RL_MIME)
    assert put.status == "201 Created"
    got = client.get(RL_URI)
    assert (got.status_code, got.data, got.headers["ETag"]) == (200, RESOURCE_LISTS, put.headers["ETag"])


def test_create_app_reads_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XCAP_DB_URL", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv("XCAP_TABLE", "docs")
    monkeypatch.setenv("XCAP_ROOT", "/x/")
    monkeypatch.setenv("XCAP_BUF_SIZE", "4096")
    app = create_app()
    assert (app.root.path, app.buf_size) == ("/x/", 4096)
    assert isinstance(app.storage, SQLiteStorage)
    assert (app.storage.path, app.storage.table) == (f"{tmp_path}/env.db", "docs")
    client = Client(app)
    assert client.put("/x/resource-lists/users/sip:a@b/index", data=RESOURCE_LISTS).status == "201 Created"


def test_create_app_keywords_override_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XCAP_ROOT", "/x/")
    app = create_app(xcap_root="/y/", db_url=f"sqlite:///{tmp_path}/o.db")
    assert app.root.path == "/y/"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param({"XCAP_BUF_SIZE": "1M"}, "XCAP_BUF_SIZE must be an integer, got '1M'", id="integer"),
        pytest.param({"XCAP_NONCE_LIFETIME": "0"}, "XCAP_NONCE_LIFETIME must be at least 1, got 0", id="positive"),
        pytest.param({"XCAP_ALLOW_BASIC_OVER_HTTP": "maybe"},
                     "XCAP_ALLOW_BASIC_OVER_HTTP must be true or false, got 'maybe'", id="boolean"),
        pytest.param({"XCAP_AUTH": "ldap"}, "XCAP_AUTH must be one of none, digest, basic, upstream, ims, got 'ldap'",
                     id="auth"),
        pytest.param({"XCAP_TRUSTED_PROXIES": "127.0.0.1, 300.1.1.1"},
                     "XCAP_TRUSTED_PROXIES must be an IP address or CIDR block, got '300.1.1.1'", id="trusted-proxies"),
        pytest.param({"XCAP_TRUSTED_PEERS": "10.0.0.0/33"},
                     "XCAP_TRUSTED_PEERS must be an IP address or CIDR block, got '10.0.0.0/33'", id="trusted-peers"),
        pytest.param({"XCAP_ADMINS": "sip:admin@example.com,alice"},
                     "XCAP_ADMINS must be an identity sip:user@domain, got 'alice'", id="admins"),
        pytest.param({"XCAP_DIGEST_ALGORITHMS": "SHA-256,SHA1"},
                     "XCAP_DIGEST_ALGORITHMS must be one of MD5, SHA-256, got 'SHA1'", id="digest-algorithms"),
        pytest.param({"XCAP_DIGEST_ALGORITHMS": ","}, "XCAP_DIGEST_ALGORITHMS must name at least one of MD5, SHA-256",
                     id="no-digest-algorithm"),
        pytest.param({"XCAP_AUTH_SECRET": "s3cret"}, "XCAP_AUTH_SECRET must be at least 16 characters", id="secret"),
        pytest.param({"XCAP_CREDENTIALS_URL": "mysql://root@localhost/"},
                     "the MySQL URL must name one database: mysql://user:pass@host/dbname, got 'mysql://root@localhost/'",
                     id="credentials-url"),
        pytest.param({"XCAP_CREDENTIALS_URL": "oracle://x"},
                     "unsupported XCAP_CREDENTIALS_URL 'oracle://x': use sqlite:///path/to/file.db,"
                     " mysql://user:pass@host[:port]/db or postgresql://user:pass@host[:port]/db",
                     id="credentials-url-scheme"),
    ],
)
def test_bad_environment_value_is_refused_naming_its_variable(environ: dict[str, str], message: str) -> None:
    """Checked whatever XCAP_AUTH says: an auth option the mode ignores is still refused."""
    with pytest.raises(ValueError) as refused:
        settings_from_env(environ)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        pytest.param("XCAP_ROOT", "xcap", "XCAP_ROOT must be an absolute path starting with '/', got 'xcap'", id="root"),
        pytest.param("XCAP_BUF_SIZE", "16777216",
                     "XCAP_BUF_SIZE must be an integer between 1 and 16777215 bytes, got 16777216", id="buf-size"),
        pytest.param("XCAP_NOTIFY", "http://notify.example/RPC",
                     "unsupported XCAP_NOTIFY target 'http://notify.example/RPC': use kamailio+http://host:port/RPC,"
                     " opensips+http://host:port/mi, sip:host[:port][;transport=udp|tcp] or a callable", id="notify"),
    ],
)
def test_create_app_names_the_variable_of_a_value_the_middleware_refuses(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str, value: str, message: str) -> None:
    monkeypatch.setenv("XCAP_DB_URL", f"sqlite:///{tmp_path}/env.db")
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as refused:
        create_app()
    assert str(refused.value) == message


def test_create_app_names_the_keyword_of_a_refused_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XCAP_ROOT", "/x/")
    with pytest.raises(ValueError) as refused:
        create_app(xcap_root="y")
    assert str(refused.value) == "xcap_root must be an absolute path starting with '/', got 'y'"


def test_environment_lists_and_booleans_are_converted() -> None:
    assert settings_from_env({
        "XCAP_AUTH": "digest", "XCAP_TRUSTED_PEERS": "10.0.0.0/8, 192.0.2.7", "XCAP_ALLOW_BASIC_OVER_HTTP": "yes",
        "XCAP_NONCE_LIFETIME": "60", "XCAP_ADMINS": "", "XCAP_DIGEST_ALGORITHMS": "SHA-256,MD5",
        "XCAP_NOTIFY": "kamailio+http://127.0.0.1:5091/RPC, sip:127.0.0.1:5090", "XCAP_NOTIFY_MAX_ATTEMPTS": "7",
        "XCAP_NODE_CACHE_SIZE": "0",
    }) == {"auth": "digest", "trusted_peers": ["10.0.0.0/8", "192.0.2.7"], "allow_basic_over_http": True,
           "nonce_lifetime": 60, "digest_algorithms": ["SHA-256", "MD5"],
           "notify": ["kamailio+http://127.0.0.1:5091/RPC", "sip:127.0.0.1:5090"], "notify_max_attempts": 7,
           "node_cache_size": 0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"buf_size": 0}, "buf_size must be an integer between 1 and"),
        ({"buf_size": 16 * 1024 * 1024}, "buf_size must be an integer between 1 and"),
        ({"buf_size": "1000"}, "buf_size must be an integer"),
        ({"xcap_root": "xcap"}, "xcap_root must be an absolute path"),
        ({"xcap_table": "xcap; DROP TABLE x"}, "xcap_table must match"),
        ({"xcap_table": "x" * 65}, "xcap_table must match"),
        ({"db_url": "oracle://x/y"}, "unsupported db_url"),
        ({"db_url": "mysql://root@localhost/"}, "must name one database"),
        ({"db_url": "mysql://root@localhost/db?ssl=1"}, "unsupported MySQL URL parameter"),
        ({"db_url": "sqlite:///:memory:"}, "needs a file path"),
    ],
)
def test_invalid_configuration_raises_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        XCAPMiddleware(None, **kwargs)


def test_db_url_and_storage_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="either db_url or storage"):
        XCAPMiddleware(None, db_url="sqlite:///a.db", storage=SQLiteStorage(str(tmp_path / "b.db")))


def test_unexpected_exception_is_500_without_traceback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Broken(SQLiteStorage):
        def get(self, key: object) -> Any:
            raise RuntimeError("secret internals")

    client = Client(XCAPMiddleware(None, storage=Broken(str(tmp_path / "b.db"))))
    resp = client.get(RL_URI)
    assert resp.status == "500 Internal Server Error"
    assert resp.data.startswith(b"internal error (request id ")
    assert b"secret" not in resp.data
    request_id = resp.data.decode().split("request id ")[1].rstrip(")\n")
    assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)


def test_head_error_has_no_body(client: Client) -> None:
    resp = client.head(RL_URI)
    assert (resp.status, resp.data, resp.headers["Content-Length"]) == ("404 Not Found", b"", "17")


def test_percent_encoded_selector_survives_without_raw_uri(app: XCAPMiddleware) -> None:
    # a server without RAW_URI/REQUEST_URI: the decoded PATH_INFO is re-encoded
    environ = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "QUERY_STRING": "",
        "PATH_INFO": "/xcap-root/resource-lists/users/sip:alice@example.com/index",
        "wsgi.input": io.BytesIO(),
    }
    statuses: list[str] = []
    app(environ, lambda s, h: statuses.append(s))
    assert statuses == ["404 Not Found"]
