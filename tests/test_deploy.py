"""The shipped deployment (issue 9): nginx with deploy/nginx.conf in front of gunicorn with
deploy/gunicorn.conf.py, started by the commands and environment of deploy/xcap-wsgi.service.
Only ports, certificate paths and directories are substituted, plus the secrets the
operator puts into deploy/xcap-wsgi.env.example, a small XCAP_BUF_SIZE and two workers.

nginx, openssl and systemd-analyze are Debian packages. Without them the tests skip,
saying why; under CI (``CI`` set) they fail.
"""

from __future__ import annotations

import http.client
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI
from tests.test_cli import free_port
from xcap_wsgi.middleware import MAX_BUF_SIZE

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNIT, CONF, SITE, ENV_EXAMPLE = (DEPLOY / name for name in (
    "xcap-wsgi.service", "gunicorn.conf.py", "nginx.conf", "xcap-wsgi.env.example"))
BIN = Path(sys.executable).parent  # where the unit's /opt/xcap-wsgi/bin/ is here
SECRET = "deploy-test-secret-0123456789abcdef"
PASSWORD = "alice's password"
BUF_SIZE = 4096
DIRECTORY = "/xcap-root/org.openmobilealliance.xcap-directory/users/sip:alice@example.com/directory.xml"
#: a list name with UTF-8 and two slashes, addressed by a selector that percent-encodes them and the
#: brackets: an nginx that normalised the URI would pass `[@name="Müller/Freunde"]` on
FRIENDS = '<list name="Müller//Freunde"><entry uri="sip:bob@example.com"/></list>'.encode()
FRIENDS_SELECTOR = "/~~/resource-lists/list%5B@name=%22M%C3%BCller%2F%2FFreunde%22%5D"
LISTS = (b'<?xml version="1.0" encoding="UTF-8"?>\n<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">'
         + FRIENDS + b"</resource-lists>\n")
Response = tuple[int, dict[str, str], bytes]


def program(name: str) -> str:
    """The program's path; skip when it is not installed (fail under CI)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        reason = f"{name} is not installed (Debian: apt-get install {'systemd' if name == 'systemd-analyze' else name})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI requires the deployment tests to run")
        pytest.skip(reason)
    return path


def unit_values(key: str) -> list[str]:
    """The values of ``key=`` in the unit, in order."""
    return [line.split("=", 1)[1] for line in UNIT.read_text().splitlines() if line.startswith(f"{key}=")]


def unit_command(key: str) -> list[str]:
    """The unit's ``key=`` command line, run from this environment's bin and this checkout's configuration."""
    [line] = unit_values(key)
    line = line.replace("/opt/xcap-wsgi/bin/", f"{BIN}/").replace("/etc/xcap-wsgi/gunicorn.conf.py", str(CONF))
    return shlex.split(line)


