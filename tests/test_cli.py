"""The ``xcap-wsgi`` command, run as a new user would: real processes, real HTTP."""

from __future__ import annotations

import gc
import http.client
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import MYSQL_URL, mysql_connect, mysql_drop
from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI

COMMAND = [sys.executable, "-m", "xcap_wsgi"]


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_initdb_creates_the_sqlite_table(tmp_path: Path) -> None:
    result = run("initdb", "--db-url", "sqlite:///x.db", "--xcap-table", "docs", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "xcap-wsgi: table 'docs' ready in sqlite:///x.db\n")
    conn = sqlite3.connect(tmp_path / "x.db")
    assert conn.execute("SELECT table_version FROM version WHERE table_name='docs'").fetchall() == [(4,)]
    tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
    assert tables == [("docs",), ("docs_outbox",), ("docs_outbox_lease",), ("sqlite_sequence",), ("version",)]
    conn.close()


@pytest.mark.mysql
def test_initdb_on_mysql_is_idempotent(tmp_path: Path) -> None:
    table = f"xcap_cli_{os.getpid()}"
    mysql_connect().close()
    mysql_drop(table)
    try:
        for _ in range(2):
            result = run("initdb", "--db-url", MYSQL_URL, "--xcap-table", table, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith(f"xcap-wsgi: table '{table}' ready in mysql://")
        with mysql_connect().cursor() as cur:
            cur.execute("SELECT table_version FROM version WHERE table_name = %s", (table,))
            assert cur.fetchall() == ((4,),)
    finally:
        mysql_drop(table)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["initdb", "--db-url", "oracle://x"], "xcap-wsgi: configuration error: unsupported db_url"),
        (["serve", "--xcap-root", "nope"], "xcap-wsgi: configuration error: xcap_root must be an absolute path"),
        (["serve", "--workers", "0"], "xcap-wsgi: configuration error: --workers must be at least 1"),
        (["serve", "--buf-size", "1k"], "xcap-wsgi: configuration error: --buf-size must be an integer, got '1k'"),
        (["serve", "--notify", "http://127.0.0.1:5091/RPC"],
         "xcap-wsgi: configuration error: unsupported notify target 'http://127.0.0.1:5091/RPC': use kamailio+http://"),
        (["serve", "--notify", "sip:127.0.0.1;transport=sctp"], "xcap-wsgi: configuration error: "),
        (["serve", "--notify", "kamailio+http://127.0.0.1:5091/RPC", "--notify-max-attempts", "x"],
         "xcap-wsgi: configuration error: --notify-max-attempts must be an integer, got 'x'"),
    ],
)
def test_bad_configuration_exits_2_with_a_message(tmp_path: Path, args: list[str], message: str) -> None:
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1].startswith(message)


