"""The console's Status page in headless Chromium against a running `openpacs serve`: every
listener up (the server connects to each port), objects sent by dcmtk's `storescu` counted as
received and the association listed, a listener switched off in Settings shown off, and the
page stops asking the server once it is left. Renders in zh-CN too. Screenshots go to
test-artifacts/status-*.png.
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
    store_files,
)
from tests.generators import ct_series

pytestmark = [pytest.mark.peer, pytest.mark.e2e]

WAIT = 30_000  # ms
ADMIN, ADMIN_PASSWORD = "e2e-admin", "e2e-admin-password"
OPERATOR, OPERATOR_PASSWORD = "e2e-operator", "e2e-operator-password"
SERVICES = ("storescp", "qrscp", "worklist", "printscp", "http")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_console()
    users = [(ADMIN, "admin", ADMIN_PASSWORD), (OPERATOR, "operator", OPERATOR_PASSWORD)]
    with serve(tmp_path_factory.mktemp("status"), users=users) as up:
        yield up


def test_listeners_up_and_objects_received(server: Server, browser: object, tmp_path: Path) -> None:
    from playwright.sync_api import Page, expect

    storescu = need("storescu")
    page = signed_in_page(browser, server.base, OPERATOR, OPERATOR_PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(server.base + "/status", timeout=60_000)
    for service in SERVICES:
        expect(page.locator(f"[data-test=state-{service}]")).to_have_text("Up", timeout=WAIT)
    expect(page.locator("[data-test=received-minute]")).to_have_text("0")
    expect(page.locator("[data-test=metrics-link]")).to_have_attribute("href", "/metrics")
    expect(page.locator("[data-test=docs-link]")).to_have_attribute("href", "/docs")
    assert "openpacs_" in page.request.get(server.base + "/metrics").text()  # the session's

    store_files(storescu, server, ct_series(tmp_path / "ct", 3, rows=32, columns=32, seed=3))
    # The page polls: the count and the association appear without a reload.
    expect(page.locator("[data-test=received-minute]")).to_have_text("3", timeout=WAIT)
    expect(page.locator("[data-test=received-hour]")).to_have_text("3")
    associations = page.locator("[data-test=associations]")
    expect(associations).to_contain_text("STORESCU", timeout=WAIT)
    expect(associations).to_contain_text("STORESCP")
    stored = re.compile(r"\d+(\.\d+)? kB stored")
    expect(page.locator("[data-test=storage]")).to_contain_text(stored)
    screenshot(page, "status")

    # Once the page is left it stops asking: no status request while another page is shown.
    page.click("[data-test=nav-studies]")
    page.wait_for_url("**/studies", timeout=WAIT)
    expect(page.locator("[data-test=status]")).to_have_count(0, timeout=WAIT)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.wait_for_timeout(7_000)  # over two polling periods
    assert not [url for url in asked if "/api/status" in url]
    page.close()
    assert errors == []


def test_a_listener_switched_off_in_settings_is_shown_off(server: Server, browser: object) -> None:
    from playwright.sync_api import Page, expect

    admin = signed_in_page(browser, server.base, ADMIN, ADMIN_PASSWORD)
    assert isinstance(admin, Page)
    admin.goto(server.base + "/settings", timeout=60_000)
    section = admin.locator("[data-test=section-printscp]")
    switch = section.locator("[data-test=field-enabled] .el-switch")
    expect(switch).to_have_class(re.compile("is-checked"), timeout=WAIT)
    switch.click()
    section.locator("[data-test=save]").click()
    expect(section.locator("[data-test=applied]")).to_contain_text("printscp.enabled", timeout=WAIT)

    page = signed_in_page(browser, server.base, OPERATOR, OPERATOR_PASSWORD, "zh-CN")
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(server.base + "/status", timeout=60_000)
    expect(page.locator("[data-test=state-printscp]")).to_have_text("已关闭", timeout=WAIT)
    expect(page.locator("[data-test=state-storescp]")).to_have_text("运行中")
    expect(page.locator("[data-test=nav-status]")).to_have_text("状态")
    screenshot(page, "status-zh-CN")

    switch.click()  # on again: up again, live
    section.locator("[data-test=save]").click()
    expect(section.locator("[data-test=applied]")).to_contain_text("printscp.enabled", timeout=WAIT)
    expect(page.locator("[data-test=state-printscp]")).to_have_text("运行中", timeout=WAIT)
    admin.close()
    page.close()
    assert errors == []