def env_file(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#"))


def clean_environ(**env: str) -> dict[str, str]:
    """This process's environment without its XCAP_* (and prometheus_client) settings, plus ``env``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("XCAP_", "PROMETHEUS_"))}, **env}


def server_env(run_dir: Path, db_url: str, bind: str) -> dict[str, str]:
    """What systemd gives the server: the unit's Environment= over the environment file,
    with the operator's secrets filled in."""
    env = clean_environ(**env_file(ENV_EXAMPLE))
    env.update(dict(value.split("=", 1) for value in unit_values("Environment")))
    env.update(XCAP_DB_URL=db_url, XCAP_AUTH_SECRET=SECRET, XCAP_BIND=bind, XCAP_BUF_SIZE=str(BUF_SIZE),
               XCAP_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(run_dir))
    return env


def nginx_conf(tmp: Path, port: int, upstream: int, cert: Path, key: Path) -> Path:
    """The shipped site inside a minimal http{} whose files all live in ``tmp``."""
    site = SITE.read_text()
    for shipped, here in (("127.0.0.1:8000", f"127.0.0.1:{upstream}"), ("listen 443 ssl", f"listen 127.0.0.1:{port} ssl"),
                          ("/etc/ssl/certs/xcap.example.com.pem", str(cert)),
                          ("/etc/ssl/private/xcap.example.com.key", str(key))):
        assert shipped in site
        site = site.replace(shipped, here)
    (tmp / "site.conf").write_text(site)
    temp = " ".join(f"{kind}_temp_path {tmp}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    (tmp / "nginx.conf").write_text(
        f"daemon off;\n{'user root;' if os.geteuid() == 0 else ''}\nworker_processes 1;\npid {tmp}/nginx.pid;\n"
        f"error_log {tmp}/nginx-error.log info;\nevents {{ worker_connections 256; }}\n"
        f"http {{ access_log {tmp}/nginx-access.log; {temp} include {tmp}/site.conf; }}\n")
    return tmp / "nginx.conf"


@dataclass
class Deployment:
    port: int
    upstream: int
    context: ssl.SSLContext
    log: Path
    server: subprocess.Popen[bytes]

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                *, password: str | None = None, source: str = "127.0.0.1") -> Response:
        """Over TLS through nginx, from ``source``; with ``password``, as Alice by digest."""
        if password is None:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.context, timeout=10,
                                               source_address=(source, 0))
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            result = resp.status, dict(resp.getheaders()), resp.read()
            conn.close()
            return result
        passwords = urllib.request.HTTPPasswordMgrWithDefaultRealm()
        passwords.add_password(None, self.url("/"), "alice", password)
        opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=self.context),
                                             urllib.request.HTTPDigestAuthHandler(passwords))
        try:
            with opener.open(urllib.request.Request(self.url(path), data=body, headers=headers or {}, method=method),
                             timeout=10) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, dict(exc.headers.items()), exc.read()


