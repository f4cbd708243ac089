"""The DIMSE engine's pure parts: command and file-meta encoding, negotiation."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset, dcmread
from pydicom.filereader import read_dataset
from pynetdicom import pdu_primitives as prim
from pynetdicom.presentation import PresentationContext

from openpacs.dicom.uids import IMPLEMENTATION_CLASS_UID
from openpacs.dimse import engine
from openpacs.dimse.sop import STORE_TRANSFER_SYNTAXES, VERIFICATION

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT, IMPLICIT, J2K = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.4.90"


def _decode_command(data: bytes) -> Dataset:
    return read_dataset(BytesIO(data), is_implicit_VR=True, is_little_endian=True)


def test_store_response_decodes_as_a_command_set() -> None:
    data = engine.encode_response(0x8001, CT, 7, 0xA900, "1.2.3.4", "PatientID is missing")
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
    assert engine.parse_command(data)[0x0900] == b"\x00\xa9"


def test_file_meta_reads_back_with_pydicom(tmp_path: Path) -> None:
    path = tmp_path / "meta.dcm"
    path.write_bytes(engine.file_meta(CT, "1.2.3", EXPLICIT, "MODALITY"))
    meta = dcmread(path, force=True).file_meta
    assert meta.MediaStorageSOPClassUID == CT
    assert meta.MediaStorageSOPInstanceUID == "1.2.3"
    assert meta.TransferSyntaxUID == EXPLICIT
    assert meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert meta.SourceApplicationEntityTitle == "MODALITY"
    assert (
        meta.FileMetaInformationGroupLength
        == len(engine.file_meta(CT, "1.2.3", EXPLICIT, "MODALITY")) - 144
    )


@pytest.mark.parametrize(
    "data",
    [b"\x00\x00", b"\x08\x00\x16\x00\x02\x00\x00\x00ab", b"\x00\x00\x00\x09\xff\xff\xff\xff"],
)
def test_malformed_command_sets_abort(data: bytes) -> None:
    with pytest.raises(engine.Abort):
        engine.parse_command(data)


def _proposal(context_id: int, abstract: str, *syntaxes: str) -> PresentationContext:
    context = PresentationContext()
    context.context_id = context_id
    context.abstract_syntax = abstract
    context.transfer_syntax = list(syntaxes)
    return context


def test_negotiation_prefers_the_requestors_order() -> None:
    policy = engine.Policy(
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
    done = engine.negotiate(rq, policy)
    assert {cid: c.transfer_syntax for cid, c in done.contexts.items()} == {1: J2K, 3: EXPLICIT}
    assert [(r.context_id, r.result) for r in done.results] == [(1, 0), (3, 0), (5, 3), (7, 4)]


def _role(uid: str, scp: bool) -> prim.SCP_SCU_RoleSelectionNegotiation:
    role = prim.SCP_SCU_RoleSelectionNegotiation()
    role.sop_class_uid = uid
    role.scu_role = True
    role.scp_role = scp
    return role


def _qr_policy(**changes: object) -> engine.Policy:
    policy = engine.Policy(
        ae_title="QRSCP",
        require_called_ae=True,
        allowed_calling_aes=frozenset(),
        sop_classes=frozenset([VERIFICATION, STUDY_GET]),
        transfer_syntaxes=frozenset([EXPLICIT, IMPLICIT]),
        acse_timeout=30,
        network_timeout=60,
        reverse_classes=frozenset([CT, MR]),
        reverse_syntaxes=frozenset([EXPLICIT, J2K]),
    )
    return replace(policy, **changes)  # type: ignore[arg-type]


STUDY_GET, MR = "1.2.840.10008.5.1.4.1.2.2.3", "1.2.840.10008.5.1.4.1.1.4"


def test_storage_contexts_for_c_get_need_the_scp_role() -> None:
    rq = prim.A_ASSOCIATE()
    rq.presentation_context_definition_list = [
        _proposal(1, STUDY_GET, EXPLICIT),
        _proposal(3, CT, J2K, EXPLICIT),
        _proposal(5, MR, EXPLICIT),  # no role selection for MR: not usable by C-GET
    ]
    rq.user_information = [_role(CT, scp=True)]
    done = engine.negotiate(rq, _qr_policy())
    assert [(r.context_id, r.result) for r in done.results] == [(1, 0), (3, 0), (5, 1)]
    assert done.contexts[3] == engine.Context(3, CT, J2K, reverse=True)
    assert done.contexts[1].reverse is False
    (role,) = done.user_items
    assert isinstance(role, prim.SCP_SCU_RoleSelectionNegotiation)
    assert (role.sop_class_uid, role.scu_role, role.scp_role) == (CT, False, True)


def test_extended_negotiation_answers_only_accepted_classes() -> None:
    def grant(uid: str, info: bytes) -> bytes:
        return info[:1]

    rq = prim.A_ASSOCIATE()
    rq.presentation_context_definition_list = [_proposal(1, STUDY_GET, EXPLICIT)]
    items: list[Any] = []
    for uid in (STUDY_GET, "1.2.840.10008.5.1.4.1.2.1.1"):
        item = prim.SOPClassExtendedNegotiation()
        item.sop_class_uid = uid
        item.service_class_application_information = b"\x01\x01"
        items.append(item)
    rq.user_information = items
    done = engine.negotiate(rq, _qr_policy(extended=grant))
    assert done.extended == {STUDY_GET: b"\x01"}


# --- the data phase over a socket pair ------------------------------------------------------


Pair = Callable[[int], tuple[engine.Link, engine.Link]]


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    """Two connected links: (sender with the peer's maximum PDU given, receiver)."""
    opened: list[engine.Link] = []

    def make(max_pdu: int) -> tuple[engine.Link, engine.Link]:
        log = logging.getLogger("test")
        left, right = socket.socketpair()
        for sock in (left, right):
            sock.settimeout(5)
        out = engine.Link(left, ("local", 1), log)
        into = engine.Link(right, ("local", 2), log, temp_dir=tmp_path)
        out.contexts = into.contexts = {1: engine.Context(1, CT, EXPLICIT)}
        out.peer_max_pdu = max_pdu
        opened.extend((out, into))
        return out, into

    yield make
    for link in opened:
        link.close()


def _store_rq(message_id: int) -> bytes:
    return engine.encode_command(
        {
            engine.AFFECTED_SOP_CLASS: engine.ui(CT),
            engine.COMMAND_FIELD: engine.us(engine.C_STORE_RQ),
            engine.MESSAGE_ID: engine.us(message_id),
            engine.DATASET_TYPE: engine.us(engine.DATASET_PRESENT),
            engine.AFFECTED_SOP_INSTANCE: engine.ui("1.2.3"),
        }
    )


@pytest.mark.parametrize(
    ("max_pdu", "size", "send_buffer"),
    [
        (64, 10_240, None),  # 58 data bytes per PDV
        (16_384, 3_000_000, 4096),  # several blocks; a small send buffer forces partial sends
    ],
)
def test_a_streamed_dataset_arrives_as_a_part10_file(
    pair: Pair, max_pdu: int, size: int, send_buffer: int | None
) -> None:
    out, into = pair(max_pdu)
    if send_buffer is not None:
        out.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    payload = (bytes(range(251)) * (size // 251 + 1))[:size]
    thread = threading.Thread(
        target=out.send_stream, args=(1, _store_rq(5), BytesIO(payload), len(payload))
    )
    thread.start()
    message = into.next_message()
    thread.join()
    assert message is not None and message.path is not None
    assert (message.command_field, message.message_id) == (engine.C_STORE_RQ, 5)
    data = message.path.read_bytes()
    assert data.endswith(payload)
    assert dcmread(
        message.path, stop_before_pixels=True, force=True
    ).file_meta.TransferSyntaxUID == (EXPLICIT)


def test_an_identifier_arrives_in_memory_and_cancel_is_noticed(pair: Pair) -> None:
    out, into = pair(0)
    find = engine.encode_command(
        {
            engine.AFFECTED_SOP_CLASS: engine.ui(CT),
            engine.COMMAND_FIELD: engine.us(engine.C_FIND_RQ),
            engine.MESSAGE_ID: engine.us(9),
            engine.DATASET_TYPE: engine.us(engine.DATASET_PRESENT),
        }
    )
    out.send(1, find, b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
    message = into.next_message()
    assert message is not None and message.dataset == b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY "
    assert not into.cancel_requested(9)
    cancel = engine.encode_command(
        {
            engine.COMMAND_FIELD: engine.us(engine.C_CANCEL_RQ),
            engine.RESPONDED_TO: engine.us(9),
            engine.DATASET_TYPE: engine.us(engine.NO_DATASET),
        }
    )
    out.send(1, cancel)
    deadline = 50
    while not into.cancel_requested(9) and deadline:
        deadline -= 1
        threading.Event().wait(0.01)
    assert into.cancel_requested(9)
    out.send(1, find, b"")  # another request while the first runs: not allowed
    with pytest.raises(engine.Abort):
        while not into.cancel_requested(10):
            threading.Event().wait(0.01)


def test_release_and_abort_end_the_data_phase(pair: Pair) -> None:
    out, into = pair(0)
    thread = threading.Thread(target=out.release, args=(5,))
    thread.start()
    assert into.next_message() is None  # answered with A-RELEASE-RP
    thread.join()
    out, into = pair(0)
    out.abort()
    with pytest.raises(engine.PeerGone):
        into.next_message()


def test_message_ids_wrap_without_zero(pair: Pair) -> None:
    link, _ = pair(0)
    ids = [link.next_message_id() for _ in range(0x10001)]
    assert ids[0] == 1 and ids[0xFFFE] == 0xFFFF and ids[0xFFFF] == 1
    assert 0 not in ids


def test_an_oversized_dataset_aborts_or_is_dropped_as_the_link_says(pair: Pair) -> None:
    n_set = engine.encode_command(
        {
            engine.COMMAND_FIELD: engine.us(0x0120),
            engine.MESSAGE_ID: engine.us(3),
            engine.DATASET_TYPE: engine.us(engine.DATASET_PRESENT),
        }
    )
    out, into = pair(1024)  # several PDVs: the limit is crossed mid-dataset
    into.max_dataset = 4000
    thread = threading.Thread(target=out.send, args=(1, n_set, b"x" * 10_000))
    thread.start()
    with pytest.raises(engine.Abort):
        into.next_message()
    thread.join()
    out, into = pair(1024)
    into.max_dataset, into.answer_oversized = 4000, True
    out.send(1, n_set, b"x" * 10_000)
    message = into.next_message()
    assert message is not None and message.oversized and message.dataset is None
    out.send(1, n_set, b"y" * 100)  # the next message is whole again
    message = into.next_message()
    assert message is not None and not message.oversized and message.dataset == b"y" * 100
