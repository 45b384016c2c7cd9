"""``xcap-wsgi serve`` as a real process group, for tests that kill it or run it long.

Its output goes to ``serve.log`` in the working directory (a pipe nobody reads would
fill up and stall the server once it logs enough).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.test_cli import free_port, request


def spawn(cwd: Path, *args: str) -> tuple[int, subprocess.Popen[bytes]]:
    """``xcap-wsgi serve`` in a session of its own (so the test can SIGKILL every process),
    once it answers HTTP."""
    port = free_port()
    with (cwd / "serve.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "xcap_wsgi", "serve", "--bind", f"127.0.0.1:{port}", *args],
                                cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 15
    while True:
        try:
            if request(port, "GET", "/xcap-root/xcap-caps/global/index")[0] == 200:
                return port, proc
        except OSError:
            pass
        assert proc.poll() is None and time.time() < deadline, (cwd / "serve.log").read_text()
        time.sleep(0.05)


def kill_all(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the server and every worker: nothing gets to clean up."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
