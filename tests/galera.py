"""A 3-node MariaDB Galera cluster on this machine, for the multi-master tests (issue 11).

::

    python -m tests.galera start      # nodes 127.0.0.1:3307, 3308, 3309 (root, no password)
    python -m tests.galera bench --seconds 5 --writers 8   # two serve instances, on nodes 1 and 2
    python -m tests.galera stop
    python -m tests.galera running    # exit status 0 when all three nodes run (no driver needed)

    cluster = GaleraCluster()
    cluster.start()                   # reuses a running cluster; returns the seconds it took
    conn = cluster.connect(2, database="xcap")

Each node has its own ``my.cnf`` under ``XCAP_TEST_GALERA_BASE`` (default ``/tmp/galera``,
the layout of the shared peer's start.sh, so either starts or reuses the other's cluster),
group ports 4567/4577/4587 (IST +1, rsync SST +2) and never reads /etc/mysql, so the main
server on 3306 is untouched. Node 1 bootstraps (``--wsrep-new-cluster``) only when no node
runs; the others join it. The nodes run in sessions of their own and outlive the test run:
the next Python of CI reuses them (:meth:`GaleraCluster.stop` or ``stop`` ends them).
Needs mariadbd, Debian's galera-4 provider and rsync (:func:`missing`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

BASE = Path(os.environ.get("XCAP_TEST_GALERA_BASE", "/tmp/galera"))
NODES = (1, 2, 3)
PROVIDER = Path("/usr/lib/galera/libgalera_smm.so")
MARIADBD = Path("/usr/sbin/mariadbd")
PACKAGES = "mariadb-server galera-4 rsync"
SYNC_TIMEOUT_S = 180


def port(node: int) -> int:
    return 3306 + node


def group_port(node: int) -> int:
    return 4567 + 10 * (node - 1)


def url(node: int, database: str, **query: str) -> str:
    """The xcap-wsgi database URL of ``node``; ``query`` adds URL parameters (wsrep_sync_wait)."""
    tail = "&".join(f"{k}={v}" for k, v in query.items())
    return f"mysql://root@127.0.0.1:{port(node)}/{database}" + (f"?{tail}" if tail else "")


def missing() -> str | None:
    """Why the cluster cannot run here, or None."""
    absent = [str(p) for p in (MARIADBD, PROVIDER) if not p.exists()] + ([] if shutil.which("rsync") else ["rsync"])
    return f"Galera needs {', '.join(absent)} (Debian: apt-get install {PACKAGES})" if absent else None


class GaleraCluster:
    """The three nodes: started, reused, stopped, and connected to."""

    def __init__(self, base: Path = BASE) -> None:
        self.base = base

    def dir(self, node: int) -> Path:
        return self.base / f"node{node}"

    def connect(self, node: int, *, database: str | None = None, socket: bool = False, **extra: Any) -> Any:
        """An autocommit PyMySQL connection to ``node`` over TCP (or its Unix socket)."""
        import pymysql

        where: dict[str, Any] = ({"unix_socket": str(self.dir(node) / "mysqld.sock")} if socket
                                 else {"host": "127.0.0.1", "port": port(node)})
        return pymysql.connect(**where, user="root", password="", database=database, connect_timeout=2,
                               autocommit=extra.pop("autocommit", True), **extra)

    def status(self, node: int, *names: str, socket: bool = False) -> dict[str, str]:
        conn = self.connect(node, socket=socket)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SHOW STATUS WHERE Variable_name IN ({', '.join(['%s'] * len(names))})", names)
                return {name: value for name, value in cur.fetchall()}
        finally:
            conn.close()

    def synced(self, node: int, *, socket: bool = False) -> bool:
        if socket and not (self.dir(node) / "mysqld.sock").exists():
            return False  # not listening yet (PyMySQL leaks the socket of a refused connect)
        try:
            return self.status(node, "wsrep_local_state_comment", socket=socket).get("wsrep_local_state_comment") == "Synced"
        except Exception:
            return False

    def conflicts(self, node: int) -> int:
        """Local transactions the node aborted for a replicated write: each is one 1213 a client saw."""
        counts = self.status(node, "wsrep_local_cert_failures", "wsrep_local_bf_aborts")
        return sum(int(v) for v in counts.values())

    def wait_for(self, database: str, table: str | None = None) -> None:
        """Until every node has ``database`` (and its ``table``): DDL replicates in order, but
        another node may apply it after the statement returned on the first."""
        query, args = (("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                        (database, table)) if table else
                       ("SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = %s", (database,)))
        for node in NODES:
            conn = self.connect(node)
            try:
                with conn.cursor() as cur:
                    deadline = time.monotonic() + SYNC_TIMEOUT_S
                    while cur.execute(query, args) is not None and cur.fetchone()[0] == 0:
                        if time.monotonic() > deadline:
                            raise RuntimeError(f"node{node} has no {database}.{table or ''} after {SYNC_TIMEOUT_S} s")
                        time.sleep(0.05)
            finally:
                conn.close()

    def waiting_reads(self, node: int, database: str) -> int:
        """Statements of ``database`` under way on ``node`` (a read waiting for its causality check)."""
        conn = self.connect(node)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE db = %s AND info LIKE 'SELECT%%'"
                            " AND id <> CONNECTION_ID()", (database,))
                return int(cur.fetchone()[0])
        finally:
            conn.close()

    def running(self, node: int) -> int | None:
        """The pid of the node's mariadbd when it runs with this node's config."""
        try:
            pid = int((self.dir(node) / "mysqld.pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        return pid if f"--defaults-file={self.dir(node) / 'my.cnf'}".encode() in cmdline else None

    def start(self) -> float:
        """Every node Synced, starting the ones that are not up; the seconds it took."""
        began = time.monotonic()
        if all(self.synced(n) for n in NODES):
            return time.monotonic() - began
        for node in NODES:
            self._write_config(node)
        self._install()
        up = [n for n in NODES if self.running(n)]
        if not up:
            self._bootstrap()
        for node in NODES:
            if not self.running(node):
                self._launch(node)
                self.wait_synced(node)
        for node in NODES:
            self.wait_synced(node)
        return time.monotonic() - began

    def stop(self) -> None:
        """SIGTERM to node 3, 2, then 1 (which stays safe to bootstrap from), each awaited."""
        for node in reversed(NODES):
            pid = self.running(node)
            if pid is None:
                continue
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            while self.running(node) and time.monotonic() < deadline:
                time.sleep(0.2)
            if self.running(node):
                os.kill(pid, signal.SIGKILL)

    def _write_config(self, node: int) -> None:
        d, g = self.dir(node), group_port(node)
        (d / "data").mkdir(parents=True, exist_ok=True)
        cluster = ",".join(f"127.0.0.1:{group_port(n)}" for n in NODES)
        user = "user=mysql\n" if os.geteuid() == 0 else ""
        (d / "my.cnf").write_text(
            f"[mysqld]\n{user}basedir=/usr\ndatadir={d}/data\nsocket={d}/mysqld.sock\npid-file={d}/mysqld.pid\n"
            f"log-error={d}/error.log\nport={port(node)}\nbind-address=127.0.0.1\nskip-name-resolve\n"
            "character-set-server=utf8mb4\ncollation-server=utf8mb4_general_ci\nperformance_schema=OFF\n"
            "innodb_buffer_pool_size=64M\ninnodb_log_file_size=48M\nbinlog_format=ROW\n"
            "default_storage_engine=InnoDB\ninnodb_autoinc_lock_mode=2\n"
            f"wsrep_on=ON\nwsrep_provider={PROVIDER}\nwsrep_cluster_name=xcap_galera\n"
            f"wsrep_cluster_address=gcomm://{cluster}\nwsrep_node_name=node{node}\nwsrep_node_address=127.0.0.1:{g}\n"
            f'wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:{g};ist.recv_addr=127.0.0.1:{g + 1};'
            'gcache.size=64M"\n'
            f"wsrep_sst_method=rsync\nwsrep_sst_receive_address=127.0.0.1:{g + 2}\n")
        if user:
            subprocess.run(["chown", "-R", "mysql:mysql", str(d)], check=True)

    def _install(self) -> None:
        """Node 1's datadir, once; the joiners receive its data by rsync SST."""
        data = self.dir(1) / "data"
        if (data / "mysql").is_dir():
            return
        user = ["--user=mysql"] if os.geteuid() == 0 else []
        result = subprocess.run(["mariadb-install-db", "--no-defaults", *user, "--basedir=/usr", f"--datadir={data}",
                                 "--auth-root-authentication-method=normal", "--skip-test-db"],
                                capture_output=True, text=True, check=False)
        if result.returncode:
            raise RuntimeError(f"mariadb-install-db failed:\n{result.stdout}{result.stderr}")

    def _bootstrap(self) -> None:
        """A new cluster from node 1 (a scratch cluster: safe_to_bootstrap is forced), with
        root reachable over TCP and the ``xcap`` database."""
        state = self.dir(1) / "data" / "grastate.dat"
        if state.exists():
            state.write_text(state.read_text().replace("safe_to_bootstrap: 0", "safe_to_bootstrap: 1"))
        self._launch(1, "--wsrep-new-cluster")
        self.wait_synced(1, socket=True)
        conn = self.connect(1, socket=True)
        try:
            with conn.cursor() as cur:
                cur.execute("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''")
                cur.execute("GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION")
                cur.execute("CREATE DATABASE IF NOT EXISTS xcap CHARACTER SET utf8mb4")
        finally:
            conn.close()

    def _launch(self, node: int, *extra: str) -> None:
        """mariadbd in a session of its own, not our child: it outlives the test run."""
        d = self.dir(node)
        (d / "mysqld.sock").unlink(missing_ok=True)
        with (d / "stdout.log").open("ab") as log:
            subprocess.run(["setsid", "--fork", str(MARIADBD), f"--defaults-file={d / 'my.cnf'}", *extra],
                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, check=True)

    def wait_synced(self, node: int, *, socket: bool = False) -> None:
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        while not self.synced(node, socket=socket):
            if time.monotonic() > deadline:
                log = self.dir(node) / "error.log"
                tail = log.read_text(errors="replace").splitlines()[-20:] if log.exists() else []
                raise RuntimeError("\n".join([f"node{node} did not reach Synced in {SYNC_TIMEOUT_S} s; {log}:", *tail]))
            time.sleep(0.25)


