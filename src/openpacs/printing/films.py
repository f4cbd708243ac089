"""Keeping what was printed: the job row, each film three ways, the image boxes as received.

Where things go, and why there:
- the film as a Secondary Capture, through `Archive.store` (the one ingest path), so it is
  indexed, queryable and retrievable like any image (C-FIND, QIDO-RS, OHIF);
- its PNG preview and the image box datasets as received, as files under the storage root's
  print folder (`.print/<job id>/`): they are large binary data the index should not carry,
  and they live and die with the job (DELETE /api/print/jobs/{id} removes the folder);
- the film session's and film box's attributes as DICOM JSON in the index (`print_job`,
  `print_film`): small, and what the REST API answers with.

The image boxes are written when they arrive (N-SET), not held until N-ACTION, so a session
of large images costs memory only for their 8-bit renderings; each printed film gets hard
links to the box files it used, so re-setting a box later cannot change a printed film.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from openpacs.archive.core import Core
from openpacs.archive.ingest import Incoming, Origin
from openpacs.archive.models import PrintFilm
from openpacs.config import PrintScpSettings
from openpacs.dicom import json as dicom_json
from openpacs.dicom.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION
from openpacs.logs import get_logger
from openpacs.printing import compose, jobs
from openpacs.printing.errors import PrintError, PrintFailed
from openpacs.printing.session import Film, ImageBox, PrintSession, new_uid

log = get_logger("printscp")

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
BOX_FOLDER = "boxes"


class FilmKeeper:
    """The `session.Keeper` of the Print SCP: jobs in the index, films in the archive."""

    def __init__(self, core: Core, settings: PrintScpSettings) -> None:
        self.core = core
        self.settings = settings

    def folder(self, job_folder: str) -> Path:
        return self.core.storage.print_dir / job_folder

    # -- the job
    def open_job(self, session: PrintSession) -> None:
        assert session.film_session is not None and session.film_session_uid is not None
        with self.core.writing() as db:
            job = jobs.create(
                db,
                calling_ae=session.calling_ae,
                called_ae=session.called_ae,
                film_session_uid=session.film_session_uid,
                colour=session.colour,
                attributes=dicom_json.to_json(session.film_session),
            )
            job_id, folder = job.id, job.folder
        session.job_id, session.job_folder = job_id, folder
        (self.folder(folder) / BOX_FOLDER).mkdir(parents=True, exist_ok=True)
        log.info("print job %d opened for %s", job_id, session.calling_ae)

    def session_changed(self, session: PrintSession) -> None:
        """The film session's attributes after an N-SET, onto the job."""
        if session.job_id is None or session.film_session is None:
            return
        with self.core.writing() as db:
            job = jobs.get(db, session.job_id)
            job.attributes = dicom_json.to_json(session.film_session)
            job.updated_at = dt.datetime.now(dt.UTC)

    def close_job(self, session: PrintSession, reason: str | None) -> None:
        if session.job_id is None:
            return
        with self.core.writing() as db:
            job = jobs.get(db, session.job_id)
            if reason is not None and job.state == jobs.State.received.value:
                job.state, job.reason = jobs.State.failed.value, reason
                log.warning("print job %d: %s", job.id, reason)
            elif job.state == jobs.State.printing.value:
                job.state = jobs.State.printed.value
            job.updated_at = dt.datetime.now(dt.UTC)

    # -- image boxes
    def keep_image_box(self, session: PrintSession, box: ImageBox, ds: Dataset) -> str:
        """The N-SET dataset as a Part-10 file named by the image box's UID (ours: generated
        at film box N-CREATE, so safe as a file name); replaced atomically on a new N-SET."""
        relpath = f"{BOX_FOLDER}/{box.uid}.dcm"
        path = self.folder(session.job_folder) / relpath
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = UID(box.sop_class)
        meta.MediaStorageSOPInstanceUID = UID(box.uid)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION
        out = Dataset()
        out.update(ds)
        out.file_meta = meta
        temp = path.with_suffix(".part")
        try:
            out.save_as(temp, enforce_file_format=True)
            os.replace(temp, path)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise PrintFailed(f"cannot keep the image box: {exc.strerror or exc}") from exc
        return relpath

    # -- films
    def print_films(self, session: PrintSession, films: list[Film]) -> None:
        assert session.job_id is not None
        job_id = session.job_id
        self._state(job_id, jobs.State.printing)
        for offset, film in enumerate(films):
            number = session.films_printed + offset + 1
            try:
                self._print(session, film, number)
            except Exception as exc:
                reason = f"film {number}: {exc}"
                self._state(job_id, jobs.State.failed, reason)
                if isinstance(exc, PrintError):
                    raise
                log.exception("print job %d failed", job_id)
                raise PrintFailed(f"cannot keep film {number}: {exc}") from exc
        self._state(job_id, jobs.State.printed)

    def _state(self, job_id: int, state: jobs.State, reason: str | None = None) -> None:
        with self.core.writing() as db:
            jobs.set_state(db, job_id, state, reason)

    def _print(self, session: PrintSession, film: Film, number: int) -> None:
        box = film.film_box
        pixels = compose.compose(
            box.spec,
            film.images,
            self.settings.dpi,
            colour=box.colour,
            max_pixels=self.settings.max_film_pixels,
            annotations=film.annotations,
            font=self.settings.annotation_font,
        )
        folder = self.folder(session.job_folder)
        ds = secondary_capture(session, film, pixels, number)
        temp = self.core.storage.new_temp()
        try:
            ds.save_as(temp, enforce_file_format=True)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise PrintFailed(f"cannot write the film: {exc.strerror or exc}") from exc
        self.core.archive.store(Incoming(temp, Origin.print_, calling_ae=session.calling_ae))
        png = f"film-{number}.png"
        Image.fromarray(pixels).save(folder / png)
        kept = _link_boxes(folder, film, number)
        with self.core.writing() as db:
            jobs.add_film(
                db,
                session.job_id or 0,
                PrintFilm(
                    number=number,
                    film_box_uid=box.uid,
                    attributes=dicom_json.to_json(box.attributes),
                    image_boxes=[
                        {"position": b.position, "uid": b.uid, "file": kept.get(b.position)}
                        for b in box.boxes
                    ],
                    annotations=[
                        {"position": p, "text": t} for p, t in sorted(film.annotations.items())
                    ],
                    study_instance_uid=str(ds.StudyInstanceUID),
                    series_instance_uid=str(ds.SeriesInstanceUID),
                    sop_instance_uid=str(ds.SOPInstanceUID),
                    png=png,
                    width=int(pixels.shape[1]),
                    height=int(pixels.shape[0]),
                    created_at=dt.datetime.now(dt.UTC),
                ),
            )
        log.info(
            "print job %d: film %d (%s, %s %s, %dx%d) from %s kept as %s",
            session.job_id,
            number,
            box.spec.display_format,
            box.spec.film_size,
            box.spec.orientation,
            pixels.shape[1],
            pixels.shape[0],
            session.calling_ae,
            ds.SOPInstanceUID,
        )

    def remove(self, job_folder: str) -> None:
        """The job's folder (after its rows are deleted)."""
        if job_folder:
            shutil.rmtree(self.folder(job_folder), ignore_errors=True)


