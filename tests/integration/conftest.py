"""A Store SCP running in this process on a free port, over a real index and storage."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from openpacs.archive.core import Core
from openpacs.dimse.receiver import StoreListener as Listener
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
