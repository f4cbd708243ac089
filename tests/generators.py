"""Synthetic DICOM data for tests and benchmarks.

`ct_series` writes a CT series that passes `dciodvfy` with no errors; `large_multiframe` writes an
object of any size without ever holding its pixel data in memory. Both are deterministic for a
given seed, so a benchmark sends byte-identical data to every system it compares.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    generate_uid,
)

# Fixed so that files written on different days are identical for the same seed.
_DATE = "20240102"
_TIME = "030405"

_PIXEL_SPACING_MM = 0.7
_SLICE_THICKNESS_MM = 1.25

MULTIFRAME_ROWS = 512
MULTIFRAME_COLUMNS = 512
MULTIFRAME_FRAME_BYTES = MULTIFRAME_ROWS * MULTIFRAME_COLUMNS * 2
# A defined-length OW value carries a 32-bit even length; 0xFFFFFFFF means "undefined".
_MAX_PIXEL_BYTES = 0xFFFFFFFE
# Frames are drawn from a small pool so large files cost little CPU yet do not compress to nothing.
_FRAME_POOL = 8


def _uid(seed: int, *names: str) -> UID:
    return generate_uid(entropy_srcs=["openpacs-generators", str(seed), *names])


def _file_meta(sop_class: UID, sop_instance: UID) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return meta


def _patient_and_study(
    ds: Dataset, *, patient_name: str, patient_id: str, study_uid: str, seed: int
) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = _DATE
    ds.StudyTime = _TIME
    ds.ReferringPhysicianName = ""
    ds.StudyID = f"S{seed}"
    ds.AccessionNumber = f"ACC{seed:06d}"
    ds.StudyDescription = "openpacs synthetic data"


def _grayscale_pixel_module(ds: Dataset, rows: int, columns: int, *, signed: bool) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 1 if signed else 0
    ds.RescaleIntercept = "0" if signed else "-1024"
    ds.RescaleSlope = "1"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"


def _ct_template(
    rows: int, columns: int, patient_name: str, patient_id: str, study_uid: str, seed: int
) -> Dataset:
    ds = Dataset()
    _patient_and_study(
        ds, patient_name=patient_name, patient_id=patient_id, study_uid=study_uid, seed=seed
    )
    ds.SOPClassUID = CTImageStorage
    ds.Modality = "CT"
    ds.SeriesInstanceUID = _uid(seed, study_uid, "series")
    ds.SeriesNumber = 1
    ds.SeriesDate = _DATE
    ds.SeriesTime = _TIME
    ds.SeriesDescription = "Synthetic phantom"
    # Type 2C: dciodvfy cannot evaluate the condition (paired body part), so it wants it present.
    ds.Laterality = ""
    ds.PatientPosition = "HFS"
    ds.FrameOfReferenceUID = _uid(seed, study_uid, "frame-of-reference")
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "openpacs"
    ds.ManufacturerModelName = "generators"
    ds.ContentDate = _DATE
    ds.ContentTime = _TIME
    ds.AcquisitionDate = _DATE
    ds.AcquisitionTime = _TIME
    ds.AcquisitionNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PixelSpacing = [str(_PIXEL_SPACING_MM), str(_PIXEL_SPACING_MM)]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.SliceThickness = str(_SLICE_THICKNESS_MM)
    ds.KVP = "120"
    _grayscale_pixel_module(ds, rows, columns, signed=True)
    return ds


class _Phantom:
    """A noisy body section with lungs, spine and aorta in Hounsfield units; lungs vary along z.

    Everything that does not depend on z is computed once, and each slice takes its noise as a
    random window of one larger noise field, so a slice costs a few array passes, not a fresh
    quarter-million normal draws.
    """

    def __init__(self, rows: int, columns: int, rng: np.random.Generator) -> None:
        y, x = np.ogrid[-1.0 : 1.0 : complex(0, rows), -1.0 : 1.0 : complex(0, columns)]
        y = y.astype(np.float32)
        x = x.astype(np.float32)
        body = np.full((rows, columns), -1000.0, dtype=np.float32)
        body[(x / 0.85) ** 2 + (y / 0.65) ** 2 <= 1.0] = 40.0
        body[(x / 0.12) ** 2 + ((y - 0.45) / 0.12) ** 2 <= 1.0] = 700.0
        body[(x / 0.1) ** 2 + ((y + 0.1) / 0.1) ** 2 <= 1.0] = 200.0
        self._body = body
        # Squared elliptical distance from the nearer lung centre: a lung of radius r is <= r**2.
        self._lungs = np.minimum((x - 0.4) ** 2, (x + 0.4) ** 2) + (y / 1.6) ** 2
        self._noise = rng.standard_normal((2 * rows, 2 * columns), dtype=np.float32) * 20.0
        self._rng = rng

    def pixels(self, z: float, *, signed: bool) -> bytes:
        """Little-endian 16-bit pixels of the slice at z in [0, 1], within 12 stored bits.

        Lungs are smallest at both ends so neighbouring slices differ. Unsigned data stores
        HU + 1024, which a Rescale Intercept of -1024 undoes.
        """
        rows, columns = self._body.shape
        top = int(self._rng.integers(rows))
        left = int(self._rng.integers(columns))
        radius = 0.25 + 0.1 * np.sin(np.pi * z)
        image = np.where(self._lungs <= radius**2, np.float32(-850.0), self._body)
        image += self._noise[top : top + rows, left : left + columns]
        if signed:
            return np.clip(image, -2048, 2047).astype("<i2").tobytes()
        image += 1024.0
        return np.clip(image, 0, 4095).astype("<u2").tobytes()


def ct_series(
    out_dir: Path,
    count: int,
    *,
    rows: int = 512,
    columns: int = 512,
    patient_name: str = "BENCH^CT",
    patient_id: str = "BENCH001",
    study_uid: str | None = None,
    seed: int = 0,
) -> list[Path]:
    """Write `count` CT slices of one series to `out_dir` and return their paths in order."""
    if count < 1:
        raise ValueError("count must be at least 1")
    out_dir.mkdir(parents=True, exist_ok=True)
    study = study_uid or _uid(seed, "study")
    ds = _ct_template(rows, columns, patient_name, patient_id, study, seed)
    phantom = _Phantom(rows, columns, np.random.default_rng(seed))
    paths = []
    for index in range(count):
        number = index + 1
        position = -index * _SLICE_THICKNESS_MM
        sop_uid = _uid(seed, study, "instance", str(number))
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = number
        ds.ImagePositionPatient = ["-179.2", "-179.2", f"{position:.2f}"]
        ds.SliceLocation = f"{position:.2f}"
        ds.file_meta = _file_meta(CTImageStorage, sop_uid)
        ds.PixelData = phantom.pixels(index / max(count - 1, 1), signed=True)
        path = out_dir / f"CT{number:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def _multiframe_header(frames: int, seed: int) -> Dataset:
    ds = Dataset()
    study = _uid(seed, "big-study")
    _patient_and_study(
        ds, patient_name="BENCH^BIG", patient_id="BENCHBIG", study_uid=study, seed=seed
    )
    sop_instance = _uid(seed, study, "instance")
    ds.SOPClassUID = MultiFrameGrayscaleWordSecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_instance
    ds.Modality = "OT"
    ds.SeriesInstanceUID = _uid(seed, study, "series")
    ds.SeriesNumber = 1
    ds.Laterality = ""
    ds.ConversionType = "WSD"
    ds.InstanceNumber = 1
    ds.ContentDate = _DATE
    ds.ContentTime = _TIME
    ds.PatientOrientation = ""
    ds.BurnedInAnnotation = "NO"
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.NumberOfFrames = frames
    # Frame Increment Pointer must name an attribute; (0018,2002) Frame Label Vector is the one the
    # SC Multi-frame Vector module defines for frames that are just a sequence of pages.
    ds.FrameIncrementPointer = 0x00182002
    ds.FrameLabelVector = [str(i) for i in range(1, frames + 1)]
    # The Word SC IOD allows unsigned pixels only, so values are stored as HU + 1024.
    _grayscale_pixel_module(ds, MULTIFRAME_ROWS, MULTIFRAME_COLUMNS, signed=False)
    ds.RescaleType = "HU"
    ds.PresentationLUTShape = "IDENTITY"
    ds.file_meta = _file_meta(MultiFrameGrayscaleWordSecondaryCaptureImageStorage, sop_instance)
    return ds


def _pixel_data_element_header(length: int) -> bytes:
    # Explicit VR little endian, OW: tag, VR, two reserved bytes, 32-bit length (PS3.5 7.1.2).
    return struct.pack("<HH2s2xI", 0x7FE0, 0x0010, b"OW", length)


def _frames(count: int, seed: int) -> Iterator[bytes]:
    phantom = _Phantom(MULTIFRAME_ROWS, MULTIFRAME_COLUMNS, np.random.default_rng(seed))
    pool = [phantom.pixels(i / _FRAME_POOL, signed=False) for i in range(min(count, _FRAME_POOL))]
    for index in range(count):
        yield pool[index % len(pool)]


def large_multiframe(path: Path, size_bytes: int, *, seed: int = 0) -> Path:
    """Write a multi-frame word SC object of about `size_bytes`, streaming its frames to disk."""
    frames = size_bytes // MULTIFRAME_FRAME_BYTES
    if frames < 1:
        raise ValueError(f"size_bytes must be at least one frame ({MULTIFRAME_FRAME_BYTES} bytes)")
    pixel_bytes = frames * MULTIFRAME_FRAME_BYTES
    if pixel_bytes > _MAX_PIXEL_BYTES:
        raise ValueError(f"{pixel_bytes} bytes of pixel data do not fit a defined-length OW value")
    path.parent.mkdir(parents=True, exist_ok=True)
    # pydicom writes everything before (7FE0,0010); the pixel data is appended as raw frames.
    _multiframe_header(frames, seed).save_as(path, enforce_file_format=True)
    with path.open("ab") as out:
        out.write(_pixel_data_element_header(pixel_bytes))
        for frame in _frames(frames, seed):
            out.write(frame)
    return path
