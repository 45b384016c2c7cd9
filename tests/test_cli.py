"""The ``xcap-wsgi`` command, run as a new user would: real processes, real HTTP."""

from __future__ import annotations

import gc
import hashlib
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

from tests.conftest import MYSQL_URL, create_ci_xcap_table, mysql_connect, mysql_drop
from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI

COMMAND = [sys.executable, "-m", "xcap_wsgi"]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


def test_initdb_creates_the_sqlite_table(tmp_path: Path) -> None:
    result = run("initdb", "--db-url", "sqlite:///x.db", "--xcap-table", "docs", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "xcap-wsgi: table 'docs' ready in sqlite:///x.db\n")
    conn = sqlite3.connect(tmp_path / "x.db")
    assert conn.execute("SELECT table_version FROM version WHERE table_name='docs'").fetchall() == [(4,)]
    tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").fetchall()
    assert tables == [("docs",), ("docs_outbox",), ("docs_outbox_lease",), ("docs_paths",), ("docs_rls_documents",),
                      ("docs_rls_services",), ("sqlite_sequence",), ("version",)]
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


BIND_FORMS = "host:port, [IPv6 address]:port, unix:/path or fd://N"
CONFIG = "xcap-wsgi: configuration error: "


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        pytest.param(["initdb", "--db-url", "oracle://x"], {},
                     CONFIG + "unsupported --db-url 'oracle://x': use sqlite:///path/to/file.db,"
                              " mysql://user:pass@host[:port]/db or postgresql://user:pass@host[:port]/db", id="db-url"),
        pytest.param(["serve", "--xcap-root", "nope"], {},
                     CONFIG + "--xcap-root must be an absolute path starting with '/', got 'nope'", id="xcap-root"),
        pytest.param(["serve", "--xcap-table", "a;b"], {},
                     CONFIG + "--xcap-table must match ^[A-Za-z0-9_]{1,64}$, got 'a;b'", id="xcap-table"),
        pytest.param(["serve", "--workers", "0"], {}, CONFIG + "--workers must be at least 1, got 0", id="workers-0"),
        pytest.param(["serve", "--workers", "x"], {}, CONFIG + "--workers must be an integer, got 'x'", id="workers-x"),
        pytest.param(["serve"], {"XCAP_WORKERS": "abc"}, CONFIG + "XCAP_WORKERS must be an integer, got 'abc'",
                     id="XCAP_WORKERS"),
        pytest.param(["serve", "--bind", "nonsense"], {}, CONFIG + f"--bind must be {BIND_FORMS}, got 'nonsense'",
                     id="bind"),
        pytest.param(["serve", "--bind", "[::1]:0"], {}, CONFIG + f"--bind must be {BIND_FORMS}, got '[::1]:0'",
                     id="bind-port-0"),
        pytest.param(["serve"], {"XCAP_BIND": "nonsense"}, CONFIG + f"XCAP_BIND must be {BIND_FORMS}, got 'nonsense'",
                     id="XCAP_BIND"),
        pytest.param(["serve", "--bind", "fd://0"], {}, "xcap-wsgi: cannot listen on fd://0: file descriptor 0 is"
                                                        " not a socket", id="bind-fd-not-a-socket"),
        pytest.param(["serve", "--buf-size", "1k"], {}, CONFIG + "--buf-size must be an integer, got '1k'",
                     id="buf-size"),
        pytest.param(["serve", "--buf-size", "16777216"], {},
                     CONFIG + "--buf-size must be an integer between 1 and 16777215 bytes, got 16777216",
                     id="buf-size-too-large"),
        pytest.param(["serve", "--node-cache-size", "2M"], {},
                     CONFIG + "--node-cache-size must be a number of bytes, got '2M'", id="node-cache-size"),
        pytest.param(["serve"], {"XCAP_NODE_CACHE_SIZE": "-1"},
                     CONFIG + "XCAP_NODE_CACHE_SIZE must be 0 (off) or more, got -1", id="node-cache-size-negative"),
        pytest.param(["serve", "--buf_size", "1k"], {},
                     "xcap-wsgi: unrecognized arguments: --buf_size 1k; see xcap-wsgi --help", id="buf_size"),
        pytest.param(["serve", "--trusted-proxy", "300.1.1.1"], {},
                     CONFIG + "--trusted-proxy must be an IP address or CIDR block, got '300.1.1.1'",
                     id="trusted-proxy"),
        pytest.param(["serve"], {"XCAP_TRUSTED_PEERS": "10.0.0.0/8, 10.0.0.0/40"},
                     CONFIG + "XCAP_TRUSTED_PEERS must be an IP address or CIDR block, got '10.0.0.0/40'",
                     id="XCAP_TRUSTED_PEERS"),
        pytest.param(["serve", "--admin", "alice"], {},
                     CONFIG + "--admin must be an identity sip:user@domain, got 'alice'", id="admin"),
        pytest.param(["serve", "--auth", "ldap"], {},
                     CONFIG + "--auth must be one of none, digest, basic, upstream, ims, got 'ldap'", id="auth"),
        pytest.param(["serve", "--auth", "upstream"], {},
                     CONFIG + "upstream authentication needs --trusted-proxy: the addresses allowed to name the user",
                     id="auth-upstream-without-proxy"),
        pytest.param(["serve", "--auth-secret", "short"], {}, CONFIG + "--auth-secret must be at least 16 characters",
                     id="auth-secret"),
        pytest.param(["serve", "--digest-algorithms", "SHA1"], {},
                     CONFIG + "--digest-algorithms must be one of MD5, SHA-256, got 'SHA1'", id="digest-algorithms"),
        pytest.param(["serve", "--nonce-lifetime", "0"], {}, CONFIG + "--nonce-lifetime must be at least 1, got 0",
                     id="nonce-lifetime"),
        pytest.param(["serve", "--credentials-url", "oracle://x"], {},
                     CONFIG + "unsupported --credentials-url 'oracle://x': use sqlite:///path/to/file.db,"
                              " mysql://user:pass@host[:port]/db or postgresql://user:pass@host[:port]/db",
                     id="credentials-url"),
        pytest.param(["serve", "--notify", "http://127.0.0.1:5091/RPC"], {},
                     CONFIG + "unsupported --notify target 'http://127.0.0.1:5091/RPC': use kamailio+http://host:port/RPC,"
                              " opensips+http://host:port/mi, sip:host[:port][;transport=udp|tcp] or a callable",
                     id="notify"),
        pytest.param(["serve", "--notify", "sip:127.0.0.1;transport=sctp"], {},
                     CONFIG + "SIP target 'sip:127.0.0.1;transport=sctp': transport 'sctp' is not supported (udp or tcp)",
                     id="notify-sip-transport"),
        pytest.param(["serve", "--notify", "kamailio+http://127.0.0.1:5091/RPC", "--notify-max-attempts", "x"], {},
                     CONFIG + "--notify-max-attempts must be an integer, got 'x'", id="notify-max-attempts"),
        pytest.param(["user", "add", "alice", "--password", "pw"], {},
                     "xcap-wsgi: expected a user@domain or sip:user@domain identity, got 'alice'", id="user-xui"),
        pytest.param(["user", "del", "sip:alice@example.com", "--table", "a;b"], {},
                     "xcap-wsgi: --table must match ^[A-Za-z0-9_]{1,64}$, got 'a;b'", id="user-table"),
    ],
)
def test_bad_configuration_exits_2_with_one_line_naming_the_flag_or_variable(
        tmp_path: Path, args: list[str], env: dict[str, str], message: str) -> None:
    result = run(*args, cwd=tmp_path, env=env)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", message + "\n")


