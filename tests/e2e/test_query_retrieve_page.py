"""The console's Query/Retrieve page in headless Chromium against a running `openpacs serve` and
Debian's Orthanc holding a study: echo the node (round trip shown), query it at study level,
unfold the study's series, retrieve the study with C-MOVE and watch the job's progress to its
end; the study is then in openpacs. Screenshots go to test-artifacts/qr-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from bench.orthanc import OrthancServer
from pydicom import dcmread

from tests.conftest import need
from tests.e2e.serve import (
    Server,
    api_client,
    require_console,
    screenshot,
    script_errors,
    serve,
    signed_in_page,
)
from tests.generators import ct_series

pytestmark = [pytest.mark.peer, pytest.mark.e2e]

WAIT = 60_000  # ms
ADMIN, ADMIN_PASSWORD = "e2e-admin", "e2e-admin-password"
USER, PASSWORD = "e2e-operator", "e2e-operator-password"
PATIENT_ID = "E2EQR01"
SLICES = 8


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """openpacs, and Orthanc holding one CT study (registered in openpacs as node `orthanc`,
    openpacs in Orthanc as its C-MOVE destination); yields the server and the study's UID."""
    require_console()
    need("Orthanc")
    work = tmp_path_factory.mktemp("qr")
    users = [(ADMIN, "admin", ADMIN_PASSWORD), (USER, "operator", PASSWORD)]
    with serve(work / "openpacs", users=users) as up:
        moves_to = {"openpacs": ["STORESCP", "127.0.0.1", up.store_port]}
        config: dict[str, object] = {"DicomModalities": moves_to, "DefaultEncoding": "Utf8"}
        with OrthancServer(work / "orthanc", config) as orthanc:
            files = ct_series(work / "ct", SLICES, rows=64, columns=64, patient_id=PATIENT_ID)
            for path in files:
                ds = dcmread(path)
                ds.SpecificCharacterSet = "ISO_IR 192"
                ds.PatientName = "Wang^XiaoDong=王^小东"
                ds.save_as(path)
            with httpx.Client(base_url=orthanc.base_url, timeout=60, trust_env=False) as client:
                for path in files:
                    assert client.post("/instances", content=path.read_bytes()).status_code == 200
            node = {
                "name": "orthanc",
                "ae_title": orthanc.ae_title,
                "host": "127.0.0.1",
                "port": orthanc.dicom_port,
            }
            with _api(up) as api:
                added = api.post("/api/nodes", json=node)
            assert added.status_code == 201, added.text
            yield up, str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def _api(server: Server) -> httpx.Client:
    return api_client(server, ADMIN, ADMIN_PASSWORD)


def _stored(server: Server) -> list[tuple[str, int]]:
    """The patient's studies in openpacs: (StudyInstanceUID, number of instances)."""
    with _api(server) as api:
        found = api.get("/api/studies", params={"patient_id": PATIENT_ID}).json()
    return [(one["study_instance_uid"], one["number_of_instances"]) for one in found["items"]]


def test_a_retrieve_from_orthanc_runs_to_completion_with_progress(
    peers: tuple[Server, str], browser: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, Response, expect

    server, study = peers
    page = signed_in_page(browser, server.base, USER, PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    # What the page learns of the job at each poll: (state, done, total).
    polls: list[tuple[str, int, int]] = []

    def on_response(response: Response) -> None:
        if re.search(r"/api/jobs/\d+$", response.url) and response.ok:
            job = response.json()
            polls.append((job["state"], job["done"], job["total"]))

    page.on("response", on_response)
    page.goto(server.base + "/query-retrieve", timeout=60_000)
    expect(page.locator("[data-test=node]")).to_contain_text("orthanc", timeout=WAIT)

    page.click("[data-test=echo]")
    expect(page.locator("[data-test=echo-result]")).to_contain_text(
        re.compile(r"C-ECHO answered in \d+\.\d ms"), timeout=WAIT
    )

    page.fill("input[name=patient_id]", PATIENT_ID)
    page.click("[data-test=find]")
    row = page.locator("[data-test=remote-studies] .el-table__row", has_text=PATIENT_ID)
    expect(row).to_have_count(1, timeout=WAIT)
    expect(row).to_contain_text("Wang^XiaoDong=王^小东")
    expect(row).to_contain_text(str(SLICES))

    row.locator(".el-table__expand-icon").click()
    series = page.locator("[data-test=remote-series] .el-table__row")
    expect(series).to_have_count(1, timeout=WAIT)
    expect(series).to_contain_text("Synthetic phantom")

    assert _stored(server) == []
    row.locator(".el-checkbox").first.click()
    page.click("[data-test=retrieve]")
    job = page.locator("[data-test=job]")
    expect(job).to_have_count(1, timeout=WAIT)
    expect(job).to_have_attribute("data-state", "succeeded", timeout=WAIT)
    counts = job.locator("[data-test=job-counts]")
    expect(counts).to_have_text(f"{SLICES} of {SLICES} done, 0 failed")
    screenshot(page, "qr-retrieved")

    # Followed by polling until it finished, the last answer the finished job.
    assert polls and polls[-1] == ("succeeded", SLICES, SLICES), polls
    assert _stored(server) == [(study, SLICES)]
    page.close()
    assert errors == []
