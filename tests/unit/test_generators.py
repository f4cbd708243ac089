"""The synthetic data generators write what tests and benchmarks rely on."""

from __future__ import annotations

import shutil
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from tests.generators import MULTIFRAME_FRAME_BYTES, ct_series, large_multiframe


def test_ct_series_is_one_series_in_order(tmp_path: Path) -> None:
    paths = ct_series(tmp_path, 4, rows=64, columns=48)

    datasets = [pydicom.dcmread(path) for path in paths]

    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert len({ds.SOPInstanceUID for ds in datasets}) == 4
    assert [ds.InstanceNumber for ds in datasets] == [1, 2, 3, 4]
    assert len({float(ds.ImagePositionPatient[2]) for ds in datasets}) == 4
    for ds in datasets:
        assert ds.SOPClassUID == CTImageStorage
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.pixel_array.shape == (64, 48)
        assert ds.pixel_array.dtype == np.int16


def test_ct_pixels_stay_within_bits_stored_and_vary(tmp_path: Path) -> None:
    first, second = (pydicom.dcmread(p).pixel_array for p in ct_series(tmp_path, 2))

    assert first.min() >= -2048
    assert first.max() <= 2047
    assert first.std() > 100
    assert not np.array_equal(first, second)


def test_ct_series_is_deterministic_per_seed(tmp_path: Path) -> None:
    first = ct_series(tmp_path / "a", 2, rows=32, columns=32, seed=7)
    again = ct_series(tmp_path / "b", 2, rows=32, columns=32, seed=7)
    other = ct_series(tmp_path / "c", 2, rows=32, columns=32, seed=8)

    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert pydicom.dcmread(first[0]).SOPInstanceUID != pydicom.dcmread(other[0]).SOPInstanceUID


def test_ct_series_keeps_a_given_study_and_patient(tmp_path: Path) -> None:
    paths = ct_series(
        tmp_path,
        1,
        rows=16,
        columns=16,
        patient_name="DOE^JANE",
        patient_id="P7",
        study_uid="1.2.3",
    )

    ds = pydicom.dcmread(paths[0])
    assert (str(ds.PatientName), ds.PatientID, ds.StudyInstanceUID) == ("DOE^JANE", "P7", "1.2.3")


def test_large_multiframe_reads_back_with_every_frame(tmp_path: Path) -> None:
    frames = 3
    path = large_multiframe(tmp_path / "big.dcm", frames * MULTIFRAME_FRAME_BYTES + 1000)

    ds = pydicom.dcmread(path)

    assert ds.NumberOfFrames == frames
    assert len(ds.PixelData) == frames * MULTIFRAME_FRAME_BYTES
    assert ds.pixel_array.shape == (frames, ds.Rows, ds.Columns)
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert "PixelData" not in pydicom.dcmread(path, stop_before_pixels=True)


def test_large_multiframe_memory_does_not_grow_with_size(tmp_path: Path) -> None:
    def peak_bytes(size: int) -> int:
        tracemalloc.start()
        try:
            large_multiframe(tmp_path / f"{size}.dcm", size)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small = peak_bytes(16 * MULTIFRAME_FRAME_BYTES)
    # Eight times the frames; holding the pixel data would need 64 MB more.
    large = peak_bytes(128 * MULTIFRAME_FRAME_BYTES)

    assert large < small + 4 * MULTIFRAME_FRAME_BYTES


def test_large_multiframe_refuses_less_than_a_frame(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one frame"):
        large_multiframe(tmp_path / "tiny.dcm", MULTIFRAME_FRAME_BYTES - 1)


def _dciodvfy_errors(path: Path) -> list[str]:
    # dciodvfy reports on stderr; warnings are acceptable, errors are not.
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    return [line for line in output.splitlines() if line.startswith("Error")]


@pytest.mark.peer
def test_generated_objects_pass_dciodvfy(tmp_path: Path) -> None:
    if shutil.which("dciodvfy") is None:
        pytest.skip("install dicom3tools (apt-get install dicom3tools)")
    ct = ct_series(tmp_path / "ct", 2, rows=64, columns=64)
    big = large_multiframe(tmp_path / "big.dcm", 2 * MULTIFRAME_FRAME_BYTES)

    for path in [*ct, big]:
        assert _dciodvfy_errors(path) == [], path.name
