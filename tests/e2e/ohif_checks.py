"""Checks of OHIF in a browser that more than one test needs: is it installed, and have its
viewports drawn an image (judged from a screenshot, not from OHIF's own state)."""

from __future__ import annotations

import io
import time

import numpy as np
from PIL import Image

from openpacs.web import ohif
from tests.e2e.serve import ARTIFACTS, require_built

VIEWPORT_BOXES = """() => [...document.querySelectorAll('[data-viewport-uid]')].map(e => {
    const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; })"""


def require_ohif() -> None:
    require_built(
        ohif.installed_version() is not None,
        "OHIF is not installed: run `make setup` (or `openpacs ohif install`)",
    )


def is_image(pixels: np.ndarray) -> bool:
    """A drawn CT view: a real share of the area lit, in many grey levels (the noise of the
    phantom), not an empty viewport or a flat overlay. Reformatted views of a short stack fill
    only a band of their viewport, hence the small share."""
    lit = pixels[pixels > 16]
    return lit.size >= 0.02 * pixels.size and len(np.unique(lit)) > 16


def viewports_drawn(page: object, name: str, minimum: int, timeout: float = 120) -> int:
    """Wait until at least `minimum` viewports show an image; save the page as
    test-artifacts/`name`.png; return the count.

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
            drawn += is_image(area)
        if drawn >= minimum:
            break
        time.sleep(1)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{name}.png").write_bytes(shot)
    return drawn
