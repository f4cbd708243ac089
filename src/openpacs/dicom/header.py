"""A Part-10 file's header read the way ``dcmread(stop_before_pixels=True)`` reads it, faster.

pydicom's reader walks every element through a general generator (debug hooks, stop callbacks,
per-element file reads), which costs ~0.3 ms for a CT slice's ~60 elements. Ingest reads one
header per received object, so this module walks the common layout itself, straight from one
buffered read, and hands back the same thing pydicom would: a ``FileDataset`` of raw (not yet
converted) elements with the same tags, VRs, lengths, values, value offsets, deferred values,
character set and transfer syntax flags, so everything downstream (charset detection, value
conversion, deferred reads) runs pydicom's own code unchanged.

Anything off the common path is handed to ``dcmread`` whole, so odd files behave exactly as
before, errors and warnings included: no 'DICM' preamble, file meta without explicit VRs or
with undefined lengths, a dataset whose first element contradicts the transfer syntax, big
endian, deflate, private transfer syntaxes, command elements, unknown VRs, undefined lengths
other than sequences, values running past the end of the file.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, BinaryIO, cast

from pydicom import dcmread
from pydicom.charset import convert_encodings, default_encoding
from pydicom.datadict import _dictionary_vr_fast
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataelem import empty_value_for_VR as _empty_value
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.filereader import read_sequence
from pydicom.tag import BaseTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    PrivateTransferSyntaxes,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, VR
from pydicom.values import convert_string

__all__ = ["read_header"]

# One read takes the header of almost any object (a CT slice's is ~1.5 KB).
FIRST_READ = 64 * 1024
_PREAMBLE = 128
_UNDEFINED = 0xFFFFFFFF
_CHARSET = 0x00080005
_ITEM_DELIMITER = 0xFFFEE00D
_PIXEL_DATA = frozenset({0x7FE00010, 0x7FE00009, 0x7FE00008})
_LONG_VRS = frozenset(vr.encode() for vr in EXPLICIT_VR_LENGTH_32)
_KNOWN_VRS = {vr.encode(): str(vr) for vr in VR}
_EXPLICIT = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHL")
_LENGTH_32 = struct.Struct("<L")


class _OffPath(Exception):
    """The file leaves the common layout: pydicom reads it instead."""


def read_header(path: Path, *, defer_size: int | None) -> FileDataset:
    """``dcmread(path, stop_before_pixels=True, defer_size=defer_size)``, faster."""
    with open(str(path), "rb") as fp:  # a str name, as dcmread's own open gives
        try:
            return _read(fp, defer_size)
        except Exception:
            pass
    return dcmread(path, stop_before_pixels=True, defer_size=defer_size)


class _Buffer:
    """The file's bytes from `base` on, read ahead in blocks."""

    def __init__(self, fp: BinaryIO) -> None:
        self.fp = fp
        self.size = os.fstat(fp.fileno()).st_size
        self.base = 0
        self.data = fp.read(FIRST_READ)

    def need(self, end: int) -> bool:
        """Make bytes up to file offset `end` available; False past the end of the file (a
        hostile length never becomes a huge read)."""
        if end > self.size:
            return False
        while end > self.base + len(self.data):
            self.fp.seek(self.base + len(self.data))
            more = self.fp.read(max(FIRST_READ, end - self.base - len(self.data)))
            if not more:
                return False
            self.data += more
        return True

    def at(self, offset: int) -> int:
        return offset - self.base

    def restart(self, offset: int) -> None:
        """Drop what was read; continue reading at file offset `offset`."""
        self.fp.seek(offset)
        self.base = offset
        self.data = self.fp.read(FIRST_READ)


def _read(fp: BinaryIO, defer_size: int | None) -> FileDataset:
    buf = _Buffer(fp)
    data = buf.data
    if len(data) < _PREAMBLE + 4 or data[_PREAMBLE : _PREAMBLE + 4] != b"DICM":
        raise _OffPath("no preamble")
    preamble = data[:_PREAMBLE]
    meta_elements, offset = _file_meta(buf, _PREAMBLE + 4)
    file_meta = FileMetaDataset(cast(Any, meta_elements))
    file_meta.set_original_encoding(False, True, default_encoding)
    # pydicom converts these two on reading (its checks of the file meta): so does this.
    if meta_elements:
        _ = file_meta[next(iter(meta_elements))]
    _ = file_meta.get("FileMetaInformationGroupLength")
    syntax = file_meta.get("TransferSyntaxUID")
    if syntax is None or syntax in (ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian):
        raise _OffPath("transfer syntax read by pydicom")
    if syntax in PrivateTransferSyntaxes:
        raise _OffPath("private transfer syntax")
    implicit = syntax == ImplicitVRLittleEndian
    if not buf.need(offset + 1):
        raise _OffPath("no dataset")  # pydicom then assumes implicit VR, whatever the syntax
    elements = _dataset(buf, offset, implicit, defer_size)
    # pydicom wraps the elements in a Dataset first and copies them into the FileDataset;
    # nothing of that first Dataset survives but its elements, so they go in directly.
    result = FileDataset(fp, elements, preamble, file_meta, implicit, True)
    result.set_original_encoding(implicit, True, result._character_set)
    return result


