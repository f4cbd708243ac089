"""The one ingest path: every way in (C-STORE, import, later STOW-RS and retrieval) ends here.

An `Incoming` names a complete Part-10 file already written to the storage's temporary folder
(same filesystem as its final place). `Archive.store` then: reads the header only, validates the
keys, repairs the character set, moves the file into place atomically, indexes it in one
transaction, and only then returns. A failure at any step removes what that step left behind,
so nothing unacknowledged is half-indexed and nothing acknowledged is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.errors import InvalidDicomError
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from openpacs.archive import db, index
from openpacs.archive.db import NoLock, WriteLock, write_session
from openpacs.archive.errors import (
    DuplicateRefused,
    IndexUnavailable,
    InvalidAttribute,
    InvalidInstance,
    MissingAttribute,
)
from openpacs.archive.models import Instance
from openpacs.archive.storage import FileSystemStorage
from openpacs.config import DuplicatePolicy
from openpacs.dicom import values as dv
from openpacs.dicom.charset import apply_charset, decide_charset, patch_specific_character_set
from openpacs.dicom.uids import InvalidUID, check_uid
from openpacs.logs import get_logger

log = get_logger("db")

# Elements above this size stay on disk while the header is read (waveforms, big private blobs).
DEFER_SIZE = 64 * 1024


class Origin(StrEnum):
    dimse = "dimse"
    http = "http"
    import_ = "import"
    retrieve = "retrieve"


@dataclass(frozen=True)
class Incoming:
    """A received object waiting to be stored. `store` owns `path` from here on."""

    path: Path
    origin: Origin
    calling_ae: str | None = None
    # What the C-STORE command announced; the dataset must agree.
    expected_sop_class_uid: str | None = None
    expected_sop_instance_uid: str | None = None


class Outcome(StrEnum):
    stored = "stored"
    duplicate = "duplicate"  # already stored; the stored copy was kept
    overwritten = "overwritten"


@dataclass(frozen=True)
class StoreResult:
    outcome: Outcome
    keys: index.InstanceKeys
    relpath: str
    notes: list[str] = field(default_factory=list)


Listener = Callable[[StoreResult], None]


@dataclass(frozen=True)
class Header:
    """What ingest learned from a file's header before moving it."""

    keys: index.InstanceKeys
    values: index.IndexValues
    transfer_syntax_uid: str
    charset_patch: tuple[str, ...] | None
    notes: list[str]


def read_header(path: Path) -> Dataset:
    """The dataset up to the pixel data, or InvalidInstance saying why it is unreadable."""
    try:
        return dcmread(path, stop_before_pixels=True, defer_size=DEFER_SIZE)
    except InvalidDicomError as exc:
        raise InvalidInstance(f"not a DICOM file: {exc}") from exc
    except Exception as exc:  # pydicom raises many kinds on malformed input
        raise InvalidInstance(f"malformed DICOM data: {type(exc).__name__}: {exc}") from exc


def _uid(ds: Dataset, keyword: str) -> str:
    try:
        return check_uid(ds.get(keyword), keyword)
    except InvalidUID as exc:
        if ds.get(keyword) in (None, ""):
            raise MissingAttribute(str(exc)) from exc
        raise InvalidAttribute(str(exc)) from exc


def validate(ds: Dataset, incoming: Incoming) -> index.InstanceKeys:
    """The object's identity, checked; raises with the reason a sender can act on."""
    if "PatientID" not in ds:
        raise MissingAttribute("PatientID (0010,0020) is missing")
    sop_class = _uid(ds, "SOPClassUID")
    sop_instance = _uid(ds, "SOPInstanceUID")
    study = _uid(ds, "StudyInstanceUID")
    series = _uid(ds, "SeriesInstanceUID")
    if incoming.expected_sop_instance_uid and incoming.expected_sop_instance_uid != sop_instance:
        raise InvalidAttribute(
            f"SOPInstanceUID {sop_instance} differs from the command's "
            f"AffectedSOPInstanceUID {incoming.expected_sop_instance_uid}"
        )
    if incoming.expected_sop_class_uid and incoming.expected_sop_class_uid != sop_class:
        raise InvalidAttribute(
            f"SOPClassUID {sop_class} differs from the command's "
            f"AffectedSOPClassUID {incoming.expected_sop_class_uid}"
        )
    patient_id = (dv.text(ds.get("PatientID")) or "")[:64]
    return index.InstanceKeys(
        patient_id=patient_id,
        study_instance_uid=study,
        series_instance_uid=series,
        sop_instance_uid=sop_instance,
        sop_class_uid=sop_class,
        study_date=dv.da(ds.get("StudyDate")),
    )


