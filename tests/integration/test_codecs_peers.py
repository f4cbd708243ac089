"""Transcoding checked by programs that share no code with ours: dcmtk, GDCM's tools, dciodvfy.

Every output is written, decoded to Explicit VR LE by an independent decoder (dcmdjpeg for the
JPEG family and for native/deflated files, dcmdjpls, dcmdrle, `gdcmconv --raw` for JPEG 2000),
read back, and compared with the pixels we encoded (the source decoded by pydicom; a lossy JPEG
source as RGB, as the transcoder decodes it).

- Lossless targets: identical pixels.
- JPEG-LS near-lossless at the default quality (90): every sample within 1 (NEAR = 1).
- JPEG Baseline / Extended (IJG quality 90) and JPEG 2000 lossy (10:1): PSNR at least 40 dB
  for monochrome and 25 dB for colour (JPEG chroma is subsampled 4:2:0, and the colour test
  images are sharp-edged bars), the peak being the largest value Bits Stored can hold.
- dciodvfy reports no error on the output that it did not report on the source (warnings are
  ignored; a deflated file is checked in its inflated form since dciodvfy cannot read it).
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from numpy.typing import NDArray
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID

from openpacs.dicom import codecs
from openpacs.dicom.codecs import TranscodeError, transcode, transcode_file
from tests import codec_samples as samples
from tests.conftest import need, sample

pytestmark = pytest.mark.peer

DECODER = {
    samples.BASELINE: "dcmdjpeg",
    samples.EXTENDED: "dcmdjpeg",
    samples.JPEG_LL: "dcmdjpeg",
    samples.JPEG_SV1: "dcmdjpeg",
    samples.JLS: "dcmdjpls",
    samples.JLS_NEAR: "dcmdjpls",
    samples.J2K_LL: "gdcmconv",
    samples.J2K: "gdcmconv",
    samples.RLE: "dcmdrle",
}
LOSSY_JPEG = (samples.BASELINE, samples.EXTENDED)
MIN_PSNR = 40.0
# GDCM's JPEG subsamples chroma 4:2:0: sharp-edged colour test patterns lose most there.
MIN_PSNR_COLOUR = 25.0


def _run(*args: str | Path) -> str:
    result = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise AssertionError(f"{args[0]} exited {result.returncode}\n{output}")
    return output


def _gdcm_decode(path: Path, out: Path) -> None:
    """What `gdcmconv --raw` does, through python-gdcm: GDCM's writer refuses multi-frame
    Secondary Capture files (as pydicom-data has), its reader does not."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    assert reader.Read(), path
    image = reader.GetImage()
    ds = pydicom.dcmread(path)
    ds.PixelData = image.GetBuffer().encode("utf-8", "surrogateescape")
    ds["PixelData"].VR = "OW" if ds.BitsAllocated > 8 else "OB"
    ds["PixelData"].is_undefined_length = False
    ds.PhotometricInterpretation = str(image.GetPhotometricInterpretation()).strip()
    if ds.SamplesPerPixel > 1:
        ds.PlanarConfiguration = image.GetPlanarConfiguration()
    ds.file_meta.TransferSyntaxUID = UID(samples.EXPLICIT)
    pydicom.dcmwrite(out, ds, enforce_file_format=True)


def independent_decode(path: Path, syntax: str, folder: Path) -> Path:
    """`path` decoded to Explicit VR LE by a peer program (dcmdjpeg also inflates and rewrites
    native files, so those are parsed by dcmtk too)."""
    tool = DECODER.get(syntax, "dcmdjpeg")
    out = folder / f"{path.stem}.decoded.dcm"
    if tool == "gdcmconv":
        try:
            _run(need("gdcmconv"), "--raw", path, out)
        except AssertionError as exc:
            if "Failed to write" not in str(exc):
                raise
            _gdcm_decode(path, out)
    elif tool == "dcmdjpeg":
        # +cl: undo YCbCr only for lossy JPEG; a lossless YBR_FULL stream must stay as stored.
        _run(need("dcmdjpeg"), "+cl", path, out)
    else:
        _run(need(tool), path, out)
    return out


def syntax_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID)