def _file_meta(buf: _Buffer, offset: int) -> tuple[dict[BaseTag, RawDataElement], int]:
    """Group 0002, explicit VR little endian; returns its elements and where the dataset
    starts."""
    elements: dict[BaseTag, RawDataElement] = {}
    while True:
        if not buf.need(offset + 8):
            if buf.at(offset) < len(buf.data):
                raise _OffPath("truncated file meta")
            return elements, offset
        group, element, vr, length = _EXPLICIT.unpack_from(buf.data, buf.at(offset))
        if group != 0x0002:
            return elements, offset
        name = _KNOWN_VRS.get(vr)
        if name is None:
            raise _OffPath("file meta without explicit VRs")
        start = offset + 8
        if vr in _LONG_VRS:
            if not buf.need(offset + 12):
                raise _OffPath("truncated file meta")
            (length,) = _LENGTH_32.unpack_from(buf.data, buf.at(offset + 8))
            start = offset + 12
        if length == _UNDEFINED or not buf.need(start + length):
            raise _OffPath("file meta element of undefined or excessive length")
        tag = BaseTag(group << 16 | element)
        value: Any = buf.data[buf.at(start) : buf.at(start) + length]
        if not length:
            value = _empty_value(name, raw=True)
        elements[tag] = RawDataElement(tag, name, length, value, start, False, True)
        offset = start + length


def _dataset(
    buf: _Buffer, offset: int, implicit: bool, defer_size: int | None
) -> dict[BaseTag, RawDataElement | DataElement]:
    """The top-level elements up to the pixel data, as pydicom's generator yields them.
    Written out flat: this loop runs once per element of every received object."""
    elements: dict[BaseTag, RawDataElement | DataElement] = {}
    encoding: Any = default_encoding
    unpack_explicit, unpack_implicit = _EXPLICIT.unpack_from, _IMPLICIT.unpack_from
    known_vrs, long_vrs, pixel_data = _KNOWN_VRS, _LONG_VRS, _PIXEL_DATA
    data, base = buf.data, buf.base
    first = True
    while True:
        at = offset - base
        if at + 12 > len(data):
            buf.need(offset + 12)
            data, base = buf.data, buf.base
            at = offset - base
            if at + 8 > len(data):
                if at < len(data):
                    raise _OffPath("truncated element header")
                return elements
        vr: str | None
        if implicit:
            group, element, length = unpack_implicit(data, at)
            vr = None
            start = offset + 8
            if first:
                vr_bytes = data[at + 4 : at + 6]
                if vr_bytes.isalpha() and vr_bytes.isupper():
                    raise _OffPath("explicit VR under an implicit syntax")
        else:
            group, element, vr_bytes, length = unpack_explicit(data, at)
            vr = known_vrs.get(vr_bytes)
            if vr is None:
                raise _OffPath("unknown or missing VR")
            start = offset + 8
            if vr_bytes in long_vrs:
                if at + 12 > len(data):
                    raise _OffPath("truncated element header")
                (length,) = _LENGTH_32.unpack_from(data, at + 8)
                start = offset + 12
        if first:
            if group == 0x0000:
                raise _OffPath("command elements")  # pydicom reads them apart
            first = False
        tag = group << 16 | element
        if tag in pixel_data:
            return elements
        if group == 0x0002 or group == 0xFFFE:
            raise _OffPath("file meta, item or delimiter in the dataset")
        btag = BaseTag(tag)
        if length == _UNDEFINED:
            if (vr if vr is not None else _dictionary_vr(tag)) != VR.SQ:
                raise _OffPath("undefined length outside a sequence")
            # pydicom parses such a sequence at once; so does this, with pydicom's code.
            buf.fp.seek(start)
            items = read_sequence(buf.fp, implicit, True, length, encoding)
            elements[btag] = DataElement(btag, VR.SQ, items, start, is_undefined_length=True)
            offset = buf.fp.tell()
            buf.restart(offset)
            data, base = buf.data, buf.base
            continue
        end = start + length
        value: Any
        if defer_size is not None and length > defer_size and tag != _CHARSET:
            # Left on disk, read by pydicom when asked for (from the file's name).
            if end > buf.size:
                raise _OffPath("value runs past the end of the file")
            elements[btag] = RawDataElement(btag, vr, length, None, start, implicit, True)
            offset = end
            buf.restart(offset)
            data, base = buf.data, buf.base
            continue
        if end - base > len(data):
            if not buf.need(end):
                raise _OffPath("value runs past the end of the file")
            data, base = buf.data, buf.base
        value = data[start - base : end - base] if length else _empty_value(vr, raw=True)
        if tag == _CHARSET:
            encoding = convert_encodings(convert_string(value or b"", True))
        elements[btag] = RawDataElement(btag, vr, length, value, start, implicit, True)
        offset = end


def _dictionary_vr(tag: int) -> str | None:
    try:
        return str(_dictionary_vr_fast(tag))
    except KeyError:
        return None  # pydicom would look for an item tag ahead: its business
