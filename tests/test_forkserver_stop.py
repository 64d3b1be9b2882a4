"""forkserver.stop ends the fork server `bench` started and reaps it, so nothing of it runs on after `bench`
returns and its workers' CPU reaches whoever measured the command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import os
from multiprocessing import forkserver as mpf
from bench.exec import forkserver
forkserver.warm_up(2)
pid = mpf._forkserver._forkserver_pid
assert pid, "no fork server started"
forkserver.stop()
try:
    os.kill(pid, 0)
    print("alive")
except ProcessLookupError:
    print("gone")
forkserver.stop()  # twice: nothing left to stop
print("again ok")
"""


@pytest.mark.skipif(sys.platform == "win32", reason="no fork server on Windows")
def test_stop_kills_and_reaps_the_server() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["gone", "again", "ok"]