def inspect(path: Path, incoming: Incoming, *, repair_charset: bool) -> Header:
    """Read, validate and decode one header; nothing is moved or written."""
    ds = read_header(path)
    meta = getattr(ds, "file_meta", None)
    transfer_syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if not transfer_syntax:
        raise InvalidInstance("file meta information has no TransferSyntaxUID")
    keys = validate(ds, incoming)
    decision = decide_charset(ds)
    apply_charset(ds, decision)
    notes = []
    if decision.reason != "declared" and decision.reason != "ascii":
        notes.append(f"character set: {decision.reason}")
    try:
        extracted = index.extract(ds)
    except Exception as exc:
        raise InvalidInstance(f"unreadable attributes: {type(exc).__name__}: {exc}") from exc
    return Header(
        keys=keys,
        values=extracted,
        transfer_syntax_uid=str(transfer_syntax),
        charset_patch=decision.effective if decision.patch and repair_charset else None,
        notes=notes,
    )


class Archive:
    """The archive core: stores objects (files + index) and tells listeners after commit."""

    def __init__(
        self,
        storage: FileSystemStorage,
        sessions: sessionmaker[Session],
        *,
        duplicates: DuplicatePolicy = DuplicatePolicy.keep,
        repair_charset: bool = True,
        write_lock: WriteLock | NoLock | None = None,
    ) -> None:
        self.storage = storage
        self.sessions = sessions
        self.duplicates = duplicates
        self.repair_charset = repair_charset
        self._write_lock = write_lock or NoLock()
        self._listeners: list[Listener] = []

    def close(self) -> None:
        self._write_lock.close()

    def subscribe(self, listener: Listener) -> None:
        """Call `listener` after each commit; its failure never fails the store."""
        self._listeners.append(listener)

    def store(self, incoming: Incoming) -> StoreResult:
        """Store one object; returns only once it is on disk and in the index."""
        temps = [incoming.path]
        try:
            header = inspect(incoming.path, incoming, repair_charset=self.repair_charset)
            path = incoming.path
            if header.charset_patch is not None:
                path = self.storage.new_temp()
                temps.append(path)
                patch_specific_character_set(incoming.path, path, header.charset_patch)
            result = self._place_and_index(path, header, incoming)
        finally:
            for temp in temps:
                temp.unlink(missing_ok=True)
        self._notify(result)
        return result

    def _place_and_index(self, path: Path, header: Header, incoming: Incoming) -> StoreResult:
        """Duplicate check, placing the file and its rows: one transaction, one writer turn."""
        keys = header.keys
        placed: str | None = None
        existing: Instance | None = None
        try:
            with self._write_lock, write_session(self.sessions) as session:
                stored = index.stored_path(session, keys.sop_instance_uid)
                if stored is not None and self.duplicates is DuplicatePolicy.keep:
                    return StoreResult(Outcome.duplicate, keys, stored, header.notes)
                if stored is not None:
                    existing = index.find_instance(session, keys.sop_instance_uid)
                if existing is not None and self.duplicates is DuplicatePolicy.refuse:
                    raise DuplicateRefused(
                        f"SOP instance {keys.sop_instance_uid} is stored already"
                    )
                placed, size = self.storage.place(path, keys)
                if existing is not None:
                    index.remove_instance(session, existing)
                index.record_instance(
                    session,
                    header.values,
                    keys,
                    index.FileInfo(placed, size, header.transfer_syntax_uid),
                    origin=incoming.origin.value,
                    calling_ae=incoming.calling_ae,
                )
        except IntegrityError as exc:
            # Another receiver indexed the same instance between our check and our insert; the
            # file it placed is at the same path, so ours (same object) stays.
            if self.duplicates is DuplicatePolicy.refuse:
                raise DuplicateRefused(
                    f"SOP instance {keys.sop_instance_uid} is stored already"
                ) from exc
            return StoreResult(Outcome.duplicate, keys, placed or "", header.notes)
        except SQLAlchemyError as exc:
            self._discard(placed, existing, keys.sop_instance_uid)
            raise IndexUnavailable(
                f"index database did not take the write: {db.describe(exc)}"
            ) from exc
        except BaseException:
            self._discard(placed, existing, keys.sop_instance_uid)
            raise
        if existing is not None and existing.file_path != placed:
            self.storage.delete(existing.file_path)
        outcome = Outcome.overwritten if existing is not None else Outcome.stored
        return StoreResult(outcome, keys, placed, header.notes)

    def _discard(self, placed: str | None, existing: Instance | None, sop_uid: str) -> None:
        """Remove a file placed for a write that failed, unless an index row points at it."""
        if placed is None or (existing is not None and existing.file_path == placed):
            return
        try:
            with self.sessions() as session:
                found = index.find_instance(session, sop_uid)
                if found is not None and found.file_path == placed:
                    return
        except SQLAlchemyError:
            pass
        self.storage.delete(placed)

    def _notify(self, result: StoreResult) -> None:
        for listener in self._listeners:
            try:
                listener(result)
            except Exception:
                log.exception("store listener %r failed", listener)
