"""GET /api/status with real listeners and real peers: up while a listener runs and down once
it stopped (found by connecting, not by a flag), associations counted and listed as dcmtk made
them, objects received per minute and hour from the index (SQLite and PostgreSQL), storage,
index size, processes, recent problems; and the roles that may ask."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openpacs import logs
from openpacs.accounts import Role
from openpacs.archive.core import Core
from openpacs.dimse.engine import Listener
from openpacs.monitoring.associations import Associations
from openpacs.server import start_print, start_qr, start_store, start_worklist
from openpacs.web.api.deps import Services
from openpacs.web.app import create_app
from tests.conftest import need
from tests.generators import ct_series
from tests.integration.conftest import PEER_ENV
from tests.web.client import Client


@pytest.fixture
def monitor() -> Associations:
    return Associations()


@pytest.fixture
def listeners(core: Core, monitor: Associations) -> Iterator[dict[str, Listener]]:
    started = {
        "storescp": start_store(core, monitor=monitor),
        "qrscp": start_qr(core, monitor),
        "worklist": start_worklist(core, monitor),
        "printscp": start_print(core, monitor),
    }
    try:
        yield started
    finally:
        for listener in started.values():
            listener.stop(grace=1)


@pytest.fixture
def client(core: Core, monitor: Associations) -> Client:
    return Client(create_app(core, Services(associations=monitor)))


def _by_service(body: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return {entry["service"]: entry for entry in body[key]}


def test_a_listener_is_up_while_it_runs_and_down_once_stopped(
    core: Core, client: Client, listeners: dict[str, Listener]
) -> None:
    body = client.get("/api/status").json()
    states = _by_service(body, "listeners")
    for service in ("storescp", "qrscp", "worklist", "printscp"):
        assert states[service]["up"] is True, states[service]
        assert states[service]["port"] == getattr(core.settings, service).port
    # The app runs in process here: nothing listens on the HTTP port.
    assert states["http"]["up"] is False
    assert "connection refused" in states["http"]["detail"]
    listeners["storescp"].stop(grace=1)
    states = _by_service(client.get("/api/status").json(), "listeners")
    assert states["storescp"]["up"] is False and states["storescp"]["enabled"] is True
    assert str(core.settings.storescp.port) in states["storescp"]["detail"]
    assert states["qrscp"]["up"] is True


def test_a_listener_switched_off_in_the_settings_says_so(core: Core, client: Client) -> None:
    core.settings = core.settings.model_copy(
        update={"worklist": core.settings.worklist.model_copy(update={"enabled": False})}
    )
    states = _by_service(client.get("/api/status").json(), "listeners")
    assert states["worklist"]["enabled"] is False and states["worklist"]["up"] is False
    assert all(states[name]["enabled"] for name in ("storescp", "qrscp", "printscp", "http"))


@pytest.mark.peer
def test_associations_and_received_objects(
    core: Core, client: Client, listeners: dict[str, Listener], tmp_path: Path
) -> None:
    port = core.settings.storescp.port
    files = ct_series(tmp_path / "ct", 3, rows=64, columns=64)
    subprocess.run(
        [
            need("storescu"),
            "-aet",
            "MODALITY1",
            "-aec",
            "STORESCP",
            "127.0.0.1",
            str(port),
            *map(str, files),
        ],
        env=PEER_ENV,
        check=True,
        capture_output=True,
        timeout=60,
    )
    refused = subprocess.run(
        [need("echoscu"), "-aet", "ROGUE", "-aec", "NOTUS", "127.0.0.1", str(port)],
        env=PEER_ENV,
        capture_output=True,
        timeout=60,
    )
    assert refused.returncode != 0
    body = client.get("/api/status").json()
    counts = _by_service(body["associations"], "counts")
    assert counts["storescp"] | {"open": 0} == {
        "service": "storescp",
        "open": 0,
        "open_in_receivers": 0,
        "accepted": 1,
        "rejected": 1,
    }
    assert counts["qrscp"]["accepted"] == 0
    recent = body["associations"]["recent"]
    assert [(a["calling_ae"], a["accepted"]) for a in recent] == [
        ("ROGUE", False),
        ("MODALITY1", True),
    ]
    assert "NOTUS" in recent[0]["outcome"]
    stored = recent[1]
    assert stored["requests"] == 3 and stored["outcome"] == "released"
    assert stored["called_ae"] == "STORESCP" and stored["ended_at"] >= stored["started_at"]
    assert body["received"] == {"last_minute": 3, "last_hour": 3}
    # The files as stored (our file meta), as the instance rows say: what the studies add up.
    assert body["storage"]["stored_bytes"] == core.counts().stored_bytes > 0
    assert 0 < body["storage"]["free_bytes"] <= body["storage"]["total_bytes"]


def test_index_storage_processes_and_problems(core: Core, client: Client) -> None:
    logs.setup(core.settings.logging)
    logs.get_logger("jobs").error("a job failed: node PACS refused")
    body = client.get("/api/status").json()
    index = body["index"]
    assert index["database"] == core.engine.dialect.name
    assert index["database_bytes"] > 0
    if index["database"] == "postgresql":
        assert 0 < index["tables_bytes"] <= index["database_bytes"]
    else:
        assert index["tables_bytes"] is None
    assert body["storage"]["root"] == str(core.settings.storage.root)
    (main,) = body["processes"]
    assert main["role"] == "main" and main["memory_bytes"] > 10_000_000 and main["threads"] >= 1
    assert body["uptime_seconds"] > 0
    assert body["machine"]["cpu_count"] >= 1
    problem = body["problems"][0]
    assert problem["level"] == "ERROR" and problem["service"] == "jobs"
    assert problem["message"] == "a job failed: node PACS refused"
    assert len(client.get("/api/status", params={"problems": 0}).json()["problems"]) == 0


def test_any_role_reads_the_status_none_without_credentials(core: Core, client: Client) -> None:
    assert Client(client.app, role=Role.viewer).get("/api/status").status_code == 200
    assert Client(client.app, role=None).get("/api/status").status_code == 401
