"""Specific Character Set (0008,0005) know-how for ingest.

Three steps, kept apart so the archive can log and store each decision:

* :func:`decide_charset` looks at a freshly read header (raw elements, nothing decoded yet) and
  works out which character set its text really uses.
* :func:`apply_charset` makes pydicom decode that dataset's text with the decision.
* :func:`patch_specific_character_set` writes the decision into a stored Part-10 file without
  re-encoding anything else (the file may carry a gigabyte of pixel data).

Only the standard library and pydicom are used: no network, database or framework.
"""

from __future__ import annotations

import codecs
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.charset import STAND_ALONE_ENCODINGS, python_encoding
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
)

__all__ = [
    "CharsetDecision",
    "answer_charset",
    "apply_charset",
    "decide_charset",
    "patch_specific_character_set",
]

_CHARSET_TAG = BaseTag(0x00080005)
_GROUP_8_LENGTH_TAG = 0x00080000

# The VRs whose bytes (0008,0005) governs; every other VR is default repertoire or binary.
TEXT_VRS = frozenset({"SH", "LO", "ST", "LT", "UT", "PN", "UC"})

# pydicom's table is the working definition of "standard" here: a term it knows decodes
# without warnings, which is what the rest of the archive relies on.
_STANDARD_TERMS = frozenset(term for term in python_encoding if term)

# ISO 2022 IR 58 (GB 2312 as a code extension, PS3.5 K.2) designates its set with ESC $ ) A
# before the Chinese characters of each value and again after each PN delimiter. pydicom 3
# lists it among the encodings whose escapes Python's codec handles, but Python's
# 'iso_ir_58' is plain GB 2312: pydicom then writes the bytes without the escape and reads
# an escape as text. Off that list, pydicom adds the escape to each value and PN group when
# writing and strips it when reading: PS3.5 K.2's example, byte for byte (tests/unit).
pydicom.charset.handled_encodings = tuple(  # type: ignore[assignment]  # typed as 3 names
    encoding for encoding in pydicom.charset.handled_encodings if encoding != "iso_ir_58"
)

# Spellings seen in the wild whose intent is clear. GB2312 and CP936 go to GB18030 because it
# is a strict superset: whatever the modality wrote decodes the same way.
_ALIASES = {
    "GB2312": "GB18030",
    "GB 2312": "GB18030",
    "ISO_IR 58": "GB18030",
    "EUC-CN": "GB18030",
    "CP936": "GB18030",
    "UTF-8": "ISO_IR 192",
    "UTF8": "ISO_IR 192",
    "ISO 2022 IR 192": "ISO_IR 192",
}

_ISO_2022_TYPO = re.compile(r"ISO[ _-]?2022[ _-]?IR[ _-]?(\d+)")
_ISO_IR_TYPO = re.compile(r"ISO[ _-]?IR[ _-]?(\d+)")

# Python codec names (e.g. 'ISO-8859-7', 'latin1') map back to a term only where one term
# clearly owns the codec; shift_jis and the ISO 2022 codecs are left out on purpose.
_CODEC_TERMS = (
    "ISO_IR 100",
    "ISO_IR 101",
    "ISO_IR 109",
    "ISO_IR 110",
    "ISO_IR 126",
    "ISO_IR 127",
    "ISO_IR 138",
    "ISO_IR 144",
    "ISO_IR 148",
    "ISO_IR 166",
    "ISO_IR 192",
    "GBK",
    "GB18030",
)
_TERM_FOR_CODEC = {codecs.lookup(python_encoding[t]).name: t for t in _CODEC_TERMS} | {
    "gb2312": "GB18030"
}

