from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from openpacs.archive.storage import FileSystemStorage, relative_path
from openpacs.config import StorageSettings
from openpacs.dicom.uids import InvalidUID

LAYOUT = StorageSettings().layout


@dataclass(frozen=True)
class Keys:
    study_date: str | None = "20240131"
    patient_id: str = "P/../1"
    study_instance_uid: str = "1.2.3"
    series_instance_uid: str = "1.2.3.4"
    sop_instance_uid: str = "1.2.3.4.5"
    sop_class_uid: str = "1.2.840.10008.5.1.4.1.1.2"


def test_default_layout() -> None:
    assert relative_path(LAYOUT, Keys()) == "2024/01/31/1.2.3/1.2.3.4/1.2.3.4.5.dcm"
    assert relative_path(LAYOUT, Keys(study_date=None)).startswith("undated/")


def test_patient_id_is_never_a_path_part() -> None:
    path = relative_path("{PatientID}/{SOPInstanceUID}.dcm", Keys())
    assert ".." not in path and path.count("/") == 1


@pytest.mark.parametrize("uid", ["../../x", "/etc/x", "1.2/../../3"])
def test_hostile_uid_never_becomes_a_path(uid: str) -> None:
    with pytest.raises(InvalidUID):
        relative_path(LAYOUT, Keys(sop_instance_uid=uid))


def test_place_is_atomic_and_under_root(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path / "root", LAYOUT)
    temp = storage.new_temp()
    temp.write_bytes(b"x" * 10)
    relpath, size = storage.place(temp, Keys())
    assert size == 10 and not temp.exists()
    assert storage.path(relpath).read_bytes() == b"x" * 10
    assert list(storage.walk()) == [relpath]
    storage.delete(relpath)
    assert list(storage.walk()) == []
    assert not (tmp_path / "root" / "2024").exists()  # emptied folders removed


def test_place_makes_a_folder_again_after_a_delete_emptied_it(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path / "root", LAYOUT)
    temps = []
    for _ in range(3):
        temp = storage.new_temp()
        temp.write_bytes(b"DICM")
        temps.append(temp)
    first, _ = storage.place(temps[0], Keys())
    storage.delete(first)  # removes the emptied series, study and date folders
    assert not (storage.root / "2024").exists()
    assert storage.place(temps[1], Keys()) == (first, 4)
    # Another process may empty the folder behind this one's back.
    (storage.root / first).unlink()
    for parent in (storage.root / first).parents:
        if parent == storage.root:
            break
        parent.rmdir()
    assert storage.place(temps[2], Keys()) == (first, 4)
    assert list(storage.walk()) == [first]


def test_paths_outside_the_root_are_refused(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path / "root", LAYOUT)
    for relpath in ("../x", "/etc/passwd", ".incoming/x"):
        assert not storage.exists(relpath)
        with pytest.raises(Exception, match=r"outside|temporary"):
            storage.open(relpath)


def test_clean_temp_removes_only_stale_files(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path / "root", LAYOUT)
    old, new = storage.new_temp(), storage.new_temp()
    old.write_bytes(b"old")
    new.write_bytes(b"new")
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert storage.clean_temp(older_than=3600) == 1
    assert new.exists() and not old.exists()
    assert storage.clean_temp(older_than=0) == 1
