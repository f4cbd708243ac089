"""Render decoded DICOM frames as 8-bit JPEG, PNG or GIF images for browsers and thumbnails.

The grey pipeline follows PS3.3 C.11 and PS3.4 N.2: stored values, Modality LUT (rescale or LUT
sequence), VOI LUT (window or LUT sequence), then MONOCHROME1 / Presentation LUT Shape inversion.
Frames arrive exactly as `pydicom.pixels.pixel_array(src, index=n)` returns them: stored values,
palette not applied, YBR already converted to RGB.

For integer frames the whole grey pipeline is evaluated once per distinct stored value between the
frame's minimum and maximum (at most 65536 entries) and the frame is then mapped through that
table, so a 512x512 CT costs one table lookup rather than several float passes over every pixel.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels.processing import apply_color_lut

ImageFormat = Literal["jpeg", "png", "gif"]
VoiFunction = Literal["LINEAR", "LINEAR_EXACT", "SIGMOID"]

MEDIA_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif"}

_FORMATS = frozenset(MEDIA_TYPES)
_FUNCTIONS = frozenset({"LINEAR", "LINEAR_EXACT", "SIGMOID"})
# pydicom's default decode leaves these as RGB: it converts YBR_FULL(_422) itself and the JPEG
# 2000 / JPEG decoders undo ICT, RCT and the JPEG colour transform; MPEG/HEVC decoders give RGB.
_RGB_LIKE = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"})
_GREY = frozenset({"MONOCHROME1", "MONOCHROME2"})
# A wider span of stored values is rendered by float maths on the frame instead of a table.
_MAX_TABLE = 1 << 16
# Browsers replay GIF delays under 20 ms as 100 ms, and GIF counts in hundredths of a second.
_MIN_GIF_DELAY_MS = 20
_DEFAULT_GIF_DELAY_MS = 100

Pixels = NDArray[Any]
Display = NDArray[np.uint8]


class RenderError(ValueError):
    """The frame or the options cannot be rendered (no pixels, unsupported colour, bad option)."""


@dataclass(frozen=True)
class RenderOptions:
    """How to render: output format, VOI window, output size and JPEG quality.

    `viewport` (width, height) scales the image up or down to fit inside the box; `rows` and
    `columns` are maxima in the WADO-URI sense: alone they only shrink, with a viewport they
    narrow its box. Aspect ratio is always kept (in pixels: PixelAspectRatio is not applied).
    `window` is (center, width) after the Modality LUT; `voi_function` overrides the object's
    VOILUTFunction for that window (WADO-RS `window=c,w,function`).
    """

    format: ImageFormat = "jpeg"
    window: tuple[float, float] | None = None
    voi_function: VoiFunction | None = None
    viewport: tuple[int, int] | None = None
    rows: int | None = None
    columns: int | None = None
    quality: int = 90
    overlays: bool = False

    def __post_init__(self) -> None:
        if self.format not in _FORMATS:
            raise RenderError(f"unsupported image format {self.format!r}")
        if not 1 <= self.quality <= 100:
            raise RenderError(f"quality must be 1 to 100, not {self.quality}")
        if self.viewport is not None and (len(self.viewport) != 2 or min(self.viewport) < 1):
            raise RenderError(f"viewport must be two positive sizes, not {self.viewport}")
        for name, value in (("rows", self.rows), ("columns", self.columns)):
            if value is not None and value < 1:
                raise RenderError(f"{name} must be positive, not {value}")
        if self.voi_function is not None and self.voi_function not in _FUNCTIONS:
            raise RenderError(f"unsupported VOI LUT function {self.voi_function!r}")
        if self.window is not None:
            # Without a function the object's decides at render time; LINEAR_EXACT only
            # insists on a positive width, the least any function needs.
            _caller_window(self.window, self.voi_function or "LINEAR_EXACT")


# --- public API -------------------------------------------------------------------------------


def to_display(
    ds: Dataset,
    pixels: Pixels,
    window: tuple[float, float] | None = None,
    *,
    voi_function: VoiFunction | None = None,
    frame: int = 0,
    overlays: bool = False,
) -> Display:
    """One frame as uint8 display values: (rows, cols) for grey, (rows, cols, 3) for colour.

    Grey VOI, first match wins: the caller's `window`, the object's first window, its first VOI
    LUT, else the frame's min/max after the Modality LUT. `frame` (0-based) picks per-frame
    functional groups and overlay frames of multi-frame objects. Colour ignores `window`.
    """
    photometric = _photometric(ds)
    voi: _Voi | None = None
    if photometric in _GREY:
        voi = (
            _caller_window(window, voi_function or _object_function(ds, frame))
            if window is not None
            else _object_voi(ds, frame)
        )
    return _display(ds, pixels, frame, photometric, voi, overlays)


def render_frame(
    ds: Dataset, pixels: Pixels, options: RenderOptions | None = None, *, frame: int = 0
) -> bytes:
    """One frame encoded as `options.format` (a one-frame GIF for "gif")."""
    options = options or RenderOptions()
    display = to_display(
        ds,
        pixels,
        options.window,
        voi_function=options.voi_function,
        frame=frame,
        overlays=options.overlays,
    )
    image = _resize(Image.fromarray(display), options)
    return _encode(image, options)


def render_cine(
    ds: Dataset, frames: Iterable[Pixels], options: RenderOptions | None = None
) -> bytes:
    """A looping animated GIF of `frames` (frame 0 first), timed by FrameTime / CineRate.

    All grey frames share one VOI so brightness does not flicker: with no window from the caller
    or the object, the min/max over every frame (which are then held in memory) sets it.
    Pillow merges consecutive identical frames into one longer frame.
    """
    options = options or RenderOptions(format="gif")
    if options.format != "gif":
        raise RenderError(f"cine is rendered as gif, not {options.format}")
    photometric = _photometric(ds)
    voi: _Voi | None = None
    if photometric in _GREY:
        voi = _shared_voi(ds, options)
        if voi is None:
            frames = [_plane(f) for f in frames]
            voi = _min_max_window(ds, frames)
    images = (
        _resize(Image.fromarray(_display(ds, px, n, photometric, voi, options.overlays)), options)
        for n, px in enumerate(frames)
    )
    first = next(images, None)
    if first is None:
        raise RenderError("no frames to render")
    buffer = io.BytesIO()
    first.save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=list(images),
        duration=_frame_delay_ms(ds),
        loop=0,
    )
    return buffer.getvalue()


def thumbnail(ds: Dataset, pixels: Pixels, size: int = 128, *, frame: int = 0) -> bytes:
    """A JPEG no larger than `size` x `size` (never enlarged), default VOI."""
    return render_frame(ds, pixels, RenderOptions(rows=size, columns=size), frame=frame)


# --- VOI description --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    center: float
    width: float
    function: str


@dataclass(frozen=True)
class _Lut:
    first: int
    table: NDArray[np.float64]
    bits: int


_Voi = _Window | _Lut


def _caller_window(window: tuple[float, float], function: str) -> _Window:
    try:
        center, width = (float(v) for v in window)
    except (TypeError, ValueError) as exc:
        raise RenderError(f"window must be (center, width), not {window!r}") from exc
    function = function.upper()
    if function not in _FUNCTIONS:
        raise RenderError(f"unsupported VOI LUT function {function!r}")
    if not _valid_window(center, width, function):
        raise RenderError(f"window width {width} is not valid for {function}")
    return _Window(center, width, function)


def _valid_window(center: float, width: float, function: str) -> bool:
    if not (math.isfinite(center) and math.isfinite(width)):
        return False
    # PS3.3 C.11.2.1.2: LINEAR needs a width of at least 1, the others only a positive one.
    return width >= 1 if function == "LINEAR" else width > 0


def _object_function(ds: Dataset, frame: int) -> str:
    source = _functional(ds, frame, "FrameVOILUTSequence") or ds
    value = str(source.get("VOILUTFunction") or "LINEAR").strip().upper()
    # An unknown function in the object is rendered LINEAR rather than refused.
    return value if value in _FUNCTIONS else "LINEAR"


def _object_voi(ds: Dataset, frame: int) -> _Voi | None:
    source = _functional(ds, frame, "FrameVOILUTSequence") or ds
    center, width = _first(source.get("WindowCenter")), _first(source.get("WindowWidth"))
    function = _object_function(ds, frame)
    if center is not None and width is not None and _valid_window(center, width, function):
        return _Window(center, width, function)
    for holder in (source, ds):
        items = holder.get("VOILUTSequence")
        if items:
            first, table, bits = _lut(items[0], ds)
            return _Lut(first, table.astype(np.float64), bits)
    return None


def _shared_voi(ds: Dataset, options: RenderOptions) -> _Voi | None:
    if options.window is not None:
        return _caller_window(options.window, options.voi_function or _object_function(ds, 0))
    return _object_voi(ds, 0)


def _first(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, MultiValue | list | tuple):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# --- Modality LUT -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Modality:
    slope: float = 1.0
    intercept: float = 0.0
    first: int = 0
    table: NDArray[np.float64] | None = None

    def __call__(self, values: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.table is not None:
            index = np.clip(values - self.first, 0, len(self.table) - 1).astype(np.intp)
            return self.table[index]
        if self.slope == 1.0 and self.intercept == 0.0:
            return values
        return values * self.slope + self.intercept

    @property
    def linear(self) -> bool:
        return self.table is None


def _modality(ds: Dataset, frame: int) -> _Modality:
    items = ds.get("ModalityLUTSequence")
    if items:
        first, table, _bits = _lut(items[0], ds)
        return _Modality(first=first, table=table.astype(np.float64))
    source = _functional(ds, frame, "PixelValueTransformationSequence") or ds
    slope, intercept = _first(source.get("RescaleSlope")), _first(source.get("RescaleIntercept"))
    return _Modality(
        slope=1.0 if slope is None or slope == 0 else slope,
        intercept=intercept or 0.0,
    )


def _lut(item: Dataset, ds: Dataset) -> tuple[int, NDArray[np.uint16], int]:
    """(first value mapped, entries, bits per entry) of a Modality or VOI LUT item."""
    try:
        count, first, bits = (int(v) for v in item.LUTDescriptor)
        raw = item["LUTData"].value
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RenderError("LUT without a usable LUTDescriptor and LUTData") from exc
    count = count or 1 << 16
    # The descriptor's first value is US or SS; read as US, a negative start shows up >= 32768.
    if first >= 1 << 15 and (
        int(ds.get("PixelRepresentation", 0)) == 1 or (_first(ds.get("RescaleIntercept")) or 0) < 0
    ):
        first -= 1 << 16
    if isinstance(raw, bytes | bytearray):
        little = ds.original_encoding[1] is not False
        words = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<u2" if little else ">u2")
        # Some writers pack 8-bit entries two to a word.
        if bits == 8 and len(words) * 2 >= count > len(words):
            table = np.frombuffer(raw, dtype=np.uint8).astype(np.uint16)
        else:
            table = words.astype(np.uint16)
    else:
        table = np.atleast_1d(np.asarray(raw, dtype=np.uint16))
    if len(table) < count:
        raise RenderError(f"LUT holds {len(table)} entries, its descriptor says {count}")
    table = table[:count]
    # Trust the descriptor's depth unless the data plainly exceeds it.
    bits = max(bits if 1 <= bits <= 16 else 16, int(table.max()).bit_length())
    return first, table, bits


def _functional(ds: Dataset, frame: int, sequence: str) -> Dataset | None:
    """The item of `sequence` for `frame` in an enhanced object's functional groups, if any."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and 0 <= frame < len(per_frame):
        inner = per_frame[frame].get(sequence)
        if inner:
            return cast(Dataset, inner[0])
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        inner = shared[0].get(sequence)
        if inner:
            return cast(Dataset, inner[0])
    return None


