"""The Store SCP engine's pure parts: response and file-meta encoding, negotiation."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.filereader import read_dataset
from pynetdicom import pdu_primitives as prim
from pynetdicom.presentation import PresentationContext

from openpacs.dicom.uids import IMPLEMENTATION_CLASS_UID
from openpacs.dimse import receiver
from openpacs.dimse.sop import STORE_TRANSFER_SYNTAXES, VERIFICATION

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT, IMPLICIT, J2K = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.90"


def _decode_command(data: bytes) -> Dataset:
    return read_dataset(BytesIO(data), is_implicit_VR=True, is_little_endian=True)


def test_store_response_decodes_as_a_command_set() -> None:
    data = receiver.encode_response(0x8001, CT, 7, 0xA900, "1.2.3.4", "PatientID is missing")
    ds = _decode_command(data)
    assert ds.CommandGroupLength == len(data) - 12
    assert ds.AffectedSOPClassUID == CT
    assert ds.CommandField == 0x8001
    assert ds.MessageIDBeingRespondedTo == 7
    assert ds.CommandDataSetType == 0x0101
    assert ds.Status == 0xA900
    assert ds.ErrorComment == "PatientID is missing"
    assert ds.AffectedSOPInstanceUID == "1.2.3.4"
    tags = [int(element.tag) for element in ds]
    assert tags == sorted(tags)
    assert receiver.parse_command(data)[0x0900] == b"\x00\xa9"


def test_file_meta_reads_back_with_pydicom(tmp_path: Path) -> None:
    path = tmp_path / "meta.dcm"
    path.write_bytes(receiver.file_meta(CT, "1.2.3", EXPLICIT, "MODALITY"))
    meta = dcmread(path, force=True).file_meta
    assert meta.MediaStorageSOPClassUID == CT
    assert meta.MediaStorageSOPInstanceUID == "1.2.3"
    assert meta.TransferSyntaxUID == EXPLICIT
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert meta.SourceApplicationEntityTitle == "MODALITY"
    assert (
        meta.FileMetaInformationGroupLength
        == len(receiver.file_meta(CT, "1.2.3", EXPLICIT, "MODALITY")) - 144
    )


@pytest.mark.parametrize(
    "data",
    [b"\x00\x00", b"\x08\x00\x16\x00\x02\x00\x00\x00ab", b"\x00\x00\x00\x09\xff\xff\xff\xff"],
)
def test_malformed_command_sets_abort(data: bytes) -> None:
    with pytest.raises(receiver.Abort):
        receiver.parse_command(data)


def _proposal(context_id: int, abstract: str, *syntaxes: str) -> PresentationContext:
    context = PresentationContext()
    context.context_id = context_id
    context.abstract_syntax = abstract
    context.transfer_syntax = list(syntaxes)
    return context


def test_negotiation_prefers_the_requestors_order() -> None:
    policy = receiver.Policy(
        ae_title="STORESCP",
        require_called_ae=True,
        allowed_calling_aes=frozenset(),
        sop_classes=frozenset([VERIFICATION, CT]),
        transfer_syntaxes=frozenset(STORE_TRANSFER_SYNTAXES) - {IMPLICIT},
        acse_timeout=30,
        network_timeout=60,
    )
    rq = prim.A_ASSOCIATE()
    rq.presentation_context_definition_list = [
        _proposal(1, CT, J2K, EXPLICIT),
        _proposal(3, CT, IMPLICIT, EXPLICIT),
        _proposal(5, "1.2.840.10008.5.1.4.1.2.2.1", EXPLICIT),  # a Q/R model: not ours
        _proposal(7, VERIFICATION, IMPLICIT),  # nothing we take
    ]
    results, accepted = receiver.negotiate(rq, policy)
    assert accepted == {1: J2K, 3: EXPLICIT}
    assert [(r.context_id, r.result) for r in results] == [(1, 0), (3, 0), (5, 3), (7, 4)]
