"""Orthanc (Debian package) as a client of our Q/R SCP: its REST API queries us (C-FIND) and
retrieves from us into itself (C-MOVE with Orthanc as the destination)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bench.orthanc import OrthancServer
from pydicom import dcmread

from openpacs.archive.core import Core
from openpacs.dimse.engine import Listener
from tests.conftest import need
from tests.generators import ct_series
from tests.integration.qr_client import load

pytestmark = pytest.mark.peer


@pytest.fixture
def orthanc(qr_scp: Listener, tmp_path: Path) -> Iterator[OrthancServer]:
    need("Orthanc")
    modalities = {"openpacs": ["QRSCP", "127.0.0.1", qr_scp.port]}
    server = OrthancServer(tmp_path / "orthanc", {"DicomModalities": modalities})
    with server:
        yield server


def test_orthanc_queries_and_retrieves(
    orthanc: OrthancServer,
    core: Core,
    move_destinations: dict[str, tuple[str, int]],
    tmp_path: Path,
) -> None:
    files = ct_series(tmp_path / "ct", 3, patient_name="DOE^JOHN", patient_id="PID1")
    load(core, files)
    study = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    move_destinations[orthanc.ae_title] = ("127.0.0.1", orthanc.dicom_port)
    with httpx.Client(base_url=orthanc.base_url, timeout=60, trust_env=False) as client:
        query = {"Level": "Study", "Query": {"PatientName": "DOE*", "StudyInstanceUID": ""}}
        created = client.post("/modalities/openpacs/query", json=query)
        assert created.status_code == 200, created.text
        query_id = created.json()["ID"]
        answers = client.get(f"/queries/{query_id}/answers", params={"expand": ""}).json()
        assert [a["0020,000d"]["Value"] for a in answers] == [study]
        retrieved = client.post(
            f"/queries/{query_id}/retrieve",
            json={"TargetAet": orthanc.ae_title, "Synchronous": True},
        )
        assert retrieved.status_code == 200, retrieved.text
        deadline = time.monotonic() + 30
        while client.get("/statistics").json()["CountInstances"] < 3:
            assert time.monotonic() < deadline, "Orthanc did not receive the study"
            time.sleep(0.1)
        assert (
            client.get("/studies", params={"expand": ""}).json()[0]["MainDicomTags"][
                "StudyInstanceUID"
            ]
            == study
        )
