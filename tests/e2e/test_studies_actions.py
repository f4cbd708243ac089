"""The Studies page's actions in headless Chromium against a running `openpacs serve`, studies
stored by dcmtk's storescu: a patient name edited to a Chinese name shows in the list (with the
charset switch the server reports); a remark shows and is found by the keyword box; a series
then the whole study is deleted after a confirmation naming the patient; a study's ZIP arrives
and holds its files; a folder picked with the folder input is uploaded with a result per file
(a non-DICOM file rejected with its reason); a study is sent to Debian's Orthanc and the job
runs to completion; a viewer-role user sees no change or delete action. Screenshots go to
test-artifacts/studies-*.png, in English and zh-CN.
"""

from __future__ import annotations

import base64
import re
import zipfile
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
    store_files,
)
from tests.generators import ct_series

pytestmark = [pytest.mark.peer, pytest.mark.e2e]

WAIT = 60_000  # ms
ADMIN, ADMIN_PASSWORD = "e2e-admin", "e2e-admin-password"
USER, PASSWORD = "e2e-operator", "e2e-operator-password"
VIEWER, VIEWER_PASSWORD = "e2e-viewer", "e2e-viewer-password"
EDITED = "E2EST01"  # two series: edited, remarked, then deleted series by series
SENT = "E2EST02"  # one series: downloaded and sent
UPLOADED = "E2EST03"  # uploaded from a folder
DROPPED = "E2EST04"  # dropped as a ZIP
CHINESE = "Wang^XiaoMing=王^小明"


class Peers:
    def __init__(self, server: Server, orthanc: OrthancServer, studies: dict[str, str]) -> None:
        self.server = server
        self.orthanc = orthanc
        self.studies = studies  # patient ID -> StudyInstanceUID


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    """openpacs holding two studies stored by storescu, with Debian's Orthanc registered as
    node `orthanc` (a store target)."""
    require_console()
    storescu = need("storescu")
    need("Orthanc")
    work = tmp_path_factory.mktemp("studies")
    users = [
        (ADMIN, "admin", ADMIN_PASSWORD),
        (USER, "operator", PASSWORD),
        (VIEWER, "viewer", VIEWER_PASSWORD),
    ]
    with serve(work / "openpacs", users=users) as up, OrthancServer(work / "orthanc") as orthanc:
        files, studies = [], {}
        for patient, seeds in ((EDITED, (11, 12)), (SENT, (21,))):
            study = None
            for number, seed in enumerate(seeds, start=1):
                made = ct_series(
                    work / f"{patient}-{seed}", 3 if patient == EDITED else 4,
                    rows=32, columns=32, patient_id=patient, patient_name="Test^Patient",
                    study_uid=study, seed=seed,
                )  # fmt: skip
                for path in made:
                    ds = dcmread(path)
                    ds.SeriesNumber = number
                    ds.SeriesDescription = f"{patient} SERIES {number}"
                    ds.save_as(path)
                study = str(dcmread(made[0], stop_before_pixels=True).StudyInstanceUID)
                files += made
            assert study is not None
            studies[patient] = study
        store_files(storescu, up, files)
        node = {
            "name": "orthanc",
            "ae_title": orthanc.ae_title,
            "host": "127.0.0.1",
            "port": orthanc.dicom_port,
            "uses": ["store_target"],
        }
        with api_client(up, ADMIN, ADMIN_PASSWORD) as api:
            added = api.post("/api/nodes", json=node)
        assert added.status_code == 201, added.text
        yield Peers(up, orthanc, studies)


def _studies(server: Server, **params: str) -> list[dict[str, object]]:
    with api_client(server, ADMIN, ADMIN_PASSWORD) as api:
        found = api.get("/api/studies", params=params)
    assert found.status_code == 200, found.text
    items = found.json()["items"]
    assert isinstance(items, list)
    return items


def _open(browser: object, server: Server, query: str, user: str = USER, password: str = PASSWORD,
          locale: str = "en-US") -> object:  # fmt: skip
    from playwright.sync_api import Page

    page = signed_in_page(browser, server.base, user, password, locale)
    assert isinstance(page, Page)
    page.goto(f"{server.base}/studies?{query}", timeout=60_000)
    page.locator("[data-test=studies] .el-table__row").first.wait_for(timeout=WAIT)
    return page