# --- grey pipeline ----------------------------------------------------------------------------


def _plane(pixels: Pixels) -> Pixels:
    if pixels is None or not isinstance(pixels, np.ndarray) or pixels.size == 0:
        raise RenderError("no pixel data")
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim != 2:
        raise RenderError(f"a grey frame is (rows, columns), not {pixels.shape}")
    return pixels


def _inverted(ds: Dataset) -> bool:
    if _photometric(ds) == "MONOCHROME1":
        # For MONOCHROME1 the INVERSE shape only restates the inversion (PS3.3 C.8.11.6.1.2).
        return True
    return str(ds.get("PresentationLUTShape") or "").strip().upper() == "INVERSE"


def _grey(ds: Dataset, pixels: Pixels, frame: int, voi: _Voi | None) -> Display:
    modality = _modality(ds, frame)
    invert = _inverted(ds)
    if np.issubdtype(pixels.dtype, np.integer) or pixels.dtype == np.bool_:
        low, high = int(pixels.min()), int(pixels.max())
        if high - low < _MAX_TABLE:
            domain = np.arange(low, high + 1, dtype=np.float64)
            mapped = modality(domain)
            if voi is None:
                present = None
                if not modality.linear:
                    # A LUT need not be monotonic: only values that occur count.
                    present = np.zeros(len(domain), dtype=bool)
                    present[_offsets(pixels, low)] = True
                voi = _range_window(mapped if present is None else mapped[present])
            table = _voi_display(mapped, voi, invert)
            return cast(Display, np.take(table, _offsets(pixels, low)))
    values = modality(np.asarray(pixels, dtype=np.float64))
    if voi is None:
        voi = _range_window(values[np.isfinite(values)])
    return _voi_display(values, voi, invert)