# ISO 2022 escape sequences (PS3.3 C.12-3/C.12-4) and the term that announces each.
# ESC ( B (back to ASCII) names no extension and is absent on purpose.
_ESCAPE_TERMS = {
    b"\x1b$B": "ISO 2022 IR 87",
    b"\x1b$(D": "ISO 2022 IR 159",
    b"\x1b)I": "ISO 2022 IR 13",
    b"\x1b(J": "ISO 2022 IR 13",
    b"\x1b$)C": "ISO 2022 IR 149",
    b"\x1b$)A": "ISO 2022 IR 58",
    b"\x1b-A": "ISO 2022 IR 100",
    b"\x1b-B": "ISO 2022 IR 101",
    b"\x1b-C": "ISO 2022 IR 109",
    b"\x1b-D": "ISO 2022 IR 110",
    b"\x1b-F": "ISO 2022 IR 126",
    b"\x1b-G": "ISO 2022 IR 127",
    b"\x1b-H": "ISO 2022 IR 138",
    b"\x1b-L": "ISO 2022 IR 144",
    b"\x1b-M": "ISO 2022 IR 148",
    b"\x1b-T": "ISO 2022 IR 166",
}
_ESCAPE_SEQUENCE = re.compile(rb"\x1b[\x20-\x2f]+[\x30-\x7e]")


@dataclass(frozen=True)
class CharsetDecision:
    """What (0008,0005) says, what the text really needs, and whether to fix the stored file."""

    declared: tuple[str, ...]
    effective: tuple[str, ...]
    patch: bool
    reason: str


def decide_charset(ds: Dataset) -> CharsetDecision:
    """Decide which character set the text of `ds` is encoded with.

    `ds` comes from ``dcmread(path, stop_before_pixels=True)``: its elements are still raw, and
    this function keeps them raw (it reads bytes, never values), so the caller can still
    :func:`apply_charset` before anything is decoded.

    * A declaration made only of standard terms is trusted as is, even when the bytes say
      otherwise (say 'ISO_IR 100' over UTF-8 bytes). Second-guessing a well-formed declaration
      would make the archive disagree with every other viewer reading the same file, and the
      guess can be wrong; a mislabelled sender is fixed at the sender.
    * Non-standard spellings of a clear intent ('GB2312', 'UTF-8', 'ISO_IR100') are mapped to
      the standard term, and a stand-alone term (ISO_IR 192, GB18030, GBK) loses any code
      extensions listed after it, as pydicom would do with a warning on every access.
    * No declaration, or a term that cannot be mapped: the text bytes of the whole header
      (nested items included, except items that declare their own charset) decide, in this
      order: ISO 2022 escape sequences, pure ASCII, strict UTF-8, plausible GB18030, Latin-1.

    Text elements whose value was deferred (``defer_size``) or already decoded are not seen.
    """
    declared = _declared_terms(ds)
    if not declared:
        effective, reason = _detect(ds)
        return CharsetDecision(declared, effective, patch=bool(effective), reason=reason)

    mapped = [_map_term(term) for term in declared]
    unknown = [term for term, known in zip(declared, mapped, strict=True) if known is None]
    if unknown:
        effective, detected = _detect(ds)
        return CharsetDecision(
            declared, effective, True, f"unknown term {unknown[0]!r}, {detected}"
        )

    standard = tuple(term for term in mapped if term is not None)
    effective = _without_illegal_extensions(standard)
    if effective == declared:
        return CharsetDecision(declared, effective, False, "declared")
    return CharsetDecision(declared, effective, True, _describe(declared, standard, effective))


def apply_charset(ds: Dataset, decision: CharsetDecision) -> None:
    """Make pydicom decode the text of `ds` (and of its sequence items) with `decision`.

    pydicom 3 decodes a raw element with the character set captured when the file was read
    (``original_character_set``), not with the current (0008,0005), and sequence items carry
    their own copy of it. So besides setting (0008,0005) this rebinds that captured value on the
    dataset and on every item parsed so far; items parsed later inherit it. Items that declare
    their own (0008,0005) keep it. Keeping the captured and current values equal also lets
    ``save_as`` write untouched raw elements byte for byte.

    Call it before reading text values: an element already decoded stays as it was decoded.
    """
    if decision.effective:
        ds[_CHARSET_TAG] = DataElement(_CHARSET_TAG, "CS", _cs_element_value(decision.effective))
    elif _CHARSET_TAG in ds:
        del ds[_CHARSET_TAG]
    _rebind_character_set(ds, ds._character_set)


