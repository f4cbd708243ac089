"""Film composition: the film box's layout and attributes, the image boxes' pixels → one image.

Pure logic over numpy and Pillow (no I/O). The film is the size of FilmSizeID at `dpi`, portrait
or landscape; ImageDisplayFormat splits it into image boxes (PS3.3 C.13.3.1: STANDARD\\C,R,
ROW\\n1,n2..., COL\\n1,n2...); each image is scaled into its box by MagnificationType (or placed
at RequestedImageSize), and what no image covers is painted at BorderDensity (between boxes) or
EmptyImageDensity (boxes without an image).

Grey image boxes carry presentation values already (Preformatted Grayscale Image Sequence: the
modality applied its VOI); 8-bit and 12-bit P-values are mapped to display grey through
`dicom.render` with a window spanning their whole range (PS3.4 H.4.1: P-values are linear in
perceived brightness), or through a Presentation LUT when one is referenced; MONOCHROME1 and
Polarity REVERSE invert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw
from pydicom import Dataset
from pydicom.sequence import Sequence

from openpacs.dicom import render
from openpacs.printing import fonts
from openpacs.printing.errors import ImageTooLarge, InvalidValue, MissingValue, ResourceLimit

Display = NDArray[np.uint8]

MM_PER_INCH = 25.4
# FilmSizeID (PS3.3 C.13.3.1 defined terms) → (width, height) in mm, portrait.
FILM_SIZES_MM: dict[str, tuple[float, float]] = {
    "8INX10IN": (203.2, 254.0),
    "8_5INX11IN": (215.9, 279.4),
    "10INX12IN": (254.0, 304.8),
    "10INX14IN": (254.0, 355.6),
    "11INX14IN": (279.4, 355.6),
    "11INX17IN": (279.4, 431.8),
    "14INX14IN": (355.6, 355.6),
    "14INX17IN": (355.6, 431.8),
    "24CMX24CM": (240.0, 240.0),
    "24CMX30CM": (240.0, 300.0),
    "A4": (210.0, 297.0),
    "A3": (297.0, 420.0),
}
ORIENTATIONS = ("PORTRAIT", "LANDSCAPE")
# CUBIC is a defined term printers commonly offer: Pillow's bicubic.
MAGNIFICATIONS = ("REPLICATE", "BILINEAR", "CUBIC", "NONE")
DECIMATE_CROP = ("DECIMATE", "CROP", "FAIL")
POLARITIES = ("NORMAL", "REVERSE")
MAX_BOXES = 100  # image boxes in one film: a 10x10 layout is already smaller than a stamp
MAX_PER_LINE = 20
GAP_MM = 2.0  # border between image boxes and around them
TRIM_MM = 0.5  # the frame Trim YES draws around each image
TEXT_MM = 4.0  # height of annotation text; its band is 1.5 times that

# Optical density range assumed when the film box names none (hundredths of OD, typical film).
DEFAULT_MIN_DENSITY = 20
DEFAULT_MAX_DENSITY = 300


@dataclass(frozen=True)
class Box:
    """One image box on the film, in film pixels."""

    position: int  # ImageBoxPosition, 1-based, in the order the format lists them
    x: int
    y: int
    width: int
    height: int


def _parse_format(value: str) -> tuple[str, list[int]]:
    text = str(value or "").strip()
    if not text:
        raise MissingValue("ImageDisplayFormat", "missing")
    parts = text.split("\\")
    kind = parts[0].strip().upper()
    if kind not in ("STANDARD", "ROW", "COL") or len(parts) != 2:
        raise InvalidValue(
            "ImageDisplayFormat",
            f"{text!r} not supported; use STANDARD\\C,R, ROW\\n,n... or COL\\n,n...",
        )
    try:
        numbers = [int(n) for n in parts[1].split(",")]
    except ValueError as exc:
        raise InvalidValue("ImageDisplayFormat", f"{text!r}: counts must be integers") from exc
    if not numbers or any(not 1 <= n <= MAX_PER_LINE for n in numbers):
        raise InvalidValue("ImageDisplayFormat", f"{text!r}: each count must be 1 to 20")
    if kind == "STANDARD":
        if len(numbers) != 2:
            raise InvalidValue("ImageDisplayFormat", f"{text!r}: STANDARD takes C,R")
        columns, rows = numbers
        return "ROW", [columns] * rows
    if len(numbers) > MAX_PER_LINE:
        raise InvalidValue("ImageDisplayFormat", f"{text!r}: at most 20 rows or columns")
    return kind, numbers


def box_count(display_format: str) -> int:
    _, counts = _parse_format(display_format)
    total = sum(counts)
    if total > MAX_BOXES:
        raise ResourceLimit(f"ImageDisplayFormat {display_format!r}: more than {MAX_BOXES} boxes")
    return total


def film_pixels(film_size: str, orientation: str, dpi: int) -> tuple[int, int]:
    """(width, height) of the film in pixels at `dpi`."""
    size = FILM_SIZES_MM.get(film_size)
    if size is None:
        raise InvalidValue(
            "FilmSizeID", f"{film_size!r} not supported; use one of {', '.join(FILM_SIZES_MM)}"
        )
    if orientation not in ORIENTATIONS:
        raise InvalidValue("FilmOrientation", f"{orientation!r}: use PORTRAIT or LANDSCAPE")
    width, height = size if orientation == "PORTRAIT" else (size[1], size[0])
    return _px(width, dpi), _px(height, dpi)


def _px(mm: float, dpi: int) -> int:
    return max(1, round(mm * dpi / MM_PER_INCH))


def layout(display_format: str, width: int, height: int, dpi: int) -> list[Box]:
    """The image boxes of a film `width` x `height` pixels: rows top to bottom, left to right
    within a row (ROW, STANDARD); columns left to right, top to bottom within one (COL)."""
    kind, counts = _parse_format(display_format)
    box_count(display_format)
    gap = _px(GAP_MM, dpi)
    boxes: list[Box] = []
    position = 1
    if kind == "ROW":
        row_height = (height - gap * (len(counts) + 1)) / len(counts)
        for r, n in enumerate(counts):
            y = gap + r * (row_height + gap)
            cell = (width - gap * (n + 1)) / n
            for c in range(n):
                x = gap + c * (cell + gap)
                boxes.append(_box(position, x, y, cell, row_height))
                position += 1
    else:
        column_width = (width - gap * (len(counts) + 1)) / len(counts)
        for c, n in enumerate(counts):
            x = gap + c * (column_width + gap)
            cell = (height - gap * (n + 1)) / n
            for r in range(n):
                y = gap + r * (cell + gap)
                boxes.append(_box(position, x, y, column_width, cell))
                position += 1
    if any(b.width < 1 or b.height < 1 for b in boxes):
        raise ResourceLimit(f"ImageDisplayFormat {display_format!r} leaves no room per image")
    return boxes


def _box(position: int, x: float, y: float, w: float, h: float) -> Box:
    left, top = round(x), round(y)
    return Box(position, left, top, round(x + w) - left, round(y + h) - top)


def density_grey(value: Any, keyword: str, min_density: int, max_density: int) -> int:
    """BorderDensity / EmptyImageDensity (BLACK, WHITE, or hundredths of optical density) as a
    display grey: on film more density is darker, so max density is black."""
    text = str(value or "").strip().upper()
    if text == "BLACK":
        return 0
    if text == "WHITE":
        return 255
    try:
        density = int(text)
    except ValueError as exc:
        raise InvalidValue(keyword, f"{text!r}: use BLACK, WHITE or a density (1/100 OD)") from exc
    if density < 0:
        raise InvalidValue(keyword, f"{density}: a density cannot be negative")
    span = max(max_density - min_density, 1)
    return round(255 * min(max((max_density - density) / span, 0.0), 1.0))


# ------------------------------------------------------------------------------ image boxes


def grey_display(item: Dataset, *, polarity: str, lut: Dataset | None) -> Display:
    """A Preformatted Grayscale Image Sequence item as display grey (rows, columns)."""
    rows, columns = _size(item)
    samples = int(item.get("SamplesPerPixel", 1))
    photometric = str(item.get("PhotometricInterpretation") or "").strip().upper()
    if samples != 1:
        raise InvalidValue("SamplesPerPixel", f"{samples}: a grayscale image box takes 1")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InvalidValue(
            "PhotometricInterpretation", f"{photometric!r}: use MONOCHROME1 or MONOCHROME2"
        )
    allocated, stored = _bits(item, allowed={8: (8,), 16: (12, 16)})
    pixels = _pixels(item, rows, columns, 1, allocated)
    pixels = pixels & ((1 << stored) - 1)
    # The P-value pipeline through the renderer: a window over the whole stored range (LINEAR
    # maps 0..2^n-1 exactly onto 0..255), or the Presentation LUT as the VOI LUT stage.
    shown = Dataset()
    shown.PhotometricInterpretation = photometric
    shown.BitsStored = stored
    shown.PixelRepresentation = 0
    window: tuple[float, float] | None = (float(1 << (stored - 1)), float(1 << stored))
    if lut is not None:
        if "PresentationLUTSequence" in lut:
            shown.VOILUTSequence = Sequence([_lut_item(lut.PresentationLUTSequence[0])])
            window = None
        elif str(lut.get("PresentationLUTShape") or "").strip().upper() == "INVERSE":
            shown.PresentationLUTShape = "INVERSE"
    display = render.to_display(shown, pixels, window, voi_function="LINEAR" if window else None)
    if polarity == "REVERSE":
        display = 255 - display
    return display


def _lut_item(item: Dataset) -> Dataset:
    out = Dataset()
    out.LUTDescriptor = list(item.LUTDescriptor)
    out.LUTData = item.LUTData
    return out


def colour_display(item: Dataset, *, polarity: str) -> Display:
    """A Preformatted Color Image Sequence item (RGB, 8 bits) as (rows, columns, 3)."""
    rows, columns = _size(item)
    samples = int(item.get("SamplesPerPixel", 3))
    photometric = str(item.get("PhotometricInterpretation") or "").strip().upper()
    if samples != 3 or photometric != "RGB":
        raise InvalidValue(
            "PhotometricInterpretation", f"{photometric!r} with {samples} samples: use RGB, 3"
        )
    allocated, _ = _bits(item, allowed={8: (8,)})
    planar = int(item.get("PlanarConfiguration", 1))
    if planar not in (0, 1):
        raise InvalidValue("PlanarConfiguration", f"{planar}: use 0 or 1")
    flat = _pixels(item, rows, columns, 3, allocated).reshape(-1)
    if planar == 1:  # colour-by-plane (what PS3.3 C.13.6 asks of print)
        rgb = flat.reshape(3, rows, columns).transpose(1, 2, 0)
    else:
        rgb = flat.reshape(rows, columns, 3)
    out = np.ascontiguousarray(rgb, dtype=np.uint8)
    if polarity == "REVERSE":
        out = 255 - out
    return out


def _size(item: Dataset) -> tuple[int, int]:
    rows, columns = item.get("Rows"), item.get("Columns")
    if not rows or not columns:
        raise MissingValue("Rows" if not rows else "Columns", "missing or zero")
    return int(rows), int(columns)


def _bits(item: Dataset, *, allowed: dict[int, tuple[int, ...]]) -> tuple[int, int]:
    allocated = int(item.get("BitsAllocated") or 0)
    stored = int(item.get("BitsStored") or allocated)
    if allocated not in allowed or stored not in allowed[allocated]:
        options = "; ".join(f"{a} allocated with {s} stored" for a, s in allowed.items())
        raise InvalidValue("BitsStored", f"{allocated}/{stored} bits not supported ({options})")
    high = int(item.get("HighBit", stored - 1))
    if high != stored - 1:
        raise InvalidValue("HighBit", f"{high}: must be BitsStored - 1")
    if int(item.get("PixelRepresentation", 0)) != 0:
        raise InvalidValue("PixelRepresentation", "image boxes take unsigned pixels (0)")
    return allocated, stored


def _pixels(item: Dataset, rows: int, columns: int, samples: int, allocated: int) -> NDArray[Any]:
    data = item.get("PixelData")
    if data is None:
        raise MissingValue("PixelData", "missing")
    raw = bytes(data)
    size = rows * columns * samples * (allocated // 8)
    if len(raw) < size:
        raise InvalidValue("PixelData", f"{len(raw)} bytes for {rows}x{columns}: {size} expected")
    # Datasets reach us decoded to native little-endian words (pydicom swaps OW read as BE).
    dtype = np.uint8 if allocated == 8 else np.dtype("<u2")
    values = np.frombuffer(raw[:size], dtype=dtype)
    return values.reshape(rows, columns) if samples == 1 else values


# ------------------------------------------------------------------------------ the film


@dataclass(frozen=True)
class Placement:
    """How one image is put into its box."""

    magnification: str = "BILINEAR"
    requested_size_mm: float | None = None  # RequestedImageSize: the image's width on film
    decimate_crop: str = "DECIMATE"


_RESAMPLE = {
    "REPLICATE": Image.Resampling.NEAREST,
    "BILINEAR": Image.Resampling.BILINEAR,
    "CUBIC": Image.Resampling.BICUBIC,
}


def place(image: Display, box: Box, placement: Placement, dpi: int) -> Display:
    """The image scaled for its box, aspect ratio kept; the caller centres it."""
    rows, columns = image.shape[:2]
    fit = min(box.width / columns, box.height / rows)
    if placement.requested_size_mm:
        wanted = placement.requested_size_mm * dpi / MM_PER_INCH / columns
        if wanted > fit * 1.0001:
            if placement.decimate_crop == "FAIL":
                raise ImageTooLarge(
                    "RequestedImageSize", f"{placement.requested_size_mm} mm does not fit the box"
                )
            wanted = fit
        scale = wanted
    elif placement.magnification == "NONE":
        scale = 1.0
        if scale > fit:
            if placement.decimate_crop == "FAIL":
                raise ImageTooLarge("MagnificationType", "NONE: the image is larger than its box")
            if placement.decimate_crop == "DECIMATE":
                scale = fit
    elif placement.magnification == "REPLICATE":
        # Whole-number replication of pixels when the image grows, as a printer replicates.
        scale = float(math.floor(fit)) if fit >= 1 else fit
    else:
        scale = fit
    if scale == 1.0:
        return image
    width, height = max(1, round(columns * scale)), max(1, round(rows * scale))
    method = _RESAMPLE.get(placement.magnification, Image.Resampling.NEAREST)
    if placement.magnification == "NONE":
        method = Image.Resampling.NEAREST
    return np.asarray(Image.fromarray(image).resize((width, height), method), dtype=np.uint8)


@dataclass(frozen=True)
class FilmSpec:
    """A film box's attributes, checked."""

    display_format: str
    film_size: str = "8INX10IN"
    orientation: str = "PORTRAIT"
    magnification: str = "BILINEAR"
    border: int = 0  # display grey
    empty: int = 0
    trim: bool = False


