"""Where stored files live: a small interface and its filesystem implementation.

Paths are built from the layout template with values that passed validation only (UIDs by
`check_uid`, dates normalised, the patient ID hashed), and every resolved path is checked to lie
under the root, so no input can write or delete outside it. New files are written to a temporary
folder inside the root first (same filesystem) and moved into place atomically.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from openpacs.archive.errors import StorageFull, StorageUnavailable
from openpacs.dicom.uids import check_uid

TEMP_DIR = ".incoming"
# Printed films (PNG previews, archived image boxes; openpacs.printing): beside the DICOM files,
# never walked as stored objects.
PRINT_DIR = ".print"
# Temp files older than this at start-up belong to no live writer (a receive lasting a day is not
# a receive); younger ones may belong to another receiver process on the same root.
STALE_TEMP_SECONDS = 24 * 3600
# Folders known to exist under the root, so placing a file costs no mkdir or path resolution;
# forgotten all at once past this many (one per series: a cache, not an inventory).
KNOWN_FOLDERS_MAX = 10_000


class PathKeys(Protocol):
    """What a layout needs to place an object."""

    @property
    def study_date(self) -> str | None: ...
    @property
    def patient_id(self) -> str: ...
    @property
    def study_instance_uid(self) -> str: ...
    @property
    def series_instance_uid(self) -> str: ...
    @property
    def sop_instance_uid(self) -> str: ...
    @property
    def sop_class_uid(self) -> str: ...


class Storage(Protocol):
    """What the archive needs from a place to keep files."""

    def new_temp(self) -> Path: ...
    def place(self, temp: Path, keys: PathKeys) -> tuple[str, int]: ...
    def open(self, relpath: str) -> BinaryIO: ...
    def delete(self, relpath: str) -> None: ...
    def exists(self, relpath: str) -> bool: ...
    def walk(self) -> Iterator[str]: ...
    def used_bytes(self) -> int: ...
    def check(self) -> None: ...
    def clean_temp(self, *, older_than: float = STALE_TEMP_SECONDS) -> int: ...


def _date_path(study_date: str | None) -> str:
    if not study_date or len(study_date) != 8 or not study_date.isdigit():
        return "undated"
    return f"{study_date[:4]}/{study_date[4:6]}/{study_date[6:]}"


def relative_path(layout: str, keys: PathKeys) -> str:
    """The path of an object under the root, from validated values only."""
    values = {
        "StudyDate": _date_path(keys.study_date),
        # A patient ID is free text (spaces, slashes, Chinese): never a path part as such.
        "PatientID": (
            hashlib.sha1(keys.patient_id.encode("utf-8")).hexdigest()[:16]
            if "{PatientID}" in layout
            else ""
        ),
        "StudyInstanceUID": check_uid(keys.study_instance_uid, "StudyInstanceUID"),
        "SeriesInstanceUID": check_uid(keys.series_instance_uid, "SeriesInstanceUID"),
        "SOPInstanceUID": check_uid(keys.sop_instance_uid, "SOPInstanceUID"),
        "SOPClassUID": check_uid(keys.sop_class_uid, "SOPClassUID"),
    }
    return layout.format(**values)


_UNPORTABLE = re.compile(r"[\\:]")  # "\\" and a drive's ":" mean another place on Windows


class FileSystemStorage:
    """Files under one root folder."""

    def __init__(self, root: Path, layout: str, *, fsync: bool = False) -> None:
        self.root = root.resolve()
        self.layout = layout
        self.fsync = fsync
        self.temp_dir = self.root / TEMP_DIR
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        # Relative folder -> its absolute path, checked to lie under the root (and, for
        # placing, created): resolving costs ~0.1 ms of system calls, per file without these.
        self._folders: dict[str, str] = {}
        self._read_folders: dict[str, str] = {}

    def _resolve(self, relpath: str) -> Path:
        # Stored paths are ours, with "/" only: a backslash or a drive would mean another place
        # on Windows (and only a strange name here), so it is refused on every system.
        if _UNPORTABLE.search(relpath):
            raise StorageUnavailable(f"path {relpath!r} is not a stored object's path")
        path = (self.root / relpath).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise StorageUnavailable(f"path {relpath!r} lies outside the storage root")
        if path.is_relative_to(self.temp_dir):
            raise StorageUnavailable(f"path {relpath!r} lies in the temporary folder")
        return path

    @property
    def print_dir(self) -> Path:
        """Where printed films are kept (openpacs.printing), under the root."""
        return self.root / PRINT_DIR

    def new_temp(self) -> Path:
        """A fresh, unused path in the temporary folder (same filesystem as the root)."""
        return self.temp_dir / f"{uuid.uuid4().hex}.part"

    def place(self, temp: Path, keys: PathKeys) -> tuple[str, int]:
        """Move a complete temp file to its place atomically; returns (relative path, size)."""
        relpath = relative_path(self.layout, keys)
        try:
            size = os.stat(temp).st_size
            if self.fsync:
                _fsync(temp)
            final = self._final(relpath)
            try:
                os.replace(temp, final)
            except FileNotFoundError:
                if not os.path.exists(temp):
                    raise
                # The folder went away since we made it (emptied by a delete): make it again.
                self._folders.clear()
                final = self._final(relpath)
                os.replace(temp, final)
            if self.fsync:
                _fsync_dir(Path(final).parent)
        except OSError as exc:
            raise _storage_error(exc, f"cannot store {relpath}") from exc
        return relpath, size

    def _final(self, relpath: str) -> str:
        """Where `relpath` goes, its folder created."""
        return self._located(relpath, self._folders, make=True)

    def _located(self, relpath: str, known: dict[str, str], *, make: bool) -> str:
        """`relpath` under the root. A folder is resolved, checked to lie under the root (and
        made) once; later files in it only join their name to it (a name from the layout,
        never '.' or '..' or hidden, cannot leave it)."""
        folder_rel, _, name = relpath.rpartition("/")
        plain = bool(name) and not name.startswith(".") and not _UNPORTABLE.search(name)
        folder = known.get(folder_rel)
        if folder is not None and plain:
            return f"{folder}/{name}"
        final = self._resolve(relpath)
        if make:
            final.parent.mkdir(parents=True, exist_ok=True)
        if plain and final.name == name:
            if len(known) >= KNOWN_FOLDERS_MAX:
                known.clear()
            known[folder_rel] = str(final.parent)
        return str(final)

    def open(self, relpath: str) -> BinaryIO:
        return self.path(relpath).open("rb")

    def path(self, relpath: str) -> Path:
        """The local path of a stored file (filesystem storage only)."""
        return Path(self._located(relpath, self._read_folders, make=False))

    def delete(self, relpath: str) -> None:
        path = self._resolve(relpath)
        path.unlink(missing_ok=True)
        # Folders may go below; deleting is rare, placing and reading are not.
        self._folders.clear()
        self._read_folders.clear()
        # Remove emptied folders up to the root so a deleted study leaves no husk.
        with contextlib.suppress(OSError):
            for parent in path.parents:
                if parent == self.root:
                    break
                parent.rmdir()

    def exists(self, relpath: str) -> bool:
        try:
            return self._resolve(relpath).is_file()
        except StorageUnavailable:
            return False

    def walk(self) -> Iterator[str]:
        """Every stored file, as paths relative to the root (temporary and print folders
        excluded: neither holds stored objects)."""
        for dirpath, dirnames, filenames in os.walk(self.root):
            if Path(dirpath) == self.root:
                dirnames[:] = [d for d in dirnames if d not in (TEMP_DIR, PRINT_DIR)]
            dirnames.sort()
            for name in sorted(filenames):
                # With "/" on every system, as place() names them in the index.
                yield (Path(dirpath) / name).relative_to(self.root).as_posix()

    def used_bytes(self) -> int:
        total = 0
        for relpath in self.walk():
            with contextlib.suppress(OSError):
                total += (self.root / relpath).stat().st_size
        return total

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def check(self) -> None:
        """Raises StorageUnavailable unless a file can be written and removed under the root."""
        probe = self.new_temp()
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise _storage_error(exc, f"storage root {self.root} is not writable") from exc

    def clean_temp(self, *, older_than: float = STALE_TEMP_SECONDS) -> int:
        """Remove temp files left by a crash; returns how many were removed."""
        removed = 0
        cutoff = time.time() - older_than
        for path in self.temp_dir.iterdir():
            with contextlib.suppress(OSError):
                if path.is_file() and path.stat().st_mtime <= cutoff:
                    path.unlink()
                    removed += 1
        return removed


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        _fsync(path)


def _storage_error(exc: OSError, message: str) -> StorageUnavailable:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(f"{message}: no space left on the storage volume")
    return StorageUnavailable(f"{message}: {exc.strerror or exc}")