UTF8_TERM = "ISO_IR 192"


def answer_charset(ds: Dataset, requested: Sequence[str]) -> tuple[str, ...]:
    """The SpecificCharacterSet to write `ds` (decoded text values) with, for a requester who
    asked for `requested`: those terms when every text value fits them, else ISO_IR 192 (UTF-8
    holds everything); () when nothing was asked for and every value is ASCII."""
    return answer_charset_of(_decoded_texts(ds), requested)


def answer_charset_of(values: Iterable[str], requested: Sequence[str]) -> tuple[str, ...]:
    """`answer_charset` for an answer's text values (those of SH, LO, ST, LT, UT, PN, UC)."""
    if tuple(requested) in _HOLDS_ALL:
        return tuple(requested)  # no need to look: every value fits
    texts = [text for text in values if not text.isascii()]
    if not texts:
        return tuple(requested)
    if requested and _fits(texts, requested):
        return tuple(requested)
    return (UTF8_TERM,)


def can_encode(text: str, terms: Sequence[str]) -> bool:
    """Whether `text` can be written with the SpecificCharacterSet `terms` (none: ASCII)."""
    if text.isascii():
        return True
    return bool(terms) and _fits([text], terms)


# Character sets that encode all of Unicode: an answer always fits them.
_HOLDS_ALL = frozenset({(UTF8_TERM,), ("GB18030",)})


def _decoded_texts(ds: Dataset) -> Iterator[str]:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value or ():
                yield from _decoded_texts(item)
        elif elem.VR in TEXT_VRS and elem.value is not None:
            values = elem.value if elem.VM > 1 else [elem.value]
            yield from (str(value) for value in values)


def _fits(texts: Sequence[str], terms: Sequence[str]) -> bool:
    """Whether each text can be written in `terms`: each character in one of its encodings
    (code extensions switch between them per character run)."""
    if any(term not in python_encoding for term in terms):
        return False
    encodings = [python_encoding[term] for term in terms]
    for text in texts:
        for char in set(text):
            if not any(_encodes(char, encoding) for encoding in encodings):
                return False
    return True


def _encodes(char: str, encoding: str) -> bool:
    try:
        char.encode(encoding)
    except (UnicodeError, LookupError):
        return False
    return True


def patch_specific_character_set(src: Path, dst: Path, values: Sequence[str]) -> None:
    """Write `dst` as a copy of the Part-10 file `src` with top-level (0008,0005) set to `values`.

    Nothing is decoded or re-encoded: the preamble, file meta and every element before the
    insertion point are copied byte for byte, the new element is spliced in (replacing an
    existing one), and the rest is stream-copied in chunks. A (0008,0000) group length, if
    present, is adjusted. Deflated Explicit VR Little Endian is the exception: it is read and
    saved again with pydicom, since its dataset cannot be spliced without inflating it, and
    deflated objects are small and rare.

    `dst` is replaced atomically (and may be `src` itself). Raises `ValueError` when `src` is
    not a Part-10 file or its dataset does not parse, or when `values` are not valid CS values.
    """
    element_value = _encode_cs_value(values)
    with src.open("rb") as fp, _atomic_output(dst, mode_from=src) as out:
        transfer_syntax = _read_file_meta(fp, src)
        if transfer_syntax == DeflatedExplicitVRLittleEndian:
            _rewrite_deflated(fp, out, values)
            return
        syntax = _dataset_syntax(transfer_syntax)
        splice = _find_splice(fp, syntax)
        _copy_with_splice(fp, out, splice, _encode_element(element_value, syntax), syntax)


# --- decide: declared terms --------------------------------------------------------------


def _declared_terms(ds: Dataset) -> tuple[str, ...]:
    elem: DataElement | RawDataElement | None = ds.get_item(_CHARSET_TAG)
    if elem is None or elem.value is None:
        return ()
    value = elem.value
    if isinstance(value, bytes):
        # CS is ASCII; latin-1 cannot fail and keeps stray bytes visible in the reason
        parts = value.decode("latin-1").split("\\")
    elif isinstance(value, str):
        parts = [value]
    else:
        parts = [str(part) for part in value]
    terms = tuple(part.strip(" \x00") for part in parts)
    return terms if any(terms) else ()


