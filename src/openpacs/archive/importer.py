"""`openpacs import`: files and folders into the archive through the one ingest path."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from openpacs.archive.errors import ArchiveError
from openpacs.archive.ingest import Archive, Incoming, Origin, Outcome


@dataclass
class ImportReport:
    stored: int = 0
    duplicates: int = 0
    rejected: dict[str, str] = field(default_factory=dict)  # file -> reason


def files_under(paths: Iterable[Path]) -> Iterator[Path]:
    """Every regular file named or found below the folders named, in a stable order."""
    for path in paths:
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path):
                dirnames.sort()
                for name in sorted(filenames):
                    yield Path(dirpath) / name
        else:
            yield path


def is_media_directory(name: str) -> bool:
    """A DICOMDIR: an index of removable media, not an object to store."""
    return name.replace("\\", "/").rsplit("/", 1)[-1].upper() == "DICOMDIR"


def import_file(archive: Archive, path: Path) -> Outcome:
    """Copy one file into the storage's temporary folder, then store it."""
    temp = archive.storage.new_temp()
    try:
        shutil.copyfile(path, temp)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ArchiveError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return archive.store(Incoming(temp, Origin.import_)).outcome


def import_paths(
    archive: Archive,
    files: Iterable[Path],
    *,
    progress: Callable[[Path], None] = lambda _path: None,
) -> ImportReport:
    report = ImportReport()
    for path in files:
        progress(path)
        if is_media_directory(path.name):
            report.rejected[str(path)] = "a media directory (DICOMDIR), not an object; skipped"
            continue
        try:
            outcome = import_file(archive, path)
        except ArchiveError as exc:
            report.rejected[str(path)] = str(exc)
            continue
        if outcome is Outcome.duplicate:
            report.duplicates += 1
        else:
            report.stored += 1
    return report