# -- the measurement (python -m tests.galera bench) ----------------------------------------

ENTRY_MIME = "application/xcap-el+xml"


def entry_path(doc_uri: str, uri: str) -> str:
    """The element selector of the ``<entry>`` for ``uri`` in the document's one list, percent-encoded."""
    return doc_uri + "/~~/" + quote(f'resource-lists/list/entry[@uri="{uri}"]', safe="/@:=")


def add_entry(request: Any, port: int, doc_uri: str, uri: str) -> tuple[int, int]:
    """GET, then PUT the new entry with If-Match, again after each 412 (RFC 4825 §7.11):
    returns (412s, phantoms), a phantom being the entry found before its PUT was answered 201."""
    conflicts = phantoms = 0
    while True:
        status, headers, body = request(port, "GET", doc_uri)
        assert status == 200, (status, body)
        if f'uri="{uri}"'.encode() in body:
            phantoms += 1
        status, _, answer = request(port, "PUT", entry_path(doc_uri, uri), f'<entry uri="{uri}"/>'.encode(),
                                    {"Content-Type": ENTRY_MIME, "If-Match": headers["ETag"]})
        if status == 201:
            return conflicts, phantoms
        assert status == 412, (status, answer)
        conflicts += 1


def bench(seconds: float, writers: int, nodes: tuple[int, int] = (1, 2), sync_wait: int = 1) -> None:
    """Two serve instances (on ``nodes``), ``writers`` threads split across them, each adding
    its own entries to one document for ``seconds``: commits/s, 412s, replays, lost updates."""
    import tempfile

    from tests.processes import kill_all, spawn
    from tests.test_cli import request
    from xcap_wsgi.storage.mysql import MySQLStorage

    cluster = GaleraCluster()
    print(f"cluster ready in {cluster.start():.1f} s")
    database = f"xcap_galera_bench_{os.getpid()}"
    admin = cluster.connect(1)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{database}`")
    cluster.wait_for(database)
    MySQLStorage(url(1, database)).ensure_schema()
    cluster.wait_for(database, "xcap")
    doc_uri = "/xcap-root/resource-lists/users/sip:alice@example.com/index"
    base = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
            b'<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="l"/></resource-lists>\n')
    work = Path(tempfile.mkdtemp(prefix="galera-bench-"))
    procs = []
    try:
        ports = []
        for i, node in enumerate(nodes):
            (work / str(i)).mkdir()
            p, proc = spawn(work / str(i), "--db-url", url(node, database, wsrep_sync_wait=str(sync_wait)), "--workers", "2")
            ports.append(p)
            procs.append(proc)
        assert request(ports[0], "PUT", doc_uri, base, {"Content-Type": "application/resource-lists+xml"})[0] == 201
        before = {n: cluster.conflicts(n) for n in NODES}
        added: list[list[str]] = [[] for _ in range(writers)]
        totals = [0, 0]
        lock = threading.Lock()
        stop_at = time.monotonic() + seconds

        def writer(w: int) -> None:
            i = 0
            while time.monotonic() < stop_at:
                uri = f"sip:w{w}-{i}@example.com"
                conflicts, phantoms = add_entry(request, ports[w % 2], doc_uri, uri)
                added[w].append(uri)
                with lock:
                    totals[0] += conflicts
                    totals[1] += phantoms
                i += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
        began = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - began
        replays = sum(cluster.conflicts(n) - before[n] for n in NODES)
        body = request(ports[1], "GET", doc_uri)[2]
        commits = sum(len(a) for a in added)
        lost = [u for a in added for u in a if body.count(f'uri="{u}"'.encode()) != 1]
        print(f"{writers} writers on 2 instances (nodes {nodes[0]}, {nodes[1]}, wsrep_sync_wait={sync_wait}) for"
              f" {elapsed:.1f} s: {commits} commits, {commits / elapsed:.1f} commits/s, {totals[0]} x 412, {replays} replays,"
              f" phantom commits {totals[1]}, lost or doubled updates {len(lost)}")
    finally:
        for proc in procs:
            kill_all(proc)
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.galera", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "running", "bench"])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--nodes", default="1,2", help="the nodes of the two instances (1,1: both on node 1)")
    parser.add_argument("--sync-wait", type=int, default=1, help="wsrep_sync_wait in the instances' URL")
    args = parser.parse_args(argv)
    cluster = GaleraCluster()
    if args.command == "running":
        return 0 if all(cluster.running(n) for n in NODES) else 1
    reason = missing()
    if reason and args.command != "stop":
        print(reason, file=sys.stderr)
        return 1
    if args.command == "start":
        print(f"galera cluster up in {cluster.start():.1f} s: 127.0.0.1:{port(1)}, {port(2)}, {port(3)} (root), database xcap")
    elif args.command == "stop":
        cluster.stop()
    else:
        first, second = (int(n) for n in args.nodes.split(","))
        bench(args.seconds, args.writers, (first, second), args.sync_wait)
    return 0


if __name__ == "__main__":
    sys.exit(main())