def _action(page: object, row: object, name: str) -> None:
    """Choose an entry of the row's "More" menu."""
    from playwright.sync_api import Locator, Page

    assert isinstance(page, Page) and isinstance(row, Locator)
    row.locator("[data-test=study-actions]").click()
    page.locator(f"[data-test=action-{name}]:visible").click()


def test_edit_remark_and_delete_series_then_study(peers: Peers, browser: object) -> None:
    from playwright.sync_api import Page, expect

    server = peers.server
    page = _open(browser, server, f"patient_id={EDITED}")
    assert isinstance(page, Page)
    errors = script_errors(page)
    rows = page.locator("[data-test=studies] .el-table__body-wrapper tr.el-table__row")
    expect(rows).to_have_count(1)
    row = rows.first

    # Edit: the patient's name becomes Chinese; the answer says the charset had to change.
    _action(page, row, "edit")
    dialog = page.locator("[data-test=edit-dialog]")
    name = dialog.locator("input[name=PatientName]")
    expect(name).to_have_value("Test^Patient")
    name.fill(CHINESE)
    screenshot(page, "studies-edit-en")
    dialog.locator("[data-test=edit-save]").click()
    result = dialog.locator("[data-test=edit-result]")
    expect(result).to_contain_text("6 files rewritten", timeout=WAIT)
    expect(result).to_contain_text(CHINESE)
    expect(dialog.locator("[data-test=edit-charset]")).to_contain_text("ISO_IR 192")
    screenshot(page, "studies-edited-en")
    dialog.locator("[data-test=edit-close]").click()
    expect(row).to_contain_text(CHINESE, timeout=WAIT)
    assert _studies(server, patient_name="王小明")[0]["patient_id"] == EDITED

    # Remark: shown in the row, found by the keyword box (and not by another word).
    _action(page, row, "remark")
    box = page.locator(".el-message-box")
    box.locator("textarea").fill("复查 对比旧片 e2e")
    box.locator(".el-button--primary").click()
    expect(row.locator("[data-test=remark]")).to_have_text(
        "Remark: 复查 对比旧片 e2e", timeout=WAIT
    )
    page.fill("input[name=keyword]", "对比旧片")
    page.click("[data-test=search]")
    expect(page).to_have_url(re.compile("keyword="), timeout=WAIT)
    expect(rows).to_have_count(1, timeout=WAIT)
    expect(rows.first).to_contain_text(EDITED)
    screenshot(page, "studies-remark-en")
    page.fill("input[name=keyword]", "no-such-remark")
    page.click("[data-test=search]")
    expect(rows).to_have_count(0, timeout=WAIT)
    page.fill("input[name=keyword]", "")
    page.click("[data-test=search]")
    expect(rows).to_have_count(1, timeout=WAIT)
    row = rows.first

    # Delete one series, after a question naming it and the patient.
    row.locator(".el-table__expand-icon").click()
    series = page.locator("[data-test=series] .el-table__row")
    expect(series).to_have_count(2, timeout=WAIT)
    series.filter(has_text="SERIES 2").locator("[data-test=series-delete]").click()
    question = page.locator(".el-message-box")
    expect(question).to_contain_text(f"{EDITED} SERIES 2")
    expect(question).to_contain_text(CHINESE)
    question.locator(".el-button--primary").click()
    expect(page.locator("[data-test=series] .el-table__row")).to_have_count(1, timeout=WAIT)
    expect(rows.first.locator("td").nth(10)).to_have_text("3", timeout=WAIT)  # images left

    # Delete the study: the question names patient and study.
    _action(page, rows.first, "delete")
    question = page.locator(".el-message-box")
    expect(question).to_contain_text(CHINESE)
    expect(question).to_contain_text(f"({EDITED})")
    screenshot(page, "studies-delete-en")
    question.locator(".el-button--primary").click()
    expect(rows).to_have_count(0, timeout=WAIT)
    assert _studies(server, patient_id=EDITED) == []
    page.close()
    assert errors == []


