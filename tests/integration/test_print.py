"""The Print SCP against real print clients: dcmtk's chain (dcmpsprt + dcmprscu, Basic Grayscale
Print Management) and pynetdicom (colour, several film boxes, bad requests)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.pixels.utils import pixel_array
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from openpacs.archive.core import Core
from openpacs.archive.models import Instance, PrintFilm, PrintJob
from openpacs.dicom import json as dicom_json
from openpacs.dicom import render
from openpacs.printing import compose, jobs
from openpacs.printing.session import (
    ANNOTATION_BOX,
    COLOUR_IMAGE_BOX,
    COLOUR_META,
    FILM_BOX,
    FILM_SESSION,
    GREY_IMAGE_BOX,
    GREY_META,
    PRESENTATION_LUT,
    PRINTER,
    PRINTER_INSTANCE,
)
from tests.conftest import need, need_chinese_font, sample
from tests.generators import ct_series
from tests.integration.print_peers import (
    colour_box,
    colour_item,
    dcmtk_print,
    print_scp,
    pynetdicom_print,
    referenced,
)


def _jobs(core: Core) -> list[PrintJob]:
    with core.sessions() as session:
        found, _ = jobs.list_jobs(session, jobs.Filters(), limit=100, offset=0)
        for job in found:
            session.expunge(job)
        return found


def _films(core: Core, job_id: int) -> list[PrintFilm]:
    with core.sessions() as session:
        found = jobs.films_of(session, job_id)
        for film in found:
            session.expunge(film)
        return found


def _film_png(core: Core, job: PrintJob, number: int) -> np.ndarray:
    path = core.storage.print_dir / job.folder / f"film-{number}.png"
    return np.asarray(Image.open(path))


def _stored(core: Core, sop_uid: str) -> Dataset:
    with core.sessions() as session:
        row = session.query(Instance).filter_by(sop_instance_uid=sop_uid).one()
        relpath = row.file_path
    return dcmread(core.storage.path(relpath))


def _grey_image(path: Path, rows: int = 64, columns: int = 96) -> Path:
    """An 8-bit MONOCHROME2 Secondary Capture: a horizontal ramp."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName, ds.Modality = "P8", "EIGHT^BIT", "OT"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ramp = np.tile(np.linspace(0, 255, columns).astype(np.uint8), (rows, 1))
    ds.PixelData = ramp.tobytes()
    ds.file_meta = Dataset()  # type: ignore[assignment]
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)
    return path


def _region(
    film: np.ndarray, display_format: str, position: int, size: tuple[int, int]
) -> np.ndarray:
    """Where compose centres an image of `size` (rows, columns) in box `position`."""
    height, width = film.shape[:2]
    box = compose.layout(display_format, width, height, 150)[position - 1]
    rows, columns = size
    top, left = box.y + (box.height - rows) // 2, box.x + (box.width - columns) // 2
    return film[top : top + rows, left : left + columns]


# ----------------------------------------------------------------------------- dcmtk


