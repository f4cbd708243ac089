"""The console's Logs page in headless Chromium against a running `openpacs serve`: today's
Store SCP log shows its tail; with Follow on, the association of a dcmtk `echoscu` made after
opening appears live (Server-Sent Events); a search keeps only matching lines; the download
arrives whole; today's file cannot be deleted (the reason is shown) and a past day's file is
deleted after confirmation. The page renders in zh-CN too. Screenshots go to
test-artifacts/logs-*.png.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

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

pytestmark = [pytest.mark.peer, pytest.mark.e2e]

WAIT = 30_000  # ms
ADMIN, ADMIN_PASSWORD = "e2e-admin", "e2e-admin-password"
USER, PASSWORD = "e2e-operator", "e2e-operator-password"
PAST = "storescp-20260101.log"
PAST_LINE = "2026-01-01 08:00:00,000 INFO openpacs.storescp: an old day's line"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """openpacs with an admin and an operator; yields it and its log folder."""
    require_console()
    need("echoscu")
    work = tmp_path_factory.mktemp("logs")
    users = [(ADMIN, "admin", ADMIN_PASSWORD), (USER, "operator", PASSWORD)]
    with serve(work, users=users) as up:
        yield up, work / "logs"


def _today(server: Server) -> str:
    """The name of today's Store SCP log, as the server lists it."""
    with api_client(server, ADMIN, ADMIN_PASSWORD) as api:
        listed = {one["service"]: one["files"] for one in api.get("/api/logs").json()}
    current = [one["name"] for one in listed["storescp"] if one["current"]]
    assert len(current) == 1, listed["storescp"]
    return str(current[0])


def _echo(server: Server, calling_ae: str) -> None:
    subprocess.run(
        [need("echoscu"), "-aet", calling_ae, "-aec", "STORESCP", "127.0.0.1",
         str(server.store_port)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip


def test_tail_follow_search_download_and_delete(
    server: tuple[Server, Path], browser: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    up, logs = server
    (logs / "storescp" / PAST).write_text(PAST_LINE + "\n", encoding="utf-8")
    _echo(up, "E2EBEFORE")  # a line written before the page opens
    today = _today(up)
    page = signed_in_page(browser, up.base, ADMIN, ADMIN_PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(up.base + "/logs", timeout=60_000)
    files = page.locator("[data-service=storescp] [data-test=log-file]")
    expect(files).to_have_count(2, timeout=WAIT)  # today's first, then the past day's
    expect(files.first).to_have_attribute("data-name", today)

    files.first.click()
    lines = page.locator("[data-test=log-lines]")
    expect(lines).to_contain_text("E2EBEFORE", timeout=WAIT)
    expect(lines).not_to_contain_text("E2EFOLLOW")
    # Today's file is still being written: no delete, and the page says why.
    expect(page.locator("[data-test=delete]")).to_be_disabled()
    expect(page.locator("[data-test=delete-reason]")).to_contain_text("still being written")

    # Follow: a line written after the stream opened arrives without reloading.
    with page.expect_response(lambda response: "/follow" in response.url, timeout=WAIT):
        page.click("[data-test=follow]")
    _echo(up, "E2EFOLLOW")
    expect(lines).to_contain_text("E2EFOLLOW", timeout=WAIT)
    expect(lines).to_contain_text("E2EBEFORE")
    screenshot(page, "logs-follow-en")

    # Search: only the lines holding the text (any case).
    page.fill("input[data-test=log-search]", "e2efollow")
    page.click("[data-test=log-find]")
    expect(lines).not_to_contain_text("E2EBEFORE", timeout=WAIT)
    expect(lines).to_contain_text("E2EFOLLOW")
    expect(page.locator("[data-test=search-note]")).to_contain_text('contain "e2efollow"')
    shown = [line for line in lines.inner_text().splitlines() if line.strip()]
    assert shown and all("e2efollow" in line.lower() for line in shown), shown
    screenshot(page, "logs-search-en")

    # Download: the whole file as it is on disk.
    with page.expect_download() as downloading:
        page.click("[data-test=download]")
    saved = tmp_path / "download.log"
    downloading.value.save_as(saved)
    assert downloading.value.suggested_filename == today
    text = saved.read_text(encoding="utf-8")
    assert "E2EBEFORE" in text and "E2EFOLLOW" in text

    # A past day's file: deleted once confirmed.
    files.nth(1).click()
    expect(lines).to_contain_text("an old day's line", timeout=WAIT)
    page.click("[data-test=delete]")
    dialog = page.locator(".el-message-box")
    expect(dialog).to_contain_text(PAST)
    dialog.locator(".el-button--primary").click()
    expect(files).to_have_count(1, timeout=WAIT)
    assert not (logs / "storescp" / PAST).exists()
    page.close()
    assert errors == []


def test_the_page_in_chinese(server: tuple[Server, Path], browser: object) -> None:
    from playwright.sync_api import Page, expect

    up, _logs = server
    page = signed_in_page(browser, up.base, USER, PASSWORD, "zh-CN")
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(up.base + "/logs", timeout=60_000)
    expect(page.locator("[data-test=log-files]")).to_contain_text("日志文件", timeout=WAIT)
    page.locator("[data-service=storescp] [data-test=log-file]").first.click()
    expect(page.locator("[data-test=log-lines]")).to_contain_text("STORESCP", timeout=WAIT)
    expect(page.locator("[data-test=follow]")).to_contain_text("实时跟踪")
    # An operator deletes no log file: no delete button.
    expect(page.locator("[data-test=delete]")).to_have_count(0)
    screenshot(page, "logs-zh-CN")
    page.close()
    assert errors == []
