"""A Store SCP receiver process whose server died while it was still starting stops at once
(PR_SET_PDEATHSIG only covers a parent dying after the request)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

PARENT = """
import multiprocessing, os, sys, time
from pathlib import Path

def child(pid_file):
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(1.5)  # still starting when the parent dies
    from openpacs.server import _stop_with_parent
    _stop_with_parent()
    time.sleep(600)  # a receiver serving on, had nobody told it to stop

if __name__ == "__main__":
    multiprocessing.set_start_method("spawn")
    multiprocessing.Process(target=child, args=(sys.argv[1],)).start()
    os._exit(0)  # dies as SIGKILL would leave it: no cleanup, no join
"""


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status  # a zombie has exited; nobody may reap it here


def test_a_receiver_orphaned_while_starting_exits(tmp_path: Path) -> None:
    script, pid_file = tmp_path / "parent.py", tmp_path / "child.pid"
    script.write_text(PARENT)
    subprocess.run([sys.executable, str(script), str(pid_file)], check=True, timeout=60)
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), f"receiver {pid} outlived its server"
