"""The fast header reader and the raw-value shortcuts give exactly what pydicom gives."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from openpacs.archive import ingest
from openpacs.archive.errors import ArchiveError
from openpacs.dicom import header
from openpacs.dicom import values as dv
from tests.generators import ct_series

DEFER = 64 * 1024
PYDICOM_FILES = sorted(
    path
    for folder in ("test_files", "charset_files")
    for path in (Path(pydicom.__file__).parent / "data" / folder).rglob("*")
    if path.is_file() and not path.name.endswith((".py", ".json", ".txt", ".gz", ".bz2"))
)


def _elements(ds: Dataset) -> dict[int, tuple[Any, ...]]:
    out: dict[int, tuple[Any, ...]] = {}
    for tag in sorted(ds.keys()):  # iterating the Dataset itself would convert its elements
        elem = ds.get_item(tag, keep_deferred=True)
        if isinstance(elem, RawDataElement):
            out[int(tag)] = tuple(elem)
        else:
            out[int(tag)] = (elem.VR, repr(elem.value), elem.file_tell, elem.is_undefined_length)
    return out


def _state(path: Path, read: Any) -> Any:
    try:
        ds = read(path)
    except Exception as exc:
        return type(exc), str(exc)
    return (
        _elements(ds),
        _elements(ds.file_meta),
        ds.preamble,
        ds.original_encoding,
        ds.original_character_set,
        ds._character_set,
        ds.filename,
        ds.fileobj_type,
        ds.timestamp,
    )


def _pydicom(path: Path) -> Any:
    return dcmread(path, stop_before_pixels=True, defer_size=DEFER)


def _ours(path: Path) -> Any:
    return header.read_header(path, defer_size=DEFER)


def _corpus(tmp_path: Path) -> list[Path]:
    return [*PYDICOM_FILES, *ct_series(tmp_path / "ct", 2, rows=16, columns=16)]


def test_reads_what_pydicom_reads(tmp_path: Path) -> None:
    files = _corpus(tmp_path)
    assert len(files) > 100
    for path in files:
        assert _state(path, _ours) == _state(path, _pydicom), path


def test_damaged_files_read_or_fail_as_with_pydicom(tmp_path: Path) -> None:
    rng = random.Random(2)
    for number, source in enumerate(rng.sample(_corpus(tmp_path), 40)):
        data = source.read_bytes()
        for attempt in range(10):
            if attempt % 2:
                mutated = data[: rng.randrange(min(len(data), 3000))]
            else:
                damaged = bytearray(data)
                damaged[rng.randrange(min(len(data), 2000))] = rng.randrange(256)
                mutated = bytes(damaged)
            path = tmp_path / f"m{number}-{attempt}.dcm"
            path.write_bytes(mutated)
            assert _state(path, _ours) == _state(path, _pydicom), (source, attempt)


def test_large_values_stay_on_disk_and_read_later(tmp_path: Path) -> None:
    ds = dcmread(ct_series(tmp_path / "ct", 1, rows=16, columns=16)[0])
    ds.ImageComments = "x" * (DEFER + 2)
    path = tmp_path / "big.dcm"
    ds.save_as(path, enforce_file_format=True)
    read = _ours(path)
    assert read.get_item(tag_for_keyword("ImageComments"), keep_deferred=True).value is None
    assert read.ImageComments == _pydicom(path).ImageComments  # read back (as UN: too long)
    assert _state(path, _ours) == _state(path, _pydicom)


def _outcome(path: Path) -> Any:
    incoming = ingest.Incoming(path, ingest.Origin.import_)
    try:
        found = ingest.inspect(path, incoming, repair_charset=True)
    except ArchiveError as exc:
        return type(exc).__name__, str(exc)
    values = found.values
    return found.keys, values.patient, values.study, values.series, values.instance, found.notes


def _through_pydicom(path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr(dv, "_raw", lambda ds, tag: dv.SLOW)
        return _outcome(path)


# Values of every VR the shortcuts take, odd ones included (pydicom falls back to text for
# an IS it cannot parse, keeps leading spaces, splits on backslashes...).
ODD = ["12", " 12", "12 ", "+7", "-3", "1.0", "1e2", "1_0", "12\\13", "\\5", "", "  ", "A\\B "]
ODD += ["20240131", "2024.01.31", "1.2.3", " 1.2", "1.2\\3.4", "120000.5", "12:30", "a\0"]
ODD += ["\t1.2", "1.2\x85", "\xa01.2\\ 3", "\t12", "1\x0b", "\xe9t\xe9"]
KEYWORDS = {
    "InstanceNumber": "IS",
    "NumberOfFrames": "IS",
    "SeriesNumber": "IS",
    "ContentDate": "DA",
    "StudyDate": "DA",
    "ContentTime": "TM",
    "StudyTime": "TM",
    "AcquisitionDateTime": "DT",
    "ImageType": "CS",
    "Modality": "CS",
    "PatientSex": "CS",
    "PatientAge": "AS",
    "SOPInstanceUID": "UI",
    "SeriesInstanceUID": "UI",
    "StudyInstanceUID": "UI",
    "SOPClassUID": "UI",
}


N_MUTANTS = 150


def test_index_values_from_raw_bytes_equal_pydicom_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path in _corpus(tmp_path):
        assert _outcome(path) == _through_pydicom(path, monkeypatch), path
    rng = random.Random(7)
    source = ct_series(tmp_path / "src", 1, rows=16, columns=16)[0]
    for number in range(N_MUTANTS):
        ds = dcmread(source)
        for _ in range(rng.randint(1, 5)):
            keyword, vr = rng.choice(list(KEYWORDS.items()))
            text = rng.choice(ODD)
            if rng.random() < 0.5:
                text = "".join(rng.choices("0 .\\+-e9\t\xa0", k=6))
            value = text.encode("latin-1")
            value += b" " * (len(value) % 2)
            tag = BaseTag(tag_for_keyword(keyword) or 0)
            ds[tag] = RawDataElement(tag, vr, len(value), value, 0, False, True)
        for keyword, number_value in (("Rows", rng.choice([0, 7, 65535])), ("Columns", 3)):
            setattr(ds, keyword, number_value)
        if number % 2:
            ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        path = tmp_path / f"v{number}.dcm"
        ds.save_as(path, enforce_file_format=True)
        assert _outcome(path) == _through_pydicom(path, monkeypatch), (path, number)