def compose(
    spec: FilmSpec,
    images: dict[int, tuple[Display, Placement]],
    dpi: int,
    *,
    colour: bool,
    max_pixels: int,
    annotations: dict[int, str] | None = None,
    font: str = "",
) -> Display:
    """The film: boxes laid out, each image centred in its box; (H, W) or (H, W, 3).
    `annotations`: text by position, 1 in a band above the images, 2 in one below, drawn in
    `font` (a font file; empty: the Chinese font `printing.fonts` finds)."""
    width, height = film_pixels(spec.film_size, spec.orientation, dpi)
    if width * height > max_pixels:
        raise ResourceLimit(
            f"a {spec.film_size} film at {dpi} dpi is {width}x{height} pixels; the limit is "
            f"{max_pixels}"
        )
    shape: tuple[int, ...] = (height, width, 3) if colour else (height, width)
    film = np.full(shape, spec.border, dtype=np.uint8)
    trim = _px(TRIM_MM, dpi)
    notes = {p: t for p, t in (annotations or {}).items() if t}
    band = annotation_band(dpi)
    above = band if 1 in notes else 0
    area_height = height - above - (band if 2 in notes else 0)
    for laid in layout(spec.display_format, width, area_height, dpi):
        box = Box(laid.position, laid.x, laid.y + above, laid.width, laid.height)
        film[box.y : box.y + box.height, box.x : box.x + box.width] = spec.empty
        if box.position not in images:
            continue
        image, placement = images[box.position]
        placed = place(image, box, placement, dpi)
        if colour and placed.ndim == 2:
            placed = np.repeat(placed[:, :, None], 3, axis=2)
        elif not colour and placed.ndim == 3:
            placed = luminance(placed)
        rows, columns = placed.shape[:2]
        # Centred; an image larger than its box (NONE with CROP) is cut evenly on both sides.
        top, left = box.y + (box.height - rows) // 2, box.x + (box.width - columns) // 2
        src_top, src_left = max(0, -(top - box.y)), max(0, -(left - box.x))
        top, left = max(top, box.y), max(left, box.x)
        h = min(rows - src_top, box.y + box.height - top)
        w = min(columns - src_left, box.x + box.width - left)
        film[top : top + h, left : left + w] = placed[
            src_top : src_top + h, src_left : src_left + w
        ]
        if spec.trim:
            _frame(film, left, top, w, h, trim, 255 - spec.border)
    if notes:
        film = _annotate(film, notes, band, _px(TEXT_MM, dpi), 255 - spec.border, font)
    return film


