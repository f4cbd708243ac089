"""The console's Print page in headless Chromium against a running `openpacs serve`: a print job
from dcmtk's dcmprscu shows its film (preview drawn, zoom to the film's pixels, PDF), is printed
again on a printer node (openpacs's own Print SCP, a real peer) with the job followed to its end,
and the copy is deleted. Screenshots go to test-artifacts/print-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

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
from tests.integration.print_peers import dcmtk_print

pytestmark = [pytest.mark.peer, pytest.mark.e2e]

WAIT = 60_000  # ms
ADMIN, ADMIN_PASSWORD = "e2e-admin", "e2e-admin-password"
USER, PASSWORD = "e2e-operator", "e2e-operator-password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """openpacs with one print job from dcmprscu (two CT images side by side on a 14x17 inch
    film), and its own Print SCP registered as the printer node `loopback`."""
    require_console()
    work = tmp_path_factory.mktemp("print")
    users = [(ADMIN, "admin", ADMIN_PASSWORD), (USER, "operator", PASSWORD)]
    with serve(work / "openpacs", users=users) as up:
        cts = ct_series(work / "ct", 2, rows=128, columns=128)
        options = ("--filmsize", "14INX17IN", "--layout", "2", "1")
        printed = dcmtk_print(work / "dcmtk", up.print_port, cts, *options)
        assert printed.returncode == 0, printed.output
        printer = {
            "name": "loopback",
            "ae_title": "PRINTSCP",
            "host": "127.0.0.1",
            "port": up.print_port,
            "uses": ["printer"],
        }
        with _api(up) as api:
            added = api.post("/api/nodes", json=printer)
        assert added.status_code == 201, added.text
        yield up


def _api(server: Server) -> httpx.Client:
    return api_client(server, ADMIN, ADMIN_PASSWORD)


def test_a_print_job_from_dcmprscu_shows_its_film(
    server: Server, browser: object, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect

    page = signed_in_page(browser, server.base, USER, PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(server.base + "/print", timeout=60_000)
    rows = page.locator("[data-test=print-jobs] .el-table__row")
    expect(rows).to_have_count(1, timeout=WAIT)
    received = rows.first
    expect(received).to_contain_text("MODALITY → PRINTSCP")
    expect(received).to_contain_text("Printed")

    received.locator("[data-test=open]").click()
    details = page.locator("[data-test=print-details]")
    expect(details).to_contain_text("14INX17IN", timeout=WAIT)
    film = details.locator("img[data-test=film]")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=film.element_handle(), timeout=WAIT
    )
    # The film's pixels are not one flat colour: the CT is on it.
    spread = page.evaluate(
        """img => {
            const canvas = document.createElement('canvas')
            canvas.width = img.naturalWidth
            canvas.height = img.naturalHeight
            const context = canvas.getContext('2d')
            context.drawImage(img, 0, 0)
            const data = context.getImageData(0, 0, canvas.width, canvas.height).data
            let low = 255, high = 0
            for (let i = 0; i < data.length; i += 4) {
                low = Math.min(low, data[i]); high = Math.max(high, data[i])
            }
            return high - low
        }""",
        film.element_handle(),
    )
    assert spread > 100, spread
    natural = film.evaluate("img => img.naturalWidth")
    details.locator("[data-test=zoom] label", has_text="100%").click()
    expect(film).to_have_js_property("width", natural)
    screenshot(page, "print-film")

    pdf = details.locator("[data-test=film-pdf]").get_attribute("href")
    assert pdf is not None and pdf.endswith("/films/1.pdf")
    answer = page.request.get(server.base + pdf)
    assert answer.ok and answer.headers["content-type"] == "application/pdf"
    assert answer.body().startswith(b"%PDF")

    expect(details.locator("[data-test=printer]")).to_contain_text("loopback")
    details.locator("[data-test=print]").click()
    job = details.locator("[data-test=job]")
    expect(job).to_have_attribute("data-state", "succeeded", timeout=WAIT)
    expect(job.locator("[data-test=job-counts]")).to_contain_text("0 failed")
    screenshot(page, "print-reprinted")

    page.keyboard.press("Escape")  # the drawer closes, the list reloads
    expect(rows).to_have_count(2, timeout=WAIT)
    expect(rows.nth(1)).to_contain_text("Sent to printer")
    copy = rows.first  # newest first: what the loopback printer received
    expect(copy).to_contain_text("Printed")
    assert _newest_film_box(server) == ("STANDARD\\1,1", 1)  # the film as composed here
    copy.locator("[data-test=delete]").click()
    page.locator(".el-message-box .el-button--primary").click()
    expect(rows).to_have_count(1, timeout=WAIT)
    expect(rows.first).to_contain_text("MODALITY → PRINTSCP")

    # Again in the modality's own layout: the printer gets both images to lay out.
    rows.first.locator("[data-test=open]").click()
    details.locator("[data-test=print-layout] label", has_text="Original layout").click()
    details.locator("[data-test=print]").click()
    expect(details.locator("[data-test=job]").first).to_have_attribute(
        "data-state", "succeeded", timeout=WAIT
    )
    page.keyboard.press("Escape")
    expect(rows).to_have_count(2, timeout=WAIT)
    assert _newest_film_box(server) == ("STANDARD\\2,1", 2)
    page.close()
    assert errors == []


def _newest_film_box(server: Server) -> tuple[str, int]:
    """The image display format and image box count of the newest print job's film."""
    with _api(server) as api:
        newest = api.get("/api/print/jobs").json()["items"][0]
        (film,) = api.get(f"/api/print/jobs/{newest['id']}").json()["films"]
    return film["attributes"]["20100010"]["Value"][0], len(film["image_boxes"])