def _offsets(pixels: Pixels, low: int) -> NDArray[np.intp]:
    wide = np.int32 if pixels.dtype.itemsize <= 2 else np.int64
    return cast(NDArray[np.intp], np.subtract(pixels, low, dtype=wide))


def _range_window(values: NDArray[np.float64]) -> _Window:
    """A LINEAR_EXACT window taking the lowest value to 0 and the highest to 255."""
    if values.size == 0:
        return _Window(0.5, 1.0, "LINEAR_EXACT")
    low, high = float(values.min()), float(values.max())
    if high <= low:
        # A flat frame: everything at the bottom of the window, i.e. black for MONOCHROME2.
        return _Window(low + 0.5, 1.0, "LINEAR_EXACT")
    return _Window((low + high) / 2, high - low, "LINEAR_EXACT")


def _min_max_window(ds: Dataset, frames: list[Pixels]) -> _Window:
    low, high = math.inf, -math.inf
    for n, pixels in enumerate(frames):
        modality = _modality(ds, n)
        if modality.linear:
            ends = modality(np.array([pixels.min(), pixels.max()], dtype=np.float64))
        else:
            ends = modality(np.asarray(pixels, dtype=np.float64))
        ends = ends[np.isfinite(ends)]
        if ends.size:
            low, high = min(low, float(ends.min())), max(high, float(ends.max()))
    if low > high:
        return _range_window(np.empty(0))
    return _range_window(np.array([low, high]))


