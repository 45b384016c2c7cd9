"""``xcap-wsgi serve`` facing slow clients without nginx (issue 9): other clients are still
answered within a second while 50 connections trickle their headers or bodies at one byte a
second, and a connection stays open for the next request."""

from __future__ import annotations

import http.client
import time
from pathlib import Path

import pytest

from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI
from tests.processes import kill_all, spawn
from tests.slowclients import Trickle, probe
from tests.test_cli import request


@pytest.mark.parametrize("kind", ["headers", "body"])
def test_serve_answers_within_a_second_while_50_connections_trickle(tmp_path: Path, kind: str) -> None:
    port, proc = spawn(tmp_path)
    try:
        assert request(port, "PUT", RL_URI, RESOURCE_LISTS, {"Content-Type": RL_MIME})[0] == 201
        with Trickle(port, 50, kind):
            time.sleep(1)  # every slow connection has reached a worker
            latencies = probe(port, RL_URI, seconds=5, timeout=3)
    finally:
        kill_all(proc)
    assert max(latencies) < 1.0, [round(seconds, 3) for seconds in latencies]


def test_serve_keeps_the_connection_open_for_the_next_request(tmp_path: Path) -> None:
    port, proc = spawn(tmp_path)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        answers = []
        for _ in range(3):
            conn.request("GET", "/xcap-root/xcap-caps/global/index")
            resp = conn.getresponse()
            resp.read()
            answers.append((resp.status, resp.getheader("Connection"), conn.sock and conn.sock.getsockname()))
        conn.close()
    finally:
        kill_all(proc)
    assert [(status, connection) for status, connection, _ in answers] == [(200, "keep-alive")] * 3
    assert len({local for *_, local in answers}) == 1  # one connection carried all three
