"""/metrics: a C-STORE histogram sample after dcmtk's storescu stored through our Store SCP,
HTTP histograms labelled by route template, index timings, counters; credentials unless
`[metrics] public = true`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from openpacs.accounts import Role
from openpacs.archive.core import Core, open_core
from openpacs.monitoring.associations import Associations
from openpacs.server import start_store
from openpacs.web.api.deps import Services
from openpacs.web.app import create_app
from tests.conftest import make_settings, need
from tests.generators import ct_series
from tests.integration.conftest import PEER_ENV
from tests.web.client import Client, bearer, token_for

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url  # metrics are process-wide; the index timings run on both in tests/web


def scrape(client: Client) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.mark.peer
def test_a_c_store_from_storescu_is_timed_and_counted(core: Core, tmp_path: Path) -> None:
    monitor = Associations()
    client = Client(create_app(core, Services(associations=monitor)), role=Role.viewer)
    before = scrape(client)
    listener = start_store(core, monitor=monitor)
    try:
        files = ct_series(tmp_path / "ct", 4, rows=64, columns=64)
        port = str(core.settings.storescp.port)
        subprocess.run(
            [need("storescu"), "-aec", "STORESCP", "127.0.0.1", port, *map(str, files)],
            env=PEER_ENV,
            check=True,
            capture_output=True,
            timeout=60,
        )
        subprocess.run(
            [need("echoscu"), "-aec", "STORESCP", "127.0.0.1", port],
            env=PEER_ENV,
            check=True,
            capture_output=True,
            timeout=60,
        )
    finally:
        listener.stop(grace=2)
    after = scrape(client)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    store = {"service": "storescp", "command": "C-STORE"}
    assert grew("openpacs_dimse_request_seconds_count", **store) == 4
    assert grew("openpacs_dimse_request_seconds_sum", **store) > 0
    assert grew("openpacs_dimse_request_seconds_bucket", **store, le="+Inf") == 4
    assert grew("openpacs_dimse_request_seconds_count", service="storescp", command="C-ECHO") == 1
    assert grew("openpacs_instances_total", origin="dimse", outcome="stored") == 4
    assert grew("openpacs_associations_total", service="storescp", result="accepted") == 2
    assert grew("openpacs_index_seconds_count", operation="ingest_write") >= 1
    assert value(after, "openpacs_associations_open", service="storescp") == 0


def test_http_requests_are_timed_by_route_template(core: Core) -> None:
    client = Client(create_app(core))
    before = scrape(client)
    assert client.get("/api/system").status_code == 200
    assert client.get("/api/logs/api/api-20200101.log").status_code == 404
    assert client.get("/dicom-web/studies", params={"PatientID": "X"}).status_code == 200
    # An unknown API path (the console's pages take every path outside the server's own).
    assert client.get("/api/no/such/1.2.3").status_code == 404
    after = scrape(client)

    def grew(route: str, status: str) -> float:
        labels = {"route": route, "method": "GET", "status": status}
        name = "openpacs_http_request_seconds_count"
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("/api/system", "2xx") == 1
    assert grew("/api/logs/{service}/{file}", "4xx") == 1
    assert grew("/dicom-web/studies", "2xx") == 1
    assert grew("/dicomweb/studies", "2xx") == 0
    assert grew("unmatched", "4xx") == 1
    # The query engine's search behind QIDO-RS.
    find = ("openpacs_index_seconds_count", frozenset({("operation", "find")}))
    assert after.get(find, 0) - before.get(find, 0) == 1
    # No raw path (a UID) ever becomes a label.
    assert not any("1.2.3" in dict(labels).get("route", "") for _, labels in after)


def test_metrics_need_credentials_unless_public(tmp_path: Path, sqlite_url: str) -> None:
    guarded = open_core(make_settings(tmp_path, sqlite_url))
    public = open_core(make_settings(tmp_path / "public", sqlite_url, metrics={"public": True}))
    try:
        app: FastAPI = create_app(guarded)
        assert Client(app, role=None).get("/metrics").status_code == 401
        token = token_for(guarded, Role.viewer)
        scraper = Client(app, role=None).get("/metrics", headers=bearer(token))
        assert scraper.status_code == 200 and "openpacs_http_request_seconds" in scraper.text
        open_app = create_app(public)
        assert Client(open_app, role=None).get("/metrics").status_code == 200
        # Only /metrics is opened by the setting.
        assert Client(open_app, role=None).get("/api/status").status_code == 401
    finally:
        guarded.close()
        public.close()