def _map_term(term: str) -> str | None:
    if term == "" or term in _STANDARD_TERMS:
        return term
    key = _canonical_iso_spelling(" ".join(term.upper().split()))
    if key in _STANDARD_TERMS:
        return key
    return _ALIASES.get(key) or _term_for_codec(key)


def _canonical_iso_spelling(key: str) -> str:
    if match := _ISO_2022_TYPO.fullmatch(key):
        return f"ISO 2022 IR {match[1]}"
    if match := _ISO_IR_TYPO.fullmatch(key):
        return f"ISO_IR {match[1]}"
    return key


def _term_for_codec(key: str) -> str | None:
    try:
        name = codecs.lookup(key).name
    except (LookupError, ValueError):
        return None
    return _TERM_FOR_CODEC.get(name)


def _without_illegal_extensions(terms: tuple[str, ...]) -> tuple[str, ...]:
    if len(terms) < 2:
        return terms
    if terms[0] in STAND_ALONE_ENCODINGS:
        return terms[:1]
    return (terms[0], *(term for term in terms[1:] if term not in STAND_ALONE_ENCODINGS))


def _describe(
    declared: tuple[str, ...], standard: tuple[str, ...], effective: tuple[str, ...]
) -> str:
    notes = [
        f"non-standard term {old} -> {new}"
        for old, new in zip(declared, standard, strict=True)
        if old != new
    ]
    if effective != standard:
        notes.append(f"stand-alone {effective[0]} takes no code extensions")
    return "; ".join(notes)


# --- decide: detection from raw bytes ------------------------------------------------------


def _detect(ds: Dataset) -> tuple[tuple[str, ...], str]:
    values = list(_raw_text_values(ds))
    escaped = _iso_2022_terms(values)
    if escaped:
        return escaped, "detected iso 2022 escapes"
    if all(value.isascii() for value in values):
        return (), "ascii"
    if _all_decode(values, "utf-8"):
        return ("ISO_IR 192",), "detected utf-8"
    if _all_decode(values, "gb18030") and _gb18030_is_plausible(values):
        return ("GB18030",), "detected gb18030"
    return ("ISO_IR 100",), "detected latin-1"


def _raw_text_values(ds: Dataset) -> Iterator[bytes]:
    for tag in sorted(ds.keys()):
        # keep_deferred: a deferred element would otherwise be read *and decoded* here
        elem: DataElement | RawDataElement | None = ds.get_item(tag, keep_deferred=True)
        if isinstance(elem, RawDataElement):
            yield from _raw_element_text(ds, elem)
        elif elem is not None and elem.VR == "SQ":
            yield from _items_text(elem.value)


def _raw_element_text(ds: Dataset, elem: RawDataElement) -> Iterator[bytes]:
    vr = _raw_vr(elem)
    if vr == "SQ" and elem.value:
        # Converting an SQ only parses item structure; the items' text stays raw, and `ds`
        # is left untouched because the converted element is not stored back.
        yield from _items_text(convert_raw_data_element(elem, ds=ds).value)
    elif vr in TEXT_VRS and elem.value:
        yield elem.value


def _items_text(items: Iterable[Dataset]) -> Iterator[bytes]:
    for item in items:
        if not _declared_terms(item):
            yield from _raw_text_values(item)


def _raw_vr(elem: RawDataElement) -> str | None:
    if elem.VR and elem.VR != "UN":
        return elem.VR
    if elem.tag.is_private_creator:
        return "LO"
    try:
        return dictionary_VR(elem.tag)
    except KeyError:
        # private data of unknown VR may well be binary: leave it out of the vote
        return None


