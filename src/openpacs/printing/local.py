"""Films from images on disk or in the archive (`openpacs print`): each image rendered as a
viewer shows it, then laid out `per film` at a time, either composed here with the same
composition the Print SCP uses or as image boxes for the printer to lay out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from pydicom import Dataset, dcmread
from pydicom.pixels.utils import pixel_array

from openpacs.dicom import render
from openpacs.printing import compose, outgoing
from openpacs.printing.errors import InvalidValue


def displays_of(paths: Iterable[Path], *, in_series_order: bool = False) -> list[compose.Display]:
    """The first frame of each DICOM image as display values (its own window, else min/max;
    colour as RGB): what a modality would send as a preformatted image. In the order given,
    or (for images taken from the archive) by series number then instance number."""
    read = [(path, _read(path)) for path in paths]
    if in_series_order:
        read.sort(
            key=lambda item: (_number(item[1], "SeriesNumber"), _number(item[1], "InstanceNumber"))
        )
    return [_display(path, ds) for path, ds in read]


def _read(path: Path) -> Dataset:
    try:
        return dcmread(path)
    except (OSError, ValueError) as exc:
        raise InvalidValue("file", f"{path}: not a DICOM file ({exc})") from exc


def _number(ds: Dataset, keyword: str) -> int:
    try:
        return int(ds.get(keyword) or 0)
    except (TypeError, ValueError):
        return 0


def _display(path: Path, ds: Dataset) -> compose.Display:
    try:
        pixels = pixel_array(ds, index=0) if int(ds.get("NumberOfFrames") or 1) > 1 else None
        frame = pixels if pixels is not None else pixel_array(ds)
        return render.to_display(ds, frame)
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as exc:
        raise InvalidValue("file", f"{path}: not a printable image ({exc})") from exc


def boxed(images: Sequence[compose.Display], spec: compose.FilmSpec) -> list[outgoing.FilmToPrint]:
    """The images as image boxes, `spec.display_format` at a time: the printer lays them out
    (as dcmtk's dcmpsprt + dcmprscu do), each image already windowed to 8 bits."""
    per_film = compose.box_count(spec.display_format)
    films = []
    for start in range(0, len(images), per_film):
        chunk = images[start : start + per_film]
        box = outgoing.film_box(
            spec.display_format, spec.film_size, spec.orientation, spec.magnification
        )
        boxes = {n: outgoing.image_box(image) for n, image in enumerate(chunk, start=1)}
        films.append(outgoing.FilmToPrint(box, boxes))
    return films


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
