"""Transfer syntax conversion: decode any stored object, re-encode it in the syntax a peer accepts.

Which library does what, and why:

- Native syntaxes (Implicit/Explicit VR Little Endian, Deflated) need no codec: pydicom rewrites
  the encoding when the file is written. Explicit VR Big Endian (retired) is read only: its OW/OF/
  OL/OD/OV values are byte-swapped here because pydicom does not swap them when writing LE.
- Decoding of every compressed syntax goes through pydicom's pixel decoders (pylibjpeg-libjpeg for
  the JPEG family, pyjpegls for JPEG-LS, pylibjpeg-openjpeg for JPEG 2000 and HTJ2K, pydicom or
  pylibjpeg-rle for RLE). python-gdcm is the fallback for the JPEG family: its IJG build reads
  real-world 12-bit streams (e.g. odd scan headers) that libjpeg rejects.
- Encoding to RLE, JPEG-LS (lossless and near-lossless) and JPEG 2000 (lossless and lossy) uses
  pydicom's encoders (`Dataset.compress`): pylibjpeg-rle, pyjpegls (CharLS), pylibjpeg-openjpeg.
- Encoding to the JPEG family (Baseline .50, Extended .51, Lossless .57 and SV1 .70) uses
  python-gdcm (`ImageChangeTransferSyntax` with a `JPEGCodec`), since pydicom has no encoder for
  them. Two GDCM slips are corrected here: lossy JPEG of colour data is written as YCbCr with the
  Photometric Interpretation left as the input's (we set YBR_FULL_422; GDCM subsamples 4:2:0,
  which CP-1653 labels YBR_FULL_422 too), and GDCM picks the JPEG precision from Bits Allocated,
  so 12-bit data in 16-bit words would come out as an invalid 16-bit lossy stream (we declare 12
  bits allocated to it; its IJG 12-bit codec reads 16-bit words anyway).

Every pixel encoding starts from native little endian, colour-by-pixel (Planar Configuration 0)
data; compressed outputs always carry Planar Configuration 0. The SOP Instance UID is kept: a
transcoded object is the same instance sent in another encoding (PS3.5 Section 8).
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.filereader import read_file_meta_info
from pydicom.filewriter import dcmwrite
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.encoders.base import get_encoder
from pydicom.pixels.processing import convert_color_space
from pydicom.pixels.utils import decompress, expand_ybr422
from pydicom.uid import UID

from openpacs.dicom.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION

IMPLICIT_VR_LE: Final = "1.2.840.10008.1.2"
EXPLICIT_VR_LE: Final = "1.2.840.10008.1.2.1"
DEFLATED_VR_LE: Final = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BE: Final = "1.2.840.10008.1.2.2"
JPEG_BASELINE: Final = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED: Final = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS: Final = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1: Final = "1.2.840.10008.1.2.4.70"
JPEG_LS_LOSSLESS: Final = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR_LOSSLESS: Final = "1.2.840.10008.1.2.4.81"
JPEG_2000_LOSSLESS: Final = "1.2.840.10008.1.2.4.90"
JPEG_2000: Final = "1.2.840.10008.1.2.4.91"
HTJ2K_LOSSLESS: Final = "1.2.840.10008.1.2.4.201"
HTJ2K_LOSSLESS_RPCL: Final = "1.2.840.10008.1.2.4.202"
HTJ2K: Final = "1.2.840.10008.1.2.4.203"
RLE_LOSSLESS: Final = "1.2.840.10008.1.2.5"

NATIVE: Final = frozenset({IMPLICIT_VR_LE, EXPLICIT_VR_LE, DEFLATED_VR_LE, EXPLICIT_VR_BE})
# .91 may carry a reversible codestream, but nothing in the syntax says so: treat it as lossy.
LOSSY: Final = frozenset({JPEG_BASELINE, JPEG_EXTENDED, JPEG_LS_NEAR_LOSSLESS, JPEG_2000, HTJ2K})
LOSSLESS: Final = frozenset(
    NATIVE
    | {JPEG_LOSSLESS, JPEG_LOSSLESS_SV1, JPEG_LS_LOSSLESS, JPEG_2000_LOSSLESS, RLE_LOSSLESS}
    | {HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL}
)
READABLE: Final = LOSSLESS | LOSSY
# Big endian is retired and nobody has an HTJ2K encoder here: both are read only.
WRITABLE: Final = READABLE - {EXPLICIT_VR_BE, HTJ2K_LOSSLESS, HTJ2K_LOSSLESS_RPCL, HTJ2K}

_GDCM_JPEG: Final = frozenset({JPEG_BASELINE, JPEG_EXTENDED, JPEG_LOSSLESS, JPEG_LOSSLESS_SV1})
# pydicom encoder plugins, best first: the compiled ones are much faster than pure Python.
_PYDICOM_PLUGINS: Final = {
    RLE_LOSSLESS: ("pylibjpeg", "pydicom", "gdcm"),
    JPEG_LS_LOSSLESS: ("pyjpegls",),
    JPEG_LS_NEAR_LOSSLESS: ("pyjpegls",),
    JPEG_2000_LOSSLESS: ("pylibjpeg",),
    JPEG_2000: ("pylibjpeg",),
}
# PS3.3 C.7.6.1.1.5 Lossy Image Compression Method defined terms.
_LOSSY_METHOD: Final = {
    JPEG_BASELINE: "ISO_10918_1",
    JPEG_EXTENDED: "ISO_10918_1",
    JPEG_LS_NEAR_LOSSLESS: "ISO_14495_1",
    JPEG_2000: "ISO_15444_1",
    HTJ2K: "ISO_15444_15",
}

# What each encoder accepts, as (photometric, samples, pixel representations, bits allocated,
# bits stored) of the native input after normalisation (YBR_FULL_422 expanded to YBR_FULL, J2K
# and lossy JPEG colour decoded to RGB). From PS3.5 Tables 8.2.1-1 to 8.2.4-1, narrowed to what
# the libraries do: OpenJPEG encodes at most 24 bits, JPEG-LS YBR_FULL is 8-bit only, and the
# lossy JPEG processes take unsigned 8-bit or (Extended) up to 12-bit samples.
_Profile = tuple[str, int, tuple[int, ...], tuple[int, ...], range]
_MONO: Final = ("MONOCHROME1", "MONOCHROME2")


def _mono(px: tuple[int, ...], allocated: tuple[int, ...], stored: range) -> list[_Profile]:
    return [(pi, 1, px, allocated, stored) for pi in _MONO]


_JPEG_LL: Final[list[_Profile]] = [
    *_mono((0, 1), (8, 16), range(2, 17)),
    ("PALETTE COLOR", 1, (0,), (8, 16), range(2, 17)),
    ("RGB", 3, (0,), (8, 16), range(2, 17)),
    ("YBR_FULL", 3, (0,), (8, 16), range(2, 17)),
]
_PROFILES: Final[dict[str, list[_Profile]]] = {
    JPEG_BASELINE: [
        *_mono((0,), (8,), range(8, 9)),
        ("RGB", 3, (0,), (8,), range(8, 9)),
        ("YBR_FULL", 3, (0,), (8,), range(8, 9)),
    ],
    JPEG_EXTENDED: [*_mono((0,), (8,), range(8, 9)), *_mono((0,), (16,), range(9, 13))],
    JPEG_LOSSLESS: _JPEG_LL,
    JPEG_LOSSLESS_SV1: _JPEG_LL,
    JPEG_LS_LOSSLESS: [
        *_mono((0, 1), (8, 16), range(2, 17)),
        ("PALETTE COLOR", 1, (0,), (8, 16), range(2, 17)),
        ("RGB", 3, (0,), (8, 16), range(2, 17)),
        ("YBR_FULL", 3, (0,), (8,), range(2, 9)),
    ],
    JPEG_LS_NEAR_LOSSLESS: [
        *_mono((0, 1), (8, 16), range(2, 17)),
        ("RGB", 3, (0,), (8, 16), range(2, 17)),
        ("YBR_FULL", 3, (0,), (8,), range(2, 9)),
    ],
    JPEG_2000_LOSSLESS: [
        *_mono((0, 1), (8, 16, 24, 32), range(1, 25)),
        ("PALETTE COLOR", 1, (0,), (8, 16), range(1, 17)),
        ("RGB", 3, (0,), (8, 16, 24, 32), range(1, 25)),
        ("YBR_FULL", 3, (0,), (8, 16, 24, 32), range(1, 25)),
    ],
    JPEG_2000: [
        *_mono((0, 1), (8, 16, 24, 32), range(1, 25)),
        ("RGB", 3, (0,), (8, 16, 24, 32), range(1, 25)),
        ("YBR_FULL", 3, (0,), (8, 16, 24, 32), range(1, 25)),
    ],
    RLE_LOSSLESS: [
        *_mono((0, 1), (8, 16), range(1, 17)),
        ("PALETTE COLOR", 1, (0,), (8, 16), range(1, 17)),
        ("RGB", 3, (0,), (8, 16), range(1, 17)),
        ("YBR_FULL", 3, (0,), (8,), range(1, 9)),
    ],
}

# choose_syntax order when the stored syntax is not accepted. JPEG-LS first: in practice as
# compact as JPEG 2000 and several times faster both ways. JPEG Lossless SV1 next: fast and
# decoded by every toolkit. JPEG 2000 after it: compact but OpenJPEG encodes slowly. Then the
# rarely better .57 and RLE (fast, least compact), then native: Explicit before Implicit (keeps
# VRs), Deflated last (many viewers cannot read it). Lossy ones only when allowed, least lossy
# first.
_PREFERENCE: Final = (
    JPEG_LS_LOSSLESS,
    JPEG_LOSSLESS_SV1,
    JPEG_2000_LOSSLESS,
    JPEG_LOSSLESS,
    RLE_LOSSLESS,
    EXPLICIT_VR_LE,
    IMPLICIT_VR_LE,
    DEFLATED_VR_LE,
)
_LOSSY_PREFERENCE: Final = (JPEG_LS_NEAR_LOSSLESS, JPEG_2000, JPEG_EXTENDED, JPEG_BASELINE)

DEFAULT_QUALITY: Final = 90

# The same value the Store SCP announces (deterministic from the same seed), so every file this
# server writes names one implementation.


class TranscodeError(ValueError):
    """A conversion that cannot be done; callers fall back to another syntax (or answer 406)."""

    def __init__(self, source: str | None, target: str, reason: str) -> None:
        self.source = source
        self.target = target
        self.reason = reason
        super().__init__(f"cannot transcode {_name(source)} to {_name(target)}: {reason}")


def _name(uid: str | None) -> str:
    if uid is None:
        return "an unknown transfer syntax"
    name = UID(uid).name
    return f"{name} ({uid})" if name != uid else uid


def can_decode(uid: str) -> bool:
    """Whether pixel data in this transfer syntax can be turned into native pixels here."""
    if uid in NATIVE:
        return True
    if uid not in READABLE:
        return False
    if get_decoder(UID(uid)).is_available:
        return True
    return uid in _GDCM_JPEG and _gdcm() is not None


def can_encode(uid: str) -> bool:
    """Whether this transfer syntax can be written here (lossy ones still need allow_lossy)."""
    if uid in NATIVE:
        return uid in WRITABLE
    if uid in _GDCM_JPEG:
        return _gdcm() is not None
    if uid not in WRITABLE:
        return False
    return bool(set(get_encoder(UID(uid)).available_plugins) & set(_PYDICOM_PLUGINS[uid]))


def choose_syntax(
    stored: str,
    accepted: Iterable[str],
    *,
    allow_lossy: bool = False,
    ds: Dataset | None = None,
) -> str | None:
    """The transfer syntax to send a stored object in, given those the peer accepts, or None.

    As stored when accepted (no pixel work, and an object that is already lossy stays exactly
    as it is). Otherwise the first accepted one in this order: JPEG-LS lossless, JPEG Lossless
    SV1, JPEG 2000 lossless, JPEG Lossless, RLE, Explicit VR LE, Implicit VR LE, Deflated; then,
    only with allow_lossy, JPEG-LS near-lossless, JPEG 2000, JPEG Extended, JPEG Baseline.
    With `ds` (the stored object, pixel data not needed) candidates its bit depth or colour
    model rules out are skipped, so the answer is one `transcode` will do.
    """
    offered = {uid.strip().rstrip("\0") for uid in accepted}
    stored = stored.strip().rstrip("\0")
    if stored in offered:
        return stored
    if not can_decode(stored):
        return None
    candidates = _PREFERENCE + (_LOSSY_PREFERENCE if allow_lossy else ())
    for target in candidates:
        if target not in offered or not can_encode(target):
            continue
        if ds is not None and _obstacle(ds, stored, target) is not None:
            continue
        return target
    return None


def transcode(
    ds: Dataset,
    target: str,
    *,
    allow_lossy: bool = False,
    quality: int | None = None,
) -> Dataset:
    """A copy of `ds` encoded in `target`, file meta included, ready for `dcmwrite`.

    `ds` itself is never modified; when it already is in `target` it is returned as is. The SOP
    Instance UID is kept. Lossy targets need allow_lossy=True (except for objects without Pixel
    Data, which are only relabelled). `quality` (1-100, higher is better, default 90) means,
    per target: JPEG Baseline/Extended the IJG quality; JPEG-LS near-lossless a maximum error of
    max(1, (100 - quality) // 10); JPEG 2000 lossy a compression ratio of max(2, 100 - quality).
    Raises TranscodeError when the conversion cannot be done.
    """
    source = source_syntax(ds)
    if source == target:
        return ds
    if target not in WRITABLE:
        reason = "it is read only here" if target in READABLE else "it is not a supported syntax"
        raise TranscodeError(source, target, reason)
    if quality is not None and not 1 <= quality <= 100:
        raise ValueError(f"quality must be between 1 and 100, not {quality}")
    has_pixels = "PixelData" in ds
    if target in LOSSY and has_pixels and not allow_lossy:
        raise TranscodeError(source, target, "lossy compression was not allowed (allow_lossy)")
    if source is None:
        raise TranscodeError(source, target, "the dataset does not say how it is encoded")
    if not has_pixels:
        # Only Pixel Data is ever encapsulated: any syntax is a relabelling.
        return _with_meta(copy.deepcopy(ds), target)
    if not can_decode(source):
        raise TranscodeError(source, target, "no decoder for the source syntax")
    if not can_encode(target):
        raise TranscodeError(source, target, "no encoder for the target syntax is installed")
    if target not in NATIVE and (obstacle := _obstacle(ds, source, target)) is not None:
        raise TranscodeError(source, target, obstacle)

    work = _native_copy(ds, source, target)
    if target in NATIVE:
        _drop_offset_tables(work)
        return _with_meta(work, target)
    _to_pixel_interleaved(work)
    uncompressed = len(work.PixelData)
    q = DEFAULT_QUALITY if quality is None else quality
    try:
        if target in _GDCM_JPEG:
            frames = _gdcm_encode(work, target, q)
        else:
            frames = _pydicom_encode(work, target, q)
    except Exception as exc:  # the codecs raise ValueError, RuntimeError, their own types
        raise TranscodeError(source, target, f"encoder failed: {exc}") from exc
    _drop_offset_tables(work)
    _set_encapsulated(work, frames)
    if target in LOSSY:
        ratio = uncompressed / max(1, sum(len(f) for f in frames))
        _record_lossy(work, _LOSSY_METHOD[target], ratio, _LOSSY_METHOD.get(source))
    return _with_meta(work, target)


def transcode_file(
    src: str | Path,
    dst: str | Path | BinaryIO,
    target: str,
    *,
    allow_lossy: bool = False,
    quality: int | None = None,
) -> None:
    """Write the DICOM file `src` to `dst` (a path or a binary stream) encoded in `target`.

    A file already in `target` is copied byte for byte.
    """
    meta = read_file_meta_info(src)
    if str(meta.get("TransferSyntaxUID", "")).rstrip("\0 ") == target:
        if isinstance(dst, str | Path):
            shutil.copyfile(src, dst)
        else:
            with open(src, "rb") as fh:
                shutil.copyfileobj(fh, dst)
        return
    ds = dcmread(src)
    out = transcode(ds, target, allow_lossy=allow_lossy, quality=quality)
    dcmwrite(dst, out, enforce_file_format=True)


def source_syntax(ds: Dataset) -> str | None:
    """The transfer syntax `ds` is encoded in: its file meta, else how pydicom read it."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    if uid:
        return str(uid).rstrip("\0 ")
    implicit, little = ds.original_encoding
    if implicit is None or little is None:
        return None  # built in memory: nothing says how it is encoded
    if "PixelData" in ds and ds["PixelData"].is_undefined_length:
        return None  # encapsulated, but in which syntax?
    if implicit:
        return IMPLICIT_VR_LE if little else None
    return EXPLICIT_VR_LE if little else EXPLICIT_VR_BE


# --- checks ------------------------------------------------------------------------------


def _decoded_photometric(ds: Dataset, source: str) -> str:
    """The Photometric Interpretation the native pixels will have once decoded here."""
    pi = str(ds.get("PhotometricInterpretation", "")).strip()
    if pi in ("YBR_RCT", "YBR_ICT"):
        return "RGB"  # the J2K decoders undo the component transform
    if pi in ("YBR_FULL", "YBR_FULL_422") and source in (JPEG_BASELINE, JPEG_EXTENDED):
        return "RGB"  # the lossy colour transform was the codec's, not the modality's
    if pi == "YBR_FULL_422" and source in NATIVE:
        return "YBR_FULL"  # expanded before encoding: duplicating chroma loses nothing
    return pi


def _obstacle(ds: Dataset, source: str | None, target: str) -> str | None:
    """Why `ds` cannot be encoded in the compressed `target`, or None when it can."""
    # A header read without its pixels still describes them (choose_syntax gets one).
    if target in NATIVE or ("PixelData" not in ds and "BitsAllocated" not in ds):
        return None
    if source is None:
        return "the dataset does not say how it is encoded"
    profiles = _PROFILES.get(target)
    if profiles is None:
        return "it is not a supported syntax"
    try:
        layout = (
            _decoded_photometric(ds, source),
            int(ds.SamplesPerPixel),
            int(ds.PixelRepresentation),
            int(ds.BitsAllocated),
            int(ds.BitsStored),
        )
    except (AttributeError, TypeError, ValueError):
        return "the Image Pixel module is incomplete"
    pi, samples, pixrep, allocated, stored = layout
    for p_pi, p_samples, p_pixrep, p_allocated, p_stored in profiles:
        same_model = (pi, samples) == (p_pi, p_samples)
        if same_model and pixrep in p_pixrep and allocated in p_allocated and stored in p_stored:
            return None
    signed = "signed" if pixrep else "unsigned"
    return (
        f"{UID(target).name} cannot hold {pi} {signed} data with {samples} sample(s) of "
        f"{stored} bits stored in {allocated} (PS3.5 8.2)"
    )


# --- decoding ----------------------------------------------------------------------------


def _native_copy(ds: Dataset, source: str, target: str) -> Dataset:
    """A deep copy of `ds` with native little endian Pixel Data (decoded when encapsulated)."""
    work = _copy_as(ds, source)
    if source in NATIVE:
        if source == EXPLICIT_VR_BE:
            _swap_to_little_endian(work)
        work.file_meta.TransferSyntaxUID = UID(EXPLICIT_VR_LE)
        return work
    # Only the lossy JPEG colour transform is undone: YBR_FULL in a lossless syntax is what
    # the modality produced, and converting it to RGB would round.
    as_rgb = source in (JPEG_BASELINE, JPEG_EXTENDED)
    try:
        try:
            decompress(work, as_rgb=as_rgb, generate_instance_uid=False)
        except ValueError as exc:
            # pydicom 3.0's decompress() sign-corrects signed JPEG-LS / J2K data whose
            # BitsStored < BitsAllocated (a 12-bit CT) in a read-only array and fails; its
            # whole-array decode does not.
            if "read-only" not in str(exc):
                raise
            work = _copy_as(ds, source)
            _decode_whole(work, source, as_rgb)
    except Exception as exc:  # every plugin failing surfaces as RuntimeError/ValueError/...
        if source not in _GDCM_JPEG or _gdcm() is None:
            raise TranscodeError(
                source, target, f"the pixel data cannot be decoded: {exc}"
            ) from exc
        work = _copy_as(ds, source)
        _gdcm_decode(work, source, target, exc)
    if source in LOSSY and str(ds.get("LossyImageCompression", "")).strip() != "01":
        # Decoding a lossy stream into a lossless syntax must not hide that it is lossy.
        ratio = len(work.PixelData) / max(1, len(ds.PixelData))
        _record_lossy(work, _LOSSY_METHOD[source], ratio)
    return work


def _decode_whole(work: Dataset, source: str, as_rgb: bool) -> None:
    """Decode every frame of `work` in place into native pixel-interleaved data."""
    options: dict[str, Any] = {"as_rgb": as_rgb}  # pydicom types its options as a TypedDict
    array, image_pixel = get_decoder(UID(source)).as_array(work, **options)
    data = array.tobytes()
    work.PixelData = data + b"\0" * (len(data) % 2)
    work["PixelData"].VR = "OB" if int(work.BitsAllocated) <= 8 else "OW"
    work["PixelData"].is_undefined_length = False
    photometric = image_pixel.get("photometric_interpretation")
    if photometric:
        work.PhotometricInterpretation = str(photometric)
    if int(work.get("SamplesPerPixel", 1) or 1) > 1:
        work.PlanarConfiguration = 0
    work.file_meta.TransferSyntaxUID = UID(EXPLICIT_VR_LE)


def _copy_as(ds: Dataset, source: str) -> Dataset:
    """A deep copy whose file meta names `source` (pydicom's codecs look there)."""
    work = copy.deepcopy(ds)
    if getattr(work, "file_meta", None) is None:
        work.file_meta = FileMetaDataset()
    work.file_meta.TransferSyntaxUID = UID(source)
    return work


def _gdcm_decode(work: Dataset, source: str, target: str, first: BaseException) -> None:
    """Decode the JPEG pixel data of `work` in place with GDCM, pydicom's decoders having failed."""
    gdcm = _gdcm()
    assert gdcm is not None
    failure = TranscodeError(source, target, f"the pixel data cannot be decoded: {first}")
    with tempfile.TemporaryDirectory(prefix="openpacs-gdcm-") as folder:
        path = str(Path(folder) / "in.dcm")
        dcmwrite(path, work, enforce_file_format=True)
        reader = gdcm.ImageReader()
        reader.SetFileName(path)
        if not reader.Read():
            raise failure
        image = reader.GetImage()
        raw = image.GetBuffer()
    if raw is None:
        raise failure
    buffer = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
    frames = int(work.get("NumberOfFrames", 1) or 1)
    samples = int(work.SamplesPerPixel)
    expected = int(work.Rows) * int(work.Columns) * samples * frames * int(work.BitsAllocated) // 8
    if len(buffer) != expected:
        raise failure
    pi = str(image.GetPhotometricInterpretation()).strip()
    if samples == 3 and image.GetPlanarConfiguration() == 1:
        buffer = _interleave(buffer, work, frames)
    if samples == 3 and pi in ("YBR_FULL", "YBR_FULL_422"):
        arr = np.frombuffer(buffer, np.uint8).reshape(frames, int(work.Rows), int(work.Columns), 3)
        buffer = convert_color_space(arr, "YBR_FULL", "RGB").tobytes()
        pi = "RGB"
    if samples == 3:
        work.PlanarConfiguration = 0
        work.PhotometricInterpretation = pi
    work.PixelData = buffer + b"\0" * (len(buffer) % 2)
    work["PixelData"].VR = "OB" if int(work.BitsAllocated) <= 8 else "OW"
    work["PixelData"].is_undefined_length = False
    work.file_meta.TransferSyntaxUID = UID(EXPLICIT_VR_LE)


def _swap_to_little_endian(ds: Dataset) -> None:
    """Byte-swap the binary values pydicom keeps as raw bytes, read from a big endian file.

    Numbers with other VRs were decoded when read and are encoded again when written. UN
    values cannot be swapped: what they hold is unknown.
    """
    widths = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
    # Each (nested) dataset: an icon image has Bits Allocated of its own.
    allocated = int(ds.get("BitsAllocated", 0) or 0)
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _swap_to_little_endian(item)
            continue
        if elem.tag == 0x7FE00010 and elem.VR in ("OB", "OW") and allocated > 8:
            # Pixel cells are swapped at their own size, whatever VR the writer chose.
            width = allocated // 8
        else:
            width = widths.get(elem.VR, 1)
        if width > 1 and isinstance(elem.value, bytes | bytearray) and elem.value:
            value = bytes(elem.value)
            usable = len(value) - len(value) % width
            swapped = np.frombuffer(value[:usable], f">u{width}").astype(f"<u{width}").tobytes()
            elem.value = swapped + value[usable:]


# --- encoding ----------------------------------------------------------------------------


def _to_pixel_interleaved(ds: Dataset) -> None:
    """Make native colour Pixel Data colour-by-pixel, full resolution, as every encoder wants."""
    if int(ds.get("SamplesPerPixel", 1)) != 3:
        return
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    pi = str(ds.PhotometricInterpretation).strip()
    if pi == "YBR_FULL_422":
        size = int(ds.Rows) * int(ds.Columns) * 2 * frames * int(ds.BitsAllocated) // 8
        ds.PixelData = expand_ybr422(ds.PixelData[:size], int(ds.BitsAllocated))
        ds.PhotometricInterpretation = "YBR_FULL"
    elif int(ds.get("PlanarConfiguration", 0)) == 1:
        ds.PixelData = _interleave(ds.PixelData, ds, frames)
    ds.PlanarConfiguration = 0


def _interleave(buffer: bytes, ds: Dataset, frames: int) -> bytes:
    """Colour-by-plane bytes (RRR..GGG..BBB.. per frame) to colour-by-pixel (RGBRGB..)."""
    dtype = np.dtype(f"<u{max(1, int(ds.BitsAllocated) // 8)}")
    rows, columns = int(ds.Rows), int(ds.Columns)
    count = frames * 3 * rows * columns
    planes = np.frombuffer(buffer, dtype, count=count).reshape(frames, 3, rows, columns)
    return planes.transpose(0, 2, 3, 1).tobytes()


def _frame_bytes(ds: Dataset) -> list[bytes]:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    size = int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * int(ds.BitsAllocated) // 8
    data = ds.PixelData
    return [bytes(data[i * size : (i + 1) * size]) for i in range(frames)]


def _pydicom_encode(work: Dataset, target: str, quality: int) -> list[bytes]:
    options: dict[str, Any] = {}
    if target == JPEG_LS_NEAR_LOSSLESS:
        options["jls_error"] = max(1, (100 - quality) // 10)
    elif target == JPEG_2000:
        options["j2k_cr"] = [float(max(2, 100 - quality))]
    if target in (JPEG_2000_LOSSLESS, JPEG_2000) and work.PhotometricInterpretation == "RGB":
        # Declaring the component transform makes OpenJPEG apply it: a third smaller output.
        work.PhotometricInterpretation = "YBR_RCT" if target == JPEG_2000_LOSSLESS else "YBR_ICT"
    available = get_encoder(UID(target)).available_plugins
    plugin = next(p for p in _PYDICOM_PLUGINS[target] if p in available)
    work.compress(target, encoding_plugin=plugin, generate_instance_uid=False, **options)
    frames = int(work.get("NumberOfFrames", 1) or 1)
    return list(generate_frames(work.PixelData, number_of_frames=frames))


def _gdcm_encode(work: Dataset, target: str, quality: int) -> list[bytes]:
    gdcm = _gdcm()
    assert gdcm is not None
    syntax = {
        JPEG_BASELINE: gdcm.TransferSyntax.JPEGBaselineProcess1,
        JPEG_EXTENDED: gdcm.TransferSyntax.JPEGExtendedProcess2_4,
        JPEG_LOSSLESS: gdcm.TransferSyntax.JPEGLosslessProcess14,
        JPEG_LOSSLESS_SV1: gdcm.TransferSyntax.JPEGLosslessProcess14_1,
    }[target]
    lossy = target in LOSSY
    samples = int(work.SamplesPerPixel)
    allocated = int(work.BitsAllocated)
    stored = int(work.BitsStored)
    if target == JPEG_EXTENDED and allocated == 16:
        # GDCM sizes the JPEG precision by Bits Allocated (see the module docstring).
        allocated = 12
        work.BitsStored, work.HighBit = 12, 11
        stored = 12
    pi = str(work.PhotometricInterpretation).strip()
    pi_type = gdcm.PhotometricInterpretation.GetPIType(pi)
    encoded = []
    for frame in _frame_bytes(work):
        writer = gdcm.ImageWriter()  # owns the image: a bare gdcm.Image breaks refcounting
        image = writer.GetImage()
        image.SetNumberOfDimensions(2)
        image.SetDimensions((int(work.Columns), int(work.Rows), 1))
        image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(pi_type))
        image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.ExplicitVRLittleEndian))
        pixrep = int(work.PixelRepresentation)
        image.SetPixelFormat(gdcm.PixelFormat(samples, allocated, stored, stored - 1, pixrep))
        if samples > 1:
            image.SetPlanarConfiguration(0)
        elem = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
        elem.SetByteStringValue(frame)
        image.SetDataElement(elem)
        codec = gdcm.JPEGCodec()
        codec.SetLossless(not lossy)
        if lossy:
            codec.SetQuality(quality)
        change = gdcm.ImageChangeTransferSyntax()
        change.SetTransferSyntax(gdcm.TransferSyntax(syntax))
        change.SetUserCodec(codec)
        change.SetInput(image)
        if not change.Change():
            raise RuntimeError("GDCM could not encode the pixel data")
        fragments = change.GetOutput().GetDataElement().GetSequenceOfFragments()
        if fragments is None or fragments.GetNumberOfFragments() != 1:
            raise RuntimeError("GDCM did not return one fragment per frame")
        raw = fragments.GetFragment(0).GetByteValue().GetBuffer()
        encoded.append(raw.encode("utf-8", "surrogateescape"))
    if lossy and samples == 3:
        work.PhotometricInterpretation = "YBR_FULL_422"
    return encoded


