"""Frame N of a stored object without reading or decoding the others.

A viewer asks for frames one by one (WADO-RS `/frames/N`, rendered frames, cine); decoding a
120-frame object to serve its 88th frame would cost 88 wasted decodes and the whole object in
memory. So each file's frame layout (where each frame's bytes lie) is worked out once — from the
Extended Offset Table, the Basic Offset Table, or one scan over the fragment headers — cached by
path, size and modification time, and frames are then read with one seek each.

Native pixel data is addressed by arithmetic. Deflated objects have no byte offsets into the
dataset; they are inflated once in memory (they are rare and small in practice).
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.encaps import encapsulate
from pydicom.errors import InvalidDicomError
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
)

ITEM = 0xE000FFFE  # (FFFE,E000) read as one little-endian uint32
SEQUENCE_DELIMITER = 0xE0DDFFFE
PIXEL_DATA_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_LAYOUT_CACHE_SIZE = 512

# Whether the fragment at (file offset, length) begins a new frame.
StartTest = Callable[[int, int], bool]


class FrameError(ValueError):
    """The object has no such frame, or its pixel data cannot be located."""


class _Deflated(FrameError):
    """Raised by the layout of a deflated object: its frames are found after inflating it."""


@dataclass(frozen=True)
class PixelDescription:
    """The Image Pixel module values a frame needs to be decoded."""

    transfer_syntax_uid: str
    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric_interpretation: str
    planar_configuration: int
    number_of_frames: int

    @property
    def frame_bits(self) -> int:
        return self.rows * self.columns * self.samples_per_pixel * self.bits_allocated

    @classmethod
    def from_dataset(cls, ds: Dataset, transfer_syntax_uid: str) -> PixelDescription:
        try:
            return cls(
                transfer_syntax_uid=transfer_syntax_uid,
                rows=int(ds.Rows),
                columns=int(ds.Columns),
                samples_per_pixel=int(ds.get("SamplesPerPixel") or 1),
                bits_allocated=int(ds.BitsAllocated),
                bits_stored=int(ds.get("BitsStored") or ds.BitsAllocated),
                pixel_representation=int(ds.get("PixelRepresentation") or 0),
                photometric_interpretation=str(ds.get("PhotometricInterpretation") or "")
                or "MONOCHROME2",
                planar_configuration=int(ds.get("PlanarConfiguration") or 0),
                number_of_frames=max(1, int(ds.get("NumberOfFrames") or 1)),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise FrameError(f"the Image Pixel module is incomplete: {exc}") from exc


@dataclass(frozen=True)
class FrameLayout:
    """Where each frame's bytes are: per frame, the (file offset, length) of its fragments.

    For native data each frame is one span; `bit_offset` is non-zero only for 1-bit data whose
    frames do not start on a byte boundary.
    """

    pixels: PixelDescription
    encapsulated: bool
    spans: tuple[tuple[tuple[int, int], ...], ...]
    how: str  # "native", "extended offset table", "basic offset table", "fragments", "scan"

    @property
    def number_of_frames(self) -> int:
        return len(self.spans)


def layout(path: str | os.PathLike[str]) -> FrameLayout:
    """The frame layout of a stored file, computed once per file version and cached."""
    stat = os.stat(path)
    return _cached_layout(os.fspath(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=_LAYOUT_CACHE_SIZE)
def _cached_layout(path: str, size: int, mtime_ns: int) -> FrameLayout:
    del size, mtime_ns  # part of the cache key only: a rewritten file gets a new layout
    with open(path, "rb") as fp:
        return _layout(fp)


def _layout(fp: BinaryIO) -> FrameLayout:
    try:
        ds = dcmread(fp, stop_before_pixels=True)
    except (InvalidDicomError, EOFError, OSError, ValueError) as exc:
        raise FrameError(f"not a readable DICOM file: {exc}") from exc
    syntax = str(ds.file_meta.get("TransferSyntaxUID") or "")
    if not syntax:
        raise FrameError("file meta information has no TransferSyntaxUID")
    if syntax == DeflatedExplicitVRLittleEndian:
        raise _Deflated("deflated objects have no frame offsets")
    pixels = PixelDescription.from_dataset(ds, syntax)
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        raise FrameError("the object has no pixel data")
    big_endian = syntax == ExplicitVRBigEndian
    tag_format = ">HH" if big_endian else "<HH"
    group, element = struct.unpack(tag_format, head[:4])
    if (group << 16 | element) not in PIXEL_DATA_TAGS:
        raise FrameError("the object has no pixel data")
    explicit = not UID(syntax).is_implicit_VR
    if explicit and head[4:6] in (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"):
        length = struct.unpack(">I" if big_endian else "<I", head[8:12])[0]
        value_start = start + 12
    elif explicit:
        length = struct.unpack(">H" if big_endian else "<H", head[6:8])[0]
        value_start = start + 8
    else:
        length = struct.unpack("<I", head[4:8])[0]
        value_start = start + 8
    if length != 0xFFFFFFFF:
        return _native_layout(pixels, value_start, length)
    fp.seek(value_start)
    return _encapsulated_layout(fp, pixels, ds)


def _native_layout(pixels: PixelDescription, value_start: int, length: int) -> FrameLayout:
    frame_bits = pixels.frame_bits
    if pixels.photometric_interpretation == "YBR_FULL_422":
        frame_bits = frame_bits * 2 // 3  # two chroma samples shared by each pair of pixels
    count = pixels.number_of_frames
    if frame_bits * count > length * 8:
        raise FrameError(
            f"pixel data holds {length} bytes, {count} frames need {(frame_bits * count + 7) // 8}"
        )
    spans = []
    for index in range(count):
        first_bit = index * frame_bits
        first_byte = first_bit // 8
        end_byte = (first_bit + frame_bits + 7) // 8
        spans.append(((value_start + first_byte, end_byte - first_byte),))
    return FrameLayout(pixels, False, tuple(spans), "native")


def _fragments(fp: BinaryIO) -> tuple[bytes, list[tuple[int, int]]]:
    """The Basic Offset Table's bytes and each fragment's (offset, length), by header scan."""
    tag, length = _item_header(fp)
    if tag != ITEM:
        raise FrameError("encapsulated pixel data does not start with an item")
    table = fp.read(length)
    fragments = []
    while True:
        position = fp.tell()
        header = fp.read(8)
        if len(header) < 8:
            break  # a missing sequence delimiter: tolerate, as dcmtk and pydicom do
        tag, length = struct.unpack("<II", header)
        if tag == SEQUENCE_DELIMITER:
            break
        if tag != ITEM:
            raise FrameError(f"unexpected tag in encapsulated pixel data at byte {position}")
        fragments.append((position + 8, length))
        fp.seek(length, os.SEEK_CUR)
    return table, fragments


def _item_header(fp: BinaryIO) -> tuple[int, int]:
    header = fp.read(8)
    if len(header) < 8:
        raise FrameError("encapsulated pixel data is truncated")
    tag, length = struct.unpack("<II", header)
    return int(tag), int(length)


def _encapsulated_layout(fp: BinaryIO, pixels: PixelDescription, ds: Dataset) -> FrameLayout:
    items_start = fp.tell()
    table, fragments = _fragments(fp)
    if not fragments:
        raise FrameError("encapsulated pixel data holds no fragments")
    first_item = (
        items_start + 8 + len(table)
    )  # the first fragment's item tag: offsets count from here
    count = pixels.number_of_frames
    extended = ds.get("ExtendedOffsetTable")
    lengths = ds.get("ExtendedOffsetTableLengths")
    if extended and lengths:
        offsets = np.frombuffer(bytes(extended), "<u8")
        sizes = np.frombuffer(bytes(lengths), "<u8")
        spans = tuple(
            ((first_item + int(off) + 8, int(size)),)
            for off, size in zip(offsets, sizes, strict=False)
        )
        return _checked(FrameLayout(pixels, True, spans, "extended offset table"), count)
    if table:
        starts = {first_item + int(off) + 8 for off in np.frombuffer(table, "<u4")}
        grouped = _group(fragments, lambda offset, _: offset in starts)
        return _checked(FrameLayout(pixels, True, grouped, "basic offset table"), count)
    if count == 1:
        return FrameLayout(pixels, True, (tuple(fragments),), "fragments")
    if len(fragments) == count:
        return FrameLayout(pixels, True, tuple((f,) for f in fragments), "fragments")
    grouped = _group(fragments, _frame_start_check(fp))
    return _checked(FrameLayout(pixels, True, grouped, "scan"), count)


def _frame_start_check(fp: BinaryIO) -> StartTest:
    """Whether a fragment begins a frame, from the codestream's first bytes (JPEG SOI,
    J2K SOC, JP2 signature box): every codec that splits a frame over several fragments marks
    where a frame starts (RLE never splits one)."""

    def starts_frame(offset: int, length: int) -> bool:
        fp.seek(offset)
        lead = fp.read(min(length, 12))
        return (
            lead.startswith(b"\xff\xd8")
            or lead.startswith(b"\xff\x4f\xff\x51")
            or lead[4:8] == b"jP  "
        )

    return starts_frame


def _group(
    fragments: Sequence[tuple[int, int]], starts: StartTest
) -> tuple[tuple[tuple[int, int], ...], ...]:
    frames: list[list[tuple[int, int]]] = []
    for offset, length in fragments:
        if not frames or starts(offset, length):
            frames.append([])
        frames[-1].append((offset, length))
    return tuple(tuple(frame) for frame in frames)


def _checked(found: FrameLayout, expected: int) -> FrameLayout:
    if found.number_of_frames < expected:
        raise FrameError(
            f"NumberOfFrames is {expected} but the pixel data holds {found.number_of_frames} "
            f"frames ({found.how})"
        )
    if found.number_of_frames > expected:
        return FrameLayout(found.pixels, found.encapsulated, found.spans[:expected], found.how)
    return found


def read_frame(path: str | os.PathLike[str], index: int) -> bytes:
    """Frame `index` (0-based) as stored: native bytes, or the codestream without item tags.

    Deflated objects give their inflated native bytes."""
    return _frame(path, index)[1]


def _frame(path: str | os.PathLike[str], index: int) -> tuple[PixelDescription, bytes]:
    try:
        found = layout(path)
    except _Deflated:
        return _inflated_frame(path, index)
    spans = _spans(found, index)
    with open(path, "rb") as fp:
        data = b"".join(_read_span(fp, offset, length) for offset, length in spans)
    if found.encapsulated:
        return found.pixels, _strip_padding(data)
    return found.pixels, _native_frame(data, index, found.pixels)


def _inflated_frame(path: str | os.PathLike[str], index: int) -> tuple[PixelDescription, bytes]:
    ds = dcmread(path)
    data = ds.get("PixelData")
    if data is None:
        raise FrameError("the object has no pixel data")
    # Inflated, the frame is plain Explicit VR Little Endian data.
    pixels = PixelDescription.from_dataset(ds, ExplicitVRLittleEndian)
    ((offset, length),) = _spans(_native_layout(pixels, 0, len(data)), index)
    return pixels, _native_frame(data[offset : offset + length], index, pixels)


def _native_frame(data: bytes, index: int, pixels: PixelDescription) -> bytes:
    return _realign_bits(data, index, pixels) if pixels.bits_allocated == 1 else data


def _spans(found: FrameLayout, index: int) -> tuple[tuple[int, int], ...]:
    if not 0 <= index < found.number_of_frames:
        raise FrameError(
            f"frame {index + 1} does not exist: the object has {found.number_of_frames}"
        )
    return found.spans[index]


def _read_span(fp: BinaryIO, offset: int, length: int) -> bytes:
    fp.seek(offset)
    data = fp.read(length)
    if len(data) != length:
        raise FrameError("the file ends inside the pixel data")
    return data


def _realign_bits(data: bytes, index: int, pixels: PixelDescription) -> bytes:
    """A 1-bit frame that starts mid-byte, shifted to start on a byte of its own."""
    skip = index * pixels.frame_bits % 8
    if not skip:
        return data[: (pixels.frame_bits + 7) // 8]
    bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
    return np.packbits(bits[skip : skip + pixels.frame_bits], bitorder="little").tobytes()


def _strip_padding(data: bytes) -> bytes:
    """Fragments are padded to even length; a trailing zero after a JPEG EOI is padding."""
    if data.endswith(b"\xff\xd9\x00"):
        return data[:-1]
    return data


def decode_frame(path: str | os.PathLike[str], index: int, *, as_rgb: bool = True) -> np.ndarray:
    """Frame `index` (0-based) decoded: shape (rows, columns) or (rows, columns, samples), the
    stored values before any LUT, as `pydicom.pixels.pixel_array(path, index=index)` gives it.

    Only this frame's bytes are read and handed to the decoder."""
    pixels, data = _frame(path, index)
    return decode_bytes(pixels, data, as_rgb=as_rgb)