def _iso_2022_terms(values: Iterable[bytes]) -> tuple[str, ...]:
    found: dict[str, None] = {}  # ordered set: terms in order of first use
    for value in values:
        for match in _ESCAPE_SEQUENCE.finditer(value):
            term = _ESCAPE_TERMS.get(match.group())
            if term:
                found[term] = None
    if not found:
        return ()
    # IR 13 replaces the default G0/G1 sets, so it must be the initial (first) value
    first = "ISO 2022 IR 13" if "ISO 2022 IR 13" in found else ""
    return (first, *(term for term in found if term != first))


def _all_decode(values: Iterable[bytes], codec: str) -> bool:
    try:
        for value in values:
            value.decode(codec)
    except UnicodeDecodeError:
        return False
    return True


def _gb18030_is_plausible(values: Iterable[bytes]) -> bool:
    """Tell Chinese text from Latin-1 text that merely decodes as GB18030.

    Latin-1 accented letters are valid GB18030 lead bytes and the ASCII letter after them a
    valid trail byte, so 'Jérôme' or 'Müller' decode without error. Chinese text is mostly
    pairs of two high bytes; a pair with an ASCII trail byte, or a pair wedged between ASCII
    letters ('Rößler'), is what Latin-1 looks like. GBK-only characters such as 玥 also have
    ASCII trail bytes, hence a majority vote rather than a veto.
    """
    solid = suspect = 0
    for value in values:
        value_solid, value_suspect = _gb_pair_votes(value)
        solid += value_solid
        suspect += value_suspect
    return solid > 0 and solid >= suspect


def _gb_pair_votes(value: bytes) -> tuple[int, int]:
    # only called on values that decoded as GB18030, so a lead byte always has a trail byte
    solid = suspect = 0
    i = 0
    while i < len(value) - 1:
        if value[i] < 0x80:
            i += 1
        elif 0x30 <= value[i + 1] <= 0x39:
            i += 4  # four-byte sequences are rare ideographs either way: no vote
        else:
            if value[i + 1] < 0x80 or (_is_letter(value, i - 1) and _is_letter(value, i + 2)):
                suspect += 1
            else:
                solid += 1
            i += 2
    return solid, suspect


def _is_letter(value: bytes, index: int) -> bool:
    return index >= 0 and value[index : index + 1].isalpha()


# --- apply ----------------------------------------------------------------------------------


def _cs_element_value(terms: Sequence[str]) -> str | list[str]:
    if len(terms) == 1:
        return terms[0]
    return list(terms) if terms else ""


def _rebind_character_set(ds: Dataset, encodings: str | list[str]) -> None:
    implicit, little = ds.original_encoding
    ds.set_original_encoding(implicit, little, encodings)
    for item in _parsed_items(ds):
        if not _declared_terms(item):
            item._parent_encoding = encodings
            _rebind_character_set(item, encodings)


def _parsed_items(ds: Dataset) -> Iterator[Dataset]:
    # Raw SQ elements are parsed lazily from the rebound parent, so only parsed ones matter.
    for tag in sorted(ds.keys()):
        elem: DataElement | RawDataElement | None = ds.get_item(tag, keep_deferred=True)
        if isinstance(elem, DataElement) and elem.VR == "SQ":
            yield from elem.value


# --- patch: Part-10 stream surgery ----------------------------------------------------------

_UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM_TAG = 0xFFFEE000
_ITEM_END_TAG = 0xFFFEE00D
_SEQUENCE_END_TAG = 0xFFFEE0DD
_DELIMITER_GROUP = 0xFFFE
# Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2)
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_PREAMBLE_LENGTH = 128
_COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class _Syntax:
    implicit: bool
    little: bool

    @property
    def order(self) -> str:
        return "<" if self.little else ">"


_EXPLICIT_LE = _Syntax(implicit=False, little=True)
_IMPLICIT_LE = _Syntax(implicit=True, little=True)


@dataclass(frozen=True)
class _Header:
    tag: int
    vr: bytes  # b"" for implicit VR and for item/delimiter tags
    length: int


@dataclass(frozen=True)
class _Splice:
    start: int  # offset where the new element goes
    resume: int  # offset where copying resumes (past a replaced element)
    group_length_at: int | None  # offset of the (0008,0000) value, if any