@functools.cache
def dciodvfy_errors(path: Path) -> frozenset[str]:
    """dciodvfy's error lines for `path` (inflated first when deflated)."""
    if syntax_of(path) == samples.DEFLATED:
        path = independent_decode(path, samples.DEFLATED, path.parent)
    result = subprocess.run(
        [need("dciodvfy"), str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    lines = (result.stdout + result.stderr).splitlines()
    return frozenset(line.strip() for line in lines if line.startswith("Error"))


def encoded_pixels(src: Path, folder: Path) -> NDArray[np.int64]:
    """The source pixels as the transcoder encodes them (lossy JPEG colour as RGB)."""
    source = syntax_of(src)
    ds = pydicom.dcmread(src)
    try:
        arr = pixel_array(ds, as_rgb=source in LOSSY_JPEG)
    except RuntimeError:
        # Only IJG-based decoders read some real-world 12-bit streams (JPEG-lossy.dcm)
        arr = pixel_array(pydicom.dcmread(independent_decode(src, source, folder)))
    return arr.astype(np.int64)


def psnr(a: NDArray[np.int64], b: NDArray[np.int64], bits: int) -> float:
    mse = float(np.mean((a - b).astype(np.float64) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10((2**bits - 1) ** 2 / mse)


def check_round_trip(src: Path, target: str, folder: Path, *, refused: bool = False) -> None:
    out = folder / f"{src.stem}.{target}.dcm"
    if refused:
        with pytest.raises(TranscodeError) as caught:
            transcode_file(src, out, target, allow_lossy=True)
        assert caught.value.target == target
        assert not out.exists()
        return
    transcode_file(src, out, target, allow_lossy=True)
    assert syntax_of(out) == target
    decoded = independent_decode(out, target, folder)
    written = pydicom.dcmread(decoded)
    expected = encoded_pixels(src, folder)
    if target in codecs.LOSSLESS:
        got = pixel_array(written, as_rgb=False).astype(np.int64)
        assert got.shape == expected.shape
        assert np.array_equal(got, expected), f"max error {np.abs(got - expected).max()}"
    else:
        got = pixel_array(written).astype(np.int64)
        reference = pixel_array(pydicom.dcmread(src)).astype(np.int64)
        if syntax_of(src) in LOSSY_JPEG:
            reference = expected
        assert got.shape == reference.shape
        if target == samples.JLS_NEAR:
            # NEAR bounds each stored sample, so compare before any colour conversion.
            got = pixel_array(written, as_rgb=False).astype(np.int64)
            assert np.abs(got - expected).max() <= 1
        else:
            bound = MIN_PSNR_COLOUR if int(written.SamplesPerPixel) == 3 else MIN_PSNR
            assert psnr(got, reference, int(written.BitsStored)) >= bound
    new_errors = dciodvfy_errors(out) - dciodvfy_errors(src)
    assert not new_errors, f"dciodvfy: {sorted(new_errors)}"


FULL = [
    pytest.param(name, target, target in refused, id=f"{name}->{target}")
    for name, refused in samples.FULL_MATRIX.items()
    for target in samples.ALL_TARGETS
]
SOME = [
    pytest.param(name, target, False, id=f"{name}->{target}")
    for name, targets in samples.SOME_TARGETS.items()
    for target in targets
]


@pytest.mark.parametrize(("name", "target", "refused"), FULL + SOME)
def test_round_trip_through_independent_decoders(
    name: str, target: str, refused: bool, tmp_path: Path
) -> None:
    check_round_trip(sample(name), target, tmp_path, refused=refused)


@pytest.mark.parametrize("name", ["CT_small.dcm", "color-pl.dcm"])
def test_jpeg_lossless_any_predictor_from_dcmtk(name: str, tmp_path: Path) -> None:
    """pydicom-data has no .57 file: dcmcjpeg makes one (predictor 6), we decode it."""
    src = tmp_path / "p14.dcm"
    _run(need("dcmcjpeg"), "+el", "+sv", "6", sample(name), src)
    assert syntax_of(src) == samples.JPEG_LL
    reference = pixel_array(pydicom.dcmread(sample(name)), as_rgb=False).astype(np.int64)
    for target in (samples.EXPLICIT, samples.JLS):
        out = tmp_path / f"out.{target}.dcm"
        transcode_file(src, out, target)
        decoded = pydicom.dcmread(independent_decode(out, target, tmp_path))
        assert np.array_equal(pixel_array(decoded, as_rgb=False), reference)


@pytest.mark.parametrize(
    "syntax", [samples.HTJ2K_LOSSLESS, samples.HTJ2K_LOSSLESS_RPCL, samples.HTJ2K]
)
def test_htj2k_sources(syntax: str, tmp_path: Path) -> None:
    ds = samples.htj2k_dataset(syntax)
    colour = syntax == samples.HTJ2K_LOSSLESS_RPCL
    reference = samples.htj2k_rgb_pixels() if colour else samples.htj2k_mono_pixels()
    out = tmp_path / "htj2k.jls.dcm"
    pydicom.dcmwrite(out, transcode(ds, samples.JLS), enforce_file_format=True)
    decoded = pydicom.dcmread(independent_decode(out, samples.JLS, tmp_path))
    got = pixel_array(decoded, as_rgb=False).astype(np.int64)
    assert decoded.PhotometricInterpretation == ("RGB" if colour else "MONOCHROME2")
    if syntax == samples.HTJ2K:
        assert psnr(got, reference.astype(np.int64), 12) >= 50
        assert decoded.LossyImageCompression == "01"
        assert decoded.LossyImageCompressionMethod == "ISO_15444_15"
    else:
        assert np.array_equal(got, reference)


def test_big_endian_palette_matches_its_little_endian_twin(tmp_path: Path) -> None:
    """Pixel Data and the OW palette LUTs are swapped: dcmtk reads what pydicom-data's LE
    twin holds, byte for byte."""
    out = tmp_path / "le.dcm"
    transcode_file(sample("OBXXXX1A_expb_2frame.dcm"), out, samples.EXPLICIT)
    ours = pydicom.dcmread(independent_decode(out, samples.EXPLICIT, tmp_path))
    twin = pydicom.dcmread(sample("OBXXXX1A_2frame.dcm"))
    for keyword in (
        "PixelData",
        "RedPaletteColorLookupTableData",
        "GreenPaletteColorLookupTableData",
        "BluePaletteColorLookupTableData",
    ):
        assert ours[keyword].value == twin[keyword].value, keyword