def _voi_display(values: NDArray[np.float64], voi: _Voi, invert: bool) -> Display:
    """VOI output scaled to 0..255 (PS3.3 C.11.2.1.2 with ymin 0, ymax 255), rounded half up."""
    if isinstance(voi, _Lut):
        index = np.clip(np.rint(values) - voi.first, 0, len(voi.table) - 1).astype(np.intp)
        y = voi.table[index] * 255.0 / ((1 << voi.bits) - 1)
    elif voi.function == "SIGMOID":
        # 1 / (1 + exp(-4(x-c)/w)) written with tanh, which cannot overflow.
        y = 127.5 * (1.0 + np.tanh(2.0 * (values - voi.center) / voi.width))
    elif voi.function == "LINEAR" and voi.width <= 1:
        # LINEAR with width 1 is a threshold at center - 0.5.
        y = np.where(values > voi.center - 0.5, 255.0, 0.0)
    else:
        # Both linear forms rise from c - w/2 (LINEAR over w - 1 values, LINEAR_EXACT over w).
        # Multiplying before dividing keeps exact halves exact, so they round the same way
        # on every machine: ((200 - 1000) / 2000 + 0.5) * 255 would give 25.4999...
        span = voi.width - 1 if voi.function == "LINEAR" else voi.width
        y = (values - (voi.center - voi.width / 2)) * 255.0 / span
    # NaN (float pixel data's "no value") shows as the bottom of the range.
    y = np.nan_to_num(np.clip(y, 0.0, 255.0), nan=0.0)
    out = np.floor(y + 0.5).astype(np.uint8)
    if invert:
        np.subtract(255, out, out=out)
    return cast(Display, out)


