"""Print SCU: a print job forwarded to dcmtk's reference Print SCP (dcmprscp) through the job
runner, as POST /api/print/jobs/{id}/print queues it; what dcmprscp stored is the film."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from openpacs import nodes
from openpacs.archive.core import Core
from openpacs.config import JobsSettings, NodeSettings, NodeUse
from openpacs.dimse.print_job import KIND, make_print_handler
from openpacs.jobs import JobRunner
from openpacs.printing import jobs as print_jobs
from openpacs.printing.session import COLOUR_IMAGE_BOX, COLOUR_META, FILM_BOX, FILM_SESSION
from openpacs.web.api.deps import Services
from openpacs.web.app import create_app
from tests.conftest import free_port
from tests.generators import ct_series
from tests.integration.print_peers import (
    DcmPrScp,
    colour_box,
    colour_item,
    dcmtk_print,
    print_scp,
    pynetdicom_print,
    referenced,
)
from tests.web.client import Client

pytestmark = pytest.mark.peer


@pytest.fixture
def runner(core: Core) -> JobRunner:
    """Driven one job at a time by the tests (never started); no wait between attempts."""
    runner = JobRunner(
        core.sessions, core.write_lock, JobsSettings(backoff_seconds=0, max_attempts=2)
    )
    runner.register(KIND, make_print_handler(core))
    return runner


def _add_printer(core: Core, name: str, ae_title: str, port: int, *, printer: bool = True) -> None:
    uses = [NodeUse.printer] if printer else [NodeUse.store_target]
    with core.writing() as session:
        nodes.create(
            session,
            NodeSettings(name=name, ae_title=ae_title, host="127.0.0.1", port=port, uses=uses),
        )


def _printed_job(core: Core, tmp_path: Path) -> int:
    """A job printed to us by dcmtk: a CT on a 14INX17IN film."""
    (ct,) = ct_series(tmp_path / "ct", 1, rows=64, columns=64)
    with print_scp(core) as listener:
        result = dcmtk_print(tmp_path / "dcmtk", listener.port, [ct], "--filmsize", "14INX17IN")
        assert result.returncode == 0, result.output
    with core.sessions() as session:
        found, _ = print_jobs.list_jobs(session, print_jobs.Filters(), limit=10, offset=0)
        (job,) = found
        return job.id


def test_a_job_forwarded_to_dcmprscp_arrives_as_the_film(
    core: Core, runner: JobRunner, tmp_path: Path
) -> None:
    job_id = _printed_job(core, tmp_path)
    client = Client(create_app(core, Services()))
    with DcmPrScp(tmp_path / "printer") as printer:
        _add_printer(core, "film-printer", printer.ae_title, printer.port)
        response = client.post(f"/api/print/jobs/{job_id}/print", json={"node": "film-printer"})
        assert response.status_code == 202, response.text
        queued = response.json()["id"]
        assert runner.run_next() == queued
        hardcopies, stored = printer.hardcopies(), printer.stored_prints()
    detail = client.get(f"/api/print/jobs/{job_id}").json()
    assert detail["state"] == "forwarded", detail["reason"]
    (film,) = detail["films"]
    png = np.asarray(Image.open(core.storage.print_dir / str(job_id) / "film-1.png"))
    (hardcopy,) = hardcopies
    printed = dcmread(hardcopy)
    assert (printed.Rows, printed.Columns) == png.shape
    assert np.array_equal(printed.pixel_array, png)
    (stored_print,) = stored
    box = dcmread(stored_print).FilmBoxContentSequence[0]
    assert (box.FilmSizeID, box.ImageDisplayFormat) == ("14INX17IN", "STANDARD\\1,1")
    assert film["attributes"]["20100050"]["Value"] == ["14INX17IN"]
    queued_job = client.get(f"/api/jobs/{queued}").json()
    assert (queued_job["state"], queued_job["done"]) == ("succeeded", 1)


def test_a_printer_that_is_not_there_is_retried_then_fails(
    core: Core, runner: JobRunner, tmp_path: Path
) -> None:
    job_id = _printed_job(core, tmp_path)
    _add_printer(core, "gone", "NOBODY", free_port())
    _add_printer(core, "store-only", "STORE", free_port(), printer=False)
    client = Client(create_app(core, Services()))
    refused = client.post(f"/api/print/jobs/{job_id}/print", json={"node": "store-only"})
    assert refused.status_code == 422 and "not registered as a printer" in refused.text
    assert client.post(f"/api/print/jobs/{job_id}/print", json={"node": "x"}).status_code == 404
    queued = client.post(f"/api/print/jobs/{job_id}/print", json={"node": "gone"}).json()["id"]
    runner.run_next()
    runner.run_next()
    job = client.get(f"/api/jobs/{queued}").json()
    assert job["state"] == "failed" and "printer 'gone'" in job["error"], job
    assert client.get(f"/api/print/jobs/{job_id}").json()["state"] == "printed"


def test_a_colour_job_forwarded_to_our_own_print_scp_stays_colour(
    core: Core, runner: JobRunner
) -> None:
    """Our SCP takes the colour class, so the SCU sends colour; the copy's film is the
    original film's pixels laid out alone on a film of the same size."""
    with print_scp(core) as listener:
        with pynetdicom_print(listener.port) as assoc:
            session_uid, box_uid = generate_uid(), generate_uid()
            status, _ = assoc.send_n_create(None, FILM_SESSION, session_uid, meta_uid=COLOUR_META)
            assert status.Status == 0
            attrs = Dataset()
            attrs.ImageDisplayFormat, attrs.FilmSizeID = "STANDARD\\1,1", "A4"
            attrs.ReferencedFilmSessionSequence = Sequence([referenced(FILM_SESSION, session_uid)])
            status, box = assoc.send_n_create(attrs, FILM_BOX, box_uid, meta_uid=COLOUR_META)
            assert status.Status == 0 and box is not None
            image_box = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
            item = colour_box(1, colour_item(30, 20, (200, 30, 90), planar=1))
            status, _ = assoc.send_n_set(item, COLOUR_IMAGE_BOX, image_box, meta_uid=COLOUR_META)
            assert status.Status == 0
            status, _ = assoc.send_n_action(None, 1, FILM_BOX, box_uid, meta_uid=COLOUR_META)
            assert status.Status == 0
        _add_printer(core, "self", core.settings.printscp.ae_title, listener.port)
        client = Client(create_app(core, Services()))
        with core.sessions() as session:
            (original,) = print_jobs.list_jobs(session, print_jobs.Filters(), limit=5, offset=0)[0]
            original_id = original.id
        queued = client.post(f"/api/print/jobs/{original_id}/print", json={"node": "self"})
        assert queued.status_code == 202, queued.text
        runner.run_next()
    page = client.get("/api/print/jobs").json()
    copy, first = page["items"]
    assert first["id"] == original_id and first["state"] == "forwarded"
    assert copy["calling_ae"] == core.settings.printscp.ae_title and copy["colour"]
    source = np.asarray(Image.open(core.storage.print_dir / str(original_id) / "film-1.png"))
    copied = np.asarray(Image.open(core.storage.print_dir / str(copy["id"]) / "film-1.png"))
    assert copied.shape == source.shape == (1754, 1240, 3)
    # The whole original film went in as one image and was scaled to fit inside the 2 mm
    # margins: the same picture, slightly smaller; its colours survive.
    assert tuple(copied[copied.shape[0] // 2 + 200, copied.shape[1] // 2 + 100]) == (200, 30, 90)
