"""OHIF in headless Chromium against a running `openpacs serve`: the study list, the stack
viewer, and the MPR and 3D (volume rendering) layouts on a generated CT series.

A viewport counts as drawn when the screenshot of its area holds a real image (many grey levels,
not one flat colour); screenshots are kept under test-artifacts/ for a person to look at.
Chromium is Debian's (`apt-get install chromium`), driven by Playwright's Python package (never
`playwright install`, which would download another browser); OHIF comes from `make setup`.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread

from openpacs.web import ohif
from tests.conftest import need
from tests.e2e.serve import (
    ARTIFACTS,
    chromium,
    require_built,
    screenshot,
    serve,
    signed_in_page,
    store_files,
)
from tests.generators import ct_series

pytestmark = [pytest.mark.peer, pytest.mark.e2e]

SLICES = 40
VIEWPORT_BOXES = """() => [...document.querySelectorAll('[data-viewport-uid]')].map(e => {
    const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })"""
# The browser signs in as this user (through the API, keeping the session cookie).
USER = "e2e-viewer"
PASSWORD = "e2e-viewer-password"


def _require_ohif() -> None:
    require_built(
        ohif.installed_version() is not None, "OHIF is not installed: run `make setup` (needs npm)"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`openpacs serve` holding one CT study; yields (base URL, StudyInstanceUID)."""
    _require_ohif()
    chromium_path = need("chromium")
    assert chromium_path
    storescu = need("storescu")
    work = tmp_path_factory.mktemp("ohif")
    with serve(work, users=[(USER, "viewer", PASSWORD)]) as running:
        files = ct_series(work / "ct", SLICES, rows=256, columns=256)
        store_files(storescu, running, files)
        yield running.base, str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)


def _is_image(pixels: np.ndarray) -> bool:
    """A drawn CT view: a real share of the area lit, in many grey levels (the noise of the
    phantom), not an empty viewport or a flat overlay. Reformatted views of a short stack fill
    only a band of their viewport, hence the small share."""
    lit = pixels[pixels > 16]
    return lit.size >= 0.02 * pixels.size and len(np.unique(lit)) > 16


def _drawn(page: object, name: str, minimum: int, timeout: float = 120) -> int:
    """Wait until at least `minimum` viewports show an image; save the page; return the count.

    One page screenshot cropped per viewport: an element screenshot waits for the element to be
    still, and a volume rendering refines itself for a while."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    deadline = time.monotonic() + timeout
    drawn, shot = 0, b""
    while time.monotonic() < deadline:
        shot = page.screenshot(timeout=120_000)
        # Brightest channel: a volume rendering's preset may be dim red, not grey.
        grey = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB")).max(axis=2)
        # Boxes read in one go: OHIF replaces viewport elements while it sets a layout up.
        boxes = page.evaluate(VIEWPORT_BOXES)
        drawn = 0
        for x, y, width, height in boxes:
            if width < 50 or height < 50:
                continue
            area = grey[int(y) : int(y + height), int(x) : int(x + width)]
            drawn += _is_image(area)
        if drawn >= minimum:
            break
        time.sleep(1)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"ohif-{name}.png").write_bytes(shot)
    return drawn


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    _require_ohif()
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
    drawn = _drawn(page, name, minimum)
    page.close()
    assert drawn >= minimum, (
        f"{drawn} of {minimum} viewports drawn; see test-artifacts/ohif-{name}.png"
    )
