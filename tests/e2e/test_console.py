"""The web console in headless Chromium against a running `openpacs serve`: the first sign-in
forces a password change; the study search finds a study stored by dcmtk `storescu` (its Chinese
name intact, its series with a thumbnail); every page is reachable; the UI renders in zh-CN
and English (the browser's language first, then switched). Screenshots go to
test-artifacts/console-*.png.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.conftest import need
from tests.e2e.serve import (
    Server,
    require_console,
    screenshot,
    script_errors,
    serve,
    signed_in_page,
    store_files,
)
from tests.generators import ct_series

pytestmark = [pytest.mark.peer, pytest.mark.e2e]

NAME = "Zhang^San=张^三"
PATIENT_ID = "E2E001"
WAIT = 30_000  # ms
USER, PASSWORD = "e2e-operator", "e2e-operator-password"
FIRST_PASSWORD = "admin"  # what the first start gives `admin`, to be changed at first sign-in
ADMIN_PASSWORD = "e2e-Admin-password-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """`openpacs serve` holding one CT study of a patient with a Chinese name, stored by
    storescu; yields the server and the StudyInstanceUID."""
    require_console()
    storescu = need("storescu")
    work = tmp_path_factory.mktemp("console")
    files = ct_series(work / "ct", 3, rows=64, columns=64, patient_id=PATIENT_ID, seed=8)
    for path in files:
        ds = dcmread(path)
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = NAME
        ds.save_as(path)
    with serve(work, users=[(USER, "operator", PASSWORD)]) as running:
        store_files(storescu, running, files)
        yield running, str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def _page(browser: object, locale: str, base: str | None = None) -> tuple[object, list[str]]:
    """A page whose browser language is `locale` (signed in as an operator when `base` is
    given), and the script errors it meets."""
    from playwright.sync_api import Browser

    if base is not None:
        page = signed_in_page(browser, base, USER, PASSWORD, locale)
    else:
        assert isinstance(browser, Browser)
        context = browser.new_context(locale=locale, viewport={"width": 1400, "height": 900})
        page = context.new_page()
    return page, script_errors(page)


def test_first_sign_in_forces_a_password_change(tmp_path: Path, browser: object) -> None:
    """A fresh server: admin/admin signs in, is sent to the password change (every other page
    refused meanwhile), then reaches the studies; the old password no longer works."""
    from playwright.sync_api import Page, expect

    with serve(tmp_path) as fresh:
        page, errors = _page(browser, "en-US")
        assert isinstance(page, Page)
        page.goto(fresh.base + "/studies", timeout=60_000)
        page.wait_for_url(re.compile(r"/sign-in\?next=/studies$"), timeout=WAIT)
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", "wrong-password")
        page.click("[data-test=sign-in]")
        expect(page.get_by_text("Wrong user name or password")).to_be_visible(timeout=WAIT)
        screenshot(page, "console-sign-in")

        page.fill("input[name=password]", FIRST_PASSWORD)
        page.click("[data-test=sign-in]")
        page.wait_for_url(re.compile(r"/change-password\?next="), timeout=WAIT)
        expect(page.get_by_text("choose a new one to continue")).to_be_visible(timeout=WAIT)
        # Until the change, the console is held at this page.
        page.goto(fresh.base + "/studies", timeout=60_000)
        page.wait_for_url(re.compile(r"/change-password\?next="), timeout=WAIT)

        page.fill("input[name=current]", FIRST_PASSWORD)
        page.fill("input[name=new]", "short")
        page.fill("input[name=repeat]", "short")
        page.click("[data-test=change-password]")
        refusal = page.locator(".el-alert--error")
        expect(refusal).to_be_visible(timeout=WAIT)  # the server's reason, e.g. too short
        screenshot(page, "console-change-password")

        page.fill("input[name=new]", ADMIN_PASSWORD)
        page.fill("input[name=repeat]", ADMIN_PASSWORD)
        page.click("[data-test=change-password]")
        page.wait_for_url("**/studies", timeout=WAIT)
        expect(page.locator("[data-test=user-menu]")).to_contain_text("admin", timeout=WAIT)
        expect(page.locator("[data-test=nav-settings]")).to_have_count(1)  # admin sees settings

        page.locator("[data-test=user-menu]").click()
        page.locator("[data-test=sign-out]").click()
        page.wait_for_url(re.compile(r"/sign-in"), timeout=WAIT)
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", FIRST_PASSWORD)
        page.click("[data-test=sign-in]")
        expect(page.get_by_text("Wrong user name or password")).to_be_visible(timeout=WAIT)
        page.close()
        assert errors == []


def test_search_finds_the_stored_study(server: tuple[Server, str], browser: object) -> None:
    from playwright.sync_api import Page, expect

    running, study = server
    page, errors = _page(browser, "en-US", running.base)
    assert isinstance(page, Page)
    page.goto(running.base + "/", timeout=60_000)
    page.wait_for_url("**/studies", timeout=WAIT)
    page.fill("input[name=patient_name]", "张")
    page.click("[data-test=search]")
    row = page.locator("[data-test=studies] .el-table__row", has_text=PATIENT_ID)
    expect(row).to_have_count(1, timeout=WAIT)
    expect(row).to_contain_text(NAME)  # every group, as stored
    expect(row).to_contain_text("2024-01-02")
    expect(row).to_contain_text("ACC000008")
    link = row.locator("[data-test=open-ohif]")
    assert link.get_attribute("href") == f"/ohif/viewer?StudyInstanceUIDs={study}"

    row.locator(".el-table__expand-icon").click()
    series = page.locator("[data-test=series] .el-table__row")
    expect(series).to_have_count(1, timeout=WAIT)
    expect(series).to_contain_text("Synthetic phantom")
    thumbnail = series.locator("img")
    expect(thumbnail).to_have_count(1, timeout=WAIT)
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle(), timeout=WAIT
    )
    screenshot(page, "console-studies")

    # The search is in the address: a reload (or a shared link) shows the same list.
    assert "patient_name=" in page.url
    page.reload()
    expect(page.locator("input[name=patient_name]")).to_have_value("张", timeout=WAIT)
    expect(page.locator("[data-test=studies] .el-table__row")).to_have_count(1, timeout=WAIT)

    page.fill("input[name=patient_name]", "李")
    page.click("[data-test=search]")
    expect(page.locator("[data-test=studies] .el-table__row")).to_have_count(0, timeout=WAIT)
    page.close()
    assert errors == []


@pytest.mark.parametrize(
    ("locale", "studies", "switch_to", "switched"),
    [("zh-CN", "检查", "English", "Studies"), ("en-US", "Studies", "简体中文", "检查")],
)
def test_both_languages_render(
    server: tuple[Server, str],
    browser: object,
    locale: str,
    studies: str,
    switch_to: str,
    switched: str,
) -> None:
    """The browser's language first; the switch changes every label, Element Plus's too."""
    from playwright.sync_api import Page, expect

    running, _ = server
    page, errors = _page(browser, locale, running.base)
    assert isinstance(page, Page)
    page.goto(running.base + "/studies", timeout=60_000)
    nav = page.locator("[data-test=nav-studies]")
    expect(nav).to_have_text(studies, timeout=WAIT)
    expect(page.locator("[data-test=studies] .el-table__row")).to_have_count(1, timeout=WAIT)
    screenshot(page, f"console-{locale}")

    page.locator("[data-test=language]").last.click()
    page.locator(".el-select-dropdown__item", has_text=switch_to).last.click()
    expect(nav).to_have_text(switched, timeout=WAIT)
    language = "en" if switched == "Studies" else "zh-CN"
    expect(page.locator("html")).to_have_attribute("lang", language)
    screenshot(page, f"console-switched-from-{locale}")
    page.close()
    assert errors == []


def test_every_page_is_reachable_and_deep_links_work(
    server: tuple[Server, str], browser: object
) -> None:
    """The navigation reaches each page an operator may use (Settings is not one); a deep link
    into the app is the app too (history mode), not a server 404."""
    from playwright.sync_api import Page, expect

    running, _ = server
    page, errors = _page(browser, "en-US", running.base)
    assert isinstance(page, Page)
    page.goto(running.base + "/studies", timeout=60_000)
    expect(page.locator("[data-test=nav-settings]")).to_have_count(0)  # not an operator's
    for name in ("worklist", "query-retrieve", "send", "print", "logs", "status", "studies"):
        page.click(f"[data-test=nav-{name}]")
        page.wait_for_url(re.compile(rf"/{name}(\?.*)?$"), timeout=WAIT)
    page.goto(running.base + "/logs", timeout=60_000)
    expect(page.locator("[data-test=log-files]")).to_contain_text("Log files", timeout=WAIT)
    page.goto(running.base + "/status", timeout=60_000)
    expect(page.locator("[data-test=status]")).to_be_visible(timeout=WAIT)
    page.close()
    assert errors == []
