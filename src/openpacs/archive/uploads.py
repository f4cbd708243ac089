"""Uploads from the console: received files (and the members of ZIP files among them) through
the one ingest path, with an answer per file.

Each file ends as `stored`, `duplicate`, `overwritten` (ingest's outcomes) or `rejected` with
the reason. A file is never written anywhere but the storage's temporary folder: ZIP member
names only label the answer, never make a path. ZIP members are unpacked one at a time, each
read with a limit (a member whose declared size lies is cut off and rejected), so a small ZIP
cannot fill the disk.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from openpacs.archive.errors import ArchiveError
from openpacs.archive.importer import is_media_directory
from openpacs.archive.ingest import Archive, Incoming, Origin

REJECTED = "rejected"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_COPY = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_files: int
    max_file_bytes: int


@dataclass(frozen=True)
class Received:
    """One uploaded file in the temporary folder (the upload owns it until stored)."""

    name: str
    path: Path
    content_type: str = ""


@dataclass(frozen=True)
class FileResult:
    name: str
    outcome: str  # stored | duplicate | overwritten | rejected
    reason: str | None = None
    study: str | None = None
    sop_instance_uid: str | None = None


@dataclass
class UploadReport:
    files: list[FileResult] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for result in self.files if result.outcome == outcome)


class TooManyFiles(ArchiveError):
    """More files than `[studies] upload_max_files` in one upload; `report` holds what was
    handled before the limit."""

    def __init__(self, message: str, report: UploadReport) -> None:
        super().__init__(message)
        self.report = report


def is_zip(received: Received) -> bool:
    if received.content_type.split(";")[0].strip().lower() in (
        "application/zip",
        "application/x-zip-compressed",
    ):
        return True
    try:
        with received.path.open("rb") as fp:
            return fp.read(4) in _ZIP_MAGIC
    except OSError:
        return False


def store_uploads(archive: Archive, files: list[Received], limits: Limits) -> UploadReport:
    """Store every received file (and ZIP member); each temp file is gone afterwards.
    TooManyFiles once the count passes the limit (what was stored stays stored)."""
    report = UploadReport()
    try:
        for received in files:
            if is_zip(received):
                _store_zip(archive, received, limits, report)
            else:
                _check_count(report, limits)
                report.files.append(_store_one(archive, received.name, received.path, limits))
    finally:
        for received in files:
            received.path.unlink(missing_ok=True)
    return report


def _check_count(report: UploadReport, limits: Limits) -> None:
    if len(report.files) >= limits.max_files:
        raise TooManyFiles(
            f"an upload holds at most {limits.max_files} files ([studies] upload_max_files); "
            f"the first {len(report.files)} were handled, send the rest in another upload",
            report,
        )


def _store_one(archive: Archive, name: str, path: Path, limits: Limits) -> FileResult:
    """Store one file; the archive owns `path` from here on."""
    if is_media_directory(name):
        path.unlink(missing_ok=True)
        return FileResult(name, REJECTED, "a media directory (DICOMDIR), not an object")
    size = path.stat().st_size
    if size > limits.max_file_bytes:
        path.unlink(missing_ok=True)
        return FileResult(name, REJECTED, _too_large(size, limits))
    try:
        result = archive.store(Incoming(path, Origin.http))
    except ArchiveError as exc:
        return FileResult(name, REJECTED, str(exc))
    keys = result.keys
    return FileResult(
        name, result.outcome.value, None, keys.study_instance_uid, keys.sop_instance_uid
    )


def _too_large(size: int, limits: Limits) -> str:
    return f"{size} bytes is larger than [studies] upload_max_file_bytes ({limits.max_file_bytes})"


def _store_zip(archive: Archive, received: Received, limits: Limits, report: UploadReport) -> None:
    try:
        bundle = zipfile.ZipFile(received.path)
    except (zipfile.BadZipFile, OSError) as exc:
        report.files.append(FileResult(received.name, REJECTED, f"not a readable ZIP: {exc}"))
        return
    with bundle:
        for member in _members(bundle):
            _check_count(report, limits)
            name = f"{received.name}/{member.filename}"
            if member.file_size > limits.max_file_bytes:
                report.files.append(
                    FileResult(name, REJECTED, _too_large(member.file_size, limits))
                )
                continue
            temp = archive.storage.new_temp()
            try:
                _unpack(bundle, member, temp, limits.max_file_bytes)
            except (zipfile.BadZipFile, OSError, ValueError, RuntimeError) as exc:
                temp.unlink(missing_ok=True)
                report.files.append(FileResult(name, REJECTED, f"cannot unpack: {exc}"))
                continue
            report.files.append(_store_one(archive, name, temp, limits))


def _members(bundle: zipfile.ZipFile) -> Iterator[zipfile.ZipInfo]:
    for member in bundle.infolist():
        if not member.is_dir():
            yield member


def _unpack(bundle: zipfile.ZipFile, member: zipfile.ZipInfo, temp: Path, limit: int) -> None:
    written = 0
    with bundle.open(member) as source, temp.open("wb") as target:
        while chunk := source.read(_COPY):
            written += len(chunk)
            if written > limit:
                raise ValueError(f"unpacks to more than {limit} bytes (its header said less)")
            target.write(chunk)