def listening(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        return True


def wait_until(answers: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.time() + 20
    while True:
        try:
            if answers():
                return
        except OSError:
            pass
        assert proc.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=25)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run([program("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def start_server(tmp: Path, upstream: int) -> tuple[subprocess.Popen[bytes], Path]:
    """The unit's ExecStartPre, an account for Alice, then its ExecStart, once it listens."""
    (tmp / "run").mkdir()
    env = server_env(tmp / "run", f"sqlite:///{tmp}/xcap.db", f"127.0.0.1:{upstream}")
    subprocess.run(unit_command("ExecStartPre"), cwd=tmp, env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "xcap_wsgi", "user", "add", "sip:alice@example.com", "--password", PASSWORD],
                   cwd=tmp, env=env, check=True, capture_output=True)
    log = tmp / "gunicorn.log"
    with log.open("wb") as out:
        server = subprocess.Popen(unit_command("ExecStart"), cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    wait_until(lambda: listening(upstream), server, log)
    return server, log


def start_nginx(nginx: str, tmp: Path, port: int, upstream: int) -> subprocess.Popen[bytes]:
    conf = nginx_conf(tmp, port, upstream, *self_signed(tmp))
    with (tmp / "nginx.out").open("wb") as out:
        return subprocess.Popen([nginx, "-p", str(tmp), "-e", str(tmp / "nginx-error.log"), "-c", str(conf)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    nginx = program("nginx")
    tmp = tmp_path_factory.mktemp("deploy")
    port, upstream = free_port(), free_port()
    server, log = start_server(tmp, upstream)
    try:
        proxy = start_nginx(nginx, tmp, port, upstream)
        try:
            deployment = Deployment(port, upstream, ssl.create_default_context(cafile=str(tmp / "cert.pem")), log, server)
            wait_until(lambda: deployment.request("GET", "/xcap-root/xcap-caps/global/index")[0] == 200,
                       proxy, tmp / "nginx-error.log")
            yield deployment
        finally:
            stop(proxy)
    finally:
        stop(server)


def server_sockets(port: int, state: str) -> set[str]:
    """The peers of gunicorn's TCP sockets on ``port`` in ``state`` (``/proc/net/tcp``: 01
    established, 06 TIME_WAIT, which the side that closed first is left in)."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return {row[2] for row in rows if int(row[1].split(":")[1], 16) == port and row[3] == state}


def access_line(deployment: Deployment, request_id: str) -> str:
    """xcap-wsgi's access line of the request (written once the response is sent)."""
    deadline = time.time() + 5
    while not (lines := [line for line in deployment.log.read_text().splitlines() if f"request {request_id}:" in line]):
        assert time.time() < deadline, deployment.log.read_text()
        time.sleep(0.05)
    [line] = lines
    return line


def test_nginx_serves_xcap_over_tls(deployment: Deployment) -> None:
    status, headers, body = deployment.request("GET", "/xcap-root/xcap-caps/global/index")
    assert (status, headers["Content-Type"]) == (200, "application/xcap-caps+xml")
    assert b"<auid>resource-lists</auid>" in body


def test_request_without_credentials_is_challenged_through_nginx(deployment: Deployment) -> None:
    status, headers, _ = deployment.request("GET", RL_URI)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith('Digest realm="example.com"')


def test_wrong_password_is_refused_through_nginx(deployment: Deployment) -> None:
    assert deployment.request("GET", RL_URI, password="not it")[0] == 401


def test_digest_through_nginx_writes_and_reads_the_document(deployment: Deployment) -> None:
    put = deployment.request("PUT", RL_URI, RESOURCE_LISTS, {"Content-Type": RL_MIME}, password=PASSWORD)
    assert put[0] in (200, 201)
    status, headers, body = deployment.request("GET", RL_URI, password=PASSWORD)
    assert (status, headers["ETag"], body) == (200, put[1]["ETag"], RESOURCE_LISTS)


def test_selector_with_encoded_brackets_slash_and_utf8_passes_nginx_unchanged(deployment: Deployment) -> None:
    uri = "/xcap-root/resource-lists/users/sip:alice@example.com/selectors"
    assert deployment.request("PUT", uri, LISTS, {"Content-Type": RL_MIME}, password=PASSWORD)[0] in (200, 201)
    status, headers, body = deployment.request("GET", uri + FRIENDS_SELECTOR, password=PASSWORD)
    assert (status, headers["Content-Type"], body) == (200, "application/xcap-el+xml", FRIENDS)


def test_nginx_reuses_its_connections_to_gunicorn(deployment: Deployment) -> None:
    closed_before = server_sockets(deployment.upstream, "06")
    for _ in range(5):
        assert deployment.request("GET", "/xcap-root/xcap-caps/global/index")[0] == 200
    assert server_sockets(deployment.upstream, "06") - closed_before == set()  # gunicorn closed none
    assert server_sockets(deployment.upstream, "01")


def test_access_line_names_the_client_nginx_forwarded_not_one_it_claims(deployment: Deployment) -> None:
    _, headers, _ = deployment.request("GET", RL_URI, headers={"X-Forwarded-For": "203.0.113.9"}, source="127.0.0.2")
    line = access_line(deployment, headers["X-Request-ID"])
    assert f": 127.0.0.2 - GET {RL_URI!r} -> 401 " in line


def test_oma_directory_lists_uris_with_the_scheme_and_port_clients_used(deployment: Deployment) -> None:
    assert deployment.request("PUT", RL_URI, RESOURCE_LISTS, {"Content-Type": RL_MIME}, password=PASSWORD)[0] in (200, 201)
    status, _, body = deployment.request("GET", DIRECTORY, password=PASSWORD)
    assert status == 200
    uris = re.findall(rb'uri="([^"]+)"', body)
    assert deployment.url(RL_URI).encode() in uris
    assert all(uri.startswith(deployment.url("/xcap-root/").encode()) for uri in uris)


def test_body_over_buf_size_is_answered_413_by_xcap_wsgi_not_nginx(deployment: Deployment) -> None:
    body = RESOURCE_LISTS + b" " * (BUF_SIZE + 1 - len(RESOURCE_LISTS))
    status, headers, text = deployment.request("PUT", RL_URI, body, {"Content-Type": RL_MIME}, password=PASSWORD)
    assert (status, headers["Content-Type"].split(";")[0]) == (413, "text/plain")
    assert f"the limit (buf_size) is {BUF_SIZE} bytes".encode() in text


def test_reload_by_hup_replaces_the_workers_and_keeps_serving(deployment: Deployment) -> None:
    def booted() -> int:
        return deployment.log.read_text().count("Booting worker with pid")

    before = booted()
    deployment.server.send_signal(signal.SIGHUP)  # the unit's ExecReload
    wait_until(lambda: booted() >= before + 2, deployment.server, deployment.log)
    assert deployment.request("GET", DIRECTORY, password=PASSWORD)[0] == 200
    assert deployment.server.poll() is None


def test_nginx_lets_through_every_body_xcap_wsgi_could_accept() -> None:
    [size] = re.findall(r"^\s*client_max_body_size (\d+)m;", SITE.read_text(), re.M)
    assert int(size) * 1024 * 1024 > MAX_BUF_SIZE


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    analyze = program("systemd-analyze")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/xcap-wsgi/bin/", f"{BIN}/"))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def gunicorn_conf(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """gunicorn's reading of the shipped configuration under ``env`` (``--print-config``)."""
    return subprocess.run([sys.executable, "-m", "gunicorn", "-c", str(CONF), "--print-config", "xcap_wsgi:create_app()"],
                          cwd=tmp_path, env=clean_environ(**env), capture_output=True, text=True)


def setting(result: subprocess.CompletedProcess[str], name: str) -> str:
    [value] = re.findall(rf"^{name} += (.*)$", result.stdout, re.M)
    return str(value)


def test_gunicorn_conf_refuses_to_serve_without_authentication_unless_allowed(tmp_path: Path) -> None:
    refused = gunicorn_conf(tmp_path, XCAP_AUTH="none")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.startswith("xcap-wsgi: configuration error: XCAP_AUTH=none lets anyone")
    assert gunicorn_conf(tmp_path, XCAP_AUTH="none", XCAP_ALLOW_UNAUTHENTICATED="true").returncode == 0


def test_gunicorn_conf_defaults_to_digest_and_refuses_it_without_a_secret(tmp_path: Path) -> None:
    result = gunicorn_conf(tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("xcap-wsgi: configuration error: XCAP_AUTH=digest needs XCAP_AUTH_SECRET")


def test_gunicorn_conf_names_a_bad_variable_in_one_line(tmp_path: Path) -> None:
    result = gunicorn_conf(tmp_path, XCAP_AUTH_SECRET=SECRET, XCAP_TRUSTED_PROXIES="nginx")
    assert (result.returncode, result.stderr) == (
        2, "xcap-wsgi: configuration error: XCAP_TRUSTED_PROXIES must be an IP address or CIDR block, got 'nginx'\n")


@pytest.mark.parametrize(("proxies", "allowed"), [
    pytest.param(None, "['127.0.0.1']", id="default-loopback"),
    pytest.param("10.0.0.5,192.0.2.0/24", "['10.0.0.5', '192.0.2.0/24']", id="from-XCAP_TRUSTED_PROXIES"),
])
def test_gunicorn_trusts_forwarding_headers_from_xcap_trusted_proxies_only(
        tmp_path: Path, proxies: str | None, allowed: str) -> None:
    result = gunicorn_conf(tmp_path, XCAP_AUTH_SECRET=SECRET, **({} if proxies is None else {"XCAP_TRUSTED_PROXIES": proxies}))
    assert result.returncode == 0, result.stderr
    assert setting(result, "forwarded_allow_ips") == allowed
    assert setting(result, "secure_scheme_headers") == "{'X-FORWARDED-PROTO': 'https'}"


def test_gunicorn_conf_keeps_connections_alive_without_a_control_socket(tmp_path: Path) -> None:
    result = gunicorn_conf(tmp_path, XCAP_AUTH_SECRET=SECRET)
    assert (setting(result, "worker_class"), setting(result, "keepalive")) == ("gthread", "75")
    assert setting(result, "control_socket_disable") == "True"
    assert setting(result, "post_worker_init") == "<post_worker_init()>"


def test_gunicorn_conf_sums_metrics_over_workers_when_they_are_on(tmp_path: Path) -> None:
    pytest.importorskip("prometheus_client")
    off = gunicorn_conf(tmp_path, XCAP_AUTH_SECRET=SECRET)
    on = gunicorn_conf(tmp_path, XCAP_AUTH_SECRET=SECRET, XCAP_METRICS_PATH="/metrics",
                       PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    assert (setting(off, "child_exit"), setting(on, "child_exit")) == ("<ChildExit.child_exit()>", "<child_exit()>")
