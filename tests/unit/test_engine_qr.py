"""Pure parts of the Q/R SCP and the sender: answer charsets, extended negotiation, presentation
contexts to propose, where a file's dataset starts."""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, cast

import pytest
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID

from openpacs.dicom import codecs
from openpacs.dicom.charset import answer_charset
from openpacs.dimse import identifier, qr_scp, sender, sop
from openpacs.dimse.engine import COMPLETED, MAX_CONTEXTS, Message, ushort

CT, MR = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"


def _named(name: str) -> Dataset:
    ds = Dataset()
    ds.PatientName = name
    ds.PatientID = "1"
    return ds


@pytest.mark.parametrize(
    ("name", "requested", "expected"),
    [
        ("DOE^JOHN", [], []),
        ("DOE^JOHN", ["ISO_IR 100"], ["ISO_IR 100"]),
        ("Buc^Jérôme", ["ISO_IR 100"], ["ISO_IR 100"]),
        ("Buc^Jérôme", [], ["ISO_IR 192"]),
        ("Wang^XiaoDong=王^小东", ["GB18030"], ["GB18030"]),
        ("Wang^XiaoDong=王^小東", ["GB18030"], ["GB18030"]),  # GB18030 holds all of Unicode
        ("Wang^XiaoDong=王^小东", ["ISO_IR 100"], ["ISO_IR 192"]),
        ("Yamada^Tarou=山田^太郎", ["ISO 2022 IR 6", "ISO 2022 IR 87"], None),
        ("Hong^Gildong=洪^吉洞", ["ISO_IR 100", "UNKNOWN"], ["ISO_IR 192"]),
    ],
)
def test_answer_charset(name: str, requested: list[str], expected: list[str] | None) -> None:
    assert list(answer_charset(_named(name), requested)) == (expected or requested)


def test_answer_charset_looks_into_sequences() -> None:
    ds = _named("DOE^JOHN")
    item = Dataset()
    item.CodeMeaning = "胸部"
    ds.ProcedureCodeSequence = [item]
    assert answer_charset(ds, ["ISO_IR 100"]) == ("ISO_IR 192",)


def test_an_identifier_round_trips_in_gb18030() -> None:
    ds = _named("Wang^XiaoDong=王^小东")
    ds.SpecificCharacterSet = "GB18030"
    for syntax in identifier.IDENTIFIER_SYNTAXES:
        data = identifier.encode_identifier(ds, syntax)
        assert "王".encode("gb18030") in data
        assert (
            str(identifier.decode_identifier(data, syntax).PatientName) == "Wang^XiaoDong=王^小东"
        )


def _fast(ds: Dataset) -> bytes | None:
    elements = [(e.tag, e.VR, e.value) for e in ds]
    if any(vr == "SQ" for _, vr, _ in elements):
        return None
    return identifier.encode_elements(elements, ds.get("SpecificCharacterSet"), implicit=False)


def _answer(charset: str | list[str] | None, name: str, description: str) -> Dataset:
    """An answer as the query engine and `QrService._complete` build one."""
    ds = Dataset()
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.add_new(0x00080020, "DA", "20240229")
    ds.add_new(0x00080030, "TM", "101530.5")
    ds.add_new(0x00080050, "SH", None)  # AccessionNumber, empty
    ds.add_new(0x00080052, "CS", "STUDY")
    ds.add_new(0x00080054, "AE", "QRSCP")
    ds.add_new(0x00080056, "CS", "ONLINE")
    ds.add_new(0x00080061, "CS", ["CT", "MR", "SR"])
    ds.add_new(0x00080090, "PN", "Doe^Referring")
    ds.add_new(0x00081030, "LO", description)
    ds.add_new(0x00100010, "PN", name)
    ds.add_new(0x00100020, "LO", "PID-1")
    ds.add_new(0x00101020, "DS", "1.75")
    ds.add_new(0x0020000D, "UI", "1.2.3.45")  # odd length: padded with NUL
    ds.add_new(0x00200010, "SH", "S1")
    ds.add_new(0x00201206, "IS", 2)
    ds.add_new(0x00201208, "IS", 417)
    ds.add_new(0x00280010, "US", 512)
    ds.add_new(0x00280011, "US", [256, 512])
    return ds