def test_serve_announces_its_notify_targets(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([*COMMAND, "serve", "--bind", f"127.0.0.1:{port}", "--notify", "kamailio+http://127.0.0.1:9/RPC",
                             "--notify", "sip:127.0.0.1:9;transport=tcp"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("xcap-wsgi 0.1.0: serving XCAP root")
        assert proc.stdout.readline() == ("xcap-wsgi: announcing every change to kamailio+http://127.0.0.1:9/RPC,"
                                          " sip:127.0.0.1:9;transport=tcp\n")
    finally:
        stop_server(proc)


def test_initdb_with_unreachable_mysql_exits_1(tmp_path: Path) -> None:
    result = run("initdb", "--db-url", "mysql://root@127.0.0.1:1/test", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].startswith("xcap-wsgi: database unavailable: (2003, ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(tmp_path: Path, *args: str, workers: int = 2,
                 env: dict[str, str] | None = None) -> tuple[int, subprocess.Popen[str]]:
    port = free_port()
    proc = subprocess.Popen([*COMMAND, "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers), *args],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    while banner.startswith("20"):  # log lines (the authentication warning) come first
        banner = proc.stdout.readline()
    assert banner == (f"xcap-wsgi 0.1.0: serving XCAP root http://127.0.0.1:{port}/xcap-root/ "
                      f"from sqlite:///xcap.db with {workers} worker(s); Ctrl-C stops\n")
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return port, proc


def stop_server(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    port, proc = start_server(tmp_path, "--buf-size", "4096")
    yield port, proc
    stop_server(proc)


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    chunked = (headers or {}).get("Transfer-Encoding") == "chunked"
    conn.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
    resp = conn.getresponse()
    result = resp.status, dict(resp.getheaders()), resp.read()
    conn.close()
    return result


def test_serve_answers_xcap_over_http_and_stops_on_sigterm(server: tuple[int, subprocess.Popen[str]]) -> None:
    port, proc = server
    status, headers, _ = request(port, "PUT", RL_URI, RESOURCE_LISTS, {"Content-Type": RL_MIME})
    assert status == 201
    got = request(port, "GET", RL_URI)
    assert (got[0], got[1]["ETag"], got[1]["Content-Type"], got[2]) == (200, headers["ETag"], RL_MIME, RESOURCE_LISTS)
    assert request(port, "GET", "/")[0] == 404
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0


def test_serve_refuses_chunked_body_over_buf_size(server: tuple[int, subprocess.Popen[str]]) -> None:
    port, _ = server

    def chunks() -> Iterator[bytes]:
        yield b"<resource-lists>"
        for _ in range(10):
            yield b" " * 1000

    status, _, body = request(port, "PUT", RL_URI, chunks(),  # type: ignore[arg-type]
                              {"Content-Type": RL_MIME, "Transfer-Encoding": "chunked"})
    assert (status, body) == (413, b"request body too large: the limit (buf_size) is 4096 bytes\n")
    assert request(port, "GET", RL_URI)[0] == 404


def test_serve_answers_400_to_broken_chunk_framing(server: tuple[int, subprocess.Popen[str]]) -> None:
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"PUT {RL_URI} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".encode())
        reply = b"".join(iter(lambda: s.recv(65536), b""))
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert reply.endswith(b"\r\n\r\nthe request body could not be read: InvalidChunkSize\n")


def test_serve_refuses_a_public_address_without_authentication(tmp_path: Path) -> None:
    result = run("serve", "--bind", "0.0.0.0:1", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "xcap-wsgi: configuration error: refusing to serve 0.0.0.0:1 without authentication:"
        " use --auth digest|basic|upstream, bind to 127.0.0.1, or pass --allow-unauthenticated")


def test_user_add_passwd_del_manage_the_subscriber_table(tmp_path: Path) -> None:
    assert run("user", "add", "sip:alice@example.com", "--password", "pw", cwd=tmp_path).stdout == (
        "xcap-wsgi: added sip:alice@example.com\n")
    again = run("user", "add", "sip:alice@example.com", "--password", "pw", cwd=tmp_path)
    assert (again.returncode, again.stderr.splitlines()[-1]) == (2, "xcap-wsgi: user alice@example.com already exists")
    assert run("user", "passwd", "sip:alice@example.com", "--password", "new", cwd=tmp_path).returncode == 0
    conn = sqlite3.connect(tmp_path / "xcap.db")
    row = conn.execute("SELECT username, domain, password, ha1 FROM subscriber").fetchone()
    conn.close()
    from hashlib import md5

    assert row == ("alice", "example.com", "", md5(b"alice:example.com:new").hexdigest())  # HA1, no cleartext
    assert run("user", "del", "sip:alice@example.com", cwd=tmp_path).stdout == "xcap-wsgi: deleted sip:alice@example.com\n"
    gone = run("user", "del", "sip:alice@example.com", cwd=tmp_path)
    assert (gone.returncode, gone.stderr.splitlines()[-1]) == (2, "xcap-wsgi: no user alice@example.com")


def test_serve_digest_across_four_workers_with_urllib(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    for user in ("alice", "bob"):
        assert run("user", "add", f"sip:{user}@example.com", "--password", f"{user}-pw", cwd=tmp_path).returncode == 0
    port, proc = start_server(tmp_path, "--auth", "digest", workers=4,
                              env={"XCAP_AUTH_SECRET": "a-secret-shared-by-all-workers"})
    try:
        def opener(user: str) -> urllib.request.OpenerDirector:
            passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
            passwords.add_password(None, f"http://127.0.0.1:{port}/", user, f"{user}-pw")
            return urllib.request.build_opener(urllib.request.HTTPDigestAuthHandler(passwords))

        url = f"http://127.0.0.1:{port}{RL_URI}"
        put = urllib.request.Request(url, data=RESOURCE_LISTS, method="PUT", headers={"Content-Type": RL_MIME})
        with opener("alice").open(put) as created:
            assert created.status == 201
        alice = opener("alice")
        for _ in range(8):  # any worker accepts the nonce another one issued
            with alice.open(url) as got:
                assert got.read() == RESOURCE_LISTS
        with pytest.raises(urllib.error.HTTPError) as denied:
            opener("bob").open(url)
        with denied.value as refused:
            assert (refused.code, refused.read()) == (
                403, b"sip:alice@example.com is not yours: users read and write only their own documents\n")
        assert request(port, "GET", RL_URI)[0] == 401
    finally:
        stop_server(proc)
        with warnings.catch_warnings():  # urllib leaves the 401 responses it retried unclosed
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
