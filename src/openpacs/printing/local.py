"""Films from images on disk (`openpacs print`): each file rendered as a viewer shows it, then
laid out `per film` at a time with the same composition the Print SCP uses."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydicom import dcmread
from pydicom.pixels.utils import pixel_array

from openpacs.dicom import render
from openpacs.printing import compose
from openpacs.printing.errors import InvalidValue


def display_of(path: Path) -> compose.Display:
    """The first frame of a DICOM image as display values (its own window, else min/max;
    colour as RGB): what a modality would send as a preformatted image."""
    try:
        ds = dcmread(path)
        pixels = pixel_array(ds, index=0) if int(ds.get("NumberOfFrames") or 1) > 1 else None
        frame = pixels if pixels is not None else pixel_array(ds)
        return render.to_display(ds, frame)
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as exc:
        raise InvalidValue("file", f"{path}: not a printable image ({exc})") from exc


def films(
    images: Iterable[compose.Display],
    spec: compose.FilmSpec,
    dpi: int,
    *,
    max_pixels: int,
) -> list[compose.Display]:
    """The images laid out in order, a new film when one is full; colour films when any image
    is colour (grey images then print grey on them)."""
    shown = list(images)
    colour = any(image.ndim == 3 for image in shown)
    per_film = compose.box_count(spec.display_format)
    placement = compose.Placement(spec.magnification)
    out = []
    for start in range(0, len(shown), per_film):
        chunk = shown[start : start + per_film]
        boxes = {n: (image, placement) for n, image in enumerate(chunk, start=1)}
        out.append(compose.compose(spec, boxes, dpi, colour=colour, max_pixels=max_pixels))
    return out
