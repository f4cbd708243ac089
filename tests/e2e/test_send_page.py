"""The console's Send page in headless Chromium against a running `openpacs serve` and dcmtk
`storescp` peers: a study stored with `storescu` is chosen from the archive, the node echoed and
the study sent; the job runs to completion with each image shown sent, and the files arrive.
Files chosen in the page are uploaded, then sent to a node where nothing listens: the job fails
saying why, each file shown not sent; once the peer is up, Retry sends them all. The page
renders in zh-CN too. Screenshots go to test-artifacts/send-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import UID, generate_uid

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
from tests.integration.dcmtk_peers import StoreScp

pytestmark = [pytest.mark.peer, pytest.mark.e2e]

WAIT = 60_000  # ms
ADMIN, ADMIN_PASSWORD = "e2e-admin", "e2e-admin-password"
USER, PASSWORD = "e2e-operator", "e2e-operator-password"
PATIENT_ID = "E2ESEND01"
SLICES = 4
FILES = 3


@dataclass
class Peers:
    server: Server
    study: str  # the StudyInstanceUID stored in openpacs
    instances: set[str]  # its SOP Instance UIDs
    up: StoreScp  # node `archive`, listening throughout
    later: StoreScp  # node `later`: nothing listens until a test starts it
    work: Path


def _uids(files: list[Path]) -> set[str]:
    return {str(dcmread(path, stop_before_pixels=True).SOPInstanceUID) for path in files}


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    require_console()
    storescu = need("storescu")
    need("storescp")
    work = tmp_path_factory.mktemp("send")
    users = [(ADMIN, "admin", ADMIN_PASSWORD), (USER, "operator", PASSWORD)]
    # One attempt: a job whose node is down fails at once instead of waiting to try again.
    with serve(work / "openpacs", users=users, settings={"OPENPACS_JOBS__MAX_ATTEMPTS": "1"}) as up:
        files = ct_series(work / "ct", SLICES, rows=32, columns=32, patient_id=PATIENT_ID)
        store_files(storescu, up, files)
        for name in ("archive", "later"):
            (work / name).mkdir()
        archive = StoreScp(work / "archive" / "in", ae_title="ARCHIVE")
        later = StoreScp(work / "later" / "in", ae_title="LATER")
        with api_client(up, ADMIN, ADMIN_PASSWORD) as api:
            for name, peer in [("archive", archive), ("later", later)]:
                node = {
                    "name": name,
                    "ae_title": peer.ae_title,
                    "host": "127.0.0.1",
                    "port": peer.port,
                    "uses": ["store_target"],
                }
                added = api.post("/api/nodes", json=node)
                assert added.status_code == 201, added.text
        study = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
        with archive:
            yield Peers(up, study, _uids(files), archive, later, work)


def _choose_node(page: object, name: str) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.click("[data-test=node]")
    page.locator(".el-select-dropdown__item", has_text=name).click()


def test_send_a_stored_study_to_a_storescp(peers: Peers, browser: object) -> None:
    from playwright.sync_api import Page, expect

    page = signed_in_page(browser, peers.server.base, USER, PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(peers.server.base + "/send", timeout=60_000)
    _choose_node(page, "archive")
    page.click("[data-test=echo]")
    expect(page.locator("[data-test=echo-result]")).to_contain_text(
        re.compile(r"C-ECHO answered in \d+\.\d ms"), timeout=WAIT
    )

    page.fill("input[name=patient_id]", PATIENT_ID)
    page.click("[data-test=search]")
    row = page.locator("[data-test=studies] .el-table__row", has_text=PATIENT_ID)
    expect(row).to_have_count(1, timeout=WAIT)
    row.locator(".el-checkbox").first.click()
    page.click("[data-test=send-studies]")

    job = page.locator("[data-test=job]")
    expect(job).to_have_attribute("data-state", "succeeded", timeout=WAIT)
    counts = job.locator("[data-test=job-counts]")
    expect(counts).to_have_text(f"{SLICES} of {SLICES} done, 0 failed")
    items = page.locator("[data-test=send-items] .el-table__row")
    expect(items).to_have_count(SLICES, timeout=WAIT)
    expect(page.locator("[data-test=send-items] [data-status=sent]")).to_have_count(SLICES)
    recent = page.locator("[data-test=recent] .el-table__row")
    expect(recent.first.locator("[data-state]")).to_have_attribute("data-state", "succeeded")
    expect(recent.first).to_contain_text("1 study to archive")
    screenshot(page, "send-study-en")

    assert set(peers.up.received()) == peers.instances
    page.close()
    assert errors == []


def test_uploaded_files_fail_on_a_node_that_is_down_then_retry_sends_them(
    peers: Peers, browser: object
) -> None:
    from playwright.sync_api import Page, expect

    files = ct_series(
        peers.work / "upload", FILES, rows=32, columns=32, patient_id="E2ESEND02", seed=7
    )
    page = signed_in_page(browser, peers.server.base, USER, PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(peers.server.base + "/send", timeout=60_000)
    _choose_node(page, "later")
    page.click("[data-test=echo]")
    expect(page.locator("[data-test=echo-result]")).to_contain_text("C-ECHO failed", timeout=WAIT)

    page.get_by_role("tab", name="Files and folders").click()
    page.set_input_files("[data-test=file-input]", [str(path) for path in files])
    expect(page.locator("[data-test=upload-counts]")).to_have_text(
        f"{FILES} stored, 0 already stored, 0 rejected", timeout=WAIT
    )
    page.click("[data-test=send-files]")
    job = page.locator("[data-test=job]")
    expect(job).to_have_attribute("data-state", "failed", timeout=WAIT)
    expect(job).to_contain_text("later")  # the error names the node it could not reach
    items = page.locator("[data-test=send-items] .el-table__row")
    expect(items).to_have_count(FILES)
    expect(page.locator("[data-test=send-items] [data-status=notSent]")).to_have_count(FILES)
    for path in files:
        expect(page.locator("[data-test=send-items]")).to_contain_text(path.name)
    screenshot(page, "send-failed-en")

    with peers.later:
        job.get_by_role("button", name="Retry").click()
        expect(job).to_have_attribute("data-state", "succeeded", timeout=WAIT)
        expect(page.locator("[data-test=send-items] [data-status=sent]")).to_have_count(FILES)
        counts = job.locator("[data-test=job-counts]")
        expect(counts).to_have_text(f"{FILES} of {FILES} done, 0 failed")
        screenshot(page, "send-retried-en")
        assert set(peers.later.received()) == _uids(files)
    page.close()
    assert errors == []


def test_a_folder_and_a_dropped_file_are_uploaded_then_sent(peers: Peers, browser: object) -> None:
    from playwright.sync_api import Page, expect

    folder = peers.work / "folder"
    files = [
        *ct_series(folder, 2, rows=32, columns=32, patient_id="E2ESEND03", seed=11),
        *ct_series(folder / "deeper", 1, rows=32, columns=32, patient_id="E2ESEND03", seed=12),
    ]
    dropped = ct_series(
        peers.work / "drop", 1, rows=32, columns=32, patient_id="E2ESEND04", seed=13
    )
    page = signed_in_page(browser, peers.server.base, USER, PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(peers.server.base + "/send", timeout=60_000)
    _choose_node(page, "archive")
    page.get_by_role("tab", name="Files and folders").click()

    # A chosen folder: every file in it, subfolders too.
    page.set_input_files("[data-test=folder-input]", str(folder))
    counts = page.locator("[data-test=upload-counts]")
    expect(counts).to_have_text("3 stored, 0 already stored, 0 rejected", timeout=WAIT)
    # A dropped file (the drop event a script makes carries files, not folder entries).
    page.evaluate(
        """([name, bytes]) => {
            const transfer = new DataTransfer()
            transfer.items.add(new File([new Uint8Array(bytes)], name))
            const zone = document.querySelector('[data-test=drop]')
            zone.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true }))
        }""",
        [dropped[0].name, list(dropped[0].read_bytes())],
    )
    expect(counts).to_have_text("1 stored, 0 already stored, 0 rejected", timeout=WAIT)
    page.set_input_files("[data-test=folder-input]", str(folder))
    expect(counts).to_have_text("0 stored, 3 already stored, 0 rejected", timeout=WAIT)
    page.click("[data-test=send-files]")
    job = page.locator("[data-test=job]")
    expect(job).to_have_attribute("data-state", "succeeded", timeout=WAIT)
    expect(page.locator("[data-test=send-items] [data-status=sent]")).to_have_count(3)
    assert _uids(files) <= set(peers.up.received())
    page.close()
    assert errors == []


def test_a_file_the_node_refuses_is_shown_failed_with_its_reason(
    peers: Peers, browser: object
) -> None:
    from playwright.sync_api import Page, expect

    good = ct_series(peers.work / "good", 1, rows=32, columns=32, patient_id="E2ESEND05", seed=21)
    odd = peers.work / "odd.dcm"
    ds = dcmread(good[0])
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = UID("1.2.3.4.5.6.7")
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(odd, enforce_file_format=True)
    page = signed_in_page(browser, peers.server.base, USER, PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(peers.server.base + "/send", timeout=60_000)
    _choose_node(page, "archive")
    page.get_by_role("tab", name="Files and folders").click()
    page.set_input_files("[data-test=file-input]", [str(good[0]), str(odd)])
    expect(page.locator("[data-test=upload-counts]")).to_have_text(
        "2 stored, 0 already stored, 0 rejected", timeout=WAIT
    )
    page.click("[data-test=send-files]")
    job = page.locator("[data-test=job]")
    expect(job).to_have_attribute("data-state", "partly_failed", timeout=WAIT)
    items = page.locator("[data-test=send-items] .el-table__row")
    # storescp knows no SOP class 1.2.3.4.5.6.7: that file failed, saying so; the other went.
    failed = items.filter(has_text="odd.dcm")
    expect(failed.locator("[data-status]")).to_have_attribute("data-status", "failed")
    expect(failed).to_contain_text("peer accepted no context for 1.2.3.4.5.6.7")
    sent = items.filter(has_text=good[0].name)
    expect(sent.locator("[data-status]")).to_have_attribute("data-status", "sent")
    screenshot(page, "send-partly-failed-en")
    assert str(ds.SOPInstanceUID) not in peers.up.received()
    assert _uids(good) <= set(peers.up.received())
    page.close()
    assert errors == []


def test_the_page_in_chinese(peers: Peers, browser: object) -> None:
    from playwright.sync_api import Page, expect

    page = signed_in_page(browser, peers.server.base, USER, PASSWORD, "zh-CN")
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(peers.server.base + "/send", timeout=60_000)
    expect(page.locator("[data-test=source]")).to_contain_text("归档中的检查", timeout=WAIT)
    recent = page.locator("[data-test=recent] .el-table__row")
    # Newest first: the refused file's job, the folder's, the retried files', the study's.
    expect(recent).to_have_count(4, timeout=WAIT)
    expect(recent.first).to_contain_text("2 幅图像 发送到 archive")
    expect(recent.first).to_contain_text("部分失败")
    recent.first.click()
    items = page.locator("[data-test=send-items]")
    expect(items).to_contain_text("已发送", timeout=WAIT)
    expect(items).to_contain_text("失败")
    page.fill("input[name=patient_id]", PATIENT_ID)
    page.click("[data-test=search]")
    expect(page.locator("[data-test=studies] .el-table__row")).to_have_count(1, timeout=WAIT)
    screenshot(page, "send-zh-CN")
    page.close()
    assert errors == []
