"""An association cut off in the middle of a C-STORE leaves no index row and no file."""

from __future__ import annotations

import contextlib
import socket
import time
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.filebase import DicomBytesIO, DicomFileLike
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE, _config
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE

from openpacs.archive.core import Core
from openpacs.dimse.engine import Listener
from openpacs.dimse.store_scp import make_store_listener
from tests.generators import ct_series


def _encoded(path: Path) -> tuple[str, str, bytes]:
    ds = dcmread(path)
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = False
    write_dataset(buffer, ds)
    return str(ds.SOPClassUID), str(ds.SOPInstanceUID), buffer.getvalue()


def test_truncated_c_store_leaves_nothing(store_scp: Listener, core: Core, tmp_path: Path) -> None:
    (path,) = ct_series(tmp_path / "ct", 1)
    sop_class, sop_instance, data = _encoded(path)
    ae = AE(ae_title="TRUNCATE")
    ae.add_requested_context(sop_class, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", store_scp.port, ae_title="STORESCP")
    assert assoc.is_established
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = sop_class
    request.AffectedSOPInstanceUID = sop_instance
    request.Priority = 2
    request.DataSet = BytesIO(data)
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    context_id = assoc.accepted_contexts[0].context_id
    assert context_id is not None
    fragments = list(message.encode_msg(context_id, 16384))
    assert len(fragments) > 4
    for fragment in fragments[: len(fragments) // 2]:  # half the dataset, then cut
        assoc.dul.send_pdu(fragment)
    time.sleep(0.3)
    # pynetdicom drops an aborted association's socket without closing it (pynetdicom #979);
    # left to the garbage collector it fails a later test with a ResourceWarning.
    raw = assoc.dul.socket.socket if assoc.dul.socket is not None else None
    assoc.abort()
    if raw is not None:
        raw.close()

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and list(core.storage.temp_dir.iterdir()):
        time.sleep(0.05)
    assert core.counts().instances == 0
    assert list(core.storage.walk()) == []
    assert list(core.storage.temp_dir.iterdir()) == []


def test_stop_does_not_wait_for_a_connection_that_never_associated(
    store_scp: Listener,
) -> None:
    # A TCP probe (port scanner, load balancer) opens the port and says nothing.
    probe = socket.create_connection(("127.0.0.1", store_scp.port))
    try:
        time.sleep(0.2)
        started = time.monotonic()
        store_scp.stop(grace=10)
        assert time.monotonic() - started < 3
    finally:
        probe.close()


def _send_raw_c_store(port: int, source: Path, data: bytes, tmp_path: Path) -> int:
    """A complete C-STORE: `source`'s file meta, then `data` as the dataset, sent undecoded."""
    meta = dcmread(source, stop_before_pixels=True).file_meta
    path = tmp_path / "raw.dcm"
    with path.open("wb") as out:
        out.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(DicomFileLike(out), meta)
        out.write(data)
    ae = AE(ae_title="RAWSCU")
    ae.add_requested_context(meta.MediaStorageSOPClassUID, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="STORESCP")
    assert assoc.is_established
    try:
        response = assoc.send_c_store(path)  # a path: pynetdicom sends the bytes as they are
    finally:
        assoc.release()
    return int(response.Status)


def test_garbage_dataset_is_refused_and_the_server_stays_up(
    store_scp: Listener, core: Core, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Send files as they are on disk, undecoded (pynetdicom's switch, process-wide).
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)
    (path,) = ct_series(tmp_path / "ct", 1)
    sop_class, sop_instance, data = _encoded(path)
    # A sane start (the UIDs a sender needs to address the object), then noise.
    start = Dataset()
    start.SOPClassUID = sop_class
    start.SOPInstanceUID = sop_instance
    head = DicomBytesIO()
    head.is_little_endian, head.is_implicit_VR = True, False
    write_dataset(head, start)
    garbage = head.getvalue() + bytes(range(256)) * 64
    assert _send_raw_c_store(store_scp.port, path, garbage, tmp_path) in (0xA900, 0xC000)
    assert core.counts().instances == 0
    assert list(core.storage.walk()) == []
    assert list(core.storage.temp_dir.iterdir()) == []
    # The same listener still takes a good object afterwards.
    assert _send_raw_c_store(store_scp.port, path, data, tmp_path) == 0x0000
    assert core.counts().instances == 1


def test_a_flood_of_silent_connections_is_capped(core: Core) -> None:
    settings = core.settings.storescp.model_copy(update={"max_associations": 1})
    listener = make_store_listener(settings, core.archive)
    listener.start()
    probes = []
    try:
        for _ in range(12):  # four per permitted association are let in, the rest closed
            probes.append(socket.create_connection(("127.0.0.1", listener.port)))
        time.sleep(0.5)
        closed = 0
        for probe in probes:
            probe.settimeout(0.2)
            with contextlib.suppress(TimeoutError):
                closed += probe.recv(1) == b""
        assert closed == 8
    finally:
        for probe in probes:
            probe.close()
        listener.stop(grace=1)
