"""Observability through real servers (issue 9): metrics summed over every worker of
``serve``, JSON access lines, and access lines under plain gunicorn with create_app()."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI
from tests.processes import kill_all, spawn
from tests.test_cli import free_port, request

pytest.importorskip("prometheus_client")


def test_serve_sums_the_metrics_of_every_worker(tmp_path: Path) -> None:
    port, proc = spawn(tmp_path, "--workers", "3", "--metrics-path", "/metrics")
    try:
        assert request(port, "PUT", RL_URI, RESOURCE_LISTS, {"Content-Type": RL_MIME})[0] == 201
        for _ in range(30):  # new connections: the requests spread over the workers
            assert request(port, "GET", RL_URI)[0] == 200
        scrapes = [request(port, "GET", "/metrics")[2].decode() for _ in range(5)]
    finally:
        kill_all(proc)
    for text in scrapes:  # whichever worker answers, it reports the sum
        assert 'xcap_requests_total{auid="resource-lists",method="GET",status="200"} 30.0' in text.splitlines()
        assert 'xcap_requests_total{auid="resource-lists",method="PUT",status="201"} 1.0' in text.splitlines()


def test_serve_writes_json_access_lines(tmp_path: Path) -> None:
    port, proc = spawn(tmp_path, "--log-format", "json")
    try:
        status, headers, _ = request(port, "GET", RL_URI)
        time.sleep(0.2)
    finally:
        kill_all(proc)
    lines = [json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line["id"] == headers["X-Request-ID"]]
    assert status == 404 and len(mine) == 1
    assert {k: v for k, v in mine[0].items() if k != "duration_ms"} == {
        "id": headers["X-Request-ID"], "client": "127.0.0.1", "user": None, "method": "GET", "path": RL_URI,
        "status": 404, "bytes": len(b"no such document\n")}


def test_plain_gunicorn_with_create_app_writes_access_lines_and_timestamped_warnings(tmp_path: Path) -> None:
    port = free_port()
    with (tmp_path / "gunicorn.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "xcap_wsgi:create_app()"],
                                cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "XCAP_DB_URL": "sqlite:///xcap.db"})
    try:
        deadline = time.time() + 15
        while True:
            try:
                _, headers, _ = request(port, "GET", RL_URI)
                break
            except OSError:
                assert time.time() < deadline
                time.sleep(0.05)
        time.sleep(0.2)
    finally:
        kill_all(proc)
    text = (tmp_path / "gunicorn.log").read_text()
    [line] = [line for line in text.splitlines() if headers["X-Request-ID"] in line]
    assert f" INFO xcap_wsgi.access: request {headers['X-Request-ID']}: 127.0.0.1 - GET '{RL_URI}' -> 404 17 bytes " in line
    assert line[:4].isdigit()  # a timestamp first
