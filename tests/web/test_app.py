"""The HTTP application as a client sees it: health, system information, OpenAPI docs.

Everything runs against a real index (SQLite, and PostgreSQL when configured) and real storage;
failures are real too (a storage root that is no longer a folder, an index that cannot be reached).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

import openpacs
from openpacs.archive.core import Core, open_core
from openpacs.archive.ingest import Incoming, Origin, Outcome
from openpacs.config import Settings
from openpacs.web.app import create_app
from tests.conftest import free_port, make_settings, sample
from tests.generators import ct_series
from tests.web.client import Client


@pytest.fixture
def client(core: Core) -> Client:
    return Client(create_app(core))


def store(core: Core, source: Path) -> Outcome:
    """Store a copy of `source` the way every protocol does: from a temp file in storage."""
    temp = core.storage.new_temp()
    shutil.copyfile(source, temp)
    return core.archive.store(Incoming(temp, Origin.import_)).outcome


def stored_files(core: Core) -> list[Path]:
    """The files under the storage root, the temporary folder excluded."""
    root = core.storage.root
    return [
        path
        for path in root.rglob("*")
        if path.is_file() and not path.is_relative_to(core.storage.temp_dir)
    ]


# --- /health ---------------------------------------------------------------------------------


def test_health_ok(client: Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "index": "ok", "storage": "ok"}
    assert response.headers["content-type"] == "application/json"


def test_health_names_an_unusable_storage_and_recovers(client: Client, core: Core) -> None:
    root = core.storage.root
    # The storage volume is gone and a plain file sits where the root folder was.
    shutil.rmtree(root)
    root.write_bytes(b"not a folder")

    response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["index"] == "ok"
    assert body["storage"] != "ok"
    assert str(root) in body["storage"] and "not writable" in body["storage"]

    # Put the folder back: health answers ok again without a restart.
    root.unlink()
    core.storage.temp_dir.mkdir(parents=True)
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "index": "ok", "storage": "ok"}


PASSWORD = "s3cret-pw"


@pytest.fixture(params=["sqlite-folder-removed", "postgresql-closed-port"])
def core_without_index(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Core]:
    """A core whose index cannot be reached (storage is fine)."""
    if request.param == "sqlite-folder-removed":
        folder = tmp_path / "db"
        settings = make_settings(tmp_path, f"sqlite:///{folder / 'index.db'}")
        core = open_core(settings)
        assert core.check() == {"index": "ok", "storage": "ok"}
        # The folder holding the database disappears (an unmounted volume, say).
        core.engine.dispose()
        shutil.rmtree(folder)
    else:
        # Nothing listens on port 1: the server is down.
        url = f"postgresql+psycopg://openpacs:{PASSWORD}@127.0.0.1:1/openpacs"
        settings = make_settings(tmp_path, url)
        core = open_core(settings, migrate=False)
    try:
        yield core
    finally:
        core.close()


def test_health_names_an_unreachable_index(core_without_index: Core) -> None:
    response = Client(create_app(core_without_index), role=None).get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["storage"] == "ok"
    assert body["index"].startswith("unreachable: ")
    assert set(body) == {"status", "index", "storage"}
    assert PASSWORD not in response.text  # /health is public: no credentials in the reason


# --- /api/system -----------------------------------------------------------------------------


def test_system_on_an_empty_archive(client: Client, settings: Settings, core: Core) -> None:
    response = client.get("/api/system")
    assert response.status_code == 200
    info = response.json()
    assert info["name"] == "openpacs"
    assert info["version"] == openpacs.__version__
    assert info["dicom"] == [
        {
            "service": "storescp",
            "ae_title": settings.storescp.ae_title,
            "port": settings.storescp.port,
        },
        {
            "service": "qrscp",
            "ae_title": settings.qrscp.ae_title,
            "port": settings.qrscp.port,
        },
        {
            "service": "worklist",
            "ae_title": settings.worklist.ae_title,
            "port": settings.worklist.port,
        },
        {
            "service": "printscp",
            "ae_title": settings.printscp.ae_title,
            "port": settings.printscp.port,
        },
    ]
    assert info["http_port"] == settings.http.port
    assert info["database"] == core.engine.dialect.name
    assert info["database"] in {"sqlite", "postgresql"}
    assert info["counts"] == {"patients": 0, "studies": 0, "series": 0, "instances": 0}
    assert info["storage_used_bytes"] == 0
    total = shutil.disk_usage(core.storage.root).total
    assert 0 < info["storage_free_bytes"] <= total


def test_system_shows_configured_listener(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    settings = make_settings(
        tmp_path, database_url, storescp={"ae_title": "SITEPACS", "port": port}
    )
    core = open_core(settings)
    try:
        info = Client(create_app(core)).get("/api/system").json()
    finally:
        core.close()
    assert info["dicom"][0] == {"service": "storescp", "ae_title": "SITEPACS", "port": port}


def test_system_counts_what_was_stored(client: Client, core: Core, tmp_path: Path) -> None:
    sources = [
        *ct_series(tmp_path / "ct", 3, rows=16, columns=16),
        sample("CT_small.dcm"),
        sample("MR_small.dcm"),
    ]
    for source in sources:
        assert store(core, source) is Outcome.stored
    # A duplicate (kept, by default) changes nothing.
    assert store(core, sources[0]) is Outcome.duplicate

    headers = [dcmread(path, stop_before_pixels=True) for path in sources]
    expected = {
        "patients": len({str(ds.PatientID) for ds in headers}),
        "studies": len({str(ds.StudyInstanceUID) for ds in headers}),
        "series": len({str(ds.SeriesInstanceUID) for ds in headers}),
        "instances": len({str(ds.SOPInstanceUID) for ds in headers}),
    }
    assert expected == {"patients": 3, "studies": 3, "series": 3, "instances": 5}

    response = client.get("/api/system")
    assert response.status_code == 200
    info = response.json()
    assert info["counts"] == expected
    on_disk = stored_files(core)
    assert len(on_disk) == 5
    assert info["storage_used_bytes"] == sum(path.stat().st_size for path in on_disk)
    # Stored byte for byte (ASCII names: no character set repair), so the sources add up too.
    assert info["storage_used_bytes"] == sum(path.stat().st_size for path in sources)


# --- OpenAPI ---------------------------------------------------------------------------------


def test_docs_page_is_html(client: Client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger" in response.text.lower()
    assert "/openapi.json" in response.text


def test_openapi_lists_the_endpoints(client: Client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "openpacs"
    assert schema["info"]["version"] == openpacs.__version__
    assert {"/health", "/api/system"} <= set(schema["paths"])
    assert "get" in schema["paths"]["/health"]
    system = schema["paths"]["/api/system"]["get"]
    assert system["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SystemInfo"
    }


def test_system_answers_503_when_the_index_is_unreachable(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'db' / 'index.db'}")
    core = open_core(settings)
    try:
        client = Client(create_app(core))  # signed in while the index was there
        core.engine.dispose()
        shutil.rmtree(tmp_path / "db")
        response = client.get("/api/system")
        assert response.status_code == 503
        assert "index" in response.json()["detail"]
    finally:
        core.close()
