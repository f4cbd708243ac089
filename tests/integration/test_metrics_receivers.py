"""`openpacs serve` with a receiver process beside the main one: /metrics and /api/status count
the associations and C-STOREs of both (prometheus-client's multiprocess files, shared counts),
and a scraper gets in with a bearer token."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from openpacs.config import Settings
from tests.conftest import make_settings, need
from tests.generators import ct_series
from tests.integration.conftest import PEER_ENV
from tests.integration.test_crash_safety import OPENPACS, Server, _env

pytestmark = pytest.mark.peer
ASSOCIATIONS = 8
PASSWORD = "scraper-password-1"


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> Settings:
    return make_settings(tmp_path, sqlite_url, storescp={"workers": 2, "shutdown_grace": 2})


def _value(text: str, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def test_receiver_processes_are_counted(settings: Settings, tmp_path: Path) -> None:
    subprocess.run(
        [
            str(OPENPACS),
            "user",
            "add",
            "scraper",
            "--role",
            "viewer",
            "--password",
            PASSWORD,
            "--no-must-change",
        ],
        env=_env(settings),
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    server = Server(settings, tmp_path)
    try:
        base = f"http://127.0.0.1:{settings.http.port}"
        made = httpx.post(
            f"{base}/api/auth/tokens", json={"name": "prometheus"}, auth=("scraper", PASSWORD)
        )
        assert made.status_code == 201, made.text
        scraper = {"Authorization": f"Bearer {made.json()['token']}"}
        files = ct_series(tmp_path / "ct", ASSOCIATIONS, rows=64, columns=64)
        for path in files:  # one association each: the kernel hands them to both processes
            subprocess.run(
                [
                    need("storescu"),
                    "-aec",
                    "STORESCP",
                    "127.0.0.1",
                    str(settings.storescp.port),
                    str(path),
                ],
                env=PEER_ENV,
                check=True,
                capture_output=True,
                timeout=60,
            )
        assert httpx.get(f"{base}/metrics").status_code == 401
        text = httpx.get(f"{base}/metrics", headers=scraper).text
        store = {"service": "storescp", "command": "C-STORE"}
        assert _value(text, "openpacs_dimse_request_seconds_count", **store) == ASSOCIATIONS
        assert _value(text, "openpacs_dimse_request_seconds_bucket", **store, le="+Inf") == (
            ASSOCIATIONS
        )
        stored = {"origin": "dimse", "outcome": "stored"}
        assert _value(text, "openpacs_instances_total", **stored) == ASSOCIATIONS
        accepted = {"service": "storescp", "result": "accepted"}
        assert _value(text, "openpacs_associations_total", **accepted) == ASSOCIATIONS
        # One family per name, however many processes contributed.
        types = [line for line in text.splitlines() if line.startswith("# TYPE ")]
        assert len(types) == len(set(types))

        status = httpx.get(f"{base}/api/status", headers=scraper).json()
        assert all(listener["up"] for listener in status["listeners"]), status["listeners"]
        assert sorted(p["role"] for p in status["processes"]) == ["main", "receiver"]
        counts = {c["service"]: c for c in status["associations"]["counts"]}
        assert counts["storescp"]["accepted"] == ASSOCIATIONS
        assert counts["storescp"]["open"] == 0
        in_main = [a for a in status["associations"]["recent"] if a["service"] == "storescp"]
        assert 0 < len(in_main) < ASSOCIATIONS, "the receiver took none: nothing was shared"
        assert status["received"]["last_minute"] == ASSOCIATIONS
    finally:
        assert server.stop() == 0, server.log()
