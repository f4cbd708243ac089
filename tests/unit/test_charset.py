"""Tests for openpacs.dicom.charset: deciding, applying and patching (0008,0005)."""

from __future__ import annotations

import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_file
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from openpacs.dicom.charset import (
    CharsetDecision,
    apply_charset,
    decide_charset,
    patch_specific_character_set,
)

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
CHINESE_NAME = "Wang^XiaoMing=王^小明="


# --- building Part-10 files byte by byte -------------------------------------------------
# Written by hand rather than with pydicom so the text bytes are exactly what a misbehaving
# modality would send, with no (0008,0005) unless a test asks for one.


def _tag(tag: int) -> bytes:
    return struct.pack("<HH", tag >> 16, tag & 0xFFFF)


def _elem(tag: int, vr: str, value: bytes, *, implicit: bool = False) -> bytes:
    if len(value) % 2:
        value += b"\x00" if vr in {"UI", "OB"} else b" "
    if implicit:
        return _tag(tag) + struct.pack("<I", len(value)) + value
    if vr in LONG_VRS:
        return _tag(tag) + vr.encode() + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return _tag(tag) + vr.encode() + struct.pack("<H", len(value)) + value


def _item(content: bytes, *, undefined: bool) -> bytes:
    if undefined:
        return _tag(0xFFFEE000) + b"\xff\xff\xff\xff" + content + _tag(0xFFFEE00D) + bytes(4)
    return _tag(0xFFFEE000) + struct.pack("<I", len(content)) + content


def _seq(tag: int, items: list[bytes], *, implicit: bool = False, undefined: bool) -> bytes:
    body = b"".join(_item(item, undefined=undefined) for item in items)
    head = _tag(tag) if implicit else _tag(tag) + b"SQ\x00\x00"
    if undefined:
        return head + b"\xff\xff\xff\xff" + body + _tag(0xFFFEE0DD) + bytes(4)
    return head + struct.pack("<I", len(body)) + body


def _part10(dataset: bytes, transfer_syntax: str) -> bytes:
    meta = b"".join(
        [
            _elem(0x00020001, "OB", b"\x00\x01"),
            _elem(0x00020002, "UI", b"1.2.840.10008.5.1.4.1.1.7"),
            _elem(0x00020003, "UI", b"1.2.3.4"),
            _elem(0x00020010, "UI", transfer_syntax.encode()),
            _elem(0x00020012, "UI", b"1.2.3.999"),
        ]
    )
    group_length = _elem(0x00020000, "UL", struct.pack("<I", len(meta)))
    return bytes(128) + b"DICM" + group_length + meta + dataset


@dataclass(frozen=True)
class Texts:
    name: str = CHINESE_NAME
    description: str = "CT胸部"
    meaning: str = "胸部平扫"
    requested: str = "头颅"


ASCII_TEXTS = Texts("Doe^John", "CT CHEST", "Chest plain", "Head")


def _study(
    path: Path,
    codec: str,
    texts: Texts = Texts(),
    *,
    charset: bytes | None = None,
    implicit: bool = False,
    group_length: bool = False,
    pixels: bytes = b"",
) -> Path:
    """A small header with text in top level, in an undefined- and a defined-length sequence."""

    def e(tag: int, vr: str, value: bytes) -> bytes:
        return _elem(tag, vr, value, implicit=implicit)

    group_8 = b"".join(
        [
            e(0x00080005, "CS", charset) if charset is not None else b"",
            e(0x00080016, "UI", b"1.2.840.10008.5.1.4.1.1.7"),
            e(0x00080018, "UI", b"1.2.3.4"),
            e(0x00081030, "LO", texts.description.encode(codec)),
            _seq(
                0x00081032,
                [e(0x00080100, "SH", b"CT001") + e(0x00080104, "LO", texts.meaning.encode(codec))],
                implicit=implicit,
                undefined=True,
            ),
        ]
    )
    if group_length:
        group_8 = e(0x00080000, "UL", struct.pack("<I", len(group_8))) + group_8
    rest = b"".join(
        [
            e(0x00100010, "PN", texts.name.encode(codec)),
            e(0x00100020, "LO", b"PID-1"),
            # binary values that are neither UTF-8 nor GB18030 must not sway detection
            e(0x00281201, "OW", b"\x80\xff\xff\x80"),
            e(0x00290010, "LO", b"ACME 1.0"),
            e(0x00291010, "OB", b"\xff\xfe\x80\x81"),
            _seq(
                0x00321064,
                [e(0x00080104, "LO", texts.requested.encode(codec))],
                implicit=implicit,
                undefined=False,
            ),
            e(0x7FE00010, "OB", pixels) if pixels else b"",
        ]
    )
    path.write_bytes(_part10(group_8 + rest, IMPLICIT_LE if implicit else EXPLICIT_LE))
    return path


