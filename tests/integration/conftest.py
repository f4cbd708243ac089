"""A Store SCP running in this process on a free port, over a real index and storage."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from openpacs.archive.core import Core
from openpacs.dimse.engine import Listener
from openpacs.dimse.qr_scp import make_qr_listener
from openpacs.server import start_store

# Without TCP_NODELAY every dcmtk round trip stalls on Nagle + delayed ACK (INTEROP.md).
PEER_ENV = {**os.environ, "TCP_NODELAY": "1"}


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """Protocol tests run on SQLite; tests/archive covers the index on PostgreSQL too."""
    return sqlite_url


@pytest.fixture
def store_scp(core: Core) -> Iterator[Listener]:
    listener = start_store(core)
    try:
        yield listener
    finally:
        listener.stop(grace=2)


@pytest.fixture
def move_destinations() -> dict[str, tuple[str, int]]:
    """C-MOVE destinations the Q/R SCP knows: AE title → (host, port); tests add theirs."""
    return {}


@pytest.fixture
def qr_scp(core: Core, move_destinations: dict[str, tuple[str, int]]) -> Iterator[Listener]:
    # A pending response after every sub-operation, so tests see each count.
    listener = make_qr_listener(
        core.settings.qrscp, core.sessions, core.storage, move_destinations.get, pending_every=1
    )
    listener.start()
    try:
        yield listener
    finally:
        listener.stop(grace=2)


def run(
    *args: str | Path, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a peer program; its output is kept for the assertion message."""
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        env=PEER_ENV,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        output = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        raise AssertionError(f"{args[0]} exited {result.returncode}\n{output}")
    return result
