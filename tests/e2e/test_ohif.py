"""OHIF in headless Chromium against a running `openpacs serve`: the study list, the stack
viewer, and the MPR and 3D (volume rendering) layouts on a generated CT series.

A viewport counts as drawn when the screenshot of its area holds a real image (many grey levels,
not one flat colour); screenshots are kept under test-artifacts/ for a person to look at.
Chromium is Debian's (`apt-get install chromium`), driven by Playwright's Python package (never
`playwright install`, which would download another browser); OHIF comes from `make setup`.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from pydicom import dcmread

from tests.conftest import need
from tests.e2e.ohif_checks import require_ohif, viewports_drawn
from tests.e2e.serve import (
    chromium,
    screenshot,
    serve,
    signed_in_page,
    store_files,
)
from tests.generators import ct_series

pytestmark = [pytest.mark.peer, pytest.mark.e2e]

SLICES = 40
# The browser signs in as this user (through the API, keeping the session cookie).
USER = "e2e-viewer"
PASSWORD = "e2e-viewer-password"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`openpacs serve` holding one CT study; yields (base URL, StudyInstanceUID)."""
    require_ohif()
    chromium_path = need("chromium")
    assert chromium_path
    storescu = need("storescu")
    work = tmp_path_factory.mktemp("ohif")
    with serve(work, users=[(USER, "viewer", PASSWORD)]) as running:
        files = ct_series(work / "ct", SLICES, rows=256, columns=256)
        store_files(storescu, running, files)
        yield running.base, str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require_ohif()
    with chromium() as launched:
        yield launched


def _page(browser: object, base: str) -> object:
    """Signed in: OHIF's DICOMweb requests carry the session cookie, as they do for a user who
    signed in to the console."""
    return signed_in_page(browser, base, USER, PASSWORD)


def test_study_list_shows_the_study(server: tuple[str, str], browser: object) -> None:
    from playwright.sync_api import Page

    base, _ = server
    assert httpx.get(f"{base}/dicomweb/studies", timeout=10).status_code == 401
    assert httpx.get(f"{base}/ohif/", timeout=10).status_code == 401
    page = _page(browser, base)
    assert isinstance(page, Page)
    page.goto(f"{base}/ohif/", timeout=60_000)
    page.get_by_text("ACC000000").first.wait_for(timeout=60_000)
    screenshot(page, "ohif-study-list")
    page.close()


@pytest.mark.parametrize(
    ("layout", "minimum"),
    [("", 1), ("&hangingprotocolId=mpr", 3), ("&hangingprotocolId=mprAnd3DVolumeViewport", 4)],
    ids=["stack", "mpr", "mpr-and-3d"],
)
def test_viewer_draws_the_ct(
    server: tuple[str, str], browser: object, layout: str, minimum: int
) -> None:
    from playwright.sync_api import Page

    base, study = server
    page = _page(browser, base)
    assert isinstance(page, Page)
    page.goto(f"{base}/ohif/viewer?StudyInstanceUIDs={study}{layout}", timeout=60_000)
    name = layout.rsplit("=", 1)[-1] or "stack"
    drawn = viewports_drawn(page, f"ohif-{name}", minimum)
    page.close()
    assert drawn >= minimum, (
        f"{drawn} of {minimum} viewports drawn; see test-artifacts/ohif-{name}.png"
    )


def test_the_console_opens_ohifs_mpr_and_3d_layouts(
    server: tuple[str, str], browser: object
) -> None:
    """From the Studies page's menu, OHIF opens in a new tab in the MPR layout and in MPR with
    3D, and draws their viewports."""
    from playwright.sync_api import Page, expect

    base, study = server
    page = _page(browser, base)
    assert isinstance(page, Page)
    page.goto(f"{base}/studies", timeout=60_000)
    row = page.locator("[data-test=studies] .el-table__row").first
    expect(row).to_be_visible(timeout=60_000)
    for action, protocol, minimum in (("mpr", "mpr", 3), ("volume", "mprAnd3DVolumeViewport", 4)):
        row.locator("[data-test=study-actions]").click()
        with page.context.expect_page() as opened:
            page.locator(f".el-dropdown-menu [data-test=action-ohif-{action}]:visible").click()
        tab = opened.value
        assert f"StudyInstanceUIDs={study}&hangingprotocolId={protocol}" in tab.url
        drawn = viewports_drawn(tab, f"ohif-from-console-{action}", minimum)
        assert drawn >= minimum, f"see test-artifacts/ohif-from-console-{action}.png"
        tab.close()
    page.close()
