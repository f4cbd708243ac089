"""/api/print/jobs over jobs a real print client made (pynetdicom against our Print SCP), on
SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import io
import re
from typing import Any

import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from openpacs.archive.core import Core
from openpacs.printing import jobs
from openpacs.printing.session import FILM_BOX, FILM_SESSION, GREY_IMAGE_BOX, GREY_META
from tests.integration.print_peers import print_scp, pynetdicom_print, referenced
from tests.web.client import Client


def _print_one(assoc: Any, *, label: str) -> None:
    session_uid, box_uid = generate_uid(), generate_uid()
    attrs = Dataset()
    attrs.FilmSessionLabel = label
    status, _ = assoc.send_n_create(attrs, FILM_SESSION, session_uid, meta_uid=GREY_META)
    assert status.Status == 0, status
    box = Dataset()
    box.ImageDisplayFormat = "STANDARD\\1,2"
    box.ReferencedFilmSessionSequence = Sequence([referenced(FILM_SESSION, session_uid)])
    status, created = assoc.send_n_create(box, FILM_BOX, box_uid, meta_uid=GREY_META)
    assert status.Status == 0 and created is not None, status
    item = Dataset()
    item.SamplesPerPixel, item.PhotometricInterpretation = 1, "MONOCHROME2"
    item.Rows, item.Columns = 16, 16
    item.BitsAllocated, item.BitsStored, item.HighBit, item.PixelRepresentation = 8, 8, 7, 0
    item.PixelData = np.full((16, 16), 200, dtype=np.uint8).tobytes()
    image = Dataset()
    image.BasicGrayscaleImageSequence = Sequence([item])
    first = created.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
    status, _ = assoc.send_n_set(image, GREY_IMAGE_BOX, first, meta_uid=GREY_META)
    assert status.Status == 0, status
    status, _ = assoc.send_n_action(None, 1, FILM_BOX, box_uid, meta_uid=GREY_META)
    assert status.Status == 0, status


def _make_jobs(core: Core) -> None:
    with print_scp(core) as listener:
        with pynetdicom_print(listener.port, calling_ae="WARD1") as assoc:
            _print_one(assoc, label="first")
        with pynetdicom_print(listener.port, calling_ae="WARD2") as assoc:
            status, _ = assoc.send_n_create(None, FILM_SESSION, generate_uid(), meta_uid=GREY_META)
            assert status.Status == 0
        with pynetdicom_print(listener.port, calling_ae="WARD1") as assoc:
            _print_one(assoc, label="second")


def test_list_filter_page_get_png_delete(core: Core, client: Client) -> None:
    _make_jobs(core)
    page = client.get("/api/print/jobs").json()
    assert page["total"] == 3
    assert [j["calling_ae"] for j in page["items"]] == ["WARD1", "WARD2", "WARD1"]  # newest first
    printed = client.get("/api/print/jobs", params={"state": "printed"}).json()
    assert printed["total"] == 2
    failed = client.get("/api/print/jobs", params={"calling_ae": "WARD2"}).json()
    assert [j["state"] for j in failed["items"]] == ["failed"]
    assert "before anything was printed" in failed["items"][0]["reason"]
    both = client.get("/api/print/jobs", params=[("state", "printed"), ("state", "failed")])
    assert both.json()["total"] == 3
    second = client.get("/api/print/jobs", params={"limit": 1, "offset": 1}).json()
    assert second["total"] == 3 and second["items"][0]["calling_ae"] == "WARD2"
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    assert client.get("/api/print/jobs", params={"since": later}).json()["total"] == 0
    assert client.get("/api/print/jobs", params={"until": later}).json()["total"] == 3
    assert client.get("/api/print/jobs", params={"state": "lost"}).status_code == 422

    job_id = page["items"][-1]["id"]
    detail = client.get(f"/api/print/jobs/{job_id}").json()
    assert detail["attributes"]["20000050"]["Value"] == ["first"]  # FilmSessionLabel
    (film,) = detail["films"]
    assert film["attributes"]["20100010"]["Value"] == ["STANDARD\\1,2"]
    assert [b["file"] is not None for b in film["image_boxes"]] == [True, False]
    png = client.get(film["png_url"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (film["width"], film["height"])
    small = client.get(film["png_url"], params={"size": 100})
    assert Image.open(io.BytesIO(small.content)).size == (80, 100)  # 8x10 kept
    assert client.get(film["png_url"], params={"size": 5}).status_code == 422
    pdf = client.get(f"/api/print/jobs/{job_id}/films/1.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    # One page of 8 x 10 inches (576 x 720 points).
    (box,) = re.findall(rb"/MediaBox \[ 0 0 ([\d.]+) ([\d.]+) \]", pdf.content)
    assert (round(float(box[0])), round(float(box[1]))) == (576, 720)
    assert client.get(f"/api/print/jobs/{job_id}/films/2.png").status_code == 404
    assert client.get("/api/print/jobs/999").status_code == 404

    folder = core.storage.print_dir / str(job_id)
    assert folder.is_dir()
    assert client.delete(f"/api/print/jobs/{job_id}").status_code == 204
    assert not folder.exists()
    assert client.get(f"/api/print/jobs/{job_id}").status_code == 404
    # The film stays in the archive as a Secondary Capture.
    found = client.get("/dicomweb/instances", params={"SOPInstanceUID": film["sop_instance_uid"]})
    assert found.status_code == 200 and len(found.json()) == 1


def test_a_job_still_receiving_cannot_be_deleted(core: Core, client: Client) -> None:
    with core.writing() as session:
        job = jobs.create(
            session,
            calling_ae="CT1",
            called_ae="PRINTSCP",
            film_session_uid="1.2.3",
            colour=False,
            attributes={},
        )
        job_id = job.id
    response = client.delete(f"/api/print/jobs/{job_id}")
    assert response.status_code == 409 and "still open" in response.json()["detail"]
