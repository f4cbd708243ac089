"""What the Print SCU sends: one film box's N-CREATE attributes, its image boxes' N-SET
datasets and its annotation texts.

A kept film can go on two ways (POST /api/print/jobs/{id}/print, `layout`):
- `composed`: the film as we composed it, one image on STANDARD\\1,1 (what the console shows;
  any printer takes it, but the printer scales our film a second time);
- `original`: the modality's own film box (display format, film size, densities,
  magnification ...) with its image boxes as received, so the printer lays out and
  interpolates the images itself, as the modality asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom import Dataset, dcmread
from pydicom.sequence import Sequence as DicomSequence

from openpacs.printing import compose
from openpacs.printing.errors import InvalidValue
from openpacs.printing.session import FILM_BOX_KEYS, IMAGE_BOX_KEYS


class Layout(StrEnum):
    composed = "composed"
    original = "original"


GREY_SEQUENCE = "BasicGrayscaleImageSequence"
COLOUR_SEQUENCE = "BasicColorImageSequence"

# What the modality set on our film box and image boxes, less what belonged to its session
# with us: the film session reference (the new session's goes instead), its Presentation LUT
# and the lighting that goes with one, the character set (re-declared when text needs it),
# and the images' own sequences (rebuilt below) and overlay references.
_NOT_FORWARDED = frozenset(
    {
        "ReferencedFilmSessionSequence",
        "ReferencedPresentationLUTSequence",
        "Illumination",
        "ReflectedAmbientLight",
        "SpecificCharacterSet",
        "BasicGrayscaleImageSequence",
        "BasicColorImageSequence",
        "ReferencedImageOverlayBoxSequence",
        "ImageBoxPosition",
    }
)
FILM_BOX_FORWARDED = FILM_BOX_KEYS - _NOT_FORWARDED
IMAGE_BOX_FORWARDED = IMAGE_BOX_KEYS - _NOT_FORWARDED
# The Image Pixel module of a preformatted image (PS3.3 C.7.6.3); whatever else an image item
# carried (patient, study: we take them for our film's identity) is not the printer's business.
PIXEL_KEYS = (
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "Rows",
    "Columns",
    "PixelAspectRatio",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PixelData",
)


@dataclass(frozen=True)
class FilmToPrint:
    """One film box to print, with what could not be carried over to the printer (`notes`)."""

    film_box: Dataset
    image_boxes: Mapping[int, Dataset]  # by ImageBoxPosition
    annotations: Mapping[int, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def colour(self) -> bool:
        return any(COLOUR_SEQUENCE in box for box in self.image_boxes.values())


def composed(
    pixels: NDArray[np.uint8], film_size: str = "8INX10IN", orientation: str = "PORTRAIT"
) -> FilmToPrint:
    """A composed film, (H, W) grey or (H, W, 3) RGB display values, as the one image of a
    STANDARD\\1,1 film box."""
    return FilmToPrint(film_box("STANDARD\\1,1", film_size, orientation), {1: image_box(pixels)})


def film_box(
    display_format: str, film_size: str, orientation: str, magnification: str | None = None
) -> Dataset:
    box = Dataset()
    box.ImageDisplayFormat = display_format
    box.FilmOrientation = orientation
    box.FilmSizeID = film_size
    if magnification:
        box.MagnificationType = magnification
    return box


def image_box(pixels: NDArray[np.uint8]) -> Dataset:
    """An image box holding 8-bit display values: grey (H, W) or RGB (H, W, 3)."""
    out = Dataset()
    out.Polarity = "NORMAL"
    setattr(out, COLOUR_SEQUENCE if pixels.ndim == 3 else GREY_SEQUENCE, [_item(pixels)])
    return out


def _item(pixels: NDArray[np.uint8]) -> Dataset:
    item = Dataset()
    item.Rows, item.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    if pixels.ndim == 3:
        item.SamplesPerPixel, item.PhotometricInterpretation = 3, "RGB"
        item.PlanarConfiguration = 1  # colour-by-plane, as the Basic Color Image Box asks
        data = np.ascontiguousarray(pixels.transpose(2, 0, 1)).tobytes()
    else:
        item.SamplesPerPixel, item.PhotometricInterpretation = 1, "MONOCHROME2"
        data = np.ascontiguousarray(pixels).tobytes()
    item.BitsAllocated, item.BitsStored, item.HighBit, item.PixelRepresentation = 8, 8, 7, 0
    item.add_new(0x7FE00010, "OB", data)
    return item


def original(
    film_box: Dataset, box_files: Mapping[int, Path], annotations: Mapping[int, str]
) -> FilmToPrint:
    """A kept film as the modality sent it: its film box attributes and the image boxes
    archived beside it (`box_files`, by position; empty boxes are simply absent)."""
    box = Dataset()
    for keyword in sorted(FILM_BOX_FORWARDED):
        value = film_box.get(keyword)
        if value not in (None, ""):
            setattr(box, keyword, value)
    notes: list[str] = []
    if film_box.get("ReferencedPresentationLUTSequence"):
        notes.append("the modality's Presentation LUT was not forwarded")
    image_boxes = {}
    for position, path in sorted(box_files.items()):
        image_boxes[position] = _forwarded_box(dcmread(path), position, notes)
    return FilmToPrint(box, image_boxes, dict(annotations), tuple(dict.fromkeys(notes)))


def _forwarded_box(received: Dataset, position: int, notes: list[str]) -> Dataset:
    out = Dataset()
    for keyword in sorted(IMAGE_BOX_FORWARDED):
        value = received.get(keyword)
        if value not in (None, ""):
            setattr(out, keyword, value)
    if received.get("ReferencedPresentationLUTSequence"):
        notes.append("the modality's Presentation LUT was not forwarded")
    for key in (GREY_SEQUENCE, COLOUR_SEQUENCE):
        items = received.get(key)
        if items:
            setattr(out, key, [_pixels_only(items[0], key == GREY_SEQUENCE)])
            return out
    raise InvalidValue("ImageBox", f"the kept image box {position} holds no image")


def _pixels_only(item: Dataset, grey: bool) -> Dataset:
    out = Dataset()
    for keyword in PIXEL_KEYS:
        if keyword in item:
            out.add(item[keyword])
    if grey and int(item.get("BitsStored") or 8) == 16:
        # Printers take 8 or 12 bits stored (PS3.4 H.4.3.1.2.1); our SCP also took 16, which
        # it showed linearly over the whole range: 12 bits keep that picture.
        words = np.frombuffer(bytes(item.PixelData), dtype="<u2") >> 4
        out.BitsStored, out.HighBit = 12, 11
        out.add_new(0x7FE00010, "OW", words.astype("<u2").tobytes())
    return out


def as_grey(box: Dataset) -> Dataset:
    """A colour image box as its luminance, for a printer that takes grayscale only."""
    item = box[COLOUR_SEQUENCE][0]
    grey = compose.luminance(compose.colour_display(item, polarity="NORMAL"))
    return _replaced(box, COLOUR_SEQUENCE, _item(grey))


def as_colour(box: Dataset) -> Dataset:
    """A grayscale image box (8 or 12 bits) as RGB, for a film session on the colour class,
    whose image boxes take colour only (PS3.4 H.4.1.3.2.2.2)."""
    item = box[GREY_SEQUENCE][0]
    shown = compose.grey_display(item, polarity="NORMAL", lut=None)
    rgb: NDArray[Any] = np.stack([shown] * 3, axis=2)
    return _replaced(box, GREY_SEQUENCE, _item(rgb))


def _replaced(box: Dataset, old_key: str, item: Dataset) -> Dataset:
    out = Dataset()
    for element in box:
        if element.keyword != old_key:
            out.add(element)
    new_key = COLOUR_SEQUENCE if old_key == GREY_SEQUENCE else GREY_SEQUENCE
    setattr(out, new_key, DicomSequence([item]))
    return out