def _set_encapsulated(ds: Dataset, frames: list[bytes]) -> None:
    total = sum(len(f) for f in frames) + 8 * len(frames)
    if total > 2**32 - 1:
        # A Basic Offset Table cannot point past 4 GiB (PS3.5 A.4).
        ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = encapsulate_extended(
            frames
        )
    else:
        ds.PixelData = encapsulate(frames, has_bot=True)
    elem = ds["PixelData"]
    elem.VR = "OB"
    elem.is_undefined_length = True
    if int(ds.get("SamplesPerPixel", 1)) > 1:
        ds.PlanarConfiguration = 0


def _drop_offset_tables(ds: Dataset) -> None:
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            delattr(ds, keyword)


def _record_lossy(ds: Dataset, method: str, ratio: float, previous: str | None = None) -> None:
    """Lossy Image Compression attributes as PS3.3 C.7.6.1.1.5 wants: "01", then one ratio and
    one method per lossy step, oldest first.

    `previous` is the method of the source syntax: it names steps the source recorded a ratio
    but no method for (common in real files), so the two lists stay in step.
    """
    marked = str(ds.get("LossyImageCompression", "")).strip() == "01"
    # "00" or absent: any leftover ratio/method describes nothing.
    ratios = _strings(ds.get("LossyImageCompressionRatio")) if marked else []
    methods = _strings(ds.get("LossyImageCompressionMethod")) if marked else []
    if previous is not None and len(methods) < len(ratios):
        methods += [previous] * (len(ratios) - len(methods))
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = [*ratios, f"{ratio:.2f}"[:16]]
    ds.LossyImageCompressionMethod = [*methods, method]


def _strings(value: object) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        return [str(value)]
    return [str(v) for v in value]


def _with_meta(ds: Dataset, target: str) -> Dataset:
    """`ds` with File Meta Information rewritten for `target`; the group length is computed
    by dcmwrite."""
    old = getattr(ds, "file_meta", None)
    meta = FileMetaDataset()
    if old is not None:
        for elem in old:
            if elem.tag != 0x00020000:
                meta.add(elem)
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.TransferSyntaxUID = UID(target)
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds.file_meta = meta
    # Elements still raw carry no VR when the body's encoding differs from what the file meta
    # announced (explicit VR declared, implicit VR written); resolve them so the writer can.
    for _ in ds.iterall():
        pass
    if "PixelData" in ds and target in NATIVE:
        elem = ds["PixelData"]
        elem.is_undefined_length = False
        elem.VR = "OB" if int(ds.get("BitsAllocated", 8) or 8) <= 8 else "OW"
    return ds


def _gdcm() -> Any:
    """python-gdcm, imported on first use (it is slow to import and optional for decoding)."""
    try:
        import gdcm
    except ImportError:
        return None
    return gdcm
