"""The C-STORE SCU engine against dcmtk's storescp and against our own Store SCP."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import UID, generate_uid

from openpacs.archive.core import Core
from openpacs.archive.retrieve import find_instance
from openpacs.dicom import codecs
from openpacs.dimse import engine, sender
from openpacs.dimse.engine import Listener
from tests.conftest import free_port, sample
from tests.generators import ct_series
from tests.integration.dcmtk_peers import StoreScp

pytestmark = pytest.mark.peer

# Compressed originals in pydicom-data, lossless and lossy, grey and colour.
COMPRESSED = [
    "MR_small_jpeg_ls_lossless.dcm",
    "RG1_J2KR.dcm",
    "JPEG2000.dcm",
    "emri_small_RLE.dcm",
    "JPEG-LL.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "JPGExtended.dcm",
]


@dataclass(frozen=True)
class File:
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: Path


def as_sendable(path: Path) -> File:
    ds = dcmread(path, stop_before_pixels=True)
    return File(
        str(ds.SOPInstanceUID),
        str(ds.SOPClassUID),
        str(ds.file_meta.TransferSyntaxUID),
        path,
    )


def dataset_bytes(path: Path) -> bytes:
    with path.open("rb") as fh:
        start, _ = sender.dataset_start(fh)
        fh.seek(start)
        return fh.read()


def send_to(scp: StoreScp, files: list[File], **kwargs: object) -> sender.SendReport:
    peer = sender.Peer(scp.ae_title, "127.0.0.1", scp.port)
    return sender.send(peer, files, calling_ae="OPENPACS", timeout=30, **kwargs)  # type: ignore[arg-type]


def test_uncompressed_series_arrives_byte_identical(tmp_path: Path) -> None:
    files = [as_sendable(p) for p in ct_series(tmp_path / "ct", 12)]
    with StoreScp(tmp_path / "out", "+B") as scp:
        report = send_to(scp, files)
        received = scp.received()
    assert (report.completed, report.failed, report.error) == (12, 0, None)
    assert set(received) == {f.sop_instance_uid for f in files}
    for f in files:
        assert dataset_bytes(received[f.sop_instance_uid]) == dataset_bytes(f.path)


def test_compressed_originals_are_converted_for_an_uncompressed_peer(tmp_path: Path) -> None:
    files = [as_sendable(sample(name)) for name in COMPRESSED]
    with StoreScp(tmp_path / "out", "+xe") as scp:  # explicit/implicit/big endian only
        report = send_to(scp, files)
        received = scp.received()
    assert report.failed == 0, report.outcomes
    for f, outcome in zip(files, report.outcomes, strict=True):
        assert outcome.transfer_syntax == codecs.EXPLICIT_VR_LE
        copy = dcmread(received[f.sop_instance_uid])
        assert copy.file_meta.TransferSyntaxUID == codecs.EXPLICIT_VR_LE
        assert np.array_equal(copy.pixel_array, dcmread(f.path).pixel_array), f.path.name


def test_compressed_originals_go_as_stored_when_accepted(tmp_path: Path) -> None:
    files = [as_sendable(sample(name)) for name in COMPRESSED]
    with StoreScp(tmp_path / "out", "+xa", "+B") as scp:
        report = send_to(scp, files)
        received = scp.received()
    assert report.failed == 0, report.outcomes
    for f in files:
        copy = received[f.sop_instance_uid]
        assert dcmread(copy, stop_before_pixels=True).file_meta.TransferSyntaxUID == (
            f.transfer_syntax_uid
        )
        assert dataset_bytes(copy) == dataset_bytes(f.path)


def test_a_class_the_peer_refuses_fails_alone(tmp_path: Path) -> None:
    files = [as_sendable(p) for p in ct_series(tmp_path / "ct", 3)]
    odd = tmp_path / "odd.dcm"
    ds = dcmread(files[0].path)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID("1.2.3.4.5.6.7")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(odd, enforce_file_format=True)
    with StoreScp(tmp_path / "out") as scp:
        report = send_to(scp, [*files[:2], as_sendable(odd), files[2]])
    assert (report.completed, report.failed) == (3, 1)
    refused = report.outcomes[2]
    assert refused.status is None
    assert "no context for 1.2.3.4.5.6.7" in (refused.comment or "")


def test_cancel_and_progress_between_instances(tmp_path: Path) -> None:
    files = [as_sendable(p) for p in ct_series(tmp_path / "ct", 6)]
    seen: list[tuple[str, int]] = []

    def progress(outcome: sender.StoreOutcome, report: sender.SendReport) -> None:
        seen.append((outcome.sop_instance_uid, report.completed))

    with StoreScp(tmp_path / "out") as scp:
        report = send_to(scp, files, progress=progress, cancelled=lambda: len(seen) >= 4)
        received = scp.received()
    assert report.cancelled
    assert [uid for uid, _ in seen] == [f.sop_instance_uid for f in files[:4]]
    assert [done for _, done in seen] == [1, 2, 3, 4]
    assert report.remaining == [f.sop_instance_uid for f in files[4:]]
    assert len(received) == 4


def test_into_our_own_store_scp(store_scp: Listener, core: Core, tmp_path: Path) -> None:
    files = [as_sendable(p) for p in ct_series(tmp_path / "ct", 5)]
    files.append(as_sendable(sample("MR_small_jp2klossless.dcm")))
    peer = sender.Peer("STORESCP", "127.0.0.1", store_scp.port)
    report = sender.send(peer, files, calling_ae="OPENPACS")
    assert (report.completed, report.failed) == (6, 0)
    with core.sessions() as session:
        for f in files:
            stored = find_instance(session, core.storage, f.sop_instance_uid)
            assert stored.transfer_syntax_uid == f.transfer_syntax_uid
            assert dataset_bytes(stored.path) == dataset_bytes(f.path)


def test_rejection_and_silence_say_why(store_scp: Listener, tmp_path: Path) -> None:
    files = [as_sendable(p) for p in ct_series(tmp_path / "ct", 1)]
    wrong = sender.Peer("NOTSTORESCP", "127.0.0.1", store_scp.port)
    with pytest.raises(sender.AssociationFailed, match="called AE title not recognised"):
        sender.send(wrong, files, calling_ae="OPENPACS")
    nobody = sender.Peer("X", "127.0.0.1", free_port())
    with pytest.raises(sender.AssociationFailed, match="cannot connect"):
        sender.send(nobody, files, calling_ae="OPENPACS")


def test_move_originator_travels_with_each_request(tmp_path: Path) -> None:
    """A destination sees who asked for the C-MOVE (an in-process acceptor records it)."""
    seen: list[engine.Message] = []
    lock = threading.Lock()

    def record(assoc: engine.Association, message: engine.Message) -> None:
        with lock:
            seen.append(message)
        if message.path is not None:
            message.path.unlink()
        assoc.respond(message, engine.C_STORE_RSP, 0xB000, comment="kept, with a warning")

    files = [as_sendable(p) for p in ct_series(tmp_path / "ct", 2)]
    policy = engine.Policy(
        ae_title="DEST",
        require_called_ae=True,
        allowed_calling_aes=frozenset(),
        sop_classes=frozenset({files[0].sop_class_uid}),
        transfer_syntaxes=frozenset({codecs.EXPLICIT_VR_LE}),
        acse_timeout=5,
        network_timeout=5,
    )
    listener = Listener(policy, {engine.C_STORE_RQ: record}, "127.0.0.1", 0, tmp_path, "storescp")
    listener.start()
    try:
        report = sender.send(
            sender.Peer("DEST", "127.0.0.1", listener.port),
            files,
            calling_ae="QRSCP",
            originator=sender.Originator("WORKSTATION", 77),
        )
    finally:
        listener.stop(grace=2)
    assert (report.warnings, report.failed) == (2, 0)
    assert report.outcomes[0].comment == "kept, with a warning"
    assert [m.text(engine.MOVE_ORIGINATOR_AE) for m in seen] == ["WORKSTATION"] * 2
    assert [m.ushort(engine.MOVE_ORIGINATOR_ID) for m in seen] == [77, 77]
    assert [m.sop_instance_uid for m in seen] == [f.sop_instance_uid for f in files]