def test_bad_environment_value_does_not_break_help(tmp_path: Path) -> None:
    result = run("serve", "--help", cwd=tmp_path, env={"XCAP_WORKERS": "abc", "XCAP_BIND": "nonsense"})
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("usage: xcap-wsgi serve [-h] [--bind BIND] [--workers WORKERS]")


def test_serve_on_a_port_in_use_exits_2_before_the_banner(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--bind", f"127.0.0.1:{port}", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", f"xcap-wsgi: cannot listen on 127.0.0.1:{port}: Address already in use\n")


def test_serve_on_a_unix_socket_a_server_listens_on_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "live.sock"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen()
        result = run("serve", "--bind", f"unix:{path}", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", f"xcap-wsgi: cannot listen on unix:{path}: Address already in use\n")


def test_serve_on_a_path_that_is_not_a_socket_exits_2(tmp_path: Path) -> None:
    (tmp_path / "notes").write_text("mine")
    result = run("serve", "--bind", f"unix:{tmp_path}/notes", cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "", f"xcap-wsgi: cannot listen on unix:{tmp_path}/notes: {tmp_path}/notes exists and is not a socket\n")
    assert (tmp_path / "notes").read_text() == "mine"


def test_serve_takes_over_a_unix_socket_left_by_a_dead_server(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))
    proc = subprocess.Popen([*COMMAND, "serve", "--bind", f"unix:{path}", "--workers", "1"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == ("xcap-wsgi 0.1.0: serving XCAP root http://localhost/xcap-root/ "
                                          "from sqlite:///xcap.db with 1 worker(s); Ctrl-C stops\n")
        for _ in range(100):
            with socket.socket(socket.AF_UNIX) as client:
                try:
                    client.connect(str(path))
                except ConnectionRefusedError:
                    time.sleep(0.05)
                    continue
                client.sendall(b"GET / HTTP/1.0\r\n\r\n")
                assert client.recv(65536).startswith(b"HTTP/1.0 404 ")
                break
        else:
            pytest.fail("the server never accepted on its unix socket")
    finally:
        stop_server(proc)


def test_serve_without_authentication_warns_after_the_configuration_is_valid(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([*COMMAND, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline().startswith("xcap-wsgi 0.1.0: serving XCAP root")
        assert proc.stderr.readline().split(" ", 2)[2] == (
            f"WARNING xcap_wsgi: authentication is off: anyone who can reach 127.0.0.1:{port}"
            " reads and writes every user's documents\n")
    finally:
        stop_server(proc)
        assert proc.stderr is not None
        proc.stderr.close()


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


UNREACHABLE = "mysql://root@127.0.0.1:1/test"
REFUSED = ("xcap-wsgi: database unavailable: (2003, \"Can't connect to MySQL server on '127.0.0.1'"
           " ([Errno 111] Connection refused)\")\n")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["initdb", "--db-url", UNREACHABLE], id="initdb"),
        pytest.param(["serve", "--db-url", UNREACHABLE], id="serve"),
        pytest.param(["user", "add", "sip:alice@example.com", "--password", "pw", "--db-url", UNREACHABLE], id="user"),
    ],
)
def test_unreachable_database_exits_1_with_one_line(tmp_path: Path, args: list[str]) -> None:
    result = run(*args, cwd=tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", REFUSED)


@pytest.mark.mysql
def test_initdb_still_logs_the_storage_warnings_of_a_database_it_reaches(tmp_path: Path) -> None:
    table = f"xcap_cli_ci_{os.getpid()}"
    mysql_drop(table)
    create_ci_xcap_table(table)
    try:
        result = run("initdb", "--db-url", MYSQL_URL, "--xcap-table", table, cwd=tmp_path)
        assert result.returncode == 0
        assert [line.split(" ", 2)[2] for line in result.stderr.splitlines()] == [
            f"WARNING xcap_wsgi.storage: {table}.doc_uri has collation utf8mb4_general_ci: document URIs that"
            f" differ only in case share one row; ALTER TABLE `{table}` MODIFY doc_uri VARCHAR(255) CHARACTER SET"
            " utf8mb4 COLLATE utf8mb4_bin NOT NULL makes them distinct"]
    finally:
        mysql_drop(table)


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
    assert (result.returncode, result.stdout, result.stderr) == (2, "", (
        "xcap-wsgi: configuration error: refusing to serve 0.0.0.0:1 without authentication:"
        " use --auth digest|basic|upstream|ims, bind to 127.0.0.1, or pass --allow-unauthenticated\n"))


def test_user_closes_its_database_connection(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-m", "xcap_wsgi", "user",
                             "add", "sip:alice@example.com", "--password", "pw"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, "xcap-wsgi: added sip:alice@example.com\n", "")


def test_user_add_passwd_del_manage_the_subscriber_table(tmp_path: Path) -> None:
    assert run("user", "add", "sip:alice@example.com", "--password", "pw", cwd=tmp_path).stdout == (
        "xcap-wsgi: added sip:alice@example.com\n")
    again = run("user", "add", "sip:alice@example.com", "--password", "pw", cwd=tmp_path)
    assert (again.returncode, again.stderr) == (2, "xcap-wsgi: user alice@example.com already exists\n")
    assert run("user", "passwd", "sip:alice@example.com", "--password", "new", cwd=tmp_path).returncode == 0
    conn = sqlite3.connect(tmp_path / "xcap.db")
    row = conn.execute("SELECT username, domain, password, ha1 FROM subscriber").fetchone()
    conn.close()
    from hashlib import md5

    assert row == ("alice", "example.com", "", md5(b"alice:example.com:new").hexdigest())  # HA1, no cleartext
    assert run("user", "del", "sip:alice@example.com", cwd=tmp_path).stdout == "xcap-wsgi: deleted sip:alice@example.com\n"
    gone = run("user", "del", "sip:alice@example.com", cwd=tmp_path)
    assert (gone.returncode, gone.stderr) == (2, "xcap-wsgi: no user alice@example.com\n")


@pytest.mark.parametrize(("stdin", "returncode", "stdout", "stderr"), [
    pytest.param("s3cret\n", 0, "xcap-wsgi: added sip:alice@example.com\n", "", id="first-line"),
    pytest.param("", 2, "", "xcap-wsgi: no password: give --password, or the password as the first line of"
                 " standard input\n", id="empty"),
])
def test_user_add_without_a_terminal_reads_the_password_from_standard_input(
    tmp_path: Path, stdin: str, returncode: int, stdout: str, stderr: str
) -> None:
    result = subprocess.run([*COMMAND, "user", "add", "sip:alice@example.com"], cwd=tmp_path, input=stdin,
                            capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (returncode, stdout, stderr)
    if returncode == 0:
        conn = sqlite3.connect(tmp_path / "xcap.db")
        [(ha1,)] = conn.execute("SELECT ha1 FROM subscriber").fetchall()
        conn.close()
        assert ha1 == hashlib.md5(b"alice:example.com:s3cret").hexdigest()


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
