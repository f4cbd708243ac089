"""A study (or one series) as the entries of a ZIP download: files as stored, or each one
de-identified, in folders named by patient, study and series.

Layout, without a DICOMDIR (any viewer opens a folder of files):

    <patient name>_<patient ID>/<study date>_<description>/
        <series number>_<modality>_<description>/IM00001.dcm

De-identified, the names come from the de-identified values only (pseudonym, replaced study
UID, series number and modality), never from the originals. Every path part goes through
`safe_name`: no separators, no '..', no control or reserved characters, at most 64
characters; letters of any script (Chinese names) are kept.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from openpacs.archive import locate
from openpacs.archive.errors import NotFound, StorageUnavailable
from openpacs.archive.models import Instance, Patient, Series, Study
from openpacs.archive.outgoing import check_deidentifiable as check_instance
from openpacs.archive.outgoing import deidentified_dataset, encoded
from openpacs.archive.retrieve import StoredInstance, stored_instance
from openpacs.archive.storage import FileSystemStorage
from openpacs.archive.zipstream import Entry
from openpacs.dicom.deidentify import Profile

CHUNK = 1024 * 1024
NAME_LIMIT = 64
# Path separators, Windows' reserved characters, control characters.
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')
# Names Windows keeps for devices, with any extension ("NUL.dcm" too): a patient ID "CON"
# must not make a folder that cannot be unpacked there.
WINDOWS_DEVICES = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{port}{n}" for port in ("COM", "LPT") for n in [*"123456789", "¹", "²", "³"]]
)


def safe_name(text: str | None, fallback: str) -> str:
    """`text` as one path part that stays where it is put, on any system."""
    value = unicodedata.normalize("NFC", text or "")
    value = _UNSAFE.sub("_", value)
    value = re.sub(r"\s+", " ", value).strip(" .")  # no leading dot: no '..', nothing hidden
    value = value[:NAME_LIMIT].rstrip(" .")
    if value.split(".")[0].rstrip(" ").upper() in WINDOWS_DEVICES:
        value = "_" + value
    return value or fallback


def _person(name: str | None) -> str:
    """A PN for a folder name: its groups (alphabetic, ideographic ...) side by side."""
    groups = [g.replace("^", " ").strip() for g in (name or "").split("=")]
    return " ".join(g for g in groups if g)


class _Folders:
    """Series folder names, one per series UID (a number taken twice gets a suffix), and
    file names numbered within each."""

    def __init__(self) -> None:
        self._by_uid: dict[str, str] = {}
        self._files: dict[str, int] = {}

    def file(self, series_uid: str, *parts: object) -> str:
        folder = self._by_uid.get(series_uid)
        if folder is None:
            base = safe_name("_".join(str(p) for p in parts if p), "series")
            folder, suffix = base, 2
            while folder in self._files:
                folder, suffix = f"{base}_{suffix}", suffix + 1
            self._by_uid[series_uid] = folder
        self._files[folder] = self._files.get(folder, 0) + 1
        return f"{folder}/IM{self._files[folder]:05d}.dcm"


def _number(value: object) -> str:
    try:
        return "" if value is None or value == "" else f"{int(str(value)):03d}"
    except ValueError:
        return ""


@dataclass(frozen=True)
class Member:
    """One stored instance and where it goes in the archive."""

    name: str
    instance: StoredInstance
    size: int


@dataclass(frozen=True)
class Selection:
    """What a download holds, and how to call the archive file."""

    members: list[Member]
    filename: str

    @property
    def size(self) -> int:
        return sum(member.size for member in self.members)


def select_study(
    session: Session, storage: FileSystemStorage, study: str, series: str | None = None
) -> Selection:
    """The instances of a study (or of one series of it), named for the archive; NotFound
    when not stored, StorageUnavailable when a file the index names is missing (checked
    before anything is sent: a download cannot say so once it has started)."""
    stmt = locate.study_select(
        study,
        series,
        Patient.patient_id,
        Patient.patient_name,
        Study.study_date,
        Study.study_description,
        Study.accession_number,
        Series.series_instance_uid,
        Series.series_number,
        Series.modality,
        Series.series_description,
        Instance.sop_instance_uid,
        Instance.sop_class_uid,
        Instance.transfer_syntax_uid,
        Instance.number_of_frames,
        Instance.file_path,
        Instance.file_size,
    )
    rows = session.execute(stmt).all()
    if not rows:
        # Same wording as every other retrieve.
        locate.instances(session, storage, study, series)
        raise NotFound(f"study {study} is not stored")
    first = rows[0]
    patient = safe_name(
        "_".join(p for p in (_person(first.patient_name), first.patient_id) if p), "patient"
    )
    study_folder = safe_name(
        "_".join(
            p for p in (first.study_date, first.study_description or first.accession_number) if p
        ),
        "study",
    )
    folders = _Folders()
    members = []
    for row in rows:
        name = folders.file(
            row.series_instance_uid,
            _number(row.series_number),
            row.modality,
            row.series_description,
        )
        members.append(
            Member(f"{patient}/{study_folder}/{name}", stored_instance(storage, row), row.file_size)
        )
    for member in members:
        if not member.instance.path.is_file():
            raise StorageUnavailable(
                f"the file of instance {member.instance.sop_instance_uid} is missing from "
                "the storage; run `openpacs reindex` to bring the index in line"
            )
    return Selection(members, f"{patient}_{study_folder}.zip")


def _read(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as fp:
            while chunk := fp.read(CHUNK):
                yield chunk
    except OSError as exc:
        # Past the first byte nothing but a cut-off answer can tell the client.
        raise StorageUnavailable(f"cannot read {path.name}: {exc.strerror or exc}") from exc


def as_stored(selection: Selection) -> Iterator[Entry]:
    """Each file byte for byte as stored."""
    for member in selection.members:
        path = member.instance.path
        yield Entry(member.name, _read(path), member.size, path.stat().st_mtime)


def check_deidentifiable(selection: Selection) -> None:
    """CannotConvert before the download starts when an object says its pixels show identity."""
    for member in selection.members:
        check_instance(member.instance)


def deidentified(selection: Selection, key: bytes, profile: Profile) -> Iterator[Entry]:
    """Each file de-identified (one object in memory at a time), named by its new values."""
    folders = _Folders()
    for member in selection.members:
        clean = deidentified_dataset(member.instance, key, profile)
        name = folders.file(
            str(clean.get("SeriesInstanceUID") or ""),
            _number(clean.get("SeriesNumber")),
            clean.get("Modality"),
        )
        top = "/".join(
            (
                safe_name(str(clean.get("PatientID") or ""), "patient"),
                safe_name(str(clean.get("StudyInstanceUID") or ""), "study"),
            )
        )
        data = encoded(clean)
        yield Entry(f"{top}/{name}", [data], len(data))