def _encode_cs_value(values: Sequence[str]) -> bytes:
    if any("\\" in value or not value.isascii() for value in values):
        raise ValueError(f"invalid Specific Character Set values: {list(values)!r}")
    data = "\\".join(values).encode("ascii")
    return data + b" " if len(data) % 2 else data


def _encode_element(value: bytes, syntax: _Syntax) -> bytes:
    tag = struct.pack(f"{syntax.order}HH", 0x0008, 0x0005)
    if syntax.implicit:
        return tag + struct.pack(f"{syntax.order}I", len(value)) + value
    return tag + b"CS" + struct.pack(f"{syntax.order}H", len(value)) + value


def _read_file_meta(fp: BinaryIO, path: Path) -> str:
    """Skip preamble and file meta; return the transfer syntax UID."""
    head = fp.read(_PREAMBLE_LENGTH + 4)
    if len(head) < _PREAMBLE_LENGTH + 4 or head[_PREAMBLE_LENGTH:] != b"DICM":
        raise ValueError(f"{path}: not a DICOM Part-10 file (no 'DICM' after the preamble)")
    transfer_syntax: str | None = None
    while True:
        start = fp.tell()
        tag = _read_tag(fp, _EXPLICIT_LE)
        if tag is None or tag >> 16 != 0x0002:
            fp.seek(start)
            break
        header = _read_header(fp, tag, _EXPLICIT_LE)
        if header.length == _UNDEFINED_LENGTH:
            raise ValueError(f"{path}: undefined length in file meta element {tag:08X}")
        if tag == 0x00020010:
            value = _read_exact(fp, header.length)
            transfer_syntax = value.rstrip(b"\x00 ").decode("ascii", "replace")
        else:
            _skip(fp, header.length)
    if not transfer_syntax:
        raise ValueError(f"{path}: file meta has no Transfer Syntax UID")
    return transfer_syntax


def _dataset_syntax(transfer_syntax: str) -> _Syntax:
    if transfer_syntax == ImplicitVRLittleEndian:
        return _IMPLICIT_LE
    if transfer_syntax == ExplicitVRBigEndian:
        return _Syntax(implicit=False, little=False)
    # every other syntax, encapsulated ones included, encodes the dataset as explicit VR LE
    return _EXPLICIT_LE


def _find_splice(fp: BinaryIO, syntax: _Syntax) -> _Splice:
    group_length_at: int | None = None
    while True:
        start = fp.tell()
        tag = _read_tag(fp, syntax)
        if tag is None or tag > _CHARSET_TAG:
            return _Splice(start, start, group_length_at)
        header = _read_header(fp, tag, syntax)
        if tag == _GROUP_8_LENGTH_TAG and header.length == 4:
            group_length_at = fp.tell()
        _skip_value(fp, header, syntax)
        if tag == _CHARSET_TAG:
            return _Splice(start, fp.tell(), group_length_at)


def _read_tag(fp: BinaryIO, syntax: _Syntax) -> int | None:
    data = fp.read(4)
    if not data:
        return None
    if len(data) < 4:
        raise ValueError("truncated DICOM data element tag")
    group, element = struct.unpack(f"{syntax.order}HH", data)
    return int(group) << 16 | int(element)


def _read_header(fp: BinaryIO, tag: int, syntax: _Syntax) -> _Header:
    if syntax.implicit or tag >> 16 == _DELIMITER_GROUP:
        return _Header(tag, b"", _read_uint(fp, syntax, 4))
    vr = _read_exact(fp, 2)
    if not (vr.isalpha() and vr.isupper()):
        raise ValueError(f"invalid VR {vr!r} at tag {tag:08X}: dataset does not match its syntax")
    if vr in _LONG_VRS:
        _read_exact(fp, 2)  # reserved
        return _Header(tag, vr, _read_uint(fp, syntax, 4))
    return _Header(tag, vr, _read_uint(fp, syntax, 2))


def _read_uint(fp: BinaryIO, syntax: _Syntax, size: int) -> int:
    code = "I" if size == 4 else "H"
    return int(struct.unpack(f"{syntax.order}{code}", _read_exact(fp, size))[0])