# --- colour -----------------------------------------------------------------------------------


def _photometric(ds: Dataset) -> str:
    value = ds.get("PhotometricInterpretation")
    if not value:
        raise RenderError("no PhotometricInterpretation: not an image")
    return str(value).strip().upper()


def _colour(ds: Dataset, pixels: Pixels, photometric: str) -> Display:
    if pixels is None or not isinstance(pixels, np.ndarray) or pixels.size == 0:
        raise RenderError("no pixel data")
    if photometric == "PALETTE COLOR":
        plane = _plane(pixels)
        if not np.issubdtype(plane.dtype, np.integer):
            raise RenderError(f"palette indices must be integers, not {plane.dtype}")
        # As for grey: look up each index that can occur once, then map the frame.
        low, high = int(plane.min()), int(plane.max())
        try:
            rgb = apply_color_lut(np.arange(low, high + 1), ds)[..., :3]
        except (ValueError, AttributeError, KeyError, IndexError) as exc:
            raise RenderError(f"palette cannot be applied: {exc}") from exc
        # 16-bit palettes are mostly 8-bit values in the high byte (0xFF00 is full intensity).
        table = rgb if rgb.dtype == np.uint8 else (rgb >> 8).astype(np.uint8)
        return cast(Display, np.take(table, _offsets(plane, low), axis=0))
    if photometric not in _RGB_LIKE:
        raise RenderError(f"PhotometricInterpretation {photometric} is not supported")
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise RenderError(f"a colour frame is (rows, columns, 3), not {pixels.shape}")
    if pixels.dtype == np.uint8:
        return cast(Display, pixels)
    bits = int(ds.get("BitsStored") or 8 * pixels.dtype.itemsize)
    scaled = np.right_shift(pixels, max(bits - 8, 0)) if bits > 8 else pixels
    return cast(Display, np.clip(scaled, 0, 255).astype(np.uint8))


def _display(
    ds: Dataset,
    pixels: Pixels,
    frame: int,
    photometric: str,
    voi: _Voi | None,
    overlays: bool,
) -> Display:
    if photometric in _GREY:
        out = _grey(ds, _plane(pixels), frame, voi)
    else:
        out = _colour(ds, pixels, photometric)
    if overlays:
        if out is pixels:
            # RGB frames pass through as they are: never draw on the caller's array.
            out = out.copy()
        _burn_overlays(ds, out, frame)
    return out


# --- overlays ---------------------------------------------------------------------------------


