"""openpacs as a Q/R client: `move` and `get` jobs and `POST /api/nodes/{name}/find` against
dcmtk's dcmqrscp and Orthanc (Debian package), retrieving into this archive."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bench.orthanc import OrthancServer
from pydicom import dcmread

from openpacs import jobs
from openpacs.archive.core import Core, open_core
from openpacs.archive.retrieve import select_named
from openpacs.config import JobsSettings
from openpacs.dimse import retrieve_job, store_job
from openpacs.dimse.engine import Listener
from openpacs.dimse.store_scp import retrieved_into
from openpacs.jobs import JobRunner
from openpacs.jobs import runner as runner_module
from openpacs.server import web_services
from openpacs.web.app import create_app
from tests.conftest import free_port, make_settings, need, sample
from tests.generators import ct_series
from tests.integration.dcmtk_peers import DcmQrScp
from tests.integration.qr_client import load
from tests.integration.test_sender import dataset_bytes
from tests.integration.test_store_job import add_node, job_of
from tests.web.client import Client

pytestmark = pytest.mark.peer

ATTEMPTS = 2


def make_runner(core: Core) -> JobRunner:
    """Driven one job at a time by the tests (never started); no wait between attempts."""
    runner = JobRunner(
        core.sessions, core.write_lock, JobsSettings(backoff_seconds=0, max_attempts=ATTEMPTS)
    )
    runner.register(retrieve_job.MOVE, retrieve_job.make_move_handler(core))
    runner.register(retrieve_job.GET, retrieve_job.make_get_handler(core))
    runner.register(store_job.KIND, store_job.make_store_handler(core))
    return runner


@pytest.fixture
def runner(core: Core) -> JobRunner:
    return make_runner(core)


def uid(path: Path, keyword: str) -> str:
    return str(dcmread(path, stop_before_pixels=True).get(keyword))


def stored_here(core: Core, study_uid: str) -> dict[str, Path]:
    """SOP Instance UID → our stored file, for one study."""
    with core.sessions() as session:
        found = select_named(session, core.storage, studies=[study_uid])
    return {one.sop_instance_uid: one.path for one in found}


def assert_same_data(core: Core, originals: list[Path]) -> None:
    """Every original is stored here with the same dataset bytes (same syntax: as sent)."""
    study = uid(originals[0], "StudyInstanceUID")
    here = stored_here(core, study)
    assert set(here) == {uid(path, "SOPInstanceUID") for path in originals}
    for path in originals:
        assert dataset_bytes(here[uid(path, "SOPInstanceUID")]) == dataset_bytes(path)


def finished(core: Core, runner: JobRunner, job_id: int) -> dict[str, Any]:
    assert runner.run_next() == job_id
    return job_of(core, job_id)


# --- dcmtk dcmqrscp ------------------------------------------------------------------------


@pytest.fixture
def dcmqrscp(core: Core, store_scp: Listener, tmp_path: Path) -> Iterator[DcmQrScp]:
    hosts = {core.settings.storescp.ae_title: store_scp.port}
    with DcmQrScp(tmp_path / "dcmqrscp", hosts) as scp:
        add_node(core, "dcmqr", scp.ae_title, scp.port)
        yield scp


def test_move_and_get_from_dcmqrscp_at_every_level(
    core: Core, runner: JobRunner, dcmqrscp: DcmQrScp, tmp_path: Path
) -> None:
    a = ct_series(tmp_path / "a", 4, rows=32, columns=32, seed=1, patient_id="PA")
    b = ct_series(tmp_path / "b", 3, rows=32, columns=32, seed=2, patient_id="PB")
    c = ct_series(tmp_path / "c", 3, rows=32, columns=32, seed=3, patient_id="PC")
    d = ct_series(tmp_path / "d", 2, rows=32, columns=32, seed=4, patient_id="PD")
    dcmqrscp.store([*a, *b, *c, *d])

    study = runner.submit("move", {"node": "dcmqr", "studies": [uid(a[0], "StudyInstanceUID")]})
    job = finished(core, runner, study)
    assert (job["state"], job["total"], job["done"], job["failed"]) == ("succeeded", 4, 4, 0)
    assert_same_data(core, a)

    series = {
        "node": "dcmqr",
        "studies": [uid(b[0], "StudyInstanceUID")],
        "series": [uid(b[0], "SeriesInstanceUID")],
    }
    job = finished(core, runner, runner.submit("get", series))
    assert (job["state"], job["done"]) == ("succeeded", 3), job
    assert_same_data(core, b)

    listed = {
        "node": "dcmqr",
        "studies": [uid(c[0], "StudyInstanceUID")],
        "series": [uid(c[0], "SeriesInstanceUID")],
        "instances": [uid(c[0], "SOPInstanceUID"), uid(c[2], "SOPInstanceUID")],
    }
    job = finished(core, runner, runner.submit("move", listed))
    assert (job["state"], job["done"]) == ("succeeded", 2), job
    assert set(stored_here(core, uid(c[0], "StudyInstanceUID"))) == {
        uid(c[0], "SOPInstanceUID"),
        uid(c[2], "SOPInstanceUID"),
    }

    job = finished(core, runner, runner.submit("get", {"node": "dcmqr", "patient_id": "PD"}))
    assert (job["state"], job["done"]) == ("succeeded", 2), job
    assert_same_data(core, d)


def test_query_and_store_to_dcmqrscp(
    core: Core, runner: JobRunner, dcmqrscp: DcmQrScp, tmp_path: Path
) -> None:
    """The other half against the same peer: C-FIND through the API, and a store job."""
    here = ct_series(tmp_path / "here", 3, rows=32, columns=32, patient_id="HERE")
    load(core, here)
    study = uid(here[0], "StudyInstanceUID")
    job = finished(core, runner, runner.submit("store", {"node": "dcmqr", "studies": [study]}))
    assert (job["state"], job["done"]) == ("succeeded", 3), job
    client = Client(create_app(core, web_services(core, runner)))
    found = client.post(
        "/api/nodes/dcmqr/find",
        json={"level": "SERIES", "keys": {"StudyInstanceUID": study, "SeriesInstanceUID": ""}},
    )
    assert found.status_code == 200, found.text
    [series] = found.json()["answers"]
    assert series["0020000E"]["Value"] == [uid(here[0], "SeriesInstanceUID")]


def test_a_move_to_a_destination_the_node_does_not_know_fails_saying_so(
    core: Core, runner: JobRunner, dcmqrscp: DcmQrScp, tmp_path: Path
) -> None:
    a = ct_series(tmp_path / "a", 1, rows=16, columns=16)
    dcmqrscp.store(a)
    job_id = runner.submit(
        "move",
        {"node": "dcmqr", "studies": [uid(a[0], "StudyInstanceUID")], "destination": "NOBODY"},
    )
    job = finished(core, runner, job_id)
    assert job["state"] == "failed"
    assert "does not know the move destination 'NOBODY'" in job["error"], job["error"]


# --- Orthanc -------------------------------------------------------------------------------


@pytest.fixture
def orthanc(core: Core, store_scp: Listener, tmp_path: Path) -> Iterator[OrthancServer]:
    need("Orthanc")
    modalities = {"openpacs": [core.settings.storescp.ae_title, "127.0.0.1", store_scp.port]}
    # Orthanc answers C-FIND in its DefaultEncoding (Latin1 unless set), which drops Chinese
    # characters; a Chinese site sets Utf8.
    config: dict[str, object] = {"DicomModalities": modalities, "DefaultEncoding": "Utf8"}
    server = OrthancServer(tmp_path / "orthanc", config)
    with server:
        add_node(core, "orthanc", server.ae_title, server.dicom_port)
        yield server


def upload(orthanc: OrthancServer, files: list[Path]) -> None:
    with httpx.Client(base_url=orthanc.base_url, timeout=60, trust_env=False) as client:
        for path in files:
            response = client.post("/instances", content=path.read_bytes())
            assert response.status_code == 200, response.text


def test_find_move_and_get_from_orthanc_through_the_api(
    core: Core, runner: JobRunner, orthanc: OrthancServer, tmp_path: Path
) -> None:
    ct = ct_series(tmp_path / "ct", 3, rows=32, columns=32)
    for path in ct:
        ds = dcmread(path)
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = "Wang^XiaoDong=王^小东"
        ds.save_as(path)
    compressed = [sample("MR_small_jpeg_ls_lossless.dcm"), sample("JPEG2000.dcm")]
    upload(orthanc, [*ct, *compressed])
    client = Client(create_app(core, web_services(core, runner)))

    found = client.post(
        "/api/nodes/orthanc/find", json={"level": "STUDY", "keys": {"PatientName": "*王^小东"}}
    )
    assert found.status_code == 200, found.text
    answers = found.json()["answers"]
    assert [a["0020000D"]["Value"] for a in answers] == [[uid(ct[0], "StudyInstanceUID")]]
    assert answers[0]["00100010"]["Value"][0]["Ideographic"] == "王^小东"

    moved = client.post(
        "/api/jobs/move", json={"node": "orthanc", "studies": [uid(ct[0], "StudyInstanceUID")]}
    )
    assert moved.status_code == 202, moved.text
    job = finished(core, runner, moved.json()["id"])
    assert (job["state"], job["done"]) == ("succeeded", 3), job
    assert_same_data(core, ct)

    # C-GET of compressed originals: the node picks one syntax per SOP class from those we
    # propose (Orthanc: the first, uncompressed), so they arrive decoded to the same pixels.
    for path in compressed:
        got = client.post(
            "/api/jobs/get", json={"node": "orthanc", "studies": [uid(path, "StudyInstanceUID")]}
        )
        assert got.status_code == 202, got.text
        job = finished(core, runner, got.json()["id"])
        assert (job["state"], job["done"]) == ("succeeded", 1), job
        here = stored_here(core, uid(path, "StudyInstanceUID"))[uid(path, "SOPInstanceUID")]
        assert (dcmread(here).pixel_array == dcmread(path).pixel_array).all()

    # And a store job the other way: what is here goes to Orthanc.
    ours = ct_series(tmp_path / "here", 2, rows=16, columns=16, patient_id="HERE", seed=9)
    load(core, ours)
    stored = client.post(
        "/api/jobs/store", json={"node": "orthanc", "studies": [uid(ours[0], "StudyInstanceUID")]}
    )
    assert stored.status_code == 202, stored.text
    assert finished(core, runner, stored.json()["id"])["state"] == "succeeded"
    with httpx.Client(base_url=orthanc.base_url, timeout=30, trust_env=False) as http:
        found = http.post("/tools/find", json={"Level": "Patient", "Query": {"PatientID": "HERE"}})
        assert len(found.json()) == 1

    detail = client.get(f"/api/jobs/{moved.json()['id']}").json()
    assert detail["kind"] == "move" and detail["parameters"]["node"] == "orthanc"


def test_find_and_retrieve_requests_are_checked_before_anything_is_queued(
    core: Core, runner: JobRunner
) -> None:
    client = Client(create_app(core, web_services(core, runner)))
    add_node(core, "somewhere", "SOMEWHERE", free_port())
    bad_key = client.post("/api/nodes/somewhere/find", json={"keys": {"PatientNom": "X"}})
    assert bad_key.status_code == 400
    assert "not a DICOM keyword" in bad_key.json()["detail"]
    refused = client.post("/api/nodes/somewhere/find", json={"keys": {"PatientName": "X*"}})
    assert refused.status_code == 502, refused.text
    assert "Connection refused" in refused.json()["detail"]
    unknown = client.post("/api/jobs/get", json={"node": "nowhere", "studies": ["1.2.3"]})
    assert unknown.status_code == 404
    two_studies = client.post(
        "/api/jobs/move",
        json={"node": "somewhere", "studies": ["1.2.3", "1.2.4"], "series": ["1.2.3.1"]},
    )
    assert two_studies.status_code == 422
    assert "one study" in two_studies.json()["detail"]
    hostile = client.post("/api/jobs/get", json={"node": "somewhere", "studies": ["../etc"]})
    assert hostile.status_code == 422
    nothing = client.post("/api/jobs/get", json={"node": "somewhere"})
    assert nothing.status_code == 422
    with core.sessions() as session:
        assert jobs.list_jobs(session) == []


# --- failures and cancellation ---------------------------------------------------------------


def test_an_unreachable_node_is_retried_then_fails_with_the_reason(
    core: Core, runner: JobRunner
) -> None:
    add_node(core, "gone", "NOBODY", free_port())
    job_id = runner.submit("get", {"node": "gone", "studies": ["1.2.3"]})
    runner.run_next()
    assert job_of(core, job_id)["state"] == "queued"
    job = finished(core, runner, job_id)
    assert (job["state"], job["attempts"]) == ("failed", ATTEMPTS)
    assert f"gave up after {ATTEMPTS} attempts" in job["error"]
    assert "cannot connect" in job["error"], job["error"]


def test_a_get_cancelled_mid_way_stops_and_keeps_what_arrived(
    core: Core,
    qr_scp: Listener,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Our own Q/R SCP as the node; the job is cancelled from another thread once the
    first instance is stored here, and the C-CANCEL-RQ stops the node."""
    monkeypatch.setattr(runner_module, "FLUSH_SECONDS", 0)
    files = ct_series(tmp_path / "ct", 30, rows=64, columns=64)
    load(core, files)
    here = open_core(make_settings(tmp_path / "here", f"sqlite:///{tmp_path / 'here.db'}"))
    try:
        add_node(here, "node", "QRSCP", qr_scp.port)
        runner = make_runner(here)
        job_id = runner.submit(
            "get", {"node": "node", "studies": [uid(files[0], "StudyInstanceUID")]}
        )
        first = threading.Event()
        into = retrieved_into

        def slow_store(archive: Any) -> Any:
            store = into(archive)

            def once(message: Any, sender_ae: str) -> tuple[int, str | None]:
                answer = store(message, sender_ae)
                if not first.is_set():
                    first.set()
                    with here.writing() as session:
                        jobs.cancel(session, job_id)
                return answer

            return once

        monkeypatch.setattr(retrieve_job, "retrieved_into", slow_store)
        assert runner.run_next() == job_id
        job = job_of(here, job_id)
        assert job["state"] == "cancelled", job
        assert 1 <= job["done"] < 30, job
        assert len(stored_here(here, uid(files[0], "StudyInstanceUID"))) == job["done"]
    finally:
        here.close()