def _read_exact(fp: BinaryIO, size: int) -> bytes:
    data = fp.read(size)
    if len(data) != size:
        raise ValueError("truncated DICOM data element")
    return data


def _skip_value(fp: BinaryIO, header: _Header, syntax: _Syntax) -> None:
    if header.length != _UNDEFINED_LENGTH:
        _skip(fp, header.length)
    else:
        # Undefined length means items up to a sequence delimiter (a sequence or encapsulated
        # pixel data); an explicit UN of undefined length nests implicit VR LE (PS3.5 6.2.2).
        _skip_items(fp, _IMPLICIT_LE if header.vr == b"UN" else syntax)


def _skip(fp: BinaryIO, size: int) -> None:
    if fp.seek(size, os.SEEK_CUR) > os.fstat(fp.fileno()).st_size:
        raise ValueError("DICOM data element runs past the end of the file")


def _skip_items(fp: BinaryIO, syntax: _Syntax) -> None:
    while True:
        tag = _read_tag(fp, syntax)
        if tag is None:
            raise ValueError("sequence without a delimiter")
        length = _read_uint(fp, syntax, 4)
        if tag == _SEQUENCE_END_TAG:
            return
        if tag != _ITEM_TAG:
            raise ValueError(f"expected an item in a sequence, found tag {tag:08X}")
        if length == _UNDEFINED_LENGTH:
            _skip_item_elements(fp, syntax)
        else:
            _skip(fp, length)


def _skip_item_elements(fp: BinaryIO, syntax: _Syntax) -> None:
    while True:
        tag = _read_tag(fp, syntax)
        if tag is None:
            raise ValueError("item without a delimiter")
        header = _read_header(fp, tag, syntax)
        if tag == _ITEM_END_TAG:
            return
        _skip_value(fp, header, syntax)


def _copy_with_splice(
    fp: BinaryIO, out: BinaryIO, splice: _Splice, element: bytes, syntax: _Syntax
) -> None:
    fp.seek(0)
    _copy_exact(fp, out, splice.start)
    out.write(element)
    fp.seek(splice.resume)
    shutil.copyfileobj(fp, out, _COPY_CHUNK)
    if splice.group_length_at is not None:
        growth = len(element) - (splice.resume - splice.start)
        _adjust_group_length(fp, out, splice.group_length_at, growth, syntax)


def _copy_exact(fp: BinaryIO, out: BinaryIO, size: int) -> None:
    remaining = size
    while remaining:
        chunk = fp.read(min(remaining, _COPY_CHUNK))
        if not chunk:
            raise ValueError("file shrank while being copied")
        out.write(chunk)
        remaining -= len(chunk)


def _adjust_group_length(
    fp: BinaryIO, out: BinaryIO, offset: int, growth: int, syntax: _Syntax
) -> None:
    # the value sits before the splice, so it has the same offset in both files
    fp.seek(offset)
    old = _read_uint(fp, syntax, 4)
    out.seek(offset)
    out.write(struct.pack(f"{syntax.order}I", old + growth))
    out.seek(0, os.SEEK_END)


def _rewrite_deflated(fp: BinaryIO, out: BinaryIO, values: Sequence[str]) -> None:
    fp.seek(0)
    ds = pydicom.dcmread(fp)
    ds[_CHARSET_TAG] = DataElement(_CHARSET_TAG, "CS", _cs_element_value(values))
    # Only (0008,0005) may change: rebinding makes save_as write the raw text bytes verbatim
    # instead of decoding them with the old charset and encoding them with the new one.
    _rebind_character_set(ds, ds._character_set)
    ds.save_as(out)


@contextmanager
def _atomic_output(dst: Path, *, mode_from: Path) -> Iterator[BinaryIO]:
    fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            # the archive trusts dst once this returns: make the bytes durable before the rename
            os.fsync(out.fileno())
        shutil.copymode(mode_from, tmp)  # mkstemp creates 0600; a copy keeps src's mode
        tmp.replace(dst)
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise
