"""Film composition: layouts, film sizes, densities, magnification, grey and colour pixels."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence

from openpacs.printing import compose
from openpacs.printing.errors import ImageTooLarge, InvalidValue, MissingValue, ResourceLimit


def test_standard_layout_is_rows_of_columns() -> None:
    boxes = compose.layout("STANDARD\\3,2", 1000, 800, 100)
    assert [b.position for b in boxes] == [1, 2, 3, 4, 5, 6]
    assert len({b.y for b in boxes[:3]}) == 1 and boxes[3].y > boxes[0].y
    assert boxes[0].x < boxes[1].x < boxes[2].x
    assert len({(b.width, b.height) for b in boxes}) <= 2  # rounding only


def test_row_and_col_layouts() -> None:
    rows = compose.layout("ROW\\1,3", 900, 900, 100)
    assert len(rows) == 4 and rows[0].width > 2 * rows[1].width
    cols = compose.layout("COL\\2,1", 900, 900, 100)
    assert [b.position for b in cols] == [1, 2, 3]
    assert cols[0].x == cols[1].x and cols[2].height > 2 * cols[0].height
    assert compose.box_count("ROW\\1,3") == 4


@pytest.mark.parametrize(
    "value",
    [
        "",
        "STANDARD",
        "STANDARD\\2",
        "STANDARD\\0,1",
        "STANDARD\\a,b",
        "SLIDE",
        "CUSTOM\\1",
        "ROW\\21",
        "ROW\\",
    ],
)
def test_malformed_display_formats(value: str) -> None:
    with pytest.raises((InvalidValue, MissingValue)) as caught:
        compose.box_count(value)
    assert caught.value.keyword == "ImageDisplayFormat"


def test_too_many_boxes_is_a_resource_limit() -> None:
    with pytest.raises(ResourceLimit):
        compose.box_count("STANDARD\\20,20")


def test_film_sizes_and_orientation() -> None:
    assert compose.film_pixels("14INX17IN", "PORTRAIT", 100) == (1400, 1700)
    assert compose.film_pixels("14INX17IN", "LANDSCAPE", 100) == (1700, 1400)
    assert compose.film_pixels("A4", "PORTRAIT", 254) == (2100, 2970)
    with pytest.raises(InvalidValue, match="FilmSizeID"):
        compose.film_pixels("5INX5IN", "PORTRAIT", 100)
    with pytest.raises(InvalidValue, match="FilmOrientation"):
        compose.film_pixels("A4", "SIDEWAYS", 100)


def test_densities() -> None:
    assert compose.density_grey("BLACK", "BorderDensity", 20, 300) == 0
    assert compose.density_grey("WHITE", "BorderDensity", 20, 300) == 255
    assert compose.density_grey("300", "BorderDensity", 20, 300) == 0
    assert compose.density_grey("20", "BorderDensity", 20, 300) == 255
    assert compose.density_grey("160", "BorderDensity", 20, 300) == 128
    with pytest.raises(InvalidValue, match="EmptyImageDensity"):
        compose.density_grey("GREY", "EmptyImageDensity", 20, 300)


def _grey(bits: int, values: list[int], photometric: str = "MONOCHROME2") -> Dataset:
    item = Dataset()
    item.SamplesPerPixel, item.PhotometricInterpretation = 1, photometric
    item.Rows, item.Columns = 1, len(values)
    item.BitsAllocated = 8 if bits == 8 else 16
    item.BitsStored, item.HighBit, item.PixelRepresentation = bits, bits - 1, 0
    item.PixelData = np.array(values, dtype=np.uint8 if bits == 8 else "<u2").tobytes()
    return item


def test_twelve_bit_p_values_are_scaled_not_truncated() -> None:
    shown = compose.grey_display(_grey(12, [0, 2048, 4095]), polarity="NORMAL", lut=None)
    assert shown.tolist() == [[0, 128, 255]]
    eight = compose.grey_display(_grey(8, [0, 128, 255]), polarity="NORMAL", lut=None)
    assert eight.tolist() == [[0, 128, 255]]


def test_monochrome1_and_reverse_polarity_invert() -> None:
    item = _grey(8, [0, 255], "MONOCHROME1")
    assert compose.grey_display(item, polarity="NORMAL", lut=None).tolist() == [[255, 0]]
    assert compose.grey_display(item, polarity="REVERSE", lut=None).tolist() == [[0, 255]]


def test_presentation_lut_sequence_maps_p_values() -> None:
    lut = Dataset()
    entry = Dataset()
    entry.LUTDescriptor = [256, 0, 12]
    entry.LUTData = [4095 - v * 16 for v in range(256)]  # an inverting table
    lut.PresentationLUTSequence = Sequence([entry])
    shown = compose.grey_display(_grey(8, [0, 255]), polarity="NORMAL", lut=lut)
    assert shown.tolist() == [[255, 1]]


def test_bad_grey_pixels_name_the_attribute() -> None:
    short = _grey(8, [1, 2])
    short.Columns = 10
    with pytest.raises(InvalidValue, match="PixelData"):
        compose.grey_display(short, polarity="NORMAL", lut=None)
    signed = _grey(12, [1])
    signed.PixelRepresentation = 1
    with pytest.raises(InvalidValue, match="PixelRepresentation"):
        compose.grey_display(signed, polarity="NORMAL", lut=None)


def test_colour_planar_configurations_agree() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    shown = []
    for planar in (0, 1):
        item = Dataset()
        item.SamplesPerPixel, item.PhotometricInterpretation = 3, "RGB"
        item.PlanarConfiguration = planar
        item.Rows, item.Columns = 2, 3
        item.BitsAllocated, item.BitsStored, item.HighBit, item.PixelRepresentation = 8, 8, 7, 0
        data = rgb.transpose(2, 0, 1) if planar else rgb
        item.PixelData = np.ascontiguousarray(data).tobytes()
        shown.append(compose.colour_display(item, polarity="NORMAL"))
    assert np.array_equal(shown[0], rgb) and np.array_equal(shown[1], rgb)


def test_replicate_magnifies_by_whole_factors() -> None:
    image = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    box = compose.Box(1, 0, 0, 9, 7)
    placed = compose.place(image, box, compose.Placement("REPLICATE"), 100)
    assert placed.shape == (6, 6)
    assert set(np.unique(placed[:3, :3])) == {0}


def test_none_keeps_size_and_crops_or_fails() -> None:
    image = np.zeros((20, 20), dtype=np.uint8)
    box = compose.Box(1, 0, 0, 10, 10)
    assert compose.place(image, box, compose.Placement("NONE", None, "CROP"), 100).shape == (20, 20)
    assert compose.place(image, box, compose.Placement("NONE"), 100).shape == (10, 10)
    with pytest.raises(ImageTooLarge):
        compose.place(image, box, compose.Placement("NONE", None, "FAIL"), 100)


def test_requested_image_size_in_mm() -> None:
    image = np.zeros((10, 10), dtype=np.uint8)
    box = compose.Box(1, 0, 0, 1000, 1000)
    placed = compose.place(image, box, compose.Placement("BILINEAR", 25.4, "DECIMATE"), 100)
    assert placed.shape == (100, 100)


def test_compose_paints_border_empty_boxes_and_centres_images() -> None:
    spec = compose.FilmSpec("STANDARD\\2,1", "8INX10IN", "PORTRAIT", "REPLICATE", 255, 0)
    image = np.full((10, 10), 100, dtype=np.uint8)
    film = compose.compose(
        spec, {1: (image, compose.Placement("NONE"))}, 50, colour=False, max_pixels=10**7
    )
    assert film.shape == (500, 400)
    assert film[0, 0] == 255
    boxes = compose.layout("STANDARD\\2,1", 400, 500, 50)
    first, second = boxes
    cy, cx = first.y + first.height // 2, first.x + first.width // 2
    assert film[cy, cx] == 100 and film[first.y + 1, first.x + 1] == 0
    assert film[second.y + 1, second.x + 1] == 0
    with pytest.raises(ResourceLimit):
        compose.compose(spec, {}, 600, colour=False, max_pixels=10**6)


def test_annotations_take_a_band_and_leave_the_images_whole() -> None:
    spec = compose.FilmSpec("STANDARD\\1,1", "8INX10IN", "PORTRAIT", "NONE", 0, 0)
    image = np.full((10, 10), 100, dtype=np.uint8)
    film = compose.compose(
        spec,
        {1: (image, compose.Placement("NONE"))},
        50,
        colour=False,
        max_pixels=10**7,
        annotations={1: "TOP", 2: ""},
    )
    band = compose.annotation_band(50)
    assert film[:band].max() > 128 and film[band:].max() == 100  # antialiased text