def test_dcmtk_prints_a_12_bit_ct_windowed_as_its_source(core: Core, tmp_path: Path) -> None:
    (ct,) = ct_series(tmp_path / "ct", 1, rows=256, columns=256)
    with print_scp(core) as listener:
        result = dcmtk_print(
            tmp_path / "dcmtk", listener.port, [ct], "--magnification", "REPLICATE"
        )
    assert result.returncode == 0, result.output
    (job,) = _jobs(core)
    assert (job.state, job.calling_ae, job.film_count) == ("printed", "MODALITY", 1)
    (film,) = _films(core, job.id)
    assert film.attributes["20100010"]["Value"] == ["STANDARD\\1,1"]
    # The image box as dcmprscu sent it: 12-bit P-values, archived beside the film.
    box_file = core.storage.print_dir / job.folder / film.image_boxes[0]["file"]
    item = dcmread(box_file).BasicGrayscaleImageSequence[0]
    assert (item.BitsStored, item.Rows, item.Columns) == (12, 256, 256)
    # The film: REPLICATE by a whole factor, so every 4th pixel is the image again; it must
    # match the source rendered with its own window (W400/L40), never raw bytes cut to 8 bits.
    png = _film_png(core, job, 1)
    assert png.shape == (1500, 1200)
    source = dcmread(ct)
    expected = render.to_display(source, source.pixel_array)
    scale = 4  # floor(min(1176/256, 1476/256))
    placed = _region(png, "STANDARD\\1,1", 1, (256 * scale, 256 * scale))
    sampled = placed[::scale, ::scale].astype(int)
    assert np.abs(sampled - expected.astype(int)).max() <= 2
    # The same pixels went into the archive as a Secondary Capture, indexed.
    stored = _stored(core, film.sop_instance_uid)
    assert stored.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert np.array_equal(pixel_array(stored), png)
    assert stored.PatientID == f"PRINT-{job.id}"  # dcmprscu sends pixels only
    assert stored.StudyInstanceUID == film.study_instance_uid
    # dicom3tools finds nothing wrong with the Secondary Capture IOD.
    with core.sessions() as session:
        relpath = session.query(Instance).filter_by(sop_instance_uid=film.sop_instance_uid).one()
        path = core.storage.path(relpath.file_path)
    checked = subprocess.run(
        [need("dciodvfy"), str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert "Error" not in checked.stdout + checked.stderr, checked.stdout + checked.stderr


def test_dcmtk_prints_an_8_bit_image_on_a_two_up_film(core: Core, tmp_path: Path) -> None:
    image = _grey_image(tmp_path / "ramp.dcm")
    with print_scp(core) as listener:
        result = dcmtk_print(
            tmp_path / "dcmtk",
            listener.port,
            [image],
            "--layout",
            "2",
            "1",
            "--filmsize",
            "14INX17IN",
            "--border",
            "WHITE",
            "--empty-image",
            "BLACK",
            "--magnification",
            "REPLICATE",
            twelve_bit=False,
        )
    assert result.returncode == 0, result.output
    (job,) = _jobs(core)
    (film,) = _films(core, job.id)
    assert (film.width, film.height) == (2100, 2550)  # 14x17 in at 150 dpi
    png = _film_png(core, job, 1)
    assert png[0, 0] == 255  # white border
    boxes = compose.layout("STANDARD\\2,1", 2100, 2550, 150)
    empty = boxes[1]
    assert png[empty.y + 5, empty.x + 5] == 0  # the second box has no image: black
    scale = int(min(boxes[0].width / 96, boxes[0].height / 64))
    placed = _region(png, "STANDARD\\2,1", 1, (64 * scale, 96 * scale))
    ramp = np.linspace(0, 255, 96).astype(np.uint8)
    assert np.abs(placed[0, ::scale].astype(int) - ramp).max() <= 1
    assert film.image_boxes[1]["file"] is None


def test_dcmtk_film_session_attributes_are_kept(core: Core, tmp_path: Path) -> None:
    mr = sample("MR_small.dcm")
    with print_scp(core) as listener:
        result = dcmtk_print(
            tmp_path / "dcmtk",
            listener.port,
            [mr, mr, mr],
            "--layout",
            "2",
            "2",
            "--landscape",
            "--trim",
            session=["--label", "chest films", "--copies", "2"],
        )
    assert result.returncode == 0, result.output
    (job,) = _jobs(core)
    session = dicom_json.from_json(job.attributes)
    assert (session.FilmSessionLabel, session.NumberOfCopies) == ("chest films", 2)
    (film,) = _films(core, job.id)
    box = dicom_json.from_json(film.attributes)
    assert (box.FilmOrientation, box.Trim, box.ImageDisplayFormat) == (
        "LANDSCAPE",
        "YES",
        "STANDARD\\2,2",
    )
    assert (film.width, film.height) == (1500, 1200)
    assert [b["file"] is not None for b in film.image_boxes] == [True, True, True, False]


# ----------------------------------------------------------------------------- pynetdicom


def test_pynetdicom_colour_session_with_two_2x2_films(core: Core) -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    with print_scp(core) as listener, pynetdicom_print(listener.port) as assoc:
        status, printer = assoc.send_n_get(
            [Tag(0x21100010), Tag(0x21100030)], PRINTER, PRINTER_INSTANCE, meta_uid=COLOUR_META
        )
        assert status.Status == 0 and printer is not None
        assert printer.PrinterStatus == "NORMAL"
        assert printer.PrinterName == "openpacs" and "Manufacturer" not in printer
        session_attrs = Dataset()
        session_attrs.NumberOfCopies = 1
        session_attrs.FilmSessionLabel = "colour test"
        session_uid = generate_uid()
        status, _ = assoc.send_n_create(
            session_attrs, FILM_SESSION, session_uid, meta_uid=COLOUR_META
        )
        assert status.Status == 0, status
        film_box_uids = []
        for film_number in range(2):
            attrs = Dataset()
            attrs.ImageDisplayFormat = "STANDARD\\2,2"
            attrs.FilmSizeID = "A4"
            attrs.BorderDensity = "WHITE"
            attrs.ReferencedFilmSessionSequence = Sequence([referenced(FILM_SESSION, session_uid)])
            film_box_uids.append(generate_uid())
            status, box = assoc.send_n_create(
                attrs, FILM_BOX, film_box_uids[-1], meta_uid=COLOUR_META
            )
            assert status.Status == 0 and box is not None, status
            refs = box.ReferencedImageBoxSequence
            assert [r.ReferencedSOPClassUID for r in refs] == [COLOUR_IMAGE_BOX] * 4
            for position, ref in enumerate(refs, start=1):
                colour = colours[(position - 1 + film_number) % 4]
                item = colour_item(40, 60, colour, planar=position % 2)
                status, answer = assoc.send_n_set(
                    colour_box(position, item),
                    COLOUR_IMAGE_BOX,
                    ref.ReferencedSOPInstanceUID,
                    meta_uid=COLOUR_META,
                )
                assert status.Status == 0 and answer is not None, status
                assert answer.ImageBoxPosition == position
        status, _ = assoc.send_n_action(None, 1, FILM_SESSION, session_uid, meta_uid=COLOUR_META)
        assert status.Status == 0, status
        for uid in film_box_uids:
            assert assoc.send_n_delete(FILM_BOX, uid, meta_uid=COLOUR_META).Status == 0
        assert assoc.send_n_delete(FILM_SESSION, session_uid, meta_uid=COLOUR_META).Status == 0
    (job,) = _jobs(core)
    assert (job.state, job.colour, job.film_count) == ("printed", True, 2)
    films = _films(core, job.id)
    assert [f.number for f in films] == [1, 2]
    # The client's SOP Instance UIDs are the ones kept.
    assert job.film_session_uid == session_uid
    assert [f.film_box_uid for f in films] == film_box_uids
    for film in films:
        png = _film_png(core, job, film.number)
        assert png.shape == (1754, 1240, 3)  # A4 at 150 dpi
        assert tuple(png[0, 0]) == (255, 255, 255)
        boxes = compose.layout("STANDARD\\2,2", 1240, 1754, 150)
        for placed in boxes:
            # Bottom-right quarter of each image is its colour (top-left is white).
            centre = png[placed.y + placed.height // 2 + 40, placed.x + placed.width // 2 + 40]
            expected = colours[(placed.position - 1 + film.number - 1) % 4]
            assert tuple(int(v) for v in centre) == expected, (film.number, placed.position)
        stored = _stored(core, film.sop_instance_uid)
        assert stored.PhotometricInterpretation == "RGB"
        assert np.array_equal(pixel_array(stored), png)
    assert films[0].series_instance_uid == films[1].series_instance_uid


def _grey_session(assoc: Any, display_format: str = "STANDARD\\1,1") -> tuple[str, Dataset]:
    session_uid = generate_uid()
    status, _ = assoc.send_n_create(None, FILM_SESSION, session_uid, meta_uid=GREY_META)
    assert status.Status == 0
    attrs = Dataset()
    attrs.ImageDisplayFormat = display_format
    attrs.ReferencedFilmSessionSequence = Sequence([referenced(FILM_SESSION, session_uid)])
    status, box = assoc.send_n_create(attrs, FILM_BOX, generate_uid(), meta_uid=GREY_META)
    assert status.Status == 0 and box is not None, status
    return session_uid, box


def _grey_box(rows: int = 32, columns: int = 32, bits: int = 12) -> Dataset:
    item = Dataset()
    item.SamplesPerPixel, item.PhotometricInterpretation = 1, "MONOCHROME2"
    item.Rows, item.Columns = rows, columns
    item.BitsAllocated = 8 if bits == 8 else 16
    item.BitsStored, item.HighBit, item.PixelRepresentation = bits, bits - 1, 0
    dtype = np.uint8 if bits == 8 else np.uint16
    item.PixelData = np.full((rows, columns), (1 << bits) - 1, dtype=dtype).tobytes()
    ds = Dataset()
    ds.ImageBoxPosition = 1
    ds.BasicGrayscaleImageSequence = Sequence([item])
    return ds


def test_bad_requests_get_their_status_and_the_session_stays_usable(core: Core) -> None:
    with print_scp(core) as listener, pynetdicom_print(listener.port) as assoc:
        # N-SET of an image box before any film box exists: no such object instance.
        status, _ = assoc.send_n_set(
            _grey_box(), GREY_IMAGE_BOX, generate_uid(), meta_uid=GREY_META
        )
        assert status.Status == 0x0112 and "no image box" in status.ErrorComment
        # A film box before a film session: no such object instance either.
        attrs = Dataset()
        attrs.ImageDisplayFormat = "STANDARD\\1,1"
        attrs.ReferencedFilmSessionSequence = Sequence([referenced(FILM_SESSION, "1.2.3")])
        status, _ = assoc.send_n_create(attrs, FILM_BOX, None, meta_uid=GREY_META)
        assert status.Status == 0x0112
        session_uid, box = _grey_session(assoc)
        # Malformed display formats: invalid attribute value, naming the attribute.
        for bad in ("STANDARD\\0,2", "STANDARD\\2", "SLIDE", "ROW\\a,b", "STANDARD\\99,99"):
            attrs.ImageDisplayFormat = bad
            attrs.ReferencedFilmSessionSequence[0].ReferencedSOPInstanceUID = session_uid
            status, _ = assoc.send_n_create(attrs, FILM_BOX, None, meta_uid=GREY_META)
            assert status.Status in (0x0106, 0x0213), (bad, status)
            assert status.ErrorComment.startswith("ImageDisplayFormat"), status
        attrs.ImageDisplayFormat, attrs.FilmSizeID = "STANDARD\\1,1", "5INX5IN"
        status, _ = assoc.send_n_create(attrs, FILM_BOX, None, meta_uid=GREY_META)
        assert status.Status == 0x0106 and "FilmSizeID" in status.ErrorComment
        # Unknown SOP instance of a known class; a colour image into a grey box.
        image_box = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
        status, _ = assoc.send_n_action(None, 1, FILM_BOX, generate_uid(), meta_uid=GREY_META)
        assert status.Status == 0x0112
        colour = colour_box(1, colour_item(8, 8, (1, 2, 3), 1))
        status, _ = assoc.send_n_set(colour, GREY_IMAGE_BOX, image_box, meta_uid=GREY_META)
        assert status.Status == 0x0106
        # Pixels that do not add up: 12 bits stored in 8 allocated.
        wrong = _grey_box()
        wrong.BasicGrayscaleImageSequence[0].BitsAllocated = 8
        status, _ = assoc.send_n_set(wrong, GREY_IMAGE_BOX, image_box, meta_uid=GREY_META)
        assert status.Status == 0x0106 and "BitsStored" in status.ErrorComment
        # N-ACTION on an image box: not an operation it has. Unknown action type: 0x0123.
        status, _ = assoc.send_n_action(None, 1, GREY_IMAGE_BOX, image_box, meta_uid=GREY_META)
        assert status.Status == 0x0211
        # Still usable: a good image and a print.
        status, _ = assoc.send_n_set(_grey_box(), GREY_IMAGE_BOX, image_box, meta_uid=GREY_META)
        assert status.Status == 0, status
        status, _ = assoc.send_n_action(None, 1, FILM_SESSION, session_uid, meta_uid=GREY_META)
        assert status.Status == 0, status
    (job,) = _jobs(core)
    assert (job.state, job.film_count) == ("printed", 1)
    png = _film_png(core, job, 1)
    assert png.max() == 255  # 4095 of 12 bits is white, not 4095 & 0xFF


def test_oversized_image_box_is_refused_and_the_session_goes_on(core: Core) -> None:
    core.settings.printscp.max_image_box_bytes = 1024 * 1024
    with print_scp(core) as listener, pynetdicom_print(listener.port) as assoc:
        session_uid, box = _grey_session(assoc)
        image_box = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
        big = _grey_box(1024, 1024)  # 2 MiB of pixels
        status, _ = assoc.send_n_set(big, GREY_IMAGE_BOX, image_box, meta_uid=GREY_META)
        assert status.Status == 0x0213 and "larger than" in status.ErrorComment
        status, _ = assoc.send_n_set(_grey_box(), GREY_IMAGE_BOX, image_box, meta_uid=GREY_META)
        assert status.Status == 0
        status, _ = assoc.send_n_action(None, 1, FILM_SESSION, session_uid, meta_uid=GREY_META)
        assert status.Status == 0


def test_an_association_that_ends_unprinted_fails_its_job(core: Core) -> None:
    with print_scp(core) as listener:
        with pynetdicom_print(listener.port) as assoc:
            _grey_session(assoc)
        with pynetdicom_print(listener.port) as assoc:
            status, _ = assoc.send_n_get([], PRINTER, PRINTER_INSTANCE, meta_uid=GREY_META)
            assert status.Status == 0
    (job,) = _jobs(core)
    assert job.state == "failed" and "before anything was printed" in (job.reason or "")


def test_presentation_lut_inverse_is_applied(core: Core) -> None:
    with print_scp(core) as listener, pynetdicom_print(listener.port) as assoc:
        lut = Dataset()
        lut.PresentationLUTShape = "INVERSE"
        lut_uid, session_uid = generate_uid(), generate_uid()
        status, _ = assoc.send_n_create(lut, PRESENTATION_LUT, lut_uid)
        assert status.Status == 0, status
        status, _ = assoc.send_n_create(None, FILM_SESSION, session_uid, meta_uid=GREY_META)
        attrs = Dataset()
        attrs.ImageDisplayFormat = "STANDARD\\1,1"
        attrs.ReferencedFilmSessionSequence = Sequence([referenced(FILM_SESSION, session_uid)])
        attrs.ReferencedPresentationLUTSequence = Sequence([referenced(PRESENTATION_LUT, lut_uid)])
        status, box = assoc.send_n_create(attrs, FILM_BOX, generate_uid(), meta_uid=GREY_META)
        assert status.Status == 0 and box is not None, status
        image_box = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
        status, _ = assoc.send_n_set(
            _grey_box(bits=8), GREY_IMAGE_BOX, image_box, meta_uid=GREY_META
        )
        assert status.Status == 0, status
        status, _ = assoc.send_n_action(None, 1, FILM_SESSION, session_uid, meta_uid=GREY_META)
        assert status.Status == 0
    (job,) = _jobs(core)
    png = _film_png(core, job, 1)
    region = _region(png, "STANDARD\\1,1", 1, (8, 8))
    assert region.max() == 0  # white (255) inverted


def test_film_session_n_set_reaches_the_job(core: Core) -> None:
    with print_scp(core) as listener, pynetdicom_print(listener.port) as assoc:
        session_uid, _ = _grey_session(assoc)
        change = Dataset()
        change.FilmSessionLabel = "renamed"
        change.NumberOfCopies = 3
        status, _ = assoc.send_n_set(change, FILM_SESSION, session_uid, meta_uid=GREY_META)
        assert status.Status == 0, status
        change.NumberOfCopies = 500
        status, _ = assoc.send_n_set(change, FILM_SESSION, session_uid, meta_uid=GREY_META)
        assert status.Status == 0x0106 and "NumberOfCopies" in status.ErrorComment
        # A film box attribute fixed at creation cannot be changed; a settable one can.
        attrs, box_uid = Dataset(), generate_uid()
        attrs.ImageDisplayFormat = "STANDARD\\1,1"
        attrs.ReferencedFilmSessionSequence = Sequence([referenced(FILM_SESSION, session_uid)])
        status, _ = assoc.send_n_create(attrs, FILM_BOX, box_uid, meta_uid=GREY_META)
        assert status.Status == 0, status
        box_change = Dataset()
        box_change.ImageDisplayFormat = "STANDARD\\2,2"
        status, _ = assoc.send_n_set(box_change, FILM_BOX, box_uid, meta_uid=GREY_META)
        assert status.Status == 0x0105 and "ImageDisplayFormat" in status.ErrorComment
        box_change = Dataset()
        box_change.BorderDensity = "WHITE"
        status, _ = assoc.send_n_set(box_change, FILM_BOX, box_uid, meta_uid=GREY_META)
        assert status.Status == 0, status
        # Deleting twice: the second finds nothing.
        assert assoc.send_n_delete(FILM_BOX, box_uid, meta_uid=GREY_META).Status == 0
        assert assoc.send_n_delete(FILM_BOX, box_uid, meta_uid=GREY_META).Status == 0x0112
    (job,) = _jobs(core)
    session = dicom_json.from_json(job.attributes)
    assert (session.FilmSessionLabel, session.NumberOfCopies) == ("renamed", 3)


def test_jobs_left_open_by_a_stopped_server_fail_at_start(core: Core) -> None:
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
    with core.writing() as session:
        assert jobs.interrupted(session) == 1
    with core.sessions() as session:
        again = jobs.get(session, job_id)
        assert again.state == "failed" and "server stopped" in (again.reason or "")


def test_dcmtk_annotation_is_printed_on_the_film(core: Core, tmp_path: Path) -> None:
    (ct,) = ct_series(tmp_path / "ct", 1, rows=64, columns=64)
    with print_scp(core) as listener:
        result = dcmtk_print(
            tmp_path / "dcmtk",
            listener.port,
            [ct],
            "-a",
            "CHEST FILM 1",
            "--print-no-date",
            "--print-no-name",
            "--print-no-lighting",
            annotations=True,
        )
    assert result.returncode == 0, result.output
    assert "ignoring annotation" not in result.output
    (job,) = _jobs(core)
    (film,) = _films(core, job.id)
    # dcmtk's printer entry `Annotation = 2\\ANNOTATION`: position 2, below the images.
    assert film.annotations == [{"position": 2, "text": "CHEST FILM 1"}]
    png = _film_png(core, job, 1)
    band = compose.annotation_band(150)
    assert png[png.shape[0] - band :].max() == 255  # white text on the black border
    assert png[:band].max() == 0  # nothing above


def _annotated_film(core: Core, tmp_path: Path, text: str) -> np.ndarray:
    """A one-image grey film with `text` (UTF-8) above the image, printed by pynetdicom."""
    with print_scp(core) as listener, pynetdicom_print(listener.port) as assoc:
        session_uid, box_uid = generate_uid(), generate_uid()
        assoc.send_n_create(None, FILM_SESSION, session_uid, meta_uid=GREY_META)
        attrs = Dataset()
        attrs.ImageDisplayFormat, attrs.AnnotationDisplayFormatID = "STANDARD\\1,1", "TITLE"
        attrs.ReferencedFilmSessionSequence = Sequence([referenced(FILM_SESSION, session_uid)])
        status, box = assoc.send_n_create(attrs, FILM_BOX, box_uid, meta_uid=GREY_META)
        assert status.Status == 0 and box is not None
        note = Dataset()
        note.SpecificCharacterSet = "ISO_IR 192"
        note.AnnotationPosition, note.TextString = 1, text
        uid = box.ReferencedBasicAnnotationBoxSequence[0].ReferencedSOPInstanceUID
        status, _ = assoc.send_n_set(note, ANNOTATION_BOX, uid)
        assert status.Status == 0, status
        image = Dataset()
        image.ImageBoxPosition = 1
        item = dcmread(_grey_image(tmp_path / "ramp.dcm"))
        image.BasicGrayscaleImageSequence = Sequence([item])
        uid = box.ReferencedImageBoxSequence[0].ReferencedSOPInstanceUID
        status, _ = assoc.send_n_set(image, GREY_IMAGE_BOX, uid, meta_uid=GREY_META)
        assert status.Status == 0, status
        status, _ = assoc.send_n_action(None, 1, FILM_BOX, box_uid, meta_uid=GREY_META)
        assert status.Status == 0
    job = _jobs(core)[0]
    (film,) = _films(core, job.id)
    assert film.annotations == [{"position": 1, "text": text}]
    return _film_png(core, job, 1)


def test_a_chinese_annotation_is_drawn_in_a_chinese_font(core: Core, tmp_path: Path) -> None:
    """Pillow's own font draws every Chinese character as the same empty box, so two different
    names would look alike; in a Chinese font they differ."""
    need_chinese_font()
    band = compose.annotation_band(150)
    first = _annotated_film(core, tmp_path, "张三 胸部CT")[:band]
    second = _annotated_film(core, tmp_path, "李四 腹部CT")[:band]
    assert first.max() == 255 and second.max() == 255
    assert np.count_nonzero(first != second) > 100