def annotation_band(dpi: int) -> int:
    """Height in pixels of the band an annotation takes above or below the images."""
    return round(_px(TEXT_MM, dpi) * 1.5)


def _annotate(
    film: Display, notes: dict[int, str], band: int, size: int, grey: int, font_file: str
) -> Display:
    """Each text centred in its band, in the grey that stands out from the border."""
    image = Image.fromarray(film)
    draw = ImageDraw.Draw(image)
    font = fonts.load(size, font_file)
    for text in notes.values():
        fonts.warn_if_missing(text, font_file)
    fill: int | tuple[int, int, int] = (grey,) * 3 if film.ndim == 3 else grey
    height = film.shape[0]
    for position, text in notes.items():
        centre_y = band // 2 if position == 1 else height - band // 2
        draw.text((film.shape[1] // 2, centre_y), text, fill=fill, font=font, anchor="mm")
    return np.asarray(image, dtype=np.uint8)


def luminance(rgb: Display) -> Display:
    """RGB display values as grey (Rec. 601 weights), for grayscale films and printers."""
    weights = np.array([0.299, 0.587, 0.114])
    return cast(Display, np.clip(np.rint(rgb @ weights), 0, 255).astype(np.uint8))


def _frame(film: Display, x: int, y: int, w: int, h: int, size: int, grey: int) -> None:
    height, width = film.shape[:2]
    x0, y0 = max(x - size, 0), max(y - size, 0)
    x1, y1 = min(x + w + size, width), min(y + h + size, height)
    film[y0:y, x0:x1] = grey
    film[y + h : y1, x0:x1] = grey
    film[y0:y1, x0:x] = grey
    film[y0:y1, x + w : x1] = grey
