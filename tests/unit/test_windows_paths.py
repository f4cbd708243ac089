"""Paths that must hold on Windows too, checked here with Windows' rules (PureWindowsPath and
its reserved names and characters) on any system: stored paths are "/"-separated, relative
and made of valid Windows names; a Windows-style hostile path is refused as it would be there;
export folder names unpack on Windows; reindexing names files as storing did."""

from __future__ import annotations

import re
from pathlib import Path, PureWindowsPath

import pytest

from openpacs.archive import export
from openpacs.archive.errors import StorageUnavailable
from openpacs.archive.storage import FileSystemStorage, relative_path
from openpacs.config import StorageSettings
from openpacs.dicom.uids import InvalidUID
from tests.unit.test_storage import Keys

LAYOUTS = [StorageSettings().layout, "{PatientID}/{StudyInstanceUID}/{SOPInstanceUID}.dcm"]
_RESERVED_CHARACTERS = re.compile(r'[\x00-\x1f<>:"/\\|?*]')


def valid_on_windows(name: str) -> bool:
    """A file or folder name Windows can create and open as such."""
    stem = name.split(".")[0].rstrip(" ").upper()
    return (
        0 < len(name) <= 255
        and not _RESERVED_CHARACTERS.search(name)
        and not name.endswith((".", " "))
        and stem not in export.WINDOWS_DEVICES
    )


@pytest.mark.parametrize("layout", LAYOUTS)
def test_stored_paths_are_relative_windows_paths(layout: str) -> None:
    relpath = relative_path(layout, Keys(patient_id="C:\\Users\\..\\CON"))
    as_windows = PureWindowsPath(relpath)
    assert not as_windows.is_absolute() and not as_windows.drive
    assert "\\" not in relpath and ".." not in as_windows.parts
    assert all(valid_on_windows(part) for part in relpath.split("/"))


@pytest.mark.parametrize(
    "uid", ["..\\..\\x", "C:\\x", "1.2\\3", "\\\\server\\share\\1.2", "1.2:3", "C:1.2"]
)
def test_windows_style_hostile_uids_never_become_paths(uid: str) -> None:
    with pytest.raises(InvalidUID):
        relative_path(LAYOUTS[0], Keys(sop_instance_uid=uid))


@pytest.mark.parametrize(
    "relpath", ["..\\..\\escape.dcm", "2024\\01\\x.dcm", "C:\\Windows\\x.dcm", "C:x.dcm"]
)
def test_windows_style_stored_paths_are_refused(tmp_path: Path, relpath: str) -> None:
    storage = FileSystemStorage(tmp_path / "root", LAYOUTS[0])
    temp = storage.new_temp()
    temp.write_bytes(b"x")
    placed, _ = storage.place(temp, Keys())
    folder = placed.rsplit("/", 1)[0]
    storage.path(placed)  # its folder is now known: a name in it must still be checked
    for hostile in (relpath, f"{folder}/{relpath}"):
        with pytest.raises(StorageUnavailable):
            storage.path(hostile)
        assert not storage.exists(hostile)


def test_walk_names_files_as_place_did(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path / "root", LAYOUTS[0])
    placed = []
    for number in range(3):
        temp = storage.new_temp()
        temp.write_bytes(b"x")
        placed.append(storage.place(temp, Keys(sop_instance_uid=f"1.2.3.4.{number}"))[0])
    assert sorted(storage.walk()) == sorted(placed)


@pytest.mark.parametrize(
    "text",
    ["CON", "con", "Nul.dcm", "COM1", "lpt9.txt", "AUX ", "PRN.", "CONIN$", "COM¹", "C:\\x",
     "..\\..", "a" * 300, "name. ", " .hidden", "王小明^先生", "x|y?z*", "\x00\x1f"],
)  # fmt: skip
def test_export_names_unpack_on_windows(text: str) -> None:
    assert valid_on_windows(export.safe_name(text, "fallback"))


def test_ordinary_names_are_kept() -> None:
    assert export.safe_name("CONSTANT", "x") == "CONSTANT"
    assert export.safe_name("COM10", "x") == "COM10"
    assert export.safe_name("CON", "x") == "_CON"
    assert export.safe_name("nul.dcm", "x") == "_nul.dcm"
