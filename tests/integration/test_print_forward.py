"""Print SCU: a print job forwarded to dcmtk's reference Print SCP (dcmprscp) through the job
runner, as POST /api/print/jobs/{id}/print queues it; what dcmprscp stored is the film."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from openpacs import nodes
from openpacs.archive.core import Core
from openpacs.config import JobsSettings, NodeSettings, NodeUse
from openpacs.dimse.engine import (
    AFFECTED_SOP_CLASS,
    AFFECTED_SOP_INSTANCE,
    COMMAND_FIELD,
    DATASET_PRESENT,
    DATASET_TYPE,
    MESSAGE_ID,
    Association,
    Handler,
    Message,
    encode_command,
    ui,
    us,
)
from openpacs.dimse.identifier import encode_identifier
from openpacs.dimse.print_job import KIND, make_print_handler
from openpacs.dimse.print_scp import N_ACTION_RQ, N_CREATE_RQ
from openpacs.dimse.print_scu import EVENT_TYPE_ID, N_EVENT_REPORT_RQ, N_EVENT_REPORT_RSP, PRINT_JOB
from openpacs.jobs import JobRunner
from openpacs.printing import jobs as print_jobs
from openpacs.printing.session import (
    COLOUR_IMAGE_BOX,
    COLOUR_META,
    FILM_BOX,
    FILM_SESSION,
    PRINTER,
    PRINTER_INSTANCE,
)
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


def _event_request(message_id: int, sop_class: str, uid: str, event: int) -> bytes:
    return encode_command(
        {
            COMMAND_FIELD: us(N_EVENT_REPORT_RQ),
            MESSAGE_ID: us(message_id),
            AFFECTED_SOP_CLASS: ui(sop_class),
            AFFECTED_SOP_INSTANCE: ui(uid),
            DATASET_TYPE: us(DATASET_PRESENT),
            EVENT_TYPE_ID: us(event),
        }
    )


def test_event_reports_from_the_printer_are_answered_and_told(
    core: Core, runner: JobRunner, tmp_path: Path
) -> None:
    """A printer tells its status and the job's progress mid-session (N-EVENT-REPORT, as film
    printers do): each gets its response, the print goes on, a warning reaches the job."""
    job_id = _printed_job(core, tmp_path)
    answers: list[Message] = []

    def reporting(handler: Handler, events: list[tuple[str, int, str, str]]) -> Handler:
        def handle(association: Association, message: Message) -> None:
            if association.calling_ae == core.settings.printscp.ae_title:  # our SCU, not dcmtk
                syntax = association.contexts[message.context_id].transfer_syntax
                for sop_class, event, keyword, value in events:
                    info = Dataset()
                    setattr(info, keyword, value)
                    command = _event_request(
                        association.next_message_id(), sop_class, PRINTER_INSTANCE, event
                    )
                    association.send(message.context_id, command, encode_identifier(info, syntax))
                    answers.append(association.next_response())
            handler(association, message)

        return handle

    with print_scp(core) as listener:
        handlers = cast(dict[int, Handler], listener.handlers)
        handlers[N_CREATE_RQ] = reporting(
            handlers[N_CREATE_RQ], [(PRINTER, 2, "PrinterStatusInfo", "SUPPLY LOW")]
        )
        handlers[N_ACTION_RQ] = reporting(
            handlers[N_ACTION_RQ],
            [(PRINT_JOB, 2, "ExecutionStatusInfo", "NORMAL"), (PRINTER, 1, "PrinterName", "X")],
        )
        _add_printer(core, "self", core.settings.printscp.ae_title, listener.port)
        client = Client(create_app(core, Services()))
        queued = client.post(f"/api/print/jobs/{job_id}/print", json={"node": "self"})
        assert queued.status_code == 202, queued.text
        runner.run_next()
    detail = client.get(f"/api/print/jobs/{job_id}").json()
    assert detail["state"] == "forwarded", detail["reason"]
    # Film session and film box N-CREATE: one warning each; N-ACTION: two events.
    assert len(answers) == 4
    assert all(a.command_field == N_EVENT_REPORT_RSP and a.status == 0 for a in answers)
    assert [a.ushort(EVENT_TYPE_ID) for a in answers] == [2, 2, 2, 1]
    assert detail["reason"] == "; ".join(["the printer reported Printer WARNING (SUPPLY LOW)"] * 2)


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


def _jobs_newest_first(client: Client) -> list[dict[str, Any]]:
    return client.get("/api/print/jobs").json()["items"]  # type: ignore[no-any-return]


def test_the_original_layout_reaches_dcmprscp_with_the_images_as_received(
    core: Core, runner: JobRunner, tmp_path: Path
) -> None:
    """layout=original: dcmprscp gets the modality's film box (2 images on STANDARD\\2,1,
    14INX17IN, REPLICATE) and each 12-bit image box as dcmtk sent it to us."""
    cts = ct_series(tmp_path / "ct", 2, rows=64, columns=64)
    with print_scp(core) as listener:
        printed = dcmtk_print(
            tmp_path / "dcmtk", listener.port, cts, "--layout", "2", "1",
            "--filmsize", "14INX17IN", "--magnification", "REPLICATE",
        )  # fmt: skip
        assert printed.returncode == 0, printed.output
    client = Client(create_app(core, Services()))
    (job,) = _jobs_newest_first(client)
    with DcmPrScp(tmp_path / "printer") as printer:
        _add_printer(core, "film-printer", printer.ae_title, printer.port)
        response = client.post(
            f"/api/print/jobs/{job['id']}/print",
            json={"node": "film-printer", "layout": "original"},
        )
        assert response.status_code == 202, response.text
        runner.run_next()
        hardcopies, stored = printer.hardcopies(), printer.stored_prints()
    detail = client.get(f"/api/print/jobs/{job['id']}").json()
    assert detail["state"] == "forwarded", detail["reason"]
    (stored_print,) = stored
    box = dcmread(stored_print).FilmBoxContentSequence[0]
    assert (box.ImageDisplayFormat, box.FilmSizeID) == ("STANDARD\\2,1", "14INX17IN")
    assert box.MagnificationType == "REPLICATE"
    (film,) = detail["films"]
    folder = core.storage.print_dir / str(job["id"])
    assert len(hardcopies) == 2
    for kept, hardcopy in zip(film["image_boxes"], hardcopies, strict=True):
        received = dcmread(folder / kept["file"]).BasicGrayscaleImageSequence[0]
        arrived = dcmread(hardcopy)
        assert (arrived.BitsStored, received.BitsStored) == (12, 12)
        sent = np.frombuffer(received.PixelData, "<u2").reshape(received.Rows, received.Columns)
        assert np.array_equal(arrived.pixel_array, sent)


def test_the_original_layout_forwarded_to_ourselves_makes_the_same_film(
    core: Core, runner: JobRunner
) -> None:
    """A colour 2x2 film of three images, forwarded to our own SCP in its original layout:
    the copy is composed from the same boxes at the same size, so it is the same film."""
    with print_scp(core) as listener:
        with pynetdicom_print(listener.port) as assoc:
            session_uid, box_uid = generate_uid(), generate_uid()
            status, _ = assoc.send_n_create(None, FILM_SESSION, session_uid, meta_uid=COLOUR_META)
            attrs = Dataset()
            attrs.ImageDisplayFormat, attrs.FilmSizeID = "STANDARD\\2,2", "8INX10IN"
            attrs.BorderDensity = "WHITE"
            attrs.ReferencedFilmSessionSequence = Sequence([referenced(FILM_SESSION, session_uid)])
            status, box = assoc.send_n_create(attrs, FILM_BOX, box_uid, meta_uid=COLOUR_META)
            assert status.Status == 0 and box is not None
            colours = [(200, 30, 90), (20, 160, 40), (10, 10, 220)]
            for position, rgb in enumerate(colours, start=1):
                uid = box.ReferencedImageBoxSequence[position - 1].ReferencedSOPInstanceUID
                item = colour_box(position, colour_item(40, 30, rgb, planar=1))
                status, _ = assoc.send_n_set(item, COLOUR_IMAGE_BOX, uid, meta_uid=COLOUR_META)
                assert status.Status == 0
            status, _ = assoc.send_n_action(None, 1, FILM_BOX, box_uid, meta_uid=COLOUR_META)
            assert status.Status == 0
        _add_printer(core, "self", core.settings.printscp.ae_title, listener.port)
        client = Client(create_app(core, Services()))
        (original,) = _jobs_newest_first(client)
        queued = client.post(
            f"/api/print/jobs/{original['id']}/print", json={"node": "self", "layout": "original"}
        )
        assert queued.status_code == 202, queued.text
        runner.run_next()
    copy, first = _jobs_newest_first(client)
    assert first["state"] == "forwarded" and copy["colour"]
    (film,) = client.get(f"/api/print/jobs/{copy['id']}").json()["films"]
    assert film["attributes"]["20100010"]["Value"] == ["STANDARD\\2,2"]
    source = np.asarray(Image.open(core.storage.print_dir / str(original["id"]) / "film-1.png"))
    copied = np.asarray(Image.open(core.storage.print_dir / str(copy["id"]) / "film-1.png"))
    assert np.array_equal(copied, source)


def test_annotations_go_on_in_the_original_layout(
    core: Core, runner: JobRunner, tmp_path: Path
) -> None:
    (ct,) = ct_series(tmp_path / "ct", 1, rows=64, columns=64)
    with print_scp(core) as listener:
        printed = dcmtk_print(
            tmp_path / "dcmtk", listener.port, [ct], "-a", "CHEST FILM 1", "--print-no-date",
            "--print-no-name", "--print-no-lighting", annotations=True,
        )  # fmt: skip
        assert printed.returncode == 0, printed.output
        _add_printer(core, "self", core.settings.printscp.ae_title, listener.port)
        client = Client(create_app(core, Services()))
        (original,) = _jobs_newest_first(client)
        client.post(
            f"/api/print/jobs/{original['id']}/print", json={"node": "self", "layout": "original"}
        )
        runner.run_next()
    copy, first = _jobs_newest_first(client)
    assert first["state"] == "forwarded", first["reason"]
    (film,) = client.get(f"/api/print/jobs/{copy['id']}").json()["films"]
    assert film["annotations"] == [{"position": 2, "text": "CHEST FILM 1"}]