def _link_boxes(folder: Path, film: Film, number: int) -> dict[int, str]:
    """Hard links (copies where links fail) of the box files this film used."""
    kept: dict[int, str] = {}
    target = folder / f"film-{number}"
    target.mkdir(exist_ok=True)
    for position, relpath in film.raw_files.items():
        source = folder / relpath
        name = f"film-{number}/box-{position}.dcm"
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
        try:
            os.link(source, folder / name)
        except OSError:
            shutil.copyfile(source, folder / name)
        kept[position] = name
    return kept


def secondary_capture(
    session: PrintSession, film: Film, pixels: compose.Display, number: int
) -> Dataset:
    """The film as a Secondary Capture Image (PS3.3 A.8.1): patient and study of the first
    image that named them, else the print session's own (generated once per session)."""
    now = dt.datetime.now()
    ds = Dataset()
    identity = film.identity
    study_uid = session.study_uid
    if identity is not None:
        for element in identity:
            if element.keyword != "SpecificCharacterSet":
                ds.add(element)
        study_uid = str(identity.get("StudyInstanceUID") or study_uid)
    if not ds.get("PatientID"):
        ds.PatientID = f"PRINT-{session.job_id}"
        ds.PatientName = f"PRINT^{session.calling_ae}"
    if study_uid == session.study_uid:
        ds.StudyID = str(session.job_id)  # the study is the print session's own
    ds.SpecificCharacterSet = "ISO_IR 192"  # text was decoded on arrival; written as UTF-8
    for keyword in ("PatientName", "PatientBirthDate", "PatientSex", "ReferringPhysicianName"):
        ds.setdefault(keyword, "")
    ds.StudyInstanceUID = study_uid
    ds.setdefault("StudyDate", now.strftime("%Y%m%d"))
    ds.setdefault("StudyTime", now.strftime("%H%M%S"))
    ds.setdefault("StudyID", "")
    ds.setdefault("AccessionNumber", "")
    label = str(film.session_attributes.get("FilmSessionLabel") or "").strip()
    ds.setdefault(
        "StudyDescription", f"Print from {session.calling_ae}" + (f": {label}" if label else "")
    )
    ds.SeriesInstanceUID = session.series_uid(study_uid)
    ds.SeriesNumber = 9000 + (session.job_id or 0) % 1000
    ds.SeriesDescription = "Printed films"
    ds.Modality = "OT"
    ds.Laterality = ""  # type 2C; a film of several images has no one laterality
    ds.ConversionType = "WSD"  # workstation: a film composed by us
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = new_uid()
    ds.InstanceNumber = number
    ds.ContentDate, ds.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    spec = film.film_box.spec
    ds.ImageComments = (
        f"Film {number} of print job {session.job_id} from {session.calling_ae}: "
        f"{spec.display_format}, {spec.film_size} {spec.orientation}"
    )
    ds.PatientOrientation = ""
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    if pixels.ndim == 3:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
    else:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(SECONDARY_CAPTURE)
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds.file_meta = meta
    return ds
