"""Frame access: each frame found from the offset tables or one scan, without touching others."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import Dataset, dcmread
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.pixels.utils import pixel_array
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    RLELossless,
)

from openpacs.dicom import frames
from tests.conftest import sample

# pydicom-data files covering each way frames are found, with each source syntax.
SAMPLES = {
    "color3d_jpeg_baseline.dcm": "fragments",  # 120 frames, empty Basic Offset Table
    "emri_small_RLE.dcm": "basic offset table",
    "emri_small_jpeg_ls_lossless.dcm": "fragments",
    "emri_small_jpeg_2k_lossless.dcm": "fragments",
    "emri_small.dcm": "native",
    "emri_small_big_endian.dcm": "native",
    "rtdose.dcm": "native",  # 32-bit, implicit VR
    "SC_rgb_rle_2frame.dcm": "basic offset table",
    "SC_ybr_full_422_uncompressed.dcm": "native",
    "SC_rgb_jpeg_dcmtk.dcm": "basic offset table",
    "JPEG2000.dcm": "fragments",
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_each_frame_equals_pydicoms_decoding(name: str) -> None:
    path = sample(name)
    found = frames.layout(path)
    assert found.how == SAMPLES[name]
    ds = dcmread(path)
    assert found.number_of_frames == int(ds.get("NumberOfFrames") or 1)
    for index in sorted({0, found.number_of_frames // 2, found.number_of_frames - 1}):
        expected = pixel_array(path, index=index)
        np.testing.assert_array_equal(frames.decode_frame(path, index), expected)


def test_stored_frame_is_the_codestream_without_item_tags() -> None:
    path = sample("color3d_jpeg_baseline.dcm")
    ds = dcmread(path)
    expected = list(generate_frames(ds.PixelData, number_of_frames=120))
    for index in (0, 87, 119):
        stored = frames.read_frame(path, index)
        assert stored.startswith(b"\xff\xd8")
        assert stored.rstrip(b"\0") == expected[index].rstrip(b"\0")


def test_frame_88_of_120_decodes_only_that_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    path = sample("color3d_jpeg_baseline.dcm")
    ds = dcmread(path)
    wanted = list(generate_frames(ds.PixelData, number_of_frames=120))[87]
    handed: list[bytes] = []
    original = frames.decode_bytes

    def spy(pixels: frames.PixelDescription, frame: bytes, *, as_rgb: bool = True) -> np.ndarray:
        handed.append(frame)
        return original(pixels, frame, as_rgb=as_rgb)

    monkeypatch.setattr(frames, "decode_bytes", spy)
    decoded = frames.decode_frame(path, 87)
    assert len(handed) == 1, "one frame handed to the decoder"
    assert handed[0].rstrip(b"\0") == wanted.rstrip(b"\0")
    np.testing.assert_array_equal(decoded, pixel_array(path, index=87))


def _monochrome(tmp_path: Path, name: str, count: int, bits: int = 8) -> tuple[Dataset, Path]:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.2"
    ds.SOPInstanceUID = "1.2.3.4"
    ds.Rows, ds.Columns = 4, 6
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = count
    return ds, tmp_path / name


def _save(ds: Dataset, path: Path, syntax: str) -> Path:
    ds.file_meta = frames_meta(syntax)
    ds.save_as(path, enforce_file_format=True)
    return path


def frames_meta(syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7.2")
    meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
    meta.TransferSyntaxUID = UID(syntax)
    return meta


def _rle_frames(count: int) -> tuple[list[np.ndarray], list[bytes]]:
    from pydicom.pixels.encoders.base import RLELosslessEncoder

    arrays = [
        np.full((4, 6), 10 * i, np.uint8) + np.arange(24, dtype=np.uint8).reshape(4, 6)
        for i in range(count)
    ]
    options: dict[str, Any] = {
        "rows": 4, "columns": 6, "samples_per_pixel": 1, "bits_allocated": 8, "bits_stored": 8,
        "pixel_representation": 0, "photometric_interpretation": "MONOCHROME2",
        "number_of_frames": 1,
    }  # fmt: skip
    encoded = [RLELosslessEncoder.encode(a.tobytes(), **options) for a in arrays]
    return arrays, encoded


def test_extended_offset_table(tmp_path: Path) -> None:
    arrays, encoded = _rle_frames(5)
    ds, path = _monochrome(tmp_path, "eot.dcm", 5)
    ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(
        encoded
    )
    ds["PixelData"].is_undefined_length = True
    _save(ds, path, RLELossless)
    found = frames.layout(path)
    assert found.how == "extended offset table"
    for index in range(5):
        np.testing.assert_array_equal(frames.decode_frame(path, index), arrays[index])


@pytest.mark.parametrize(
    ("fragments", "has_bot", "how"), [(3, False, "scan"), (2, True, "basic offset table")]
)
def test_several_fragments_per_frame(
    tmp_path: Path, fragments: int, has_bot: bool, how: str
) -> None:
    source = sample("color3d_jpeg_baseline.dcm")
    original = dcmread(source)
    codestreams = list(generate_frames(original.PixelData, number_of_frames=120))[:4]
    original.PixelData = encapsulate(codestreams, fragments_per_frame=fragments, has_bot=has_bot)
    original.NumberOfFrames = 4
    path = tmp_path / "split.dcm"
    original.save_as(path)
    found = frames.layout(path)
    assert found.how == how
    assert [len(spans) for spans in found.spans] == [fragments] * 4
    np.testing.assert_array_equal(frames.decode_frame(path, 2), pixel_array(source, index=2))


def test_one_bit_frames_that_start_mid_byte(tmp_path: Path) -> None:
    ds, path = _monochrome(tmp_path, "bits.dcm", 3, bits=1)
    ds.Rows, ds.Columns = 3, 3  # 9 bits per frame: frames 1 and 2 start inside a byte
    rng = np.random.default_rng(1)
    bits = rng.integers(0, 2, 27, dtype=np.uint8)
    ds.PixelData = np.packbits(bits, bitorder="little").tobytes() + b"\0"
    _save(ds, path, ExplicitVRLittleEndian)
    for index in range(3):
        expected = bits[index * 9 : index * 9 + 9].reshape(3, 3)
        np.testing.assert_array_equal(frames.decode_frame(path, index), expected)


def test_deflated_object_frames(tmp_path: Path) -> None:
    ds, path = _monochrome(tmp_path, "deflated.dcm", 2, bits=16)
    pixels = np.arange(48, dtype=np.uint16).reshape(2, 4, 6)
    ds.PixelData = pixels.tobytes()
    _save(ds, path, DeflatedExplicitVRLittleEndian)
    assert frames.read_frame(path, 1) == pixels[1].tobytes()
    np.testing.assert_array_equal(frames.decode_frame(path, 1), pixels[1])


def test_layout_follows_a_rewritten_file(tmp_path: Path) -> None:
    ds, path = _monochrome(tmp_path, "rewritten.dcm", 2)
    ds.PixelData = bytes(range(48))
    _save(ds, path, ExplicitVRLittleEndian)
    assert frames.layout(path).number_of_frames == 2
    ds.NumberOfFrames = 1
    ds.PixelData = bytes(24)
    _save(ds, path, ExplicitVRLittleEndian)
    later = path.stat().st_mtime_ns + 1_000_000
    os.utime(path, ns=(later, later))
    assert frames.layout(path).number_of_frames == 1


BadCase = Callable[[Dataset], None]


def _too_short(ds: Dataset) -> None:
    ds.PixelData = bytes(30)  # two frames need 48


def _no_pixels(ds: Dataset) -> None:
    del ds.PixelData


@pytest.mark.parametrize(
    ("spoil", "reason"), [(_too_short, "pixel data holds 30 bytes"), (_no_pixels, "no pixel data")]
)
def test_unusable_pixel_data_is_a_clear_error(tmp_path: Path, spoil: BadCase, reason: str) -> None:
    ds, path = _monochrome(tmp_path, "bad.dcm", 2)
    ds.PixelData = bytes(48)
    spoil(ds)
    _save(ds, path, ExplicitVRLittleEndian)
    with pytest.raises(frames.FrameError, match=reason):
        frames.read_frame(path, 0)


def test_frame_out_of_range(tmp_path: Path) -> None:
    path = sample("emri_small_RLE.dcm")
    with pytest.raises(frames.FrameError, match="frame 11 does not exist: the object has 10"):
        frames.read_frame(path, 10)
    with pytest.raises(frames.FrameError):
        frames.read_frame(path, -1)


def test_truncated_encapsulated_file(tmp_path: Path) -> None:
    data = sample("emri_small_jpeg_2k_lossless.dcm").read_bytes()
    path = tmp_path / "truncated.dcm"
    path.write_bytes(data[: len(data) - 2000])
    with pytest.raises(frames.FrameError):
        frames.read_frame(path, 9)


def test_jpeg_fragment_padding_is_not_part_of_the_frame(tmp_path: Path) -> None:
    ds = dcmread(sample("color3d_jpeg_baseline.dcm"))
    first = next(generate_frames(ds.PixelData, number_of_frames=120))
    odd = first.rstrip(b"\0")
    assert odd.endswith(b"\xff\xd9")
    ds.PixelData = encapsulate([odd + b"\0" if len(odd) % 2 else odd])
    ds.NumberOfFrames = 1
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    path = tmp_path / "padded.dcm"
    ds.save_as(path)
    assert frames.read_frame(path, 0).endswith(b"\xff\xd9")