def test_a_study_zip_arrives_with_its_files(peers: Peers, browser: object, tmp_path: Path) -> None:
    from playwright.sync_api import Page

    page = _open(browser, peers.server, f"patient_id={SENT}")
    assert isinstance(page, Page)
    errors = script_errors(page)
    row = page.locator("[data-test=studies] .el-table__body-wrapper tr.el-table__row").first
    with page.expect_download(timeout=WAIT) as caught:
        _action(page, row, "zip")
    saved = tmp_path / "study.zip"
    caught.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        names = [name for name in archive.namelist() if not name.endswith("/")]
        assert len(names) == 4, names
        for name in names:
            with archive.open(name) as member:
                assert member.read(132)[128:] == b"DICM"

    # A series de-identified: names and UIDs replaced.
    row.locator(".el-table__expand-icon").click()
    page.locator("[data-test=series-deidentify]").click()
    with page.expect_download(timeout=WAIT) as caught:
        page.locator("[data-test=deidentify-dialog] [data-test=deidentify-start]").click()
    saved = tmp_path / "deidentified.zip"
    caught.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        names = [name for name in archive.namelist() if not name.endswith("/")]
        assert len(names) == 4, names
        archive.extract(names[0], tmp_path / "out")
    ds = dcmread(tmp_path / "out" / names[0])
    assert str(ds.PatientName) != "Test^Patient" and ds.PatientID != SENT
    assert ds.StudyInstanceUID != peers.studies[SENT]

    # Several studies: select, then one ZIP each.
    row.locator(".el-checkbox").first.click()
    with page.expect_download(timeout=WAIT) as caught:
        page.click("[data-test=download-selected]")
    assert caught.value.suggested_filename.endswith(".zip")
    page.close()
    assert errors == []


def test_a_folder_upload_lists_each_file(peers: Peers, browser: object, tmp_path: Path) -> None:
    from playwright.sync_api import Page, expect

    folder = tmp_path / "upload"
    ct_series(folder / "series", 3, rows=32, columns=32, patient_id=UPLOADED, seed=31)
    (folder / "notes.txt").write_text("not a DICOM file\n")
    page = _open(browser, peers.server, "", locale="zh-CN")
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.click("[data-test=upload-toggle]")
    page.locator("[data-test=upload-folder]").set_input_files(folder)
    results = page.locator("[data-test=upload-results] .el-table__row")
    expect(results).to_have_count(4, timeout=WAIT)
    expect(page.locator("[data-test=upload-summary]")).to_have_text(
        "已存储 3 个，归档中已有 0 个，拒绝 1 个"
    )
    rejected = results.filter(has_text="notes.txt")
    expect(rejected.locator("[data-outcome=rejected]")).to_have_count(1)
    expect(rejected.locator("td").nth(2)).not_to_be_empty()
    expect(results.locator("[data-outcome=stored]")).to_have_count(3)
    expect(page.locator("[data-test=studies]")).to_contain_text(UPLOADED, timeout=WAIT)
    screenshot(page, "studies-upload-zh")
    assert _studies(peers.server, patient_id=UPLOADED)[0]["number_of_instances"] == 3

    # The same folder again: every image a duplicate.
    page.locator("[data-test=upload-folder]").set_input_files(folder)
    expect(page.locator("[data-test=upload-summary]")).to_have_text(
        "已存储 0 个，归档中已有 3 个，拒绝 1 个", timeout=WAIT
    )

    # A ZIP dropped on the panel (a drop as the browser makes it: a DataTransfer of files).
    made = ct_series(tmp_path / "zip", 2, rows=32, columns=32, patient_id=DROPPED, seed=41)
    with zipfile.ZipFile(tmp_path / "dropped.zip", "w") as archive:
        for path in made:
            archive.write(path, f"DIR/{path.name}")
    page.evaluate(
        """([name, data]) => {
            const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0))
            const transfer = new DataTransfer()
            transfer.items.add(new File([bytes], name, { type: 'application/zip' }))
            const zone = document.querySelector('[data-test=upload-drop]')
            const drop = { dataTransfer: transfer, bubbles: true, cancelable: true }
            zone.dispatchEvent(new DragEvent('drop', drop))
        }""",
        ["dropped.zip", base64.b64encode((tmp_path / "dropped.zip").read_bytes()).decode()],
    )
    expect(page.locator("[data-test=upload-summary]")).to_have_text(
        "已存储 2 个，归档中已有 0 个，拒绝 0 个", timeout=WAIT
    )
    expect(page.locator("[data-test=studies]")).to_contain_text(DROPPED, timeout=WAIT)
    page.close()
    assert errors == []