@pytest.mark.parametrize(
    ("charset", "name", "description", "fast"),
    [
        (None, "DOE^JOHN", "CHEST", True),
        ("ISO_IR 100", "Buc^Jérôme", "Thorax, côté gauche", True),
        ("ISO_IR 192", "Zhang^Wei=张^伟", "胸部 CT", True),
        ("GB18030", "Wang^XiaoDong=王^小东", "头颅", True),
        (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎", "CHEST", False),  # code extensions
        ("ISO_IR 100", "张^伟", "CHEST", False),  # does not fit: pydicom's writer decides
    ],
)
def test_answers_are_encoded_as_pydicom_writes_them(
    charset: str | list[str] | None, name: str, description: str, fast: bool
) -> None:
    ds = _answer(charset, name, description)
    for syntax in identifier.IDENTIFIER_SYNTAXES:
        expected = identifier.encode_identifier(ds, syntax)
        assert identifier.encode_answer(ds, syntax) == expected, syntax
    assert (_fast(ds) is not None) is fast


def test_answers_with_sequences_go_through_pydicom() -> None:
    ds = _answer("ISO_IR 192", "DOE^JOHN", "CHEST")
    item = Dataset()
    item.LocalNamespaceEntityID = "HOSP"
    ds.IssuerOfAccessionNumberSequence = [item]
    assert _fast(ds) is None
    for syntax in identifier.IDENTIFIER_SYNTAXES:
        assert identifier.encode_answer(ds, syntax) == identifier.encode_identifier(ds, syntax)


def test_extended_negotiation_grants() -> None:
    find, move = sop.STUDY_ROOT_FIND, sop.PATIENT_ROOT_MOVE
    assert qr_scp.extended_negotiation(find, b"\x01\x01\x01\x01") == b"\x01\x01\x01\x00"
    assert qr_scp.extended_negotiation(find, b"\x00\x01") == b"\x00\x01"
    assert qr_scp.extended_negotiation(move, b"\x01\x01") == b"\x01"
    assert qr_scp.extended_negotiation(CT, b"\x01") is None


@dataclass(frozen=True)
class Stored:
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: Path = Path("/nonexistent")


def test_proposals_one_syntax_per_context() -> None:
    instances = [
        Stored("1", CT, codecs.EXPLICIT_VR_LE),
        Stored("2", CT, codecs.EXPLICIT_VR_LE),
        Stored("3", MR, codecs.JPEG_2000_LOSSLESS),
    ]
    proposed = [(p.abstract_syntax, p.transfer_syntaxes) for p in sender.proposals(instances)]
    assert proposed[:2] == [(CT, (codecs.EXPLICIT_VR_LE,)), (CT, (codecs.IMPLICIT_VR_LE,))]
    mr = [syntaxes[0] for uid, syntaxes in proposed if uid == MR]
    assert mr[:3] == [codecs.JPEG_2000_LOSSLESS, codecs.EXPLICIT_VR_LE, codecs.IMPLICIT_VR_LE]
    assert set(mr[3:]) <= {codecs.JPEG_LS_LOSSLESS, codecs.JPEG_LOSSLESS_SV1}
    assert all(len(syntaxes) == 1 for _, syntaxes in proposed)


def test_proposals_stay_within_128_contexts() -> None:
    instances = [Stored(str(n), f"1.2.3.{n}", codecs.RLE_LOSSLESS) for n in range(50)]
    proposed = sender.proposals(instances)
    assert len(proposed) == MAX_CONTEXTS
    # Fallbacks go first: every class keeps its own syntax and the native ones.
    classes = {p.abstract_syntax for p in proposed}
    assert len(classes) == 43  # 3 essential contexts each, 128 // 3 = 42 whole, then part of one


@pytest.mark.parametrize("preamble", [True, False])
def test_dataset_start(preamble: bool) -> None:
    ds = _named("DOE^JOHN")
    ds.SOPClassUID = CT
    ds.SOPInstanceUID = "1.2.3"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(codecs.EXPLICIT_VR_LE)
    ds.file_meta.MediaStorageSOPClassUID = UID(CT)
    ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.3")
    buffer = BytesIO()
    dcmwrite(buffer, ds, enforce_file_format=True)
    data = buffer.getvalue()
    if not preamble:
        data = data[132:]
    start, syntax = sender.dataset_start(BytesIO(data))
    assert syntax == codecs.EXPLICIT_VR_LE
    assert data[start : start + 4] == b"\x08\x00\x16\x00"  # SOPClassUID: the first element


def test_dataset_start_refuses_a_file_without_meta() -> None:
    with pytest.raises(ValueError, match="TransferSyntaxUID"):
        sender.dataset_start(BytesIO(b"\x08\x00\x16\x00UI\x02\x001\x00" * 3))


def test_outcome_kinds() -> None:
    assert sender.StoreOutcome("1", 0).ok
    warning = sender.StoreOutcome("1", 0xB007)
    assert warning.ok and warning.warning
    assert not sender.StoreOutcome("1", 0xA700).ok
    assert not sender.StoreOutcome("1", None, "never sent").ok


class _Recorder:
    """Stands in for the association: keeps the Completed count of each pending response."""

    def __init__(self) -> None:
        self.completed: list[int | None] = []

    def respond(self, message: object, command_field: int, status: int, **kw: Any) -> None:
        self.completed.append(ushort(kw["extra"][COMPLETED]))


def test_pending_responses_every_n_and_at_least_every_second() -> None:
    recorder = _Recorder()
    now = [0.0]
    progress = qr_scp._Progress(
        cast(Any, recorder), Message(1, {}), 0x8021, every=3, clock=lambda: now[0]
    )
    report = sender.SendReport(total=10)
    for number in range(1, 8):
        if number == 5:
            now[0] = 1.5  # the fifth took long: a pending response though only one since
        outcome = sender.StoreOutcome(str(number), 0)
        report.add(outcome)
        progress(outcome, report)
    assert recorder.completed == [3, 5]