def _header(path: Path | str) -> pydicom.FileDataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


def _odd_header(path: Path) -> pydicom.FileDataset:
    """Read a header whose (0008,0005) pydicom itself complains about while reading.

    Only the read is silenced: the code under test still runs with warnings as errors.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore",
            message="(Unknown encoding|Incorrect value for Specific Character Set"
            "|Value '.*' for Specific Character Set)",
            category=UserWarning,
        )
        return _header(path)


def _charset_file(name: str) -> Path:
    return Path(get_charset_files(name)[0])


def _testdata(name: str) -> Path:
    found = get_testdata_file(name)
    assert isinstance(found, str), name
    return Path(found)


# --- decide + apply on real charset files -------------------------------------------------

REAL_FILES = {
    "chrX1.dcm": ("ISO_IR 192",),
    "chrX2.dcm": ("GB18030",),
    "chrH31.dcm": ("", "ISO 2022 IR 87"),
    "chrH32.dcm": ("ISO 2022 IR 13", "ISO 2022 IR 87"),
    "chrI2.dcm": ("", "ISO 2022 IR 149"),
    "chrArab.dcm": ("ISO_IR 127",),
    "chrGreek.dcm": ("ISO_IR 126",),
    "chrRuss.dcm": ("ISO_IR 144",),
}


@pytest.mark.parametrize(("name", "declared"), REAL_FILES.items())
def test_declared_standard_terms_are_trusted(name: str, declared: tuple[str, ...]) -> None:
    ds = _header(_charset_file(name))

    decision = decide_charset(ds)

    assert decision == CharsetDecision(declared, declared, False, "declared")


@pytest.mark.parametrize("name", REAL_FILES)
def test_apply_decodes_like_a_normal_pydicom_read(name: str) -> None:
    path = _charset_file(name)
    ds = _header(path)

    apply_charset(ds, decide_charset(ds))

    assert str(ds.PatientName) == str(pydicom.dcmread(path).PatientName)


@pytest.mark.parametrize(
    ("name", "alphabetic", "ideographic", "phonetic"),
    [
        ("chrX1.dcm", "Wang^XiaoDong", "王^小東", ""),
        ("chrX2.dcm", "Wang^XiaoDong", "王^小东", ""),
        ("chrH31.dcm", "Yamada^Tarou", "山田^太郎", "やまだ^たろう"),
        ("chrH32.dcm", "ﾔﾏﾀﾞ^ﾀﾛｳ", "山田^太郎", "やまだ^たろう"),
        ("chrI2.dcm", "Hong^Gildong", "洪^吉洞", "홍^길동"),
    ],
)
def test_person_name_component_groups(
    name: str, alphabetic: str, ideographic: str, phonetic: str
) -> None:
    ds = _header(_charset_file(name))

    apply_charset(ds, decide_charset(ds))

    assert ds.PatientName.alphabetic == alphabetic
    assert ds.PatientName.ideographic == ideographic
    assert ds.PatientName.phonetic == phonetic


def test_nested_item_with_its_own_charset_keeps_it() -> None:
    ds = _header(_charset_file("chrSQEncoding.dcm"))

    decision = decide_charset(ds)
    apply_charset(ds, decision)

    assert decision.effective == ("ISO_IR 192",)
    item = ds.RequestedProcedureCodeSequence[0]
    assert str(item.PatientName) == "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"


# --- detection when (0008,0005) is absent ------------------------------------------------


def _assert_decodes(ds: Dataset, texts: Texts) -> None:
    # pydicom drops an empty trailing component group ('...=王^小明=' reads back without '=')
    assert str(ds.PatientName) == texts.name.rstrip("=")
    assert ds.StudyDescription == texts.description
    assert ds.ProcedureCodeSequence[0].CodeMeaning == texts.meaning
    assert ds.RequestedProcedureCodeSequence[0].CodeMeaning == texts.requested


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_gb18030_without_charset_is_detected(tmp_path: Path, implicit: bool) -> None:
    ds = _header(_study(tmp_path / "gb.dcm", "gb18030", implicit=implicit))

    decision = decide_charset(ds)
    apply_charset(ds, decision)

    assert decision == CharsetDecision((), ("GB18030",), True, "detected gb18030")
    _assert_decodes(ds, Texts())
    assert ds.PatientName.alphabetic == "Wang^XiaoMing"
    assert ds.PatientName.ideographic == "王^小明"
    assert ds.PatientName.phonetic == ""


def test_utf8_without_charset_is_detected(tmp_path: Path) -> None:
    ds = _header(_study(tmp_path / "utf8.dcm", "utf-8"))

    decision = decide_charset(ds)
    apply_charset(ds, decision)

    assert decision == CharsetDecision((), ("ISO_IR 192",), True, "detected utf-8")
    _assert_decodes(ds, Texts())


def test_ascii_without_charset_needs_nothing(tmp_path: Path) -> None:
    ds = _header(_study(tmp_path / "ascii.dcm", "ascii", ASCII_TEXTS))

    decision = decide_charset(ds)
    apply_charset(ds, decision)

    assert decision == CharsetDecision((), (), False, "ascii")
    assert "SpecificCharacterSet" not in ds
    _assert_decodes(ds, ASCII_TEXTS)


@pytest.mark.parametrize(
    "name", ["Buc^Jérôme", "Müller^Jürgen", "Rößler^Anna", "José^María", "MÜLLER^JÉRÔME"]
)
def test_latin1_that_also_decodes_as_gb18030_stays_latin1(tmp_path: Path, name: str) -> None:
    texts = Texts(name, "Thorax", "Thorax nativ", "Schädel")
    ds = _header(_study(tmp_path / "latin.dcm", "latin-1", texts))

    decision = decide_charset(ds)
    apply_charset(ds, decision)

    assert decision == CharsetDecision((), ("ISO_IR 100",), True, "detected latin-1")
    _assert_decodes(ds, texts)


def test_gbk_only_characters_still_count_as_chinese(tmp_path: Path) -> None:
    # 玥 is outside GB2312: its GB18030 trail byte is the ASCII letter 'h'
    texts = Texts("Wang^Yue=王^玥=", "CT", "CT", "CT")
    ds = _header(_study(tmp_path / "gbk.dcm", "gb18030", texts))

    decision = decide_charset(ds)
    apply_charset(ds, decision)

    assert decision.effective == ("GB18030",)
    assert ds.PatientName.ideographic == "王^玥"


@pytest.mark.parametrize(
    ("name", "effective"),
    [
        ("chrH31.dcm", ("", "ISO 2022 IR 87")),
        ("chrH32.dcm", ("ISO 2022 IR 13", "ISO 2022 IR 87")),
        ("chrI2.dcm", ("", "ISO 2022 IR 149")),
    ],
)
def test_iso_2022_escapes_without_charset_are_detected(
    tmp_path: Path, name: str, effective: tuple[str, ...]
) -> None:
    source = _charset_file(name)
    raw_name = _header(source).get_item(0x00100010).value
    path = tmp_path / "jis.dcm"
    path.write_bytes(_part10(_elem(0x00100010, "PN", raw_name), EXPLICIT_LE))
    ds = _header(path)

    decision = decide_charset(ds)
    apply_charset(ds, decision)

    assert decision == CharsetDecision((), effective, True, "detected iso 2022 escapes")
    assert str(ds.PatientName) == str(pydicom.dcmread(source).PatientName)


def test_decide_leaves_elements_raw(tmp_path: Path) -> None:
    ds = _header(_study(tmp_path / "gb.dcm", "gb18030"))

    decide_charset(ds)

    assert isinstance(ds.get_item(0x00100010), RawDataElement)
    assert isinstance(ds.get_item(0x00321064), RawDataElement)  # defined-length SQ
    item = ds.get_item(0x00081032).value[0]  # undefined-length SQ, parsed at read time
    assert isinstance(item.get_item(0x00080104), RawDataElement)


def test_decide_then_save_as_keeps_text_bytes(tmp_path: Path) -> None:
    ds = _header(_study(tmp_path / "gb.dcm", "gb18030"))
    apply_charset(ds, decide_charset(ds))

    ds.save_as(tmp_path / "saved.dcm")

    saved = pydicom.dcmread(tmp_path / "saved.dcm")
    assert saved.SpecificCharacterSet == "GB18030"
    _assert_decodes(saved, Texts())


# --- declared but non-standard -----------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "effective"),
    [
        ("GB2312", "GB18030"),
        ("GB 2312", "GB18030"),
        ("ISO_IR 58", "GB18030"),
        ("EUC-CN", "GB18030"),
        ("CP936", "GB18030"),
        ("UTF-8", "ISO_IR 192"),
        ("UTF8", "ISO_IR 192"),
        ("ISO-IR 192", "ISO_IR 192"),
        ("ISO_IR100", "ISO_IR 100"),
        ("ISO IR 144", "ISO_IR 144"),
        ("iso_ir 100", "ISO_IR 100"),
        ("ISO-8859-7", "ISO_IR 126"),
    ],
)
def test_non_standard_terms_are_mapped(tmp_path: Path, declared: str, effective: str) -> None:
    path = _study(tmp_path / "x.dcm", "ascii", ASCII_TEXTS, charset=declared.encode())

    decision = decide_charset(_odd_header(path))

    assert decision == CharsetDecision(
        (declared,), (effective,), True, f"non-standard term {declared} -> {effective}"
    )


def test_gb2312_declared_decodes_as_gb18030(tmp_path: Path) -> None:
    ds = _header(_study(tmp_path / "gb2312.dcm", "gb18030", charset=b"GB2312"))

    decision = decide_charset(ds)
    apply_charset(ds, decision)

    assert decision.reason == "non-standard term GB2312 -> GB18030"
    assert ds.SpecificCharacterSet == "GB18030"
    _assert_decodes(ds, Texts())


def test_multi_valued_typo_keeps_empty_first_value(tmp_path: Path) -> None:
    path = _study(tmp_path / "x.dcm", "ascii", ASCII_TEXTS, charset=b"\\ISO 2022 IR87")

    decision = decide_charset(_odd_header(path))

    assert decision.declared == ("", "ISO 2022 IR87")
    assert decision.effective == ("", "ISO 2022 IR 87")
    assert decision.patch


def test_stand_alone_term_loses_code_extensions(tmp_path: Path) -> None:
    path = _study(tmp_path / "x.dcm", "utf-8", charset=b"ISO_IR 192\\ISO 2022 IR 87")

    decision = decide_charset(_odd_header(path))

    assert decision == CharsetDecision(
        ("ISO_IR 192", "ISO 2022 IR 87"),
        ("ISO_IR 192",),
        True,
        "stand-alone ISO_IR 192 takes no code extensions",
    )


def test_unknown_term_falls_back_to_detection(tmp_path: Path) -> None:
    ds = _odd_header(_study(tmp_path / "x.dcm", "utf-8", charset=b"KLINGON"))

    decision = decide_charset(ds)
    apply_charset(ds, decision)

    assert decision == CharsetDecision(
        ("KLINGON",), ("ISO_IR 192",), True, "unknown term 'KLINGON', detected utf-8"
    )
    _assert_decodes(ds, Texts())


def test_declared_single_byte_over_utf8_is_not_second_guessed(tmp_path: Path) -> None:
    ds = _header(_study(tmp_path / "x.dcm", "utf-8", charset=b"ISO_IR 100"))

    decision = decide_charset(ds)

    assert decision == CharsetDecision(("ISO_IR 100",), ("ISO_IR 100",), False, "declared")


def test_empty_charset_counts_as_absent(tmp_path: Path) -> None:
    decision = decide_charset(_header(_study(tmp_path / "x.dcm", "utf-8", charset=b"")))

    assert decision == CharsetDecision((), ("ISO_IR 192",), True, "detected utf-8")


# --- patching stored files ---------------------------------------------------------------


def _cs_element(values: str, *, implicit: bool = False, little: bool = True) -> bytes:
    value = values.encode() + (b" " if len(values) % 2 else b"")
    order = "<" if little else ">"
    tag = struct.pack(f"{order}HH", 0x0008, 0x0005)
    if implicit:
        return tag + struct.pack(f"{order}I", len(value)) + value
    return tag + b"CS" + struct.pack(f"{order}H", len(value)) + value


def _signature(elem: DataElement | RawDataElement) -> object:
    # Compare what is stored, not what it decodes to (the charset differs on purpose):
    # raw bytes for raw elements, item by item for sequences parsed at read time.
    # value_tell moves with the splice and is left out.
    if isinstance(elem, RawDataElement):
        return (elem.tag, elem.VR, elem.length, elem.value)
    if elem.VR == "SQ":
        return (elem.tag, [_stored_elements(item) for item in elem.value])
    return elem


def _stored_elements(ds: Dataset) -> list[object]:
    return [_signature(ds.get_item(tag)) for tag in sorted(ds.keys()) if tag != 0x00080005]


def _assert_same_except_charset(src: Path, dst: Path) -> None:
    before, after = pydicom.dcmread(src), pydicom.dcmread(dst)
    assert before.preamble == after.preamble
    assert before.file_meta == after.file_meta
    assert _stored_elements(before) == _stored_elements(after)
    if "PixelData" in before:
        assert before.PixelData == after.PixelData


@pytest.mark.parametrize(
    ("name", "implicit", "little"),
    [
        ("MR_small.dcm", False, True),
        ("MR_small_implicit.dcm", True, True),
        ("MR_small_bigendian.dcm", False, False),
        ("JPEG2000.dcm", False, True),
        ("JPEG-LL.dcm", False, True),
    ],
)
def test_patch_inserts_element_byte_for_byte(
    tmp_path: Path, name: str, implicit: bool, little: bool
) -> None:
    src, dst = _testdata(name), tmp_path / name

    patch_specific_character_set(src, dst, ["ISO_IR 100"])

    element = _cs_element("ISO_IR 100", implicit=implicit, little=little)
    assert dst.read_bytes().replace(element, b"", 1) == src.read_bytes()
    assert pydicom.dcmread(dst).SpecificCharacterSet == "ISO_IR 100"
    _assert_same_except_charset(src, dst)


@pytest.mark.parametrize("name", ["CT_small.dcm", "emri_small_RLE.dcm"])
def test_patch_replaces_existing_element(tmp_path: Path, name: str) -> None:
    src, dst = _testdata(name), tmp_path / name

    patch_specific_character_set(src, dst, ["", "ISO 2022 IR 100"])

    expected = src.read_bytes().replace(_cs_element("ISO_IR 100"), _cs_element("\\ISO 2022 IR 100"))
    assert dst.read_bytes() == expected
    assert pydicom.dcmread(dst).SpecificCharacterSet == ["", "ISO 2022 IR 100"]
    _assert_same_except_charset(src, dst)


def test_patch_deflated_rewrites_with_pydicom(tmp_path: Path) -> None:
    src, dst = _testdata("image_dfl.dcm"), tmp_path / "dfl.dcm"

    patch_specific_character_set(src, dst, ["ISO_IR 192"])

    patched = pydicom.dcmread(dst)
    assert patched.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1.99"
    assert patched.SpecificCharacterSet == "ISO_IR 192"
    _assert_same_except_charset(src, dst)


def test_patched_gb18030_file_reads_back_normally(tmp_path: Path) -> None:
    src = _study(tmp_path / "gb.dcm", "gb18030", pixels=bytes(range(256)) * 12_000)
    decision = decide_charset(_header(src))
    dst = tmp_path / "patched.dcm"

    patch_specific_character_set(src, dst, decision.effective)

    patched = pydicom.dcmread(dst)
    _assert_decodes(patched, Texts())
    assert patched.PatientName.ideographic == "王^小明"
    _assert_same_except_charset(src, dst)


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_patch_updates_group_length(tmp_path: Path, implicit: bool) -> None:
    src = _study(tmp_path / "gl.dcm", "gb18030", implicit=implicit, group_length=True)
    before = pydicom.dcmread(src)[0x00080000].value
    dst = tmp_path / "patched.dcm"

    patch_specific_character_set(src, dst, ["GB18030"])

    patched = pydicom.dcmread(dst)
    assert patched[0x00080000].value == before + len(_cs_element("GB18030", implicit=implicit))
    _assert_decodes(patched, Texts())


def test_patch_skips_undefined_length_sequences_before_the_charset(tmp_path: Path) -> None:
    inner = _seq(0x00081032, [_elem(0x00080100, "SH", b"X")], undefined=True)
    private_sq = _seq(0x00071010, [inner, _elem(0x00080100, "SH", b"Y")], undefined=True)
    dataset = (
        _elem(0x00070010, "LO", b"ACME")
        + private_sq
        + _elem(0x00100010, "PN", "王^小明".encode("gb18030"))
    )
    src, dst = tmp_path / "sq.dcm", tmp_path / "patched.dcm"
    src.write_bytes(_part10(dataset, EXPLICIT_LE))

    patch_specific_character_set(src, dst, ["GB18030"])

    element = _cs_element("GB18030")
    assert dst.read_bytes() == src.read_bytes().replace(
        b"\x10\x00\x10\x00PN", element + b"\x10\x00\x10\x00PN"
    )
    assert str(pydicom.dcmread(dst).PatientName) == "王^小明"


def test_patch_in_place(tmp_path: Path) -> None:
    path = _study(tmp_path / "gb.dcm", "gb18030")

    patch_specific_character_set(path, path, ["GB18030"])

    _assert_decodes(pydicom.dcmread(path), Texts())
    assert [p.name for p in tmp_path.iterdir()] == ["gb.dcm"]


def test_patch_rejects_non_part10_file(tmp_path: Path) -> None:
    src, dst = tmp_path / "raw.dcm", tmp_path / "out.dcm"
    src.write_bytes(_elem(0x00100010, "PN", b"Doe^John"))

    with pytest.raises(ValueError, match="not a DICOM Part-10 file"):
        patch_specific_character_set(src, dst, ["ISO_IR 100"])
    assert not dst.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["raw.dcm"]


def test_patch_rejects_truncated_dataset(tmp_path: Path) -> None:
    data = _study(tmp_path / "gb.dcm", "gb18030", charset=b"GB18030").read_bytes()
    src = tmp_path / "cut.dcm"
    # cut inside (0008,0005) itself: the walk cannot reach the insertion point
    src.write_bytes(data[: data.index(b"GB18030") + 2])

    with pytest.raises(ValueError, match="past the end"):
        patch_specific_character_set(src, tmp_path / "out.dcm", ["GB18030"])


def test_patch_rejects_invalid_values(tmp_path: Path) -> None:
    src = _study(tmp_path / "gb.dcm", "gb18030")

    with pytest.raises(ValueError, match="invalid Specific Character Set"):
        patch_specific_character_set(src, tmp_path / "out.dcm", ["GB18030\\ISO_IR 100"])


def test_iso_2022_ir_58_is_written_and_read_as_ps3_5_k2_shows() -> None:
    """PS3.5 K.2's example: the GB 2312 set designated (ESC $ ) A) in each PN group."""
    from openpacs.dicom import charset  # noqa: F401  (the fix is made on import)
    from openpacs.dimse.identifier import decode_identifier, encode_identifier

    ds = Dataset()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 58"]
    ds.PatientName = "Wang^XiaoDong=王^小东="
    data = encode_identifier(ds, "1.2.840.10008.1.2.1")
    assert b"Wang^XiaoDong=\x1b$)A\xcd\xf5^\x1b$)A\xd0\xa1\xb6\xab" in data
    assert (
        str(decode_identifier(data, "1.2.840.10008.1.2.1").PatientName) == "Wang^XiaoDong=王^小东"
    )
