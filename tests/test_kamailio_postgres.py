"""Kamailio's own XCAP server reads what xcap-wsgi writes on PostgreSQL, and the other way round
(issue 11 item 2), byte for byte, through Kamailio's ``db_postgres`` (BYTEA ``doc``).

The module fixture makes an empty database with ``xcap-wsgi initdb`` (Kamailio's layout and
``version`` row), starts Kamailio with ``xcap_server`` on it from
tests/peers/kamailio-xcap-postgres.cfg (foreground, its own session, a free port) and stops it
after. Without Kamailio, its ``db_postgres`` module or PostgreSQL the tests skip saying why;
under CI (``CI`` set) they fail.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.test import Client

from tests.conftest import postgresql_connect, scratch_database
from tests.docs import RESOURCE_LISTS, RESOURCE_LISTS_TABS, RL_MIME
from tests.kamailio_peer import free_port, unavailable
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.cli import main

pytestmark = [pytest.mark.postgresql, pytest.mark.kamailio]
CONFIG = Path(__file__).parent / "peers" / "kamailio-xcap-postgres.cfg"
MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
PACKAGES = "kamailio kamailio-presence-modules kamailio-postgres-modules"
ALICE = "/xcap-root/resource-lists/users/sip:alice@example.com/"


class KamailioXCAP:
    """Kamailio's xcap_server on ``db_url``, answering HTTP on 127.0.0.1:``port``."""

    def __init__(self, db_url: str, port: int) -> None:
        self.db_url, self.port = db_url, port
        self.run_dir = Path(tempfile.mkdtemp(prefix="kamailio-xcap-pg-"))
        self.log_path = self.run_dir / "kamailio.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        missing = [m for m in ("db_postgres.so", "xcap_server.so", "xhttp.so") if not (MODULES / m).exists()]
        if shutil.which("kamailio") is None or missing:
            unavailable(f"Kamailio or its modules {missing} are not installed (Debian: apt-get install {PACKAGES})")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                ["kamailio", "-f", str(CONFIG), "-DD", "-E", "-Y", str(self.run_dir), "-P", str(self.run_dir / "pid"),
                 f"--substdef=!HTTP_PORT!{self.port}!g", f"--substdef=!DB_URL!{self.db_url}!g"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"Kamailio exited with {self.process.returncode}:\n{self.log_path.read_text()}")
            try:
                self.request("GET", "/")
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"Kamailio did not answer HTTP within {timeout} s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)  # its own session: Kamailio and its children
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, path, body=body, headers={"Content-Type": RL_MIME} if body is not None else {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def peer() -> Iterator[tuple[KamailioXCAP, Client]]:
    """Kamailio's xcap_server and xcap-wsgi on one freshly made database."""
    postgresql_connect().close()  # skip, or fail under CI, when PostgreSQL is down
    with scratch_database("postgresql", f"xcap_kamailio_pg_{os.getpid()}") as url:
        assert main(["initdb", "--db-url", url]) == 0
        kamailio = KamailioXCAP(url.replace("postgresql://", "postgres://", 1), free_port())
        app = XCAPMiddleware(None, db_url=url)
        try:
            kamailio.start()
            yield kamailio, Client(app)
        finally:
            kamailio.stop()
            app.storage.close()


@pytest.mark.parametrize("body", [pytest.param(RESOURCE_LISTS, id="utf-8"), pytest.param(RESOURCE_LISTS_TABS, id="crlf")])
def test_kamailio_reads_what_xcap_wsgi_wrote(peer: tuple[KamailioXCAP, Client], body: bytes) -> None:
    kamailio, client = peer
    uri = ALICE + f"ours-{len(body)}"
    put = client.put(uri, data=body, content_type=RL_MIME)
    assert put.status == "201 Created"
    status, headers, got = kamailio.request("GET", uri)
    assert (status, got) == (200, body)
    assert headers["etag"].strip('"') == put.headers["ETag"].strip('"')


@pytest.mark.parametrize("body", [pytest.param(RESOURCE_LISTS, id="utf-8"), pytest.param(RESOURCE_LISTS_TABS, id="crlf")])
def test_xcap_wsgi_reads_what_kamailio_wrote(peer: tuple[KamailioXCAP, Client], body: bytes) -> None:
    kamailio, client = peer
    uri = ALICE + f"theirs-{len(body)}"
    status, headers, _ = kamailio.request("PUT", uri, body)
    assert status in (200, 201)
    got = client.get(uri)
    assert (got.status, got.data) == ("200 OK", body)
    assert got.headers["ETag"].strip('"') == headers["etag"].strip('"')
    assert client.delete(uri).status == "200 OK"
    assert kamailio.request("GET", uri)[0] == 404
