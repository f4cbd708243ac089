"""C-GET SCP: dcmtk's getscu at every level (sub-operations on its own association, with SCP/SCU
role selection); counts, failures and C-CANCEL through our own SCU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset, dcmread

from openpacs.archive.core import Core
from openpacs.dicom import codecs
from openpacs.dimse import engine, sop
from openpacs.dimse.engine import Listener
from tests.integration.qr_client import exchange, retrieve_tool
from tests.integration.test_qr_move import Data, counts, levels
from tests.integration.test_sender import dataset_bytes

pytestmark = pytest.mark.peer

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture
def data(core: Core, tmp_path: Path) -> Data:
    return Data(core, tmp_path)


def received(folder: Path) -> dict[str, Path]:
    return {
        str(dcmread(path, stop_before_pixels=True).SOPInstanceUID): path
        for path in folder.iterdir()
    }


@pytest.mark.parametrize("level", ["study", "two studies", "series", "instance list", "patient"])
def test_getscu_at_every_level(qr_scp: Listener, data: Data, tmp_path: Path, level: str) -> None:
    args, keys, expected = levels(data)[level]
    out = tmp_path / "got"
    out.mkdir()
    found = retrieve_tool("getscu", qr_scp.port, [*args, "+B", "-od", str(out)], keys)
    assert found.final == "Success", found.output
    got = received(out)
    assert set(got) == data.uids(expected)
    for path in expected:
        assert dataset_bytes(got[data.uid(path)]) == dataset_bytes(path)


def test_compressed_originals_arrive_converted(
    qr_scp: Listener, data: Data, tmp_path: Path
) -> None:
    """getscu proposes only uncompressed syntaxes for storage: each object is converted."""
    studies = "\\".join(sorted({data.uid(p, "StudyInstanceUID") for p in data.compressed}))
    out = tmp_path / "got"
    out.mkdir()
    keys = ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={studies}"]
    found = retrieve_tool("getscu", qr_scp.port, ["-S", "-od", str(out)], keys)
    assert found.final == "Success", found.output
    got = received(out)
    for path in data.compressed:
        copy = dcmread(got[data.uid(path)])
        assert copy.file_meta.TransferSyntaxUID in (codecs.EXPLICIT_VR_LE, codecs.IMPLICIT_VR_LE)
        assert np.array_equal(copy.pixel_array, dcmread(path).pixel_array), path.name


def study_get(data: Data) -> Dataset:
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.StudyInstanceUID = data.uid(data.john[0], "StudyInstanceUID")
    return ident


def test_counts_and_a_refused_sub_operation(qr_scp: Listener, data: Data) -> None:
    refused = data.uid(data.john[0])
    responses = exchange(
        qr_scp.port,
        sop.STUDY_ROOT_GET,
        engine.C_GET_RQ,
        study_get(data),
        store_classes=[CT_IMAGE],
        store_status=lambda uid: 0xA700 if uid == refused else 0,
    )
    assert [m.sop_instance_uid for m in responses.stored] == [data.uid(path) for path in data.john]
    assert responses.statuses == [0xFF00, 0xFF00, 0xFF00, 0xB000]
    assert [counts(m) for m in responses.commands] == [
        (2, 0, 1, 0),
        (1, 1, 1, 0),
        (0, 2, 1, 0),
        (None, 2, 1, 0),
    ]
    final = responses.identifiers[-1]
    assert final is not None and final.FailedSOPInstanceUIDList == refused


def test_without_the_scp_role_every_sub_operation_fails(qr_scp: Listener, data: Data) -> None:
    responses = exchange(qr_scp.port, sop.STUDY_ROOT_GET, engine.C_GET_RQ, study_get(data))
    assert responses.stored == []
    assert responses.statuses[-1] == 0xA702
    assert counts(responses.commands[-1]) == (None, 0, 3, 0)


def test_cancel_before_the_first_sub_operation(qr_scp: Listener, data: Data) -> None:
    responses = exchange(
        qr_scp.port,
        sop.STUDY_ROOT_GET,
        engine.C_GET_RQ,
        study_get(data),
        store_classes=[CT_IMAGE],
        cancel_at_once=True,
    )
    assert responses.stored == []
    assert responses.statuses == [0xFE00]
    assert counts(responses.commands[-1]) == (3, 0, 0, 0)
