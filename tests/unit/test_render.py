"""Rendering frames to display values and images: exact values on phantoms, real files, sizes."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from PIL.GifImagePlugin import GifImageFile
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut
from pydicom.pixels.utils import pack_bits, pixel_array

from openpacs.dicom.render import (
    RenderError,
    RenderOptions,
    output_size,
    render_cine,
    render_frame,
    thumbnail,
    to_display,
)
from tests.conftest import sample

# Stored values of the 1 x 9 phantom and what they become after slope 2, intercept -1000.
STORED = [0, 450, 451, 499, 500, 501, 549, 550, 4095]
MODALITY = [-1000, -100, -98, -2, 0, 2, 98, 100, 7190]
# PS3.3 C.11.2.1.2 with center 0, width 200, ymin 0, ymax 255, rounded half up:
# LINEAR      y = ((x + 0.5) / 199 + 0.5) * 255, 0 for x <= -100, 255 for x > 99
# LINEAR_EXACT y = (x / 200 + 0.5) * 255,       0 for x <= -100, 255 for x > 100
# SIGMOID     y = 255 / (1 + exp(-4 x / 200))
LINEAR = [0, 0, 3, 126, 128, 131, 254, 255, 255]
LINEAR_EXACT = [0, 0, 3, 125, 128, 130, 252, 255, 255]
SIGMOID = [0, 30, 31, 125, 128, 130, 224, 225, 255]


def header(photometric: str = "MONOCHROME2", signed: bool = False, **attrs: Any) -> Dataset:
    ds = Dataset()
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = 3 if photometric == "RGB" else 1
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 1 if signed else 0
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def phantom(**attrs: Any) -> tuple[Dataset, NDArray[np.uint16]]:
    attrs = {"RescaleSlope": 2, "RescaleIntercept": -1000, **attrs}
    pixels = np.array([STORED], dtype=np.uint16)
    return header(Rows=1, Columns=len(STORED), **attrs), pixels


def values(display: NDArray[np.uint8]) -> list[int]:
    return [int(v) for v in display.ravel()]


def lut_item(descriptor: list[int], data: list[int]) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = descriptor
    item.LUTData = data
    return item


def frame_of(name: str, index: int | None = None) -> tuple[Dataset, NDArray[Any]]:
    path = sample(name)
    return dcmread(path, stop_before_pixels=True), pixel_array(path, index=index)


# --- VOI: known windows on a phantom ----------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "expected"),
    [("LINEAR", LINEAR), ("LINEAR_EXACT", LINEAR_EXACT), ("SIGMOID", SIGMOID)],
)
def test_object_window_and_function_give_the_standard_values(
    function: str, expected: list[int]
) -> None:
    ds, pixels = phantom(WindowCenter=0, WindowWidth=200, VOILUTFunction=function)
    assert values(to_display(ds, pixels)) == expected


def test_missing_function_is_linear_and_first_of_several_windows_wins() -> None:
    ds, pixels = phantom(WindowCenter=[0, 900], WindowWidth=[200, 10])
    assert values(to_display(ds, pixels)) == LINEAR


def test_callers_window_and_function_override_the_object() -> None:
    ds, pixels = phantom(WindowCenter=3000, WindowWidth=10, VOILUTFunction="SIGMOID")
    assert values(to_display(ds, pixels, (0, 200), voi_function="LINEAR")) == LINEAR
    # Without a function the caller's window follows the object's (here SIGMOID).
    assert values(to_display(ds, pixels, (0, 200))) == SIGMOID
    # Center -500, width 1000, exact: (x + 500) / 1000 + 0.5, so -100 -> 229.5 and 0 -> 255.
    wide = to_display(ds, pixels, (-500, 1000), voi_function="LINEAR_EXACT")
    assert values(wide)[:5] == [0, 230, 230, 254, 255]


def test_without_a_window_min_max_after_modality_lut_fills_the_range() -> None:
    ds, pixels = phantom()
    # min -1000 -> 0, max 7190 -> 255; -100 -> (900 / 8190) * 255 = 28.02, 0 -> 31.14.
    assert values(to_display(ds, pixels))[:5] == [0, 28, 28, 31, 31]
    assert values(to_display(ds, pixels))[-1] == 255


def test_signed_stored_values() -> None:
    ds = header(signed=True, Rows=1, Columns=4)
    pixels = np.array([[-2048, -1, 0, 2047]], dtype=np.int16)
    # (x / 4096 + 0.5) * 255: 127.44 and 127.5 round apart, 2047 -> 254.94.
    shown = to_display(ds, pixels, (0, 4096), voi_function="LINEAR_EXACT")
    assert values(shown) == [0, 127, 128, 255]
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = -1024, 4096, "LINEAR_EXACT"
    assert values(to_display(ds, pixels)) == [0, 127, 128, 255]


def test_eight_bit_and_float_and_wide_integer_frames() -> None:
    ds = header(Rows=1, Columns=4, BitsAllocated=8, BitsStored=8)
    # min/max of 0..255 is the identity.
    assert values(to_display(ds, np.array([[0, 64, 128, 255]], dtype=np.uint8))) == [
        0,
        64,
        128,
        255,
    ]
    floats = np.array([[0.0, 0.5, 1.0, np.nan]], dtype=np.float32)
    assert values(to_display(header(), floats)) == [0, 128, 255, 0]
    # A span too wide for a table goes the float way with the same result.
    wide = np.array([[0, 100_000, 200_000]], dtype=np.uint32)
    assert values(to_display(header(BitsAllocated=32, BitsStored=32), wide)) == [0, 128, 255]
    flat = np.full((2, 2), 7, dtype=np.uint16)
    assert values(to_display(header(), flat)) == [0, 0, 0, 0]


def test_window_width_limits() -> None:
    ds, pixels = phantom()
    # LINEAR width 1 is a threshold at center - 0.5.
    assert values(to_display(ds, pixels, (0.5, 1), voi_function="LINEAR"))[3:6] == [0, 0, 255]
    with pytest.raises(RenderError):
        to_display(ds, pixels, (0, 0.5), voi_function="LINEAR")
    assert values(to_display(ds, pixels, (0, 0.5), voi_function="LINEAR_EXACT"))[3:6] == [
        0,
        128,
        255,
    ]
    # An unusable window in the object is passed over for min/max.
    ds.WindowCenter, ds.WindowWidth = 0, 0
    assert values(to_display(ds, pixels)) == values(to_display(phantom()[0], pixels))


# --- Modality and VOI LUT sequences ----------------------------------------------------------


def test_modality_lut_sequence() -> None:
    ds = header(Rows=1, Columns=6)
    ds.ModalityLUTSequence = [lut_item([4, 10, 12], [0, 1000, 2000, 4095])]
    pixels = np.array([[9, 10, 11, 12, 13, 14]], dtype=np.uint16)
    # Below the first mapped value -> first entry, beyond the table -> last; then x / 4096 * 255.
    shown = to_display(ds, pixels, (2048, 4096), voi_function="LINEAR_EXACT")
    assert values(shown) == [0, 0, 62, 125, 255, 255]


def test_min_max_through_a_modality_lut_counts_only_values_that_occur() -> None:
    ds = header(Rows=1, Columns=3)
    ds.ModalityLUTSequence = [lut_item([4, 10, 12], [500, 4095, 0, 2000])]
    # 11 (-> 4095) lies inside the frame's range but does not occur: the range is 0..2000.
    pixels = np.array([[10, 12, 13]], dtype=np.uint16)
    assert values(to_display(ds, pixels)) == [64, 0, 255]


@pytest.mark.parametrize(
    ("descriptor", "data", "expected"),
    [
        ([3, 0, 8], [0, 100, 255], [0, 100, 255, 255]),
        # 32768 / 65535 * 255 = 127.502
        ([3, 0, 16], [0, 32768, 65535], [0, 128, 255, 255]),
    ],
)
def test_voi_lut_sequence(descriptor: list[int], data: list[int], expected: list[int]) -> None:
    ds = header(Rows=1, Columns=4)
    ds.VOILUTSequence = [lut_item(descriptor, data)]
    pixels = np.array([[0, 1, 2, 3]], dtype=np.uint16)
    assert values(to_display(ds, pixels)) == expected
    # A window in the object comes first.
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = 1.5, 3, "LINEAR_EXACT"
    assert values(to_display(ds, pixels)) == [0, 85, 170, 255]


def test_per_frame_functional_groups_of_an_enhanced_object() -> None:
    def voi(center: float, width: float) -> Dataset:
        group, item = Dataset(), Dataset()
        item.WindowCenter, item.WindowWidth, item.VOILUTFunction = center, width, "LINEAR_EXACT"
        group.FrameVOILUTSequence = [item]
        return group

    shared, rescale = Dataset(), Dataset()
    rescale.RescaleSlope, rescale.RescaleIntercept = 1, 100
    shared.PixelValueTransformationSequence = [rescale]
    ds = header(Rows=1, Columns=3, NumberOfFrames=2)
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.PerFrameFunctionalGroupsSequence = [voi(200, 200), voi(1000, 2000)]
    pixels = np.array([[0, 100, 200]], dtype=np.uint16)  # 100, 200, 300 after rescale
    assert values(to_display(ds, pixels, frame=0)) == [0, 128, 255]
    assert values(to_display(ds, pixels, frame=1)) == [13, 26, 38]


# --- MONOCHROME1, palette, colour, signed real data -------------------------------------------


def test_monochrome1_and_presentation_lut_shape_invert_once() -> None:
    inverted = [255 - v for v in LINEAR]
    ds, pixels = phantom(WindowCenter=0, WindowWidth=200, PhotometricInterpretation="MONOCHROME1")
    assert values(to_display(ds, pixels)) == inverted
    ds.PresentationLUTShape = "INVERSE"  # restates MONOCHROME1, no second inversion
    assert values(to_display(ds, pixels)) == inverted
    ds.PhotometricInterpretation = "MONOCHROME2"
    assert values(to_display(ds, pixels)) == inverted
    ds.PresentationLUTShape = "IDENTITY"
    assert values(to_display(ds, pixels)) == LINEAR


def test_signed_mr_follows_the_standard_formula_everywhere() -> None:
    ds, pixels = frame_of("MR_small.dcm")
    assert pixels.dtype == np.int16 and ds.PixelRepresentation == 1
    center, width = float(ds.WindowCenter), float(ds.WindowWidth)
    x = pixels.astype(np.float64)
    y = np.select(
        [x <= center - 0.5 - (width - 1) / 2, x > center - 0.5 + (width - 1) / 2],
        [0.0, 255.0],
        ((x - (center - 0.5)) / (width - 1) + 0.5) * 255,
    )
    np.testing.assert_array_equal(to_display(ds, pixels), np.floor(y + 0.5).astype(np.uint8))


def test_palette_colour_maps_through_the_red_green_blue_tables() -> None:
    ds, pixels = frame_of("OBXXXX1A.dcm")
    shown = to_display(ds, pixels)
    assert shown.shape == (*pixels.shape, 3) and shown.dtype == np.uint8
    first = ds.RedPaletteColorLookupTableDescriptor[1]
    for channel, name in enumerate(("Red", "Green", "Blue")):
        table = np.frombuffer(ds[f"{name}PaletteColorLookupTableData"].value, dtype="<u2")
        np.testing.assert_array_equal(shown[..., channel], table[pixels - first] >> 8)


def test_segmented_palette() -> None:
    ds, pixels = frame_of("gdcm-US-ALOKA-16.dcm")
    assert "SegmentedRedPaletteColorLookupTableData" in ds
    shown = to_display(ds, pixels)
    np.testing.assert_array_equal(shown, apply_color_lut(pixels, ds) >> 8)
    assert (shown[..., 0] != shown[..., 2]).any()


def test_rgb_passes_through_and_is_never_drawn_on() -> None:
    ds, pixels = frame_of("SC_rgb.dcm")
    before = pixels.copy()
    np.testing.assert_array_equal(to_display(ds, pixels, (0, 1)), pixels)
    ds.add_new((0x6000, 0x0010), "US", 2)
    ds.add_new((0x6000, 0x0011), "US", 2)
    ds.add_new((0x6000, 0x0100), "US", 1)
    ds.add_new((0x6000, 0x3000), "OW", pack_bits(np.ones(4, dtype=np.uint8)))
    drawn = to_display(ds, pixels, overlays=True)
    assert (drawn[:2, :2] == 255).all()
    np.testing.assert_array_equal(pixels, before)


@pytest.mark.parametrize("name", ["SC_ybr_full_uncompressed.dcm", "SC_rgb_jpeg_dcmtk.dcm"])
def test_ybr_header_over_decoded_rgb_is_not_converted_twice(name: str) -> None:
    ds, pixels = frame_of(name)
    assert ds.PhotometricInterpretation == "YBR_FULL"
    rgb = pixel_array(sample("SC_rgb.dcm")).astype(int)
    shown = to_display(ds, pixels)
    np.testing.assert_array_equal(shown, pixels)
    # Same picture as the RGB original, up to YCbCr rounding and JPEG loss.
    assert np.abs(shown.astype(int) - rgb).max() <= 8


def test_sixteen_bit_rgb_keeps_the_high_bits() -> None:
    ds = header("RGB", Rows=1, Columns=2, BitsStored=16)
    pixels = np.array([[[0, 256, 65535], [512, 1024, 32768]]], dtype=np.uint16)
    assert values(to_display(ds, pixels)) == [0, 1, 255, 2, 4, 128]


# --- overlays --------------------------------------------------------------------------------


def test_overlays_are_burnt_in_only_when_asked() -> None:
    ds, pixels = frame_of("MR-SIEMENS-DICOM-WithOverlays.dcm")
    plain = to_display(ds, pixels)
    drawn = to_display(ds, pixels, overlays=True)
    bitmap = ds.overlay_array(0x6000).astype(bool)
    assert bitmap.sum() > 100
    assert (drawn[bitmap] == 255).all()
    np.testing.assert_array_equal(drawn[~bitmap], plain[~bitmap])


def test_overlay_origin_clipping_frames_and_roi() -> None:
    ds = header(Rows=4, Columns=4, NumberOfFrames=3)
    bits = np.zeros((2, 4, 4), dtype=np.uint8)
    bits[0, 0, 0] = bits[0, 3, 3] = 1  # overlay frame 1
    bits[1, 1, 1] = 1  # overlay frame 2
    ds.add_new((0x6000, 0x0010), "US", 4)
    ds.add_new((0x6000, 0x0011), "US", 4)
    ds.add_new((0x6000, 0x0015), "IS", 2)
    ds.add_new((0x6000, 0x0050), "SS", [3, 2])  # row 3, column 2 (1-based)
    ds.add_new((0x6000, 0x0051), "US", 2)  # overlay frame 1 goes with image frame 2
    ds.add_new((0x6000, 0x0100), "US", 1)
    ds.add_new((0x6000, 0x3000), "OW", pack_bits(bits.ravel()))
    pixels = np.zeros((4, 4), dtype=np.uint16)
    assert not to_display(ds, pixels, frame=0, overlays=True).any()
    second = to_display(ds, pixels, frame=1, overlays=True)
    # Overlay (0,0) lands on (2,1); (3,3) falls outside the frame.
    assert list(zip(*np.nonzero(second), strict=True)) == [(2, 1)]
    third = to_display(ds, pixels, frame=2, overlays=True)
    assert list(zip(*np.nonzero(third), strict=True)) == [(3, 2)]
    ds.add_new((0x6000, 0x0040), "CS", "R")
    assert not to_display(ds, pixels, frame=1, overlays=True).any()


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"format": "bmp"},
        {"quality": 0},
        {"quality": 101},
        {"viewport": (0, 10)},
        {"rows": 0},
        {"columns": -1},
        {"window": (40, 0)},
        {"window": (40, 0.5), "voi_function": "LINEAR"},
        {"window": (40, float("nan"))},
        {"voi_function": "CUBIC"},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(RenderError):
        RenderOptions(**options)


def test_what_cannot_be_rendered() -> None:
    pixels = np.zeros((2, 2), dtype=np.uint16)
    no_photometric = Dataset()
    with pytest.raises(RenderError, match="PhotometricInterpretation"):
        to_display(no_photometric, pixels)
    with pytest.raises(RenderError, match="not supported"):
        to_display(header("HSV"), np.zeros((2, 2, 3), dtype=np.uint8))
    with pytest.raises(RenderError, match="no pixel data"):
        to_display(header(), np.zeros((0, 0), dtype=np.uint16))
    with pytest.raises(RenderError, match="rows, columns"):
        to_display(header(), np.zeros((3, 2, 2), dtype=np.uint16))  # all frames, not one
    with pytest.raises(RenderError, match="rows, columns, 3"):
        to_display(header("RGB"), pixels)
    with pytest.raises(RenderError, match="palette"):
        to_display(header("PALETTE COLOR"), pixels)
    with pytest.raises(RenderError):
        render_cine(header(), [])
    with pytest.raises(RenderError):
        render_cine(header(), [pixels], RenderOptions(format="png"))


# --- sizes and encodings ---------------------------------------------------------------------


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def gif(data: bytes) -> GifImageFile:
    image = opened(data)
    assert isinstance(image, GifImageFile)
    return image


def test_output_size_keeps_aspect() -> None:
    assert output_size(512, 512, RenderOptions(viewport=(128, 64))) == (64, 64)
    assert output_size(256, 1024, RenderOptions(viewport=(300, 300))) == (75, 300)
    # A viewport also enlarges; rows/columns are maxima and never do.
    assert output_size(64, 64, RenderOptions(viewport=(256, 128))) == (128, 128)
    assert output_size(64, 64, RenderOptions(rows=512, columns=512)) == (64, 64)
    assert output_size(256, 1024, RenderOptions(rows=512)) == (128, 512)
    assert output_size(256, 1024, RenderOptions(columns=128)) == (128, 512)
    assert output_size(300, 200, RenderOptions(rows=100, columns=100)) == (100, 67)
    assert output_size(3, 1000, RenderOptions(rows=10)) == (1, 10)
    assert output_size(640, 480, RenderOptions()) == (640, 480)
    assert output_size(64, 64, RenderOptions(viewport=(512, 512), rows=256)) == (256, 256)


def test_rendered_images_have_the_asked_size_and_format() -> None:
    ds = header(Rows=1024, Columns=256)
    pixels = np.arange(1024 * 256, dtype=np.uint16).reshape(1024, 256) % 4096
    jpeg = opened(render_frame(ds, pixels, RenderOptions(viewport=(100, 100))))
    assert (jpeg.format, jpeg.size, jpeg.mode) == ("JPEG", (25, 100), "L")
    png = opened(render_frame(ds, pixels, RenderOptions(format="png", rows=512)))
    assert (png.format, png.size) == ("PNG", (128, 512))
    thumb = opened(thumbnail(ds, pixels, 64))
    assert (thumb.format, thumb.size) == ("JPEG", (16, 64))
    colour = opened(render_frame(*frame_of("US1_UNCR.dcm"), RenderOptions(columns=64)))
    assert (colour.mode, colour.size) == ("RGB", (64, 48))


def test_png_is_lossless_and_jpeg_quality_changes_size() -> None:
    ds, pixels = frame_of("CT_small.dcm")
    png = opened(render_frame(ds, pixels, RenderOptions(format="png", window=(40, 400))))
    np.testing.assert_array_equal(np.asarray(png), to_display(ds, pixels, (40, 400)))
    low = render_frame(ds, pixels, RenderOptions(quality=20))
    high = render_frame(ds, pixels, RenderOptions(quality=95))
    assert len(low) < len(high) * 0.7
    small = thumbnail(*frame_of("CT_small.dcm"), size=64)
    assert opened(small).size == (64, 64)


def test_cine_gif_has_every_frame_and_the_frame_time() -> None:
    path = sample("emri_small.dcm")
    ds = dcmread(path, stop_before_pixels=True)
    frames = list(pixel_array(path))
    assert len(frames) == int(ds.NumberOfFrames) == 10
    movie = gif(render_cine(ds, frames))
    assert (movie.format, movie.n_frames, movie.size) == ("GIF", 10, (64, 64))
    assert movie.info["duration"] == 100  # no timing in the object
    ds.CineRate = 25
    assert gif(render_cine(ds, frames)).info["duration"] == 40
    ds.FrameTime = 33.3
    assert gif(render_cine(ds, iter(frames))).info["duration"] == 30
    ds.FrameTime = 5  # browsers play delays under 20 ms slowly: never go below
    assert gif(render_cine(ds, frames)).info["duration"] == 20
    smaller = gif(render_cine(ds, frames, RenderOptions(format="gif", viewport=(32, 32))))
    assert (smaller.n_frames, smaller.size) == (10, (32, 32))


def test_cine_frames_share_one_window() -> None:
    ds = header(Rows=2, Columns=2)
    frames = [
        np.array([[0, 0], [0, 100]], dtype=np.uint16),
        np.array([[0, 0], [0, 200]], dtype=np.uint16),
    ]
    movie = gif(render_cine(ds, frames))
    seen = []
    for n in range(movie.n_frames):
        movie.seek(n)
        seen.append(int(np.asarray(movie.convert("L"))[1, 1]))
    # Min/max over both frames (0..200), not per frame: 100 -> 127.5 -> 128.
    assert seen == [128, 255]


def test_colour_cine() -> None:
    path = sample("SC_rgb_2frame.dcm")
    ds = dcmread(path, stop_before_pixels=True)
    movie = gif(render_cine(ds, pixel_array(path)))
    assert (movie.n_frames, movie.size) == (2, (100, 100))


def test_real_files_render() -> None:
    for name in ("CT_small.dcm", "MR2_J2KI.dcm", "RG1_UNCR.dcm", "rtdose.dcm"):
        path = sample(name)
        ds = dcmread(path, stop_before_pixels=True)
        image = opened(thumbnail(ds, pixel_array(path, index=0)))
        assert max(image.size) == min(128, max(ds.Rows, ds.Columns))
