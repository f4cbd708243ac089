"""`openpacs serve` as a real process: killed with SIGKILL mid-transfer, stopped with Ctrl-C.

Whatever storescu saw acknowledged must be indexed and readable after a restart; no index row may
point at a missing file; temp files of the interrupted transfer are gone after the restart.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from sqlalchemy import select

from openpacs.archive.core import open_core
from openpacs.archive.models import Instance
from openpacs.config import Settings
from openpacs.server import WORKER_START_TIMEOUT
from tests.conftest import make_settings, need
from tests.generators import ct_series
from tests.integration.conftest import PEER_ENV

pytestmark = pytest.mark.peer

OPENPACS = Path(sys.executable).parent / "openpacs"


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    return make_settings(tmp_path, sqlite_url, storescp={"shutdown_grace": 5})


def _env(settings: Settings) -> dict[str, str]:
    return {
        **PEER_ENV,
        "OPENPACS_STORESCP__PORT": str(settings.storescp.port),
        "OPENPACS_STORESCP__HOST": "127.0.0.1",
        "OPENPACS_STORESCP__SHUTDOWN_GRACE": str(settings.storescp.shutdown_grace),
        "OPENPACS_STORESCP__WORKERS": str(settings.storescp.workers),
        "OPENPACS_QRSCP__PORT": str(settings.qrscp.port),
        "OPENPACS_QRSCP__HOST": "127.0.0.1",
        "OPENPACS_WORKLIST__PORT": str(settings.worklist.port),
        "OPENPACS_WORKLIST__HOST": "127.0.0.1",
        "OPENPACS_PRINTSCP__PORT": str(settings.printscp.port),
        "OPENPACS_PRINTSCP__HOST": "127.0.0.1",
        "OPENPACS_HTTP__PORT": str(settings.http.port),
        "OPENPACS_HTTP__HOST": "127.0.0.1",
        "OPENPACS_DATABASE__URL": settings.database.url,
        "OPENPACS_STORAGE__ROOT": str(settings.storage.root),
        "OPENPACS_LOGGING__DIR": str(settings.logging.dir),
        "OPENPACS_LOGGING__CONSOLE": "false",
    }


class Server:
    def __init__(self, settings: Settings, cwd: Path) -> None:
        self.settings = settings
        self.output = cwd / f"serve-{time.monotonic_ns()}.log"
        with self.output.open("w") as output:
            # Its own session, so a crash can take the whole process tree (receivers too).
            self.process = subprocess.Popen(
                [str(OPENPACS), "serve"],
                cwd=cwd,
                env=_env(settings),
                stdout=output,
                stderr=output,
                start_new_session=True,
            )
        try:
            self._wait_healthy()
        except AssertionError:
            self._kill_group_showing_stacks()
            raise

    def log(self) -> str:
        receivers = sorted((self.settings.logging.dir / "storescp").glob("*.log"))
        return "\n".join(p.read_text(errors="replace") for p in [self.output, *receivers])

    def _wait_healthy(self) -> None:
        url = f"http://127.0.0.1:{self.settings.http.port}/health"
        # Past the server's own wait for its receivers, so a slow start fails there, saying so.
        wait = WORKER_START_TIMEOUT + 30
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"openpacs exited:\n{self.log()}")
            try:
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"openpacs did not become healthy in {wait} s")

    def _kill_group_showing_stacks(self) -> None:
        """Every process of the server prints its threads' stacks (SIGUSR1) into the output,
        then all are killed, so none outlives the test."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGUSR1)
            time.sleep(2)
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        print(self.log())  # pytest shows it with the failure

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout)


@pytest.fixture
def series(tmp_path: Path) -> list[Path]:
    return ct_series(tmp_path / "ct", 300, rows=128, columns=128)


def _acknowledged(output: Iterator[str], on_each: object = None) -> list[Path]:
    """Files storescu saw a success response for, from its verbose log."""
    acked: list[Path] = []
    current: Path | None = None
    for line in output:
        sending = re.search(r"Sending file: (.+)$", line)
        if sending:
            current = Path(sending.group(1).strip())
        elif "Received Store Response (Success)" in line and current is not None:
            acked.append(current)
            if callable(on_each):
                on_each(len(acked))
    return acked


def _start_storescu(port: int, files: list[Path]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [need("storescu"), "-v", "-aec", "STORESCP", "127.0.0.1", str(port), *map(str, files)],
        env=PEER_ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _check_archive(settings: Settings, acked: list[Path]) -> None:
    core = open_core(settings)
    try:
        with core.sessions() as session:
            rows = {i.sop_instance_uid: i.file_path for i in session.scalars(select(Instance))}
        for path in acked:
            uid = str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
            assert uid in rows, f"acknowledged {path.name} is not indexed"
            stored = dcmread(core.storage.path(rows[uid]))
            assert stored.PixelData == dcmread(path).PixelData
        missing = [p for p in rows.values() if not core.storage.exists(p)]
        assert missing == [], "index rows point at missing files"
        assert list(core.storage.temp_dir.iterdir()) == []
    finally:
        core.close()


def test_sigkill_mid_transfer_loses_nothing_acknowledged(
    settings: Settings, series: list[Path], tmp_path: Path
) -> None:
    server = Server(settings, tmp_path)

    def kill_at_100(count: int) -> None:
        if count == 100:
            os.killpg(server.process.pid, signal.SIGKILL)

    with _start_storescu(settings.storescp.port, series) as client:
        assert client.stdout is not None
        acked = _acknowledged(iter(client.stdout.readline, ""), kill_at_100)
    server.process.wait(10)
    assert 100 <= len(acked) < len(series), "the kill must land mid-transfer"

    restarted = Server(settings, tmp_path)  # start-up removes temp files of the killed run
    try:
        _check_archive(settings, acked)
    finally:
        assert restarted.stop() == 0


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_stop_finishes_or_aborts_in_flight_and_keeps_what_was_acknowledged(
    settings: Settings, series: list[Path], tmp_path: Path, stop_signal: int
) -> None:
    server = Server(settings, tmp_path)

    def interrupt_at_50(count: int) -> None:
        if count == 50:
            server.process.send_signal(stop_signal)

    with _start_storescu(settings.storescp.port, series) as client:
        assert client.stdout is not None
        acked = _acknowledged(iter(client.stdout.readline, ""), interrupt_at_50)
    assert server.process.wait(30) == 0, server.log()
    assert len(acked) >= 50
    # After a clean stop, what was acknowledged is there without any start-up repair.
    _check_archive(settings, acked)


def _alive_in_group(pgid: int) -> dict[int, str]:
    """Processes of a process group that still run (zombies waiting to be reaped do not)."""
    alive = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            alive[int(stat.parent.name)] = command
    return alive


def test_receivers_do_not_outlive_a_killed_server(settings: Settings, tmp_path: Path) -> None:
    multi = settings.model_copy(
        update={"storescp": settings.storescp.model_copy(update={"workers": 2})}
    )
    server = Server(multi, tmp_path)
    os.kill(server.process.pid, signal.SIGKILL)  # the main process only, as `kill -9 PID` does
    server.process.wait(10)
    # Generous: each receiver stops its listener and closes its index on SIGTERM, which on a
    # loaded CI machine has taken over 20 s; only a receiver that never exits fails this.
    deadline = time.monotonic() + 90
    while _alive_in_group(server.process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = _alive_in_group(server.process.pid)
    if survivors:
        for pid in survivors:  # receivers print every thread's stack on SIGUSR1
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
        time.sleep(2)
        os.killpg(server.process.pid, signal.SIGKILL)
    assert survivors == {}, server.log()
