"""The console's built-in viewer (Cornerstone3D) in headless Chromium against a running `openpacs
serve`: a CT series stored by dcmtk's storescu (a GB18030 Chinese name), a multi-frame JPEG 2000
MR and an RGB JPEG 2000 ultrasound (pydicom-data) are drawn from our WADO-RS, the J2K frames
decoded in the browser; scrolling changes the image, window/level and a CT preset change the
pixels, measurements show, cine plays, the CPU draws without WebGL, the overlay names the patient
in Chinese characters. zh-CN and English screenshots go to test-artifacts/viewer-*.png.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pydicom import dcmread

from tests.conftest import need, sample
from tests.e2e.serve import (
    CHROMIUM_ARGS,
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

WAIT = 60_000  # ms
USER, PASSWORD = "e2e-viewer", "e2e-viewer-password"
CT_SLICES = 5
J2K_MULTIFRAME = "emri_small_jpeg_2k_lossless.dcm"  # 10 frames of 64x64 MR, J2K lossless
J2K_COLOUR = "US1_J2KR.dcm"  # 640x480 RGB ultrasound, J2K lossless
J2K = "1.2.840.10008.1.2.4.90"

# What the viewport's canvas shows: distinct grey levels and a checksum of its pixels.
CANVAS_PIXELS = """element => {
    const shown = element.querySelector('canvas')
    if (!shown || !shown.width || !shown.height) return {distinct: 0, checksum: 0}
    const copy = document.createElement('canvas')
    copy.width = shown.width
    copy.height = shown.height
    const context = copy.getContext('2d')
    context.drawImage(shown, 0, 0)
    const data = context.getImageData(0, 0, copy.width, copy.height).data
    const levels = new Set()
    let checksum = 0
    for (let i = 0; i < data.length; i += 4) {
        levels.add(data[i])
        checksum = (checksum * 31 + data[i] + 7 * data[i + 1] + 13 * data[i + 2]) % 1000000007
    }
    return {distinct: levels.size, checksum}
}"""


@dataclass(frozen=True)
class Stored:
    server: Server
    ct_study: str
    j2k_study: str
    j2k_series: str
    colour_study: str


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    require_console()
    storescu = need("storescu")
    work = tmp_path_factory.mktemp("viewer")
    ct = ct_series(work / "ct", CT_SLICES, rows=256, columns=256, patient_id="E2EVIEW01")
    for path in ct:  # a Chinese name in GB18030, as many modalities in China send it
        ds = dcmread(path)
        ds.SpecificCharacterSet = "GB18030"
        ds.PatientName = "Wang^XiaoDong=王^小东"
        ds.save_as(path)
    j2k, colour = sample(J2K_MULTIFRAME), sample(J2K_COLOUR)
    j2k_header = dcmread(j2k, stop_before_pixels=True)
    colour_header = dcmread(colour, stop_before_pixels=True)
    assert (
        j2k_header.file_meta.TransferSyntaxUID == colour_header.file_meta.TransferSyntaxUID == J2K
    )
    with serve(work / "openpacs", users=[(USER, "viewer", PASSWORD)]) as up:
        store_files(storescu, up, ct)
        subprocess.run(  # J2K as it is: storescu proposes it only when asked (-xv)
            [
                storescu,
                "-xv",
                "-aec",
                "STORESCP",
                "127.0.0.1",
                str(up.store_port),
                str(j2k),
                str(colour),
            ],
            check=True,
            capture_output=True,
        )
        yield Stored(
            up,
            str(dcmread(ct[0], stop_before_pixels=True).StudyInstanceUID),
            str(j2k_header.StudyInstanceUID),
            str(j2k_header.SeriesInstanceUID),
            str(colour_header.StudyInstanceUID),
        )


def _pixels(page: object) -> dict[str, int]:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    found = page.locator("[data-test=viewport]").evaluate(CANVAS_PIXELS)
    assert isinstance(found, dict)
    return found


def _drawn(page: object, different_from: int | None = None) -> dict[str, int]:
    """Wait until the canvas shows an image (many grey levels), and one other than
    `different_from` (a checksum) if given; return its pixels' summary."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    check = f"""element => {{
        const found = ({CANVAS_PIXELS})(element)
        return found.distinct > 16 && found.checksum !== {different_from or -1}
    }}"""
    page.wait_for_function(
        f"() => ({check})(document.querySelector('[data-test=viewport]'))", timeout=WAIT
    )
    return _pixels(page)


def test_a_ct_is_drawn_scrolled_and_windowed(stored: Stored, browser: object) -> None:
    from playwright.sync_api import Page, expect

    page = signed_in_page(browser, stored.server.base, USER, PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(f"{stored.server.base}/studies?patient_id=E2EVIEW01", timeout=WAIT)
    page.locator("[data-test=open-viewer]").first.click()
    expect(page).to_have_url(re.compile(f"/viewer/{re.escape(stored.ct_study)}/"), timeout=WAIT)

    position = page.locator("[data-test=image-position]")
    expect(position).to_have_text(f"Image 1 / {CT_SLICES}", timeout=WAIT)
    first = _drawn(page)
    assert first["distinct"] > 16, first
    overlay = page.locator("[data-test=overlay-patient]")
    expect(overlay).to_contain_text("王小东 (Wang XiaoDong)")
    expect(overlay).to_contain_text("ID: E2EVIEW01")
    voi = page.locator("[data-test=overlay-voi]")
    expect(voi).to_contain_text("W 400 / L 40")  # the objects' own window
    expect(page.locator("[data-test=viewer-series] button")).to_have_count(1)
    screenshot(page, "viewer-ct-en")

    # The wheel scrolls the stack: another slice, other pixels.
    page.locator("[data-test=viewport]").hover()
    page.mouse.wheel(0, 120)
    expect(position).to_have_text(f"Image 2 / {CT_SLICES}", timeout=WAIT)
    second = _drawn(page, different_from=first["checksum"])

    # A CT preset and a window/level drag change the pixels and the overlay.
    page.locator("[data-test=presets]").click()
    page.locator("[data-test=preset-lung]").click()
    expect(voi).to_contain_text("W 1500 / L -600")
    lung = _drawn(page, different_from=second["checksum"])
    box = page.locator("[data-test=viewport]").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 80, y + 40, steps=8)
    page.mouse.up()
    expect(voi).not_to_contain_text("W 1500 / L -600")
    _drawn(page, different_from=lung["checksum"])

    # Invert, then reset: back to the objects' own window, not inverted.
    page.locator("[data-test=invert]").click()
    expect(voi).to_contain_text("Inverted")
    page.locator("[data-test=reset]").click()
    expect(voi).to_contain_text("W 400 / L 40")
    expect(voi).not_to_contain_text("Inverted")

    # A length measurement is drawn on the image.
    page.locator("[data-test=tool-length]").click()
    page.mouse.move(x - 60, y)
    page.mouse.down()
    page.mouse.move(x + 60, y, steps=6)
    page.mouse.up()
    marks = page.locator("[data-test=viewport] svg")
    expect(marks).to_contain_text("mm", timeout=WAIT)
    # Ellipse and rectangle ROIs give their statistics in Hounsfield units.
    for tool, top in (("ellipse", y - 120), ("rectangle", y + 60)):
        page.locator(f"[data-test=tool-{tool}]").click()
        page.mouse.move(x - 40, top)
        page.mouse.down()
        page.mouse.move(x + 40, top + 50, steps=6)
        page.mouse.up()
    expect(marks).to_contain_text("HU", timeout=WAIT)
    screenshot(page, "viewer-ct-measured-en")
    page.locator("[data-test=clear]").click()
    expect(marks).not_to_contain_text("mm")

    # Away to the studies and back: the viewer starts again and draws.
    page.get_by_role("link", name="← Studies").click()
    expect(page.locator("[data-test=studies]")).to_be_visible(timeout=WAIT)
    page.go_back()
    expect(position).to_have_text(f"Image 1 / {CT_SLICES}", timeout=WAIT)
    _drawn(page)
    assert errors == []


def test_a_multiframe_jpeg2000_object_is_decoded(stored: Stored, browser: object) -> None:
    from playwright.sync_api import Page, Response, expect

    page = signed_in_page(browser, stored.server.base, USER, PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    frames: list[Response] = []

    def on_response(response: Response) -> None:
        if "/frames/" in response.url:
            frames.append(response)

    page.on("response", on_response)
    page.goto(f"{stored.server.base}/viewer/{stored.j2k_study}/{stored.j2k_series}", timeout=WAIT)
    image = page.locator("[data-test=overlay-image]")
    expect(image).to_contain_text("Frame 1 / 10", timeout=WAIT)
    first = _drawn(page)
    # The frames came as stored, JPEG 2000, and the browser decoded them (OpenJPEG wasm).
    heads = [response.body()[:400] for response in frames]
    assert any(f"transfer-syntax={J2K}".encode() in head for head in heads), heads
    screenshot(page, "viewer-j2k-en")

    page.locator("[data-test=viewer]").press("ArrowDown")
    expect(image).to_contain_text("Frame 2 / 10", timeout=WAIT)
    _drawn(page, different_from=first["checksum"])

    # Cine plays the frames through and stops.
    cine = page.locator("[data-test=cine]")
    cine.click()
    expect(image).not_to_contain_text("Frame 2 / 10", timeout=WAIT)
    cine.click()
    expect(cine).to_have_text("Play")
    assert errors == []


def test_a_colour_jpeg2000_image_is_drawn_in_colour(stored: Stored, browser: object) -> None:
    from playwright.sync_api import Page, expect

    page = signed_in_page(browser, stored.server.base, USER, PASSWORD)
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(f"{stored.server.base}/viewer/{stored.colour_study}", timeout=WAIT)
    expect(page.locator("[data-test=image-position]")).to_have_text("Image 1 / 1", timeout=WAIT)
    _drawn(page)
    coloured = page.locator("[data-test=viewport]").evaluate(
        """element => {
            const shown = element.querySelector('canvas')
            const copy = document.createElement('canvas')
            copy.width = shown.width
            copy.height = shown.height
            const context = copy.getContext('2d')
            context.drawImage(shown, 0, 0)
            const data = context.getImageData(0, 0, copy.width, copy.height).data
            let count = 0
            for (let i = 0; i < data.length; i += 4) {
                const [r, g, b] = [data[i], data[i + 1], data[i + 2]]
                if (Math.max(r, g, b) - Math.min(r, g, b) > 40) count++
            }
            return count
        }"""
    )
    assert coloured > 100, coloured  # the ultrasound's coloured parts, not grey only
    screenshot(page, "viewer-j2k-colour-en")
    assert errors == []


def test_without_webgl_the_cpu_draws(stored: Stored, browser: object) -> None:
    from playwright.sync_api import Browser, Page, expect

    assert isinstance(browser, Browser)
    no_webgl = browser.browser_type.launch(
        executable_path=shutil.which("chromium"), args=[*CHROMIUM_ARGS, "--disable-3d-apis"]
    )
    try:
        page = signed_in_page(no_webgl, stored.server.base, USER, PASSWORD)
        assert isinstance(page, Page)
        errors = script_errors(page)
        page.goto(f"{stored.server.base}/viewer/{stored.ct_study}", timeout=WAIT)
        expect(page.locator("[data-test=overlay-voi]")).to_contain_text(
            "Drawn without WebGL", timeout=WAIT
        )
        first = _drawn(page)
        page.locator("[data-test=viewport]").hover()
        page.mouse.wheel(0, 120)
        expect(page.locator("[data-test=image-position]")).to_have_text(
            f"Image 2 / {CT_SLICES}", timeout=WAIT
        )
        _drawn(page, different_from=first["checksum"])
        screenshot(page, "viewer-ct-cpu-en")
        assert errors == []
    finally:
        no_webgl.close()


def test_the_viewer_in_chinese(stored: Stored, browser: object) -> None:
    from playwright.sync_api import Page, expect

    page = signed_in_page(browser, stored.server.base, USER, PASSWORD, locale="zh-CN")
    assert isinstance(page, Page)
    errors = script_errors(page)
    page.goto(f"{stored.server.base}/viewer/{stored.ct_study}", timeout=WAIT)
    expect(page.locator("[data-test=image-position]")).to_have_text(
        f"图像 1 / {CT_SLICES}", timeout=WAIT
    )
    _drawn(page)
    expect(page.locator("[data-test=tool-windowLevel]")).to_contain_text("窗宽/窗位")
    expect(page.locator("[data-test=overlay-patient]")).to_contain_text("王小东")
    expect(page.locator("[data-test=overlay-voi]")).to_contain_text("窗宽 400 / 窗位 40")
    screenshot(page, "viewer-ct-zh-CN")
    assert errors == []


def test_an_unknown_study_says_what_to_do(stored: Stored, browser: object) -> None:
    from playwright.sync_api import Page, expect

    page = signed_in_page(browser, stored.server.base, USER, PASSWORD)
    assert isinstance(page, Page)
    page.goto(f"{stored.server.base}/viewer/1.2.3.4.5.6.7.8.9", timeout=WAIT)
    expect(page.locator("[data-test=viewer-error]")).to_contain_text(
        "Could not load the study", timeout=WAIT
    )