def test_an_upload_after_the_session_ended_leads_to_sign_in(
    peers: Peers, browser: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    (one,) = ct_series(tmp_path / "late", 1, rows=32, columns=32, patient_id="E2ELATE", seed=41)
    page = _open(browser, peers.server, "")
    assert isinstance(page, Page)
    page.click("[data-test=upload-toggle]")
    page.context.clear_cookies()  # the session is over (signed out elsewhere, expired)
    page.locator("[data-test=upload-folder]").set_input_files(one.parent)
    page.wait_for_url(re.compile(r"/sign-in\?next="), timeout=WAIT)
    expect(page.locator("input[name=username]")).to_be_visible()
    page.close()


def test_a_study_sent_to_orthanc_completes(peers: Peers, browser: object) -> None:
    from playwright.sync_api import Page, expect

    page = _open(browser, peers.server, f"patient_id={SENT}")
    assert isinstance(page, Page)
    errors = script_errors(page)
    row = page.locator("[data-test=studies] .el-table__body-wrapper tr.el-table__row").first
    row.locator(".el-checkbox").first.click()
    page.click("[data-test=send-selected]")
    dialog = page.locator("[data-test=send-dialog]")
    expect(dialog.locator("[data-test=node]")).to_contain_text("orthanc", timeout=WAIT)
    dialog.locator("[data-test=echo]").click()
    expect(dialog.locator("[data-test=echo-result]")).to_contain_text(
        re.compile(r"C-ECHO answered in \d+\.\d ms"), timeout=WAIT
    )
    dialog.locator("[data-test=send-start]").click()
    job = dialog.locator("[data-test=job]")
    expect(job).to_have_attribute("data-state", "succeeded", timeout=WAIT)
    expect(job.locator("[data-test=job-counts]")).to_have_text("4 of 4 done, 0 failed")
    screenshot(page, "studies-sent-en")
    with httpx.Client(base_url=peers.orthanc.base_url, timeout=30, trust_env=False) as orthanc:
        studies = orthanc.get("/studies", params={"expand": "1"}).json()
    assert [s["MainDicomTags"]["StudyInstanceUID"] for s in studies] == [peers.studies[SENT]]
    assert len(studies[0]["Series"]) == 1
    page.close()
    assert errors == []


def test_a_viewer_sees_no_change_actions(peers: Peers, browser: object) -> None:
    from playwright.sync_api import Page, expect

    page = _open(browser, peers.server, f"patient_id={SENT}", VIEWER, VIEWER_PASSWORD, "zh-CN")
    assert isinstance(page, Page)
    errors = script_errors(page)
    row = page.locator("[data-test=studies] .el-table__body-wrapper tr.el-table__row").first
    row.locator("[data-test=study-actions]").click()
    expect(page.locator("[data-test=action-zip]:visible")).to_have_text("ZIP 下载")
    expect(page.locator("[data-test=action-weasis]:visible")).to_have_count(1)
    expect(page.locator("[data-test=action-deidentify]:visible")).to_have_count(1)
    for hidden in ("edit", "remark", "delete", "send"):
        expect(page.locator(f"[data-test=action-{hidden}]")).to_have_count(0)
    screenshot(page, "studies-viewer-zh")
    # Weasis: the page asks for a launch link (which a browser without Weasis cannot follow).
    with page.expect_response(re.compile(r"/weasis$")) as launched:
        page.locator("[data-test=action-weasis]:visible").click()
    assert launched.value.status == 200
    assert launched.value.json()["url"].startswith("weasis://")
    row.locator(".el-table__expand-icon").click()
    expect(page.locator("[data-test=series] .el-table__row")).to_have_count(1, timeout=WAIT)
    expect(page.locator("[data-test=series-zip]")).to_have_count(1)
    expect(page.locator("[data-test=series-delete]")).to_have_count(0)
    for hidden in ("upload-toggle", "send-selected"):
        expect(page.locator(f"[data-test={hidden}]")).to_have_count(0)
    expect(page.locator("[data-test=download-selected]")).to_have_count(1)
    page.close()
    assert errors == []