def decode_bytes(pixels: PixelDescription, frame: bytes, *, as_rgb: bool = True) -> np.ndarray:
    """One frame's bytes as `read_frame` returns them, decoded."""
    decoder = get_decoder(UID(pixels.transfer_syntax_uid))
    if not decoder.is_available:
        raise FrameError(f"no decoder available for {UID(pixels.transfer_syntax_uid).name}")
    native = not UID(pixels.transfer_syntax_uid).is_compressed
    source = frame if native else encapsulate([frame])
    # pydicom annotates these keywords as DecodeOptions (a TypedDict), hence Any.
    options: dict[str, Any] = {
        "rows": pixels.rows,
        "columns": pixels.columns,
        "samples_per_pixel": pixels.samples_per_pixel,
        "bits_allocated": pixels.bits_allocated,
        "bits_stored": pixels.bits_stored,
        "pixel_representation": pixels.pixel_representation,
        "photometric_interpretation": pixels.photometric_interpretation,
        "planar_configuration": pixels.planar_configuration,
        "number_of_frames": 1,
        "pixel_keyword": "PixelData",
        "as_rgb": as_rgb,
    }
    try:
        array, _ = decoder.as_array(source, index=0, **options)
    except Exception as exc:  # decoders raise many kinds on corrupt codestreams
        raise FrameError(f"frame cannot be decoded: {type(exc).__name__}: {exc}") from exc
    return array


def iter_frames(path: str | os.PathLike[str]) -> Iterator[np.ndarray]:
    """Every frame decoded, one at a time (for cine and transcoding without the whole object)."""
    for index in range(layout(path).number_of_frames):
        yield decode_frame(path, index)
