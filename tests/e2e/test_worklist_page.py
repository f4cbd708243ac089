"""The console's Worklist page in headless Chromium against a running `openpacs serve`: an item
created in the console (Chinese name, station AE, modality, date) is what dcmtk's `findscu -W`
gets from the Worklist SCP; a malformed field is named beside it; an edit reaches the SCP; a
deleted item is gone from it. The page renders in zh-CN too. Screenshots go to
test-artifacts/worklist-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import need
from tests.e2e.serve import (
    Server,
    require_console,
    screenshot,
    script_errors,
    serve,
    signed_in_page,
)
from tests.integration.test_worklist import findscu

pytestmark = [pytest.mark.peer, pytest.mark.e2e]

WAIT = 30_000  # ms
USER, PASSWORD = "e2e-operator", "e2e-operator-password"
PATIENT_ID = "E2EWL01"
STATION = "CT_ROOM_1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_console()
    need("findscu")
    with serve(tmp_path_factory.mktemp("worklist"), users=[(USER, "operator", PASSWORD)]) as up:
        yield up


def _query(server: Server, out: Path) -> list[tuple[str, str, str, str, str, str]]:
    """findscu -W for the patient, in UTF-8: (ID, name, accession, modality, station AE, step
    description) of each answer."""
    keys = [
        "SpecificCharacterSet=ISO_IR 192",
        f"PatientID={PATIENT_ID}",
        "PatientName",
        "AccessionNumber",
        "ScheduledProcedureStepSequence[0].Modality",
        "ScheduledProcedureStepSequence[0].ScheduledStationAETitle",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepDescription",
    ]
    found = []
    for ds in findscu(server.worklist_port, "WORKLISTSCP", None, out, *keys):
        step = ds.ScheduledProcedureStepSequence[0]
        found.append(
            (
                str(ds.PatientID),
                str(ds.PatientName),
                str(ds.AccessionNumber),
                str(step.Modality),
                str(step.ScheduledStationAETitle),
                str(step.ScheduledProcedureStepDescription),
            )
        )
    return found


def test_an_item_created_in_the_console_is_returned_by_findscu(
    server: Server, browser: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    page = signed_in_page(browser, server.base, USER, PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(server.base + "/worklist", timeout=60_000)
    expect(page.locator("[data-test=worklist]")).to_contain_text("No worklist items", timeout=WAIT)

    page.click("[data-test=new-item]")
    form = page.locator("[data-test=worklist-form]")
    expect(form).to_be_visible(timeout=WAIT)
    form.locator("input[name=patient_id]").fill(PATIENT_ID)
    form.locator("input[name=name_alphabetic]").fill("Zhang^San")
    form.locator("input[name=name_ideographic]").fill("张^三")
    form.locator("input[name=patient_age]").fill("45")  # not an age string: the server says so
    form.locator("input[name=accession_number]").fill("E2EACC01")
    form.locator("input[name=requested_procedure_description]").fill("胸部CT平扫")
    form.locator("input[name=step_description]").fill("Chest plain")
    form.locator("[data-test=step-modality]").click()
    page.locator(".el-select-dropdown__item:visible", has_text=re.compile(r"^CT$")).click()
    form.locator("input[name=start_date]").fill("2026-12-01")
    form.locator("input[name=start_date]").press("Enter")
    station = form.locator("[data-test=station-ae] input")
    station.fill(STATION)
    station.press("Enter")
    form.locator("[data-test=save]").click()

    age = form.locator(".el-form-item", has=page.locator("input[name=patient_age]"))
    expect(age.locator(".el-form-item__error")).to_contain_text("three digits", timeout=WAIT)
    expect(form.locator("[data-test=form-error]")).to_contain_text("patient_age: ")
    screenshot(page, "worklist-field-error")
    assert _query(server, tmp_path / "none") == []  # nothing was stored

    form.locator("input[name=patient_age]").fill("045Y")
    form.locator("[data-test=save]").click()
    expect(form).to_be_hidden(timeout=WAIT)
    row = page.locator("[data-test=worklist] .el-table__row", has_text=PATIENT_ID)
    expect(row).to_have_count(1, timeout=WAIT)
    expect(row).to_contain_text("Zhang^San=张^三")
    expect(row).to_contain_text("2026-12-01")
    expect(row).to_contain_text(STATION)
    expect(row).to_contain_text("Scheduled")
    screenshot(page, "worklist-list")

    assert _query(server, tmp_path / "created") == [
        (PATIENT_ID, "Zhang^San=张^三", "E2EACC01", "CT", STATION, "Chest plain")
    ]

    row.locator("[data-test=edit]").click()
    expect(form).to_be_visible(timeout=WAIT)
    expect(form.locator("input[name=name_ideographic]")).to_have_value("张^三")
    form.locator("input[name=step_description]").fill("Chest with contrast")
    form.locator("[data-test=save]").click()
    expect(form).to_be_hidden(timeout=WAIT)
    row.locator(".el-table__expand-icon").click()
    details = page.locator("[data-test=worklist-details]")
    expect(details).to_contain_text("No modality has reported this exam yet", timeout=WAIT)
    assert _query(server, tmp_path / "edited")[0][5] == "Chest with contrast"

    row.locator("[data-test=delete]").click()
    page.locator(".el-message-box .el-button--primary").click()
    expect(row).to_have_count(0, timeout=WAIT)
    assert _query(server, tmp_path / "deleted") == []
    page.close()
    assert errors == []


def test_the_page_renders_in_chinese(server: Server, browser: object) -> None:
    from playwright.sync_api import Page, expect

    page = signed_in_page(browser, server.base, USER, PASSWORD, "zh-CN")
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(server.base + "/worklist", timeout=60_000)
    expect(page.locator("[data-test=nav-worklist]")).to_have_text("工作列表", timeout=WAIT)
    expect(page.locator("[data-test=worklist]")).to_contain_text("没有匹配的工作列表项")
    page.click("[data-test=new-item]")
    form = page.locator("[data-test=worklist-form]")
    expect(form).to_contain_text("预约检查步骤", timeout=WAIT)
    # The dialog fades in: the picture once it is fully there.
    page.wait_for_function(
        "el => getComputedStyle(el.closest('.el-overlay-dialog') ?? el).opacity === '1'"
        " && !el.closest('.dialog-fade-enter-active')",
        arg=form.element_handle(),
        timeout=WAIT,
    )
    screenshot(page, "worklist-zh-CN")
    page.close()
    assert errors == []
