"""``xcap-wsgi serve`` facing slow clients without nginx (issue 9): other clients are still
answered within a second while 50 connections trickle their headers or bodies at one byte a
second, and a connection stays open for the next request."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.docs import RESOURCE_LISTS, RL_MIME, RL_URI
from tests.processes import kill_all, spawn
from tests.slowclients import Trickle, probe
from tests.test_cli import request

KINDS = ["headers", "body"]


def latencies_while_trickling(cwd: Path, kind: str) -> list[float]:
    """A server of its own, a document on it, and the probe's latencies while 50 connections
    trickle ``kind``."""
    port, proc = spawn(cwd)
    try:
        assert request(port, "PUT", RL_URI, RESOURCE_LISTS, {"Content-Type": RL_MIME})[0] == 201
        with Trickle(port, 50, kind):
            time.sleep(1)  # every slow connection has reached a worker
            return probe(port, RL_URI, seconds=5, timeout=3)
    finally:
        kill_all(proc)


@pytest.fixture(scope="module")
def trickled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[list[float]]]]:
    """Every kind at once, each against its own server: the probes overlap instead of
    adding up. What a run raised is raised in its test."""
    with ThreadPoolExecutor(len(KINDS)) as pool:
        yield {kind: pool.submit(latencies_while_trickling, tmp_path_factory.mktemp(kind), kind) for kind in KINDS}


@pytest.mark.parametrize("kind", KINDS)
def test_serve_answers_within_a_second_while_50_connections_trickle(trickled: dict[str, Future[list[float]]],
                                                                     kind: str) -> None:
    latencies = trickled[kind].result(timeout=60)
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