def _burn_overlays(ds: Dataset, display: Display, frame: int) -> None:
    """Set the pixels of every graphic overlay (60xx,3000) of `frame` to white, in place."""
    rows, columns = display.shape[:2]
    for group in range(0x6000, 0x6020, 2):
        if (group, 0x3000) not in ds:
            continue
        # ROI overlays mark a region to measure, not graphics to draw.
        if str(_tag(ds, group, 0x0040, "G")).strip().upper() == "R":
            continue
        # Overlays kept in unused high bits of the pixel data (retired) are not read here.
        if int(_tag(ds, group, 0x0100, 1)) != 1:
            continue
        count = int(_tag(ds, group, 0x0015, 1) or 1)
        start = int(_tag(ds, group, 0x0051, 1) or 1)
        index = frame + 1 - start
        if not 0 <= index < count:
            continue
        try:
            bitmap = ds.overlay_array(group)
        except (ValueError, AttributeError, KeyError, TypeError):
            continue
        if bitmap.ndim == 3:
            bitmap = bitmap[index]
        origin = _tag(ds, group, 0x0050, [1, 1])
        top, left = int(origin[0]) - 1, int(origin[1]) - 1
        # Clip the overlay to the frame: origins may be negative or the overlay larger.
        r0, c0 = max(top, 0), max(left, 0)
        r1, c1 = min(top + bitmap.shape[0], rows), min(left + bitmap.shape[1], columns)
        if r0 >= r1 or c0 >= c1:
            continue
        mask = bitmap[r0 - top : r1 - top, c0 - left : c1 - left].astype(bool)
        display[r0:r1, c0:c1][mask] = 255


def _tag(ds: Dataset, group: int, element: int, default: Any) -> Any:
    # Repeating-group overlay elements have no keyword in pydicom: reach them by tag.
    elem = ds.get((group, element))
    return default if elem is None or elem.value is None else elem.value


# --- size and encoding ------------------------------------------------------------------------


def output_size(columns: int, rows: int, options: RenderOptions) -> tuple[int, int]:
    """(width, height) of the rendered image for a `columns` x `rows` frame, aspect kept."""
    box_width, box_height = math.inf, math.inf
    if options.viewport is not None:
        box_width, box_height = int(options.viewport[0]), int(options.viewport[1])
    if options.columns is not None:
        box_width = min(box_width, options.columns)
    if options.rows is not None:
        box_height = min(box_height, options.rows)
    scale = min(box_width / columns, box_height / rows)
    if options.viewport is None:
        scale = min(scale, 1.0)  # rows/columns alone never enlarge
    if scale == 1.0:
        return columns, rows
    # min() against the box only removes float noise from the rounding.
    width = min(box_width, max(1, round(columns * scale)))
    height = min(box_height, max(1, round(rows * scale)))
    return int(width), int(height)


def _resize(image: Image.Image, options: RenderOptions) -> Image.Image:
    size = output_size(image.width, image.height, options)
    if size == image.size:
        return image
    # reducing_gap lets Pillow box-reduce by an integer factor first: fast for thumbnails.
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)


def _encode(image: Image.Image, options: RenderOptions) -> bytes:
    buffer = io.BytesIO()
    if options.format == "jpeg":
        image.save(buffer, format="JPEG", quality=options.quality)
    elif options.format == "png":
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format="GIF")
    return buffer.getvalue()


def _frame_delay_ms(ds: Dataset) -> int:
    """The GIF delay per frame from FrameTime (ms), else CineRate or the recommended rate (fps)."""
    delay: float | None = _first(ds.get("FrameTime"))
    if delay is None or delay <= 0:
        rate = _first(ds.get("CineRate")) or _first(ds.get("RecommendedDisplayFrameRate"))
        delay = 1000.0 / rate if rate and rate > 0 else None
    if delay is None:
        return _DEFAULT_GIF_DELAY_MS
    # GIF delays are whole hundredths of a second.
    return max(_MIN_GIF_DELAY_MS, round(delay / 10) * 10)
