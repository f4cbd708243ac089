"""The console's Settings page in headless Chromium against a running `openpacs serve`: the
Store SCP's AE title changed in the form is what dcmtk's `echoscu` must call at once (the old
one is refused) and what openpacs.toml holds; a port out of range is named at its field; a node
added in the form answers C-ECHO (a dcmtk `storescp`); a user added on the Users tab must change
the password at the first sign-in, and shows in the audit log; a viewer sees no Settings. The
page renders in zh-CN too. Screenshots go to test-artifacts/settings-*.png.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
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
from tests.integration.dcmtk_peers import StoreScp

pytestmark = [pytest.mark.peer, pytest.mark.e2e]

WAIT = 30_000  # ms
ADMIN, ADMIN_PASSWORD = "e2e-admin", "e2e-admin-password"
VIEWER, VIEWER_PASSWORD = "e2e-viewer", "e2e-viewer-password"
NEW_TITLE = "NEWTITLE"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("settings")


@pytest.fixture(scope="module")
def server(work: Path) -> Iterator[Server]:
    require_console()
    need("echoscu")
    users = [(ADMIN, "admin", ADMIN_PASSWORD), (VIEWER, "viewer", VIEWER_PASSWORD)]
    with serve(work, users=users) as up:
        yield up


def _echo(port: int, called: str) -> bool:
    result = subprocess.run(
        [need("echoscu"), "-aec", called, "127.0.0.1", str(port)],
        env={**os.environ, "TCP_NODELAY": "1"}, capture_output=True, timeout=30, check=False,
    )  # fmt: skip
    return result.returncode == 0


def test_the_store_scp_takes_a_new_ae_title_from_the_form(
    server: Server, work: Path, browser: object
) -> None:
    from playwright.sync_api import Page, expect

    page = signed_in_page(browser, server.base, ADMIN, ADMIN_PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(server.base + "/settings", timeout=60_000)
    section = page.locator("[data-test=section-storescp]")
    expect(section.locator("input[name=ae_title]")).to_have_value("STORESCP", timeout=WAIT)
    assert _echo(server.store_port, "STORESCP")

    section.locator("input[name=ae_title]").fill(NEW_TITLE)
    section.locator("[data-test=save]").click()
    report = section.locator("[data-test=report]")
    expect(report.locator("[data-test=applied]")).to_contain_text("storescp.ae_title", timeout=WAIT)
    screenshot(page, "settings-saved")

    assert _echo(server.store_port, NEW_TITLE)
    assert not _echo(server.store_port, "STORESCP")
    saved = tomllib.loads((work / "openpacs.toml").read_text(encoding="utf-8"))
    assert saved["storescp"]["ae_title"] == NEW_TITLE
    page.close()
    assert errors == []


def test_a_port_out_of_range_is_named_at_its_field(server: Server, browser: object) -> None:
    from playwright.sync_api import Page, expect

    page = signed_in_page(browser, server.base, ADMIN, ADMIN_PASSWORD)
    assert isinstance(page, Page)
    page.goto(server.base + "/settings", timeout=60_000)
    section = page.locator("[data-test=section-qrscp]")
    expect(section.locator("input[name=port]")).not_to_have_value("", timeout=WAIT)
    section.locator("input[name=port]").fill("70000")
    section.locator("[data-test=save]").click()
    field = section.locator("[data-test=field-port]")
    expect(field.locator(".el-form-item__error")).to_contain_text("65535", timeout=WAIT)
    expect(section.locator("[data-test=form-error]")).to_contain_text("qrscp.port")
    screenshot(page, "settings-field-error")
    section.locator("input[name=port]").fill("port")
    section.locator("[data-test=save]").click()
    expect(field.locator(".el-form-item__error")).to_contain_text("integer", timeout=WAIT)
    page.close()


def test_a_node_added_in_the_form_answers_echo(
    server: Server, browser: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    page = signed_in_page(browser, server.base, ADMIN, ADMIN_PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    with StoreScp(tmp_path / "received", ae_title="E2E_PEER") as peer:
        page.goto(server.base + "/settings?tab=nodes", timeout=60_000)
        expect(page.locator("[data-test=nodes]")).to_contain_text("No nodes", timeout=WAIT)
        page.click("[data-test=add-node]")
        form = page.locator("[data-test=node-form]")
        form.locator("input[name=name]").fill("dcmtk-peer")
        form.locator("input[name=ae_title]").fill("E2E_PEER")
        form.locator("input[name=host]").fill("127.0.0.1")
        form.locator("input[name=port]").fill("99999")
        page.click("[data-test=save-node]")
        port_item = form.locator(".el-form-item", has=page.locator("input[name=port]"))
        expect(port_item.locator(".el-form-item__error")).to_contain_text("65535", timeout=WAIT)
        form.locator("input[name=port]").fill(str(peer.port))
        form.locator("input[name=description]").fill("放射科 dcmtk")
        page.click("[data-test=save-node]")
        expect(form).to_be_hidden(timeout=WAIT)
        row = page.locator("[data-test=nodes] .el-table__row", has_text="dcmtk-peer")
        expect(row).to_contain_text(f"E2E_PEER@127.0.0.1:{peer.port}")
        row.locator("[data-test=echo]").click()
        answered = row.locator("[data-test=echo-result]")
        expect(answered).to_contain_text("C-ECHO answered in", timeout=WAIT)
        screenshot(page, "settings-nodes")

    row.locator("[data-test=edit]").click()
    expect(form.locator("input[name=description]")).to_have_value("放射科 dcmtk", timeout=WAIT)
    form.locator("input[name=ae_title]").fill("E2E_GONE")
    page.click("[data-test=save-node]")
    expect(row).to_contain_text("E2E_GONE@127.0.0.1", timeout=WAIT)
    row.locator("[data-test=echo]").click()  # the peer has stopped: the reason is shown
    expect(row.locator("[data-test=echo-result]")).to_contain_text("failed", timeout=WAIT)
    row.locator("[data-test=delete]").click()
    page.locator(".el-message-box .el-button--primary").click()
    expect(row).to_have_count(0, timeout=WAIT)
    page.close()
    assert errors == []


def test_a_user_added_on_the_users_tab_must_change_the_password(
    server: Server, browser: object
) -> None:
    from playwright.sync_api import Browser, Page, expect

    assert isinstance(browser, Browser)
    page = signed_in_page(browser, server.base, ADMIN, ADMIN_PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(server.base + "/settings?tab=users", timeout=60_000)
    users = page.locator("[data-test=users]")
    expect(users).to_contain_text(ADMIN, timeout=WAIT)
    page.click("[data-test=add-user]")
    form = page.locator("[data-test=user-form]")
    form.locator("input[name=username]").fill("e2e-newcomer")
    form.locator("[data-test=new-role]").click()
    page.locator(".el-select-dropdown__item:visible", has_text="Operator").click()
    form.locator("input[name=password]").fill("Initial-password-1")
    page.click("[data-test=save-user]")
    expect(form).to_be_hidden(timeout=WAIT)
    row = users.locator(".el-table__row", has_text="e2e-newcomer")
    expect(row).to_contain_text("Yes")  # must change the password
    screenshot(page, "settings-users")

    # The new user signs in (console form, own browser context) and must choose a password.
    context = browser.new_context(locale="en-US")
    newcomer = context.new_page()
    newcomer.goto(server.base + "/studies", timeout=60_000)
    newcomer.locator("input[name=username]").fill("e2e-newcomer")
    newcomer.locator("input[name=password]").fill("Initial-password-1")
    newcomer.locator("input[name=password]").press("Enter")
    newcomer.wait_for_url("**/change-password**", timeout=WAIT)
    expect(newcomer.get_by_text("choose a new one to continue")).to_be_visible(timeout=WAIT)
    context.close()

    # Disabled, then enabled again; the audit log has the records, filtered by action.
    row.locator("[data-test=enabled]").click()
    disabled = page.locator(".el-message", has_text="e2e-newcomer is disabled")
    expect(disabled).to_be_visible(timeout=WAIT)
    row.locator("[data-test=enabled]").click()
    enabled = page.locator(".el-message", has_text="e2e-newcomer can sign in again")
    expect(enabled).to_be_visible(timeout=WAIT)
    page.click("#tab-audit")
    audit = page.locator("[data-test=audit]")
    audit.locator("[data-test=audit-action]").click()
    page.locator(".el-select-dropdown__item:visible", has_text="user-created").click()
    audit.locator("[data-test=audit-search]").click()
    events = audit.locator("[data-test=audit-events] .el-table__row")
    expect(events).to_have_count(1, timeout=WAIT)
    expect(events).to_contain_text("user:e2e-newcomer")
    expect(audit).to_contain_text("1 record")
    screenshot(page, "settings-audit")
    page.close()
    assert errors == []


def test_a_viewer_sees_no_settings(server: Server, browser: object) -> None:
    from playwright.sync_api import Page, expect

    page = signed_in_page(browser, server.base, VIEWER, VIEWER_PASSWORD)
    assert isinstance(page, Page)
    page.goto(server.base + "/studies", timeout=60_000)
    expect(page.locator("[data-test=nav-studies]")).to_be_visible(timeout=WAIT)
    expect(page.locator("[data-test=nav-settings]")).to_have_count(0)
    page.goto(server.base + "/settings?tab=users", timeout=60_000)
    page.wait_for_url("**/studies", timeout=WAIT)
    expect(page.locator("[data-test=settings]")).to_have_count(0)
    page.close()


def test_the_page_renders_in_chinese(server: Server, browser: object) -> None:
    from playwright.sync_api import Page, expect

    page = signed_in_page(browser, server.base, ADMIN, ADMIN_PASSWORD, "zh-CN")
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(server.base + "/settings", timeout=60_000)
    expect(page.locator("[data-test=nav-settings]")).to_have_text("设置", timeout=WAIT)
    section = page.locator("[data-test=section-storescp]")
    expect(section).to_contain_text("存储 SCP", timeout=WAIT)
    expect(section.locator("[data-test=field-ae_title]")).to_contain_text("AE 名称")
    screenshot(page, "settings-zh-CN")
    page.goto(server.base + "/settings?tab=users", timeout=60_000)
    expect(page.locator("[data-test=users]")).to_contain_text("管理员", timeout=WAIT)
    expect(page.locator("[data-test=users] .el-loading-mask")).to_have_count(0, timeout=WAIT)
    screenshot(page, "settings-users-zh-CN")
    page.close()
    assert errors == []


def test_worklist_stations_are_edited_as_a_table(
    server: Server, work: Path, browser: object
) -> None:
    from playwright.sync_api import Page, expect

    page = signed_in_page(browser, server.base, ADMIN, ADMIN_PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(server.base + "/settings", timeout=60_000)
    section = page.locator("[data-test=section-worklist_stations]")
    expect(section).to_contain_text("None", timeout=WAIT)
    section.locator("[data-test=add-row]").click()
    section.locator("input[name=ae_title-0]").fill("A_TITLE_TOO_LONG_FOR_DICOM")
    section.locator("[data-test=save]").click()
    expect(section.locator(".error")).to_contain_text("1-16 ASCII characters", timeout=WAIT)
    section.locator("input[name=ae_title-0]").fill("CT01")
    section.locator(".el-select").first.click()  # the charset
    page.locator(".el-select-dropdown__item:visible", has_text="GB18030").click()
    section.locator("[data-test=save]").click()
    expect(section.locator("[data-test=applied]")).to_contain_text(
        "worklist_stations", timeout=WAIT
    )
    saved = tomllib.loads((work / "openpacs.toml").read_text(encoding="utf-8"))
    assert saved["worklist_stations"] == [
        {"ae_title": "CT01", "charset": "GB18030", "names": "auto"}
    ]
    page.close()
    assert errors == []
