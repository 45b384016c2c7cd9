"""The MySQL driver: PyMySQL or mysqlclient, chosen by ``driver`` / ``XCAP_MYSQL_DRIVER``
(default ``auto``), behaving alike: a URL reaches the server the same way, and a failure
reads the same, on either."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.blackhole import BlackHole
from tests.conftest import MYSQL_URL, driver_of, require_driver, use_driver
from tests.docs import RL_URI
from xcap_wsgi import XCAPMiddleware
from xcap_wsgi.storage import Storage, StorageUnavailable, mysql
from xcap_wsgi.storage.mysql import MySQLStorage, parse_mysql_url, timed_out

URL = "mysql://root@127.0.0.1/test"
BAD_DRIVER = "the MySQL driver (XCAP_MYSQL_DRIVER) must be auto, pymysql or mysqlclient, got 'oursql'"


@pytest.fixture
def unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XCAP_MYSQL_DRIVER", raising=False)


@pytest.fixture
def no_mysqlclient(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "MySQLdb", None)  # import MySQLdb raises ImportError


# -- choosing ------------------------------------------------------------------------------------

@pytest.mark.usefixtures("unset")
def test_auto_is_mysqlclient_when_it_imports() -> None:
    require_driver("mysqlclient")
    assert MySQLStorage(URL).driver == MySQLStorage(URL, driver="auto").driver == "mysqlclient"


@pytest.mark.usefixtures("unset", "no_mysqlclient")
def test_auto_is_pymysql_without_mysqlclient() -> None:
    assert MySQLStorage(URL).driver == "pymysql"


@pytest.mark.parametrize("driver", ["pymysql", "mysqlclient"])
def test_xcap_mysql_driver_names_the_driver(monkeypatch: pytest.MonkeyPatch, driver: str) -> None:
    use_driver(driver, monkeypatch)
    assert MySQLStorage(URL).driver == driver


def test_the_keyword_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    use_driver("mysqlclient", monkeypatch)
    assert MySQLStorage(URL, driver="pymysql").driver == "pymysql"


@pytest.mark.usefixtures("unset")
def test_a_mysql_pymysql_url_means_pymysql() -> None:
    assert MySQLStorage("mysql+pymysql://root@127.0.0.1/test").driver == "pymysql"
    with pytest.raises(ValueError) as info:
        MySQLStorage("mysql+pymysql://root@127.0.0.1/test", driver="mysqlclient")
    assert str(info.value) == "a mysql+pymysql:// URL names PyMySQL, but the MySQL driver (XCAP_MYSQL_DRIVER) is mysqlclient"


def test_an_unknown_driver_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError) as keyword:
        MySQLStorage(URL, driver="oursql")
    monkeypatch.setenv("XCAP_MYSQL_DRIVER", "oursql")
    with pytest.raises(ValueError) as environment:
        MySQLStorage(URL)
    assert str(keyword.value) == str(environment.value) == BAD_DRIVER


@pytest.mark.usefixtures("no_mysqlclient")
def test_mysqlclient_asked_for_but_missing_says_how_to_install_it() -> None:
    with pytest.raises(ValueError) as info:
        MySQLStorage(URL, driver="mysqlclient")
    assert str(info.value) == ("the MySQL driver (XCAP_MYSQL_DRIVER) mysqlclient cannot be imported (import of MySQLdb"
                               " halted; None in sys.modules): pip install 'xcap-wsgi[mysqlclient]', or use pymysql")


def test_the_cli_reports_an_unknown_driver_as_a_configuration_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "xcap_wsgi", "initdb", "--db-url", URL], cwd=tmp_path,
                            env={**os.environ, "XCAP_MYSQL_DRIVER": "oursql"}, capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"xcap-wsgi: configuration error: {BAD_DRIVER}\n")


@pytest.mark.parametrize("driver", ["pymysql", "mysqlclient"])
def test_only_the_chosen_driver_is_imported(monkeypatch: pytest.MonkeyPatch, driver: str) -> None:
    use_driver(driver, monkeypatch)
    code = (f"import sys; from xcap_wsgi.storage.mysql import MySQLStorage; MySQLStorage({URL!r});"
            " print(*(m for m in ('pymysql', 'MySQLdb') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout == ("pymysql\n" if driver == "pymysql" else "MySQLdb\n")


# -- one behaviour ---------------------------------------------------------------------------------

@pytest.mark.mysql
@pytest.mark.parametrize("backend", ["mysql", "mysql-mysqlclient"], indirect=True)
def test_each_mysql_backend_runs_on_its_driver(backend: str, storage: Storage) -> None:
    driver = driver_of(backend)
    conn, _ = storage._connection()  # type: ignore[attr-defined]
    package = {"pymysql": "pymysql", "mysqlclient": "MySQLdb"}[driver]
    assert storage.driver == driver  # type: ignore[attr-defined]
    assert any(cls.__module__.split(".")[0] == package for cls in type(conn).__mro__)
    assert XCAPMiddleware(None, db_url=MYSQL_URL).storage.driver == driver  # type: ignore[attr-defined]  # as a worker opens it


def local_server() -> dict[str, Any]:
    args = parse_mysql_url(MYSQL_URL)
    if args["host"] not in ("127.0.0.1", "localhost"):
        pytest.skip(f"the test server {MYSQL_URL} is not on this machine")
    return args


def query(storage: MySQLStorage, statement: str) -> Any:
    value = storage.run(lambda cur: (cur.execute(statement), cur.fetchone()[0])[1])
    storage.close()
    return value


def connected_over(storage: MySQLStorage) -> str:
    """How the server sees the connection: ``localhost`` for a Unix socket, ``host:port`` for TCP."""
    return str(query(storage, "SELECT host FROM information_schema.processlist WHERE id = CONNECTION_ID()"))


@pytest.mark.mysql
def test_localhost_is_tcp_on_either_driver(mysql_driver: str) -> None:
    args = local_server()
    storage = MySQLStorage(f"mysql://{args['user']}@localhost:{args['port']}/{args['database']}", driver=mysql_driver)
    assert connected_over(storage).startswith(("localhost:", "127.0.0.1:", "::1:"))


@pytest.mark.mysql
def test_a_unix_socket_is_used_whatever_the_host_on_either_driver(mysql_driver: str) -> None:
    args = local_server()
    path = query(MySQLStorage(MYSQL_URL, driver=mysql_driver), "SELECT @@socket")
    storage = MySQLStorage(f"mysql://{args['user']}@db.invalid/{args['database']}?unix_socket={path}", driver=mysql_driver)
    assert connected_over(storage) == "localhost"


def unavailable(call: Callable[[], object]) -> str:
    with pytest.raises(StorageUnavailable) as info:
        call()
    return str(info.value)


def resolver_error(host: str) -> str:
    try:
        socket.getaddrinfo(host, 3306)
    except socket.gaierror as exc:
        return str(exc)
    pytest.fail(f"{host} resolves")


@pytest.mark.parametrize(("url", "message"), [
    pytest.param("mysql://root@127.0.0.1:1/test",
                 "(2003, \"Can't connect to MySQL server on '127.0.0.1' ([Errno 111] Connection refused)\")", id="refused"),
    pytest.param("mysql://root@localhost/test?unix_socket=/nonexistent/mysqld.sock",
                 "(2003, \"Can't connect to MySQL server on 'localhost' ([Errno 2] No such file or directory)\")",
                 id="no-socket"),
    pytest.param("mysql://root@no-such-host.invalid/test",
                 "(2003, \"Can't connect to MySQL server on 'no-such-host.invalid' ({resolver})\")", id="unknown-host"),
    pytest.param("mysql://root@127.0.0.1:{closes}/test", "(2013, 'Lost connection to MySQL server during query')",
                 id="closes-at-once"),
])
def test_a_failed_connect_reads_the_same_on_either_driver(mysql_driver: str, url: str, message: str) -> None:
    with BlackHole("close") as hole:
        storage = MySQLStorage(url.format(closes=hole.port), driver=mysql_driver)
        got = unavailable(lambda: storage.get(RL_URI))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # PyMySQL leaves a failed Unix socket to the collector
        gc.collect()
    assert got == message.format(resolver=resolver_error("no-such-host.invalid") if "{resolver}" in message else "")


@pytest.mark.mysql
def test_a_server_error_reads_the_same_on_either_driver(mysql_driver: str) -> None:
    args = local_server()
    storage = MySQLStorage(f"mysql://{args['user']}@{args['host']}:{args['port']}/xcap_no_such_db", driver=mysql_driver)
    assert unavailable(lambda: storage.get(RL_URI)) == "(1049, \"Unknown database 'xcap_no_such_db'\")"


# -- mysqlclient's lost connections, told apart by how long they took ----------------------------------

@pytest.mark.parametrize(("seconds", "code", "text", "message", "is_timeout"), [
    pytest.param(7.0, 2013, "Lost connection to server during query",
                 "(2013, 'Lost connection to MySQL server during query (timed out)')", True, id="lost-after-the-read-timeout"),
    pytest.param(0.01, 2013, "Lost connection to server during query",
                 "(2013, 'Lost connection to MySQL server during query')", False, id="lost-at-once"),
    pytest.param(7.0, 2006, "Server has gone away",
                 "(2006, \"MySQL server has gone away (TimeoutError('timed out'))\")", True, id="gone-after-the-write-timeout"),
    pytest.param(0.01, 2006, "Server has gone away", "(2006, 'MySQL server has gone away')", False, id="gone-at-once"),
    pytest.param(7.0, 1205, "Lock wait timeout exceeded; try restarting transaction",
                 "(1205, 'Lock wait timeout exceeded; try restarting transaction')", False, id="server-error-as-is"),
])
def test_mysqlclient_client_errors_read_as_pymysql_words_them(
    monkeypatch: pytest.MonkeyPatch, seconds: float, code: int, text: str, message: str, is_timeout: bool
) -> None:
    require_driver("mysqlclient")
    import MySQLdb

    clock = iter([100.0, 100.0 + seconds])
    monkeypatch.setattr(mysql, "time", SimpleNamespace(monotonic=lambda: next(clock)))

    def statement() -> None:
        raise MySQLdb.OperationalError(code, text)

    with pytest.raises(MySQLdb.OperationalError) as info:
        mysql._answer_as_pymysql(statement, mysql.READ_TIMEOUT_S)
    assert (str(info.value), timed_out(info.value)) == (message, is_timeout)


def test_a_mysqlclient_error_worded_already_is_not_worded_again() -> None:
    require_driver("mysqlclient")
    import MySQLdb

    def lost() -> None:
        raise MySQLdb.OperationalError(2013, "Lost connection to server during query")

    def executemany() -> None:  # whose execute words the error first
        mysql._answer_as_pymysql(lost, mysql.READ_TIMEOUT_S)

    with pytest.raises(MySQLdb.OperationalError) as info:
        mysql._answer_as_pymysql(executemany, mysql.READ_TIMEOUT_S)
    assert (str(info.value), str(info.value.__cause__)) == (
        "(2013, 'Lost connection to MySQL server during query')", "(2013, 'Lost connection to server during query')")
