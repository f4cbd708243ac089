"""C-MOVE SCP: dcmtk's movescu at every level to a dcmtk storescp; failures, counts and
C-CANCEL through our own SCU and an in-process destination."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset, dcmread

from openpacs.archive.core import Core
from openpacs.dicom import codecs
from openpacs.dimse import engine, sop
from openpacs.dimse.engine import Listener
from tests.conftest import free_port, sample
from tests.generators import ct_series
from tests.integration.dcmtk_peers import StoreScp
from tests.integration.qr_client import Destination, exchange, load, retrieve_tool
from tests.integration.test_sender import dataset_bytes

pytestmark = pytest.mark.peer

COMPRESSED = ["MR_small_jpeg_ls_lossless.dcm", "RG1_J2KR.dcm", "emri_small_RLE.dcm", "JPEG2000.dcm"]


class Data:
    def __init__(self, core: Core, tmp_path: Path) -> None:
        self.john = ct_series(tmp_path / "john", 3, patient_name="DOE^JOHN", patient_id="PID1")
        self.jane = ct_series(
            tmp_path / "jane", 2, patient_name="DOE^JANE", patient_id="PID2", seed=2
        )
        self.compressed = [sample(name) for name in COMPRESSED]
        load(core, [*self.john, *self.jane, *self.compressed])
        self.headers = {
            path: dcmread(path, stop_before_pixels=True)
            for path in [*self.john, *self.jane, *self.compressed]
        }

    def uid(self, path: Path, keyword: str = "SOPInstanceUID") -> str:
        return str(self.headers[path].get(keyword))

    def uids(self, paths: list[Path]) -> set[str]:
        return {self.uid(path) for path in paths}


@pytest.fixture
def data(core: Core, tmp_path: Path) -> Data:
    return Data(core, tmp_path)


def levels(data: Data) -> dict[str, tuple[list[str], list[str], list[Path]]]:
    """Name → (movescu model and options, keys, the files it should bring)."""
    study = f"StudyInstanceUID={data.uid(data.john[0], 'StudyInstanceUID')}"
    series = f"SeriesInstanceUID={data.uid(data.john[0], 'SeriesInstanceUID')}"
    two = f"SOPInstanceUID={data.uid(data.john[0])}\\{data.uid(data.john[2])}"
    both = f"{study}\\{data.uid(data.jane[0], 'StudyInstanceUID')}"
    return {
        "study": (["-S"], ["QueryRetrieveLevel=STUDY", study], data.john),
        "two studies": (["-S"], ["QueryRetrieveLevel=STUDY", both], data.john + data.jane),
        "series": (["-S"], ["QueryRetrieveLevel=SERIES", study, series], data.john),
        "instance list": (
            ["-S"],
            ["QueryRetrieveLevel=IMAGE", study, series, two],
            [data.john[0], data.john[2]],
        ),
        "patient": (["-P"], ["QueryRetrieveLevel=PATIENT", "PatientID=PID1"], data.john),
    }


@pytest.mark.parametrize("level", ["study", "two studies", "series", "instance list", "patient"])
def test_movescu_at_every_level(
    qr_scp: Listener,
    data: Data,
    move_destinations: dict[str, tuple[str, int]],
    tmp_path: Path,
    level: str,
) -> None:
    args, keys, expected = levels(data)[level]
    with StoreScp(tmp_path / "dest", "+B") as dest:
        move_destinations["DEST"] = ("127.0.0.1", dest.port)
        found = retrieve_tool("movescu", qr_scp.port, [*args, "-aem", "DEST"], keys)
        received = dest.received()
    assert found.final == "Success", found.output
    assert set(received) == data.uids(expected)
    for path in expected:
        assert dataset_bytes(received[data.uid(path)]) == dataset_bytes(path)


def test_compressed_originals_to_an_uncompressed_destination(
    qr_scp: Listener, data: Data, move_destinations: dict[str, tuple[str, int]], tmp_path: Path
) -> None:
    studies = "\\".join(sorted({data.uid(p, "StudyInstanceUID") for p in data.compressed}))
    keys = ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={studies}"]
    with StoreScp(tmp_path / "dest", "+xe") as dest:
        move_destinations["DEST"] = ("127.0.0.1", dest.port)
        found = retrieve_tool("movescu", qr_scp.port, ["-S", "-aem", "DEST"], keys)
        received = dest.received()
    assert found.final == "Success", found.output
    for path in data.compressed:
        copy = dcmread(received[data.uid(path)])
        assert copy.file_meta.TransferSyntaxUID in (codecs.EXPLICIT_VR_LE, codecs.IMPLICIT_VR_LE)
        assert np.array_equal(copy.pixel_array, dcmread(path).pixel_array), path.name


def test_unknown_destination(qr_scp: Listener, data: Data) -> None:
    keys = ["QueryRetrieveLevel=PATIENT", "PatientID=PID1"]
    found = retrieve_tool("movescu", qr_scp.port, ["-P", "-aem", "NOWHERE"], keys)
    assert found.final == "Refused: MoveDestinationUnknown"


def study_move(data: Data) -> Dataset:
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = data.uid(data.john[0], "StudyInstanceUID")
    return ident


def counts(message: engine.Message) -> tuple[int | None, ...]:
    return tuple(
        message.ushort(element)
        for element in (engine.REMAINING, engine.COMPLETED, engine.FAILED, engine.WARNING)
    )


def test_pending_counts_partial_failure_and_originator(
    qr_scp: Listener, data: Data, move_destinations: dict[str, tuple[str, int]], tmp_path: Path
) -> None:
    refused = data.uid(data.john[1])
    with Destination(tmp_path, lambda uid: 0xA700 if uid == refused else 0) as dest:
        move_destinations["DEST"] = dest.address
        responses = exchange(
            qr_scp.port,
            sop.STUDY_ROOT_MOVE,
            engine.C_MOVE_RQ,
            study_move(data),
            move_destination="DEST",
        )
    assert responses.statuses == [0xFF00, 0xFF00, 0xFF00, 0xB000]
    assert [counts(m) for m in responses.commands] == [
        (2, 1, 0, 0),
        (1, 1, 1, 0),
        (0, 2, 1, 0),
        (None, 2, 1, 0),
    ]
    final = responses.identifiers[-1]
    assert final is not None and final.FailedSOPInstanceUIDList == refused
    assert [m.text(engine.MOVE_ORIGINATOR_AE) for m in dest.seen] == ["TESTSCU"] * 3
    assert [m.ushort(engine.MOVE_ORIGINATOR_ID) for m in dest.seen] == [7] * 3


def test_unreachable_destination_fails_every_sub_operation(
    qr_scp: Listener, data: Data, move_destinations: dict[str, tuple[str, int]]
) -> None:
    move_destinations["GONE"] = ("127.0.0.1", free_port())
    responses = exchange(
        qr_scp.port,
        sop.STUDY_ROOT_MOVE,
        engine.C_MOVE_RQ,
        study_move(data),
        move_destination="GONE",
    )
    assert responses.statuses == [0xA702]
    final = responses.commands[-1]
    assert counts(final) == (None, 0, 3, 0)
    assert "cannot connect" in final.text(engine.ERROR_COMMENT)
    identifier = responses.identifiers[-1]
    assert identifier is not None
    assert set(identifier.FailedSOPInstanceUIDList) == data.uids(data.john)


def test_cancel_stops_before_the_next_sub_operation(
    qr_scp: Listener, data: Data, move_destinations: dict[str, tuple[str, int]], tmp_path: Path
) -> None:
    with Destination(tmp_path) as dest:
        move_destinations["DEST"] = dest.address
        responses = exchange(
            qr_scp.port,
            sop.STUDY_ROOT_MOVE,
            engine.C_MOVE_RQ,
            study_move(data),
            move_destination="DEST",
            cancel_at_once=True,
        )
    assert responses.statuses == [0xFE00]
    assert counts(responses.commands[-1]) == (3, 0, 0, 0)
    assert dest.seen == []


def test_a_move_without_its_unique_key_is_refused(
    qr_scp: Listener, data: Data, move_destinations: dict[str, tuple[str, int]], tmp_path: Path
) -> None:
    ident = Dataset()
    ident.QueryRetrieveLevel = "SERIES"
    ident.StudyInstanceUID = data.uid(data.john[0], "StudyInstanceUID")
    ident.SeriesInstanceUID = ""
    with Destination(tmp_path) as dest:
        move_destinations["DEST"] = dest.address
        responses = exchange(
            qr_scp.port, sop.STUDY_ROOT_MOVE, engine.C_MOVE_RQ, ident, move_destination="DEST"
        )
    assert responses.statuses == [0xA900]
    comment = responses.commands[-1].text(engine.ERROR_COMMENT)
    assert comment == "SeriesInstanceUID: a SERIES retrieve needs a value"
