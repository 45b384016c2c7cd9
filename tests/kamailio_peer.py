"""Kamailio's presence server as a test peer, from the project's tests/peers/kamailio-presence.cfg.

::

    # conftest.py
    from tests.kamailio_peer import KamailioPresence, kamailio_presence  # noqa: F401  (a fixture)

    def test_watcher_sees_the_publish(kamailio_presence: KamailioPresence) -> None:
        kamailio_presence.clear_presence_state("sip:alice@example.com")
        SIPPublishSink(kamailio_presence.sip_target).deliver([event])

The session fixture creates the MySQL/MariaDB database (``xcap_kamailio_presence_test``)
with Kamailio's own DDL once, and a user Kamailio connects as; it starts Kamailio on
SIP 5090 / RPC 5091 (or free ports when those are taken, or
``XCAP_TEST_KAMAILIO_SIP_PORT`` / ``XCAP_TEST_KAMAILIO_RPC_PORT``), waits until
``core.version`` answers over JSON-RPC, and stops it with SIGTERM after the session.
Without Kamailio, its modules or the database server the tests skip, saying why; under
CI (``CI`` set) they fail. A Kamailio that is installed but does not start always fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from xcap_wsgi.notify.sinks.base import DeliveryError
from xcap_wsgi.notify.sinks.jsonrpc import JSONRPCClient
from xcap_wsgi.storage.mysql import parse_mysql_url

CONFIG = Path(__file__).parent / "peers" / "kamailio-presence.cfg"
DDL_DIR = Path(os.environ.get("XCAP_TEST_KAMAILIO_DDL", "/usr/share/kamailio/mysql"))
#: Each DDL script of Kamailio's and a table it creates: the script runs when that table is missing.
DDL_SCRIPTS = (("standard-create.sql", "version"), ("presence-create.sql", "presentity"), ("rls-create.sql", "rls_watchers"))
DEFAULT_DATABASE = "xcap_kamailio_presence_test"
ADMIN_URL = os.environ.get("XCAP_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
PACKAGES = "kamailio kamailio-presence-modules kamailio-mysql-modules"
#: Where Kamailio keeps each presentity's state (the reference note: decisions are remembered).
STATE_TABLES = (
    ("active_watchers", "presentity_uri = %s"),
    ("watchers", "presentity_uri = %s"),
    ("presentity", "CONCAT('sip:', username, '@', domain) = %s"),
)


class KamailioUnavailable(Exception):
    """Kamailio, one of its modules or the database server is not there: skip (fail under CI)."""


class KamailioPresence:
    """One Kamailio presence server for tests, on 127.0.0.1."""

    def __init__(
        self,
        *,
        database: str = DEFAULT_DATABASE,
        sip_port: int = 5090,
        rpc_port: int = 5091,
        admin_url: str = ADMIN_URL,
        user: str = "xcap_kamailio",
        password: str = "xcap_kamailio_pw",
        kamailio: str = "kamailio",
        run_dir: Path | None = None,
    ) -> None:
        self.database = database
        self.sip_port = sip_port
        self.rpc_port = rpc_port
        self.admin = parse_mysql_url(admin_url)
        self.user = user
        self.password = password
        self.kamailio = kamailio
        self.run_dir = run_dir or Path(tempfile.mkdtemp(prefix="kamailio-presence-"))
        self.log_path = self.run_dir / "kamailio.log"
        self.pid_path = self.run_dir / "kamailio.pid"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def sip_target(self) -> str:
        return f"sip:127.0.0.1:{self.sip_port}"

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}/RPC"

    @property
    def db_url(self) -> str:
        """The URL Kamailio and xcap-wsgi's MySQLStorage both use for the database."""
        return f"mysql://{self.user}:{self.password}@{self.admin['host']}:{self.admin['port']}/{self.database}"

    def ensure_database(self) -> None:
        """The database, Kamailio's tables (standard, presence incl. xcap, rls) and the user, once."""
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
                cur.execute(f"USE `{self.database}`")
                for script, table in DDL_SCRIPTS:
                    cur.execute("SHOW TABLES LIKE %s", (table,))
                    if cur.fetchone() is None:
                        for statement in _statements(DDL_DIR / script):
                            cur.execute(statement)
                for host in ("localhost", "127.0.0.1"):
                    cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (self.user, host, self.password))
                    cur.execute(f"GRANT ALL ON `{self.database}`.* TO %s@%s", (self.user, host))
        finally:
            conn.close()

    def clear_presence_state(self, presentity: str | None = None) -> None:
        """Forget subscriptions, authorization decisions and publications of ``presentity`` (all when None)."""
        conn = self._connect(database=self.database)
        try:
            with conn.cursor() as cur:
                for table, where in STATE_TABLES:
                    if presentity is None:
                        cur.execute(f"DELETE FROM `{table}`")
                    else:
                        cur.execute(f"DELETE FROM `{table}` WHERE {where}", (presentity,))
        finally:
            conn.close()

    def publications(self, presentity: str, event: str = "xcap-diff") -> list[bytes]:
        """The bodies presence stores for ``presentity``'s ``event``, oldest first."""
        conn = self._connect(database=self.database)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT body FROM presentity WHERE CONCAT('sip:', username, '@', domain) = %s AND event = %s"
                            " ORDER BY received_time, id", (presentity, event))
                return [bytes(body) for (body,) in cur.fetchall()]
        finally:
            conn.close()

    def start(self, timeout: float = 15.0) -> None:
        """Check the config, start Kamailio in the foreground (``-DD``) and wait for its RPC."""
        if shutil.which(self.kamailio) is None:
            raise KamailioUnavailable(f"{self.kamailio!r} is not installed (Debian: apt-get install {PACKAGES})")
        self.ensure_database()
        self._check_config()
        log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(self._command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process.poll() is not None:
                raise RuntimeError(f"kamailio exited with {self._process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"no core.version answer at {self.rpc_url} in {timeout} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to Kamailio's main process (it ends its children), SIGKILL to its session if stuck."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """The result of one JSON-RPC call; RPCError or DeliveryError as the sinks see them."""
        client = JSONRPCClient(self.rpc_url, timeout=5.0)
        try:
            return client.call(method, list(params))
        finally:
            client.close()

    def log_tail(self, lines: int = 40) -> str:
        """The end of Kamailio's log, headed by its path, for error messages."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join([f"{self.log_path}:", *text.splitlines()[-lines:]])

    def __enter__(self) -> KamailioPresence:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _command(self, *extra: str) -> list[str]:
        substitutions = {"SIP_PORT": str(self.sip_port), "RPC_PORT": str(self.rpc_port), "DB_URL": self.db_url}
        return [
            self.kamailio, "-f", str(CONFIG), "-DD", "-E", "-Y", str(self.run_dir), "-P", str(self.pid_path),
            *(f"--substdef=!{name}!{value}!g" for name, value in substitutions.items()), *extra,
        ]

    def _check_config(self) -> None:
        """``kamailio -c``: a missing module means a missing package (skip), anything else fails."""
        result = subprocess.run(self._command("-c"), capture_output=True, text=True, timeout=30, check=False)
        if result.returncode == 0:
            return
        output = result.stdout + result.stderr
        missing = [line for line in output.splitlines() if "could not find module" in line or "cannot open shared object" in line]
        if missing:
            raise KamailioUnavailable(f"Kamailio modules missing ({missing[0].strip()}); Debian: apt-get install {PACKAGES}")
        raise RuntimeError(f"{CONFIG} does not pass kamailio -c:\n{output[-3000:]}")

    def _answers(self) -> bool:
        try:
            return bool(self.rpc("core.version"))
        except DeliveryError:
            return False

    def _connect(self, **extra: Any) -> Any:
        import pymysql

        args = {**self.admin, **extra}
        if "database" not in extra:
            del args["database"]
        try:
            return pymysql.connect(**args, connect_timeout=3, autocommit=True)
        except pymysql.err.OperationalError as exc:
            where = f"{args['host']}:{args['port']}"
            raise KamailioUnavailable(f"MySQL at {where} unreachable ({exc}); set XCAP_TEST_MYSQL_URL") from None


def _statements(script: Path) -> Iterator[str]:
    """The statements of one of Kamailio's DDL files (one per ``;`` at a line end, no procedures)."""
    if not script.exists():
        raise KamailioUnavailable(f"{script} missing; Debian: apt-get install kamailio-mysql-modules")
    for statement in script.read_text().split(";\n"):
        if statement.strip():
            yield statement


def port_free(port: int) -> bool:
    """Nobody listens on 127.0.0.1:``port`` over UDP or TCP."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port(avoid: int = 0) -> int:
    """A port free over both UDP and TCP (SIP listens on both), other than ``avoid``."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port != avoid and port_free(port):
            return port


def choose_ports() -> tuple[int, int]:
    """SIP and RPC ports: the environment's, else 5090/5091 when both are free, else free ones."""
    sip = os.environ.get("XCAP_TEST_KAMAILIO_SIP_PORT")
    rpc = os.environ.get("XCAP_TEST_KAMAILIO_RPC_PORT")
    if sip and rpc:
        return int(sip), int(rpc)
    if port_free(5090) and port_free(5091):
        return 5090, 5091
    sip_port = free_port()
    return sip_port, free_port(avoid=sip_port)


def unavailable(reason: str) -> None:
    """Skip with the reason; under CI fail instead (the peer tests must run there)."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI requires the Kamailio tests to run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kamailio_presence() -> Iterator[KamailioPresence]:
    """A running Kamailio presence server for the whole session, state cleared at start."""
    sip_port, rpc_port = choose_ports()
    peer = KamailioPresence(sip_port=sip_port, rpc_port=rpc_port)
    try:
        peer.start()
        peer.clear_presence_state()
    except KamailioUnavailable as exc:
        shutil.rmtree(peer.run_dir, ignore_errors=True)
        unavailable(str(exc))
    yield peer
    peer.stop()
    shutil.rmtree(peer.run_dir, ignore_errors=True)
