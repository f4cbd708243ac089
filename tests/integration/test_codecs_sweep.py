"""Every image pydicom-data holds, transcoded losslessly and decoded by an independent decoder.

The hand-picked matrix in test_codecs_peers.py covers each syntax and pixel layout in depth; this
sweep covers breadth: each image file of pydicom-data (and of pydicom's own bundled test files)
goes to Explicit VR LE and to the most compact lossless syntax `choose_syntax` would pick for a
peer accepting JPEG-LS, RLE and JPEG 2000. The outcome must be identical pixels through dcmtk or
GDCM, or a TranscodeError naming why (e.g. 32-bit data JPEG-LS cannot hold), never anything else.
Files listed from the installed data folders (local; globbing through pydicom's data manager
would go online for missing files).
"""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from openpacs.dicom import codecs
from openpacs.dicom.codecs import TranscodeError, choose_syntax
from tests.integration.test_codecs_peers import check_round_trip

pytestmark = pytest.mark.peer

# Files pydicom's own decoders cannot read either: damaged on purpose (pydicom tests its error
# paths with them), or needing an IJG-only decoder that test_codecs_peers covers by hand.
BROKEN = {
    "emri_small_jpeg_2k_lossless_too_short.dcm",  # truncated codestream
    "JPEG-lossy.dcm",  # 12-bit JPEG only IJG-based decoders read; covered in the matrix
    # Its SOPInstanceUID is a hex digest, not a UID; the output's file meta must repeat it, so
    # dciodvfy rightly finds a new error there.
    "bad_sequence.dcm",
}
COMPRESSED_TARGETS = (codecs.JPEG_LS_LOSSLESS, codecs.RLE_LOSSLESS, codecs.JPEG_2000_LOSSLESS)


def _data_folders() -> list[Path]:
    found = get_testdata_file("CT_small.dcm")  # pydicom's bundled files
    folders = [Path(found).parent] if isinstance(found, str) else []
    try:
        import data_store  # type: ignore[import-untyped]  # pydicom-data's files

        folders.append(Path(data_store.__file__).parent)
    except ImportError:
        pass
    return folders


def _images() -> list[Path]:
    images = []
    for folder in _data_folders():
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or path.name in BROKEN:
                continue
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:
                continue  # not DICOM (the folders hold a few other files)
            syntax = str(getattr(ds, "file_meta", {}).get("TransferSyntaxUID", ""))
            if "Rows" in ds and "BitsAllocated" in ds and codecs.can_decode(syntax):
                images.append(path)
    return images


IMAGES = _images()


def test_the_sweep_found_pydicom_data() -> None:
    # pydicom's own files alone are ~100 images; with pydicom-data there are more.
    assert len(IMAGES) >= 80, [str(f) for f in _data_folders()]


@pytest.mark.parametrize("path", IMAGES, ids=[p.name for p in IMAGES])
def test_every_image_round_trips_losslessly(path: Path, tmp_path: Path) -> None:
    try:
        pydicom.dcmread(path).pixel_array  # noqa: B018  # the decoding is the check
    except Exception as exc:
        pytest.skip(f"pydicom itself cannot decode this sample: {exc}")
    header = pydicom.dcmread(path, stop_before_pixels=True)
    stored = str(header.file_meta.TransferSyntaxUID)
    check_round_trip(path, codecs.EXPLICIT_VR_LE, tmp_path)
    # As a sender does: the best the peer accepts; when the encoder gives up on this image
    # (a TranscodeError, e.g. JPEG-LS output larger than CharLS's buffer for tiny noisy
    # images), the next best.
    offered = list(COMPRESSED_TARGETS)
    while (compact := choose_syntax(stored, offered, ds=header)) not in (None, stored):
        try:
            check_round_trip(path, compact, tmp_path)
            return
        except TranscodeError as exc:
            assert exc.reason.startswith("encoder failed"), exc
            offered.remove(compact)
