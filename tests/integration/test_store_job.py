"""The `store` job end to end: stored instances sent by the job runner to a dcmtk storescp."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.uid import UID, generate_uid

from openpacs import jobs, nodes
from openpacs.archive.core import Core
from openpacs.archive.importer import import_paths
from openpacs.config import JobsSettings, NodeSettings
from openpacs.dimse.store_job import KIND, make_store_handler
from openpacs.jobs import JobContext, JobRunner
from openpacs.jobs import runner as runner_module
from openpacs.server import start_jobs, web_services
from openpacs.web.app import create_app
from tests.conftest import free_port
from tests.generators import ct_series
from tests.integration.dcmtk_peers import StoreScp
from tests.integration.test_sender import dataset_bytes
from tests.web.client import Client

pytestmark = pytest.mark.peer

ATTEMPTS = 2


@pytest.fixture
def runner(core: Core) -> JobRunner:
    """Driven one job at a time by the tests (never started); no wait between attempts."""
    runner = JobRunner(
        core.sessions,
        core.write_lock,
        JobsSettings(backoff_seconds=0, max_attempts=ATTEMPTS),
    )
    runner.register(KIND, make_store_handler(core))
    return runner


def store(core: Core, paths: list[Path]) -> None:
    report = import_paths(core.archive, paths)
    assert report.stored == len(paths), report.rejected


def add_node(core: Core, name: str, ae_title: str, port: int) -> None:
    with core.writing() as session:
        nodes.create(
            session, NodeSettings(name=name, ae_title=ae_title, host="127.0.0.1", port=port)
        )


def job_of(core: Core, job_id: int) -> dict[str, Any]:
    with core.sessions() as session:
        job = jobs.get(session, job_id)
        failures = [(f.item, f.reason) for f in jobs.failures(session, job_id)]
        return {
            "state": job.state,
            "total": job.total,
            "done": job.done,
            "failed": job.failed,
            "attempts": job.attempts,
            "error": job.error,
            "failures": failures,
        }


def test_a_study_and_an_instance_arrive_byte_identical(
    core: Core, runner: JobRunner, tmp_path: Path
) -> None:
    study = ct_series(tmp_path / "a", 5, rows=32, columns=32, seed=1)
    other = ct_series(tmp_path / "b", 3, rows=32, columns=32, seed=2, patient_id="OTHER")
    store(core, [*study, *other])
    study_uid = _read(study[0], "StudyInstanceUID")
    single = _read(other[1], "SOPInstanceUID")
    with StoreScp(tmp_path / "out", "+B") as scp:
        add_node(core, "dest", scp.ae_title, scp.port)
        job_id = runner.submit(
            KIND, {"node": "dest", "studies": [study_uid], "instances": [single]}
        )
        assert runner.run_next() == job_id
        received = scp.received()
    job = job_of(core, job_id)
    assert (job["state"], job["total"], job["done"], job["failed"]) == ("succeeded", 6, 6, 0)
    sent = [*study, other[1]]
    assert set(received) == {_read(path, "SOPInstanceUID") for path in sent}
    for path in sent:
        assert dataset_bytes(received[_read(path, "SOPInstanceUID")]) == dataset_bytes(path)


def test_a_closed_port_is_retried_then_fails_with_the_reason(
    core: Core, runner: JobRunner, tmp_path: Path
) -> None:
    series = ct_series(tmp_path / "a", 2, rows=16, columns=16)
    store(core, series)
    add_node(core, "gone", "NOBODY", free_port())
    job_id = runner.submit(
        KIND, {"node": "gone", "instances": [_read(p, "SOPInstanceUID") for p in series]}
    )

    runner.run_next()
    first = job_of(core, job_id)
    assert (first["state"], first["attempts"]) == ("queued", 1)
    assert first["error"].startswith("attempt 1 failed, retrying")

    runner.run_next()
    last = job_of(core, job_id)
    assert (last["state"], last["attempts"]) == ("failed", ATTEMPTS)
    assert last["error"].startswith(f"gave up after {ATTEMPTS} attempts: Transient: node 'gone'")
    assert "refused" in last["error"].lower(), last["error"]
    assert runner.run_next() is None


def test_a_cancelled_job_stops_between_instances(
    core: Core, runner: JobRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every check reads the cancel flag from the index, so the stop point is exact.
    monkeypatch.setattr(runner_module, "FLUSH_SECONDS", 0)
    series = ct_series(tmp_path / "a", 6, rows=16, columns=16)
    store(core, series)
    handler = make_store_handler(core)

    def cancel_after_two(parameters: dict[str, Any], context: JobContext) -> None:
        add_done = context.add_done

        def counted(count: int = 1) -> None:
            add_done(count)
            if context._done == 2:  # the way a client would: POST /api/jobs/{id}/cancel
                with core.writing() as session:
                    jobs.cancel(session, context.job_id)

        context.add_done = counted  # type: ignore[method-assign]
        handler(parameters, context)

    cancelling = JobRunner(core.sessions, core.write_lock, JobsSettings(backoff_seconds=0))
    cancelling.register(KIND, cancel_after_two)
    with StoreScp(tmp_path / "out") as scp:
        add_node(core, "dest", scp.ae_title, scp.port)
        study_uid = _read(series[0], "StudyInstanceUID")
        job_id = cancelling.submit(KIND, {"node": "dest", "studies": [study_uid]})
        cancelling.run_next()
        received = scp.received()
    job = job_of(core, job_id)
    assert (job["state"], job["total"], job["done"], job["failed"]) == ("cancelled", 6, 2, 0)
    assert len(received) == 2


def test_an_instance_the_node_refuses_is_a_failure_of_its_own(
    core: Core, runner: JobRunner, tmp_path: Path
) -> None:
    series = ct_series(tmp_path / "a", 3, rows=16, columns=16)
    odd = tmp_path / "odd.dcm"
    ds = dcmread(series[0])
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID("1.2.3.4.5.6.7")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(odd, enforce_file_format=True)
    store(core, [*series, odd])
    with StoreScp(tmp_path / "out") as scp:  # storescp knows no SOP class 1.2.3.4.5.6.7
        add_node(core, "dest", scp.ae_title, scp.port)
        job_id = runner.submit(KIND, {"node": "dest", "series": [_read(odd, "SeriesInstanceUID")]})
        runner.run_next()
        received = scp.received()
    job = job_of(core, job_id)
    assert (job["state"], job["done"], job["failed"]) == ("partly_failed", 3, 1)
    assert job["error"] == "1 of 4 items failed"
    assert job["failures"] == [
        (str(ds.SOPInstanceUID), "peer accepted no context for 1.2.3.4.5.6.7")
    ]
    assert len(received) == 3

    # A retry resumes from the checkpoint: only the refused instance is offered again.
    with StoreScp(tmp_path / "again") as scp:
        with core.writing() as session:
            nodes.update(
                session,
                "dest",
                NodeSettings(name="dest", ae_title=scp.ae_title, host="127.0.0.1", port=scp.port),
            )
            jobs.retry(session, job_id)
        runner.run_next()
        assert scp.received() == {}
    job = job_of(core, job_id)
    assert (job["state"], job["total"], job["done"], job["failed"]) == ("partly_failed", 4, 3, 1)


def _read(path: Path, keyword: str) -> str:
    return str(dcmread(path, stop_before_pixels=True)[keyword].value)


def test_posted_to_a_serving_runner_it_runs(core: Core, tmp_path: Path) -> None:
    """The wiring of `openpacs serve`: start_jobs registers the kind, the route queues and wakes."""
    series = ct_series(tmp_path / "a", 2, rows=16, columns=16)
    store(core, series)
    running = start_jobs(core)
    try:
        client = Client(create_app(core, web_services(core, running)))
        with StoreScp(tmp_path / "out") as scp:
            add_node(core, "dest", scp.ae_title, scp.port)
            body = {"node": "dest", "series": [_read(series[0], "SeriesInstanceUID")]}
            response = client.post("/api/jobs/store", json=body)
            assert response.status_code == 202, response.text
            job_id = response.json()["id"]
            deadline = time.monotonic() + 60  # a bound for a hung test, not a timing assertion
            while job_of(core, job_id)["state"] in {"queued", "running"}:
                assert time.monotonic() < deadline, job_of(core, job_id)
                time.sleep(0.05)
            received = scp.received()
            # Each instance's outcome as a client reads it: what the node stored.
            detail = client.get(f"/api/jobs/{job_id}").json()
    finally:
        running.stop()
    assert job_of(core, job_id)["state"] == "succeeded"
    assert len(received) == 2
    assert sorted(detail["sent"]) == sorted(received) and detail["failures"] == []
