"""OHIF in headless Chromium against a running `openpacs serve`: the study list, the stack
viewer, and the MPR and 3D (volume rendering) layouts on a generated CT series.

A viewport counts as drawn when the screenshot of its area holds a real image (many grey levels,
not one flat colour); screenshots are kept under test-artifacts/ for a person to look at.
Chromium is Debian's (`apt-get install chromium`), driven by Playwright's Python package (never
`playwright install`, which would download another browser); OHIF comes from `make setup`.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread

from openpacs.web import ohif
from tests.conftest import REQUIRE_PEERS, free_port, need
from tests.generators import ct_series

pytestmark = [pytest.mark.peer, pytest.mark.e2e]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
OPENPACS = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "openpacs"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                 "--enable-unsafe-swiftshader", "--disable-dev-shm-usage"]  # fmt: skip
SLICES = 40
VIEWPORT_BOXES = """() => [...document.querySelectorAll('[data-viewport-uid]')].map(e => {
    const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })"""


USER = "e2e-viewer"
PASSWORD = "e2e-viewer-password"


def _require_ohif() -> None:
    if ohif.installed_version() is None:
        message = "OHIF is not installed: run `make setup` (needs npm)"
        if REQUIRE_PEERS:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`openpacs serve` holding one CT study; yields (base URL, StudyInstanceUID)."""
    _require_ohif()
    chromium = need("chromium")
    assert chromium
    storescu = need("storescu")
    work = tmp_path_factory.mktemp("ohif")
    http, dicom = free_port(), free_port()
    env = {
        **os.environ,
        "OPENPACS_HTTP__HOST": "127.0.0.1",
        "OPENPACS_HTTP__PORT": str(http),
        "OPENPACS_STORESCP__HOST": "127.0.0.1",
        "OPENPACS_STORESCP__PORT": str(dicom),
        "OPENPACS_STORESCP__WORKERS": "1",
        "OPENPACS_QRSCP__HOST": "127.0.0.1",
        "OPENPACS_QRSCP__PORT": str(free_port()),
        "OPENPACS_WORKLIST__HOST": "127.0.0.1",
        "OPENPACS_WORKLIST__PORT": str(free_port()),
        "OPENPACS_PRINTSCP__HOST": "127.0.0.1",
        "OPENPACS_PRINTSCP__PORT": str(free_port()),
        "OPENPACS_STORAGE__ROOT": str(work / "storage"),
        "OPENPACS_DATABASE__URL": f"sqlite:///{work / 'index.db'}",
        "OPENPACS_LOGGING__DIR": str(work / "logs"),
        "OPENPACS_LOGGING__CONSOLE": "false",
    }
    # The browser signs in as this user (through the API, keeping the session cookie).
    subprocess.run(
        [
            str(OPENPACS),
            "user",
            "add",
            USER,
            "--role",
            "viewer",
            "--password",
            PASSWORD,
            "--no-must-change",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    log = (work / "serve.log").open("w")
    process = subprocess.Popen([str(OPENPACS), "serve"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{http}"
    try:
        _wait_healthy(base, process)
        files = ct_series(work / "ct", SLICES, rows=256, columns=256)
        subprocess.run(
            [storescu, "-aec", "STORESCP", "127.0.0.1", str(dicom), *map(str, files)],
            env={**os.environ, "TCP_NODELAY": "1"},
            check=True,
            capture_output=True,
        )
        yield base, str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def _wait_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"openpacs serve exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("openpacs serve did not become healthy in 60 s")


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
    from playwright.sync_api import sync_playwright

    _require_ohif()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def _page(browser: object, base: str) -> object:
    """A page of a browser context signed in through the API: OHIF's DICOMweb requests then
    carry the session cookie, as they do for a user who signed in to the console."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    signed = context.request.post(
        f"{base}/api/auth/login", data={"username": USER, "password": PASSWORD}
    )
    assert signed.ok, signed.text()
    return context.new_page()


def test_study_list_shows_the_study(server: tuple[str, str], browser: object) -> None:
    from playwright.sync_api import Page

    base, _ = server
    assert httpx.get(f"{base}/dicomweb/studies", timeout=10).status_code == 401
    assert httpx.get(f"{base}/ohif/", timeout=10).status_code == 401
    page = _page(browser, base)
    assert isinstance(page, Page)
    page.goto(f"{base}/ohif/", timeout=60_000)
    page.get_by_text("ACC000000").first.wait_for(timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ohif-study-list.png"))
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
