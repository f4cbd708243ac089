"""Rendered frames against dcmtk's dcmj2pnm given the same VOI choice.

Tolerance: dcmtk truncates the VOI output to an integer where we round half up, so each pixel
of ours is equal to dcmtk's or one grey level above it (also for MONOCHROME1, which dcmtk
inverts before truncating). Table lookups (palette, VOI LUT) and overlays match exactly.
Our side is decoded from lossless PNG so the encoder adds nothing.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image
from pydicom import dcmread
from pydicom.pixels.utils import pixel_array

from openpacs.dicom.render import RenderOptions, render_frame
from tests.conftest import need, sample

pytestmark = pytest.mark.peer


def dcmj2pnm(path: Path, options: list[str], tmp_path: Path) -> NDArray[np.int64]:
    out = tmp_path / "dcmtk.pnm"
    # Raw PGM/PPM: dcmtk's PNG writer takes a second on a 1955 x 1841 CR, PNM 30 ms.
    result = subprocess.run(
        [need("dcmj2pnm"), "-q", "+op", *options, str(path), str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return np.asarray(Image.open(out)).astype(np.int64)


def ours(path: Path, **options: Any) -> NDArray[np.int64]:
    ds = dcmread(path, stop_before_pixels=True)
    png = render_frame(ds, pixel_array(path, index=0), RenderOptions(format="png", **options))
    return np.asarray(Image.open(io.BytesIO(png))).astype(np.int64)


def assert_close(mine: NDArray[np.int64], theirs: NDArray[np.int64], exact: bool) -> None:
    assert mine.shape == theirs.shape
    diff = mine - theirs
    found = {int(d) for d in np.unique(diff)}
    assert found <= ({0} if exact else {0, 1}), f"differences {sorted(found)}"
    assert np.abs(diff).mean() <= (0 if exact else 0.6)


@pytest.mark.parametrize(
    ("name", "dcmtk", "options", "exact"),
    [
        # A CT in Hounsfield units through RescaleSlope/Intercept, with the caller's windows.
        ("CT_small.dcm", ["+Ww", "40", "400"], {"window": (40, 400)}, False),
        ("CT_small.dcm", ["+Ww", "-600.5", "1501"], {"window": (-600.5, 1501)}, False),
        (
            "CT_small.dcm",
            ["+Wfs", "+Ww", "40", "400"],
            {"window": (40, 400), "voi_function": "SIGMOID"},
            False,
        ),
        # No window anywhere: min/max of the frame after the Modality LUT.
        ("CT_small.dcm", ["+Wm"], {}, False),
        # The first window of the object (512 x 512 CT; signed 16-bit MR with two windows).
        ("693_UNCR.dcm", ["+Wi", "1"], {}, False),
        ("MR_small.dcm", ["+Wi", "1"], {}, False),
        # MONOCHROME1 computed radiograph, its own window.
        ("RG1_UNCR.dcm", ["+Wi", "1"], {}, False),
        # Modality LUT Sequence (signed stored values) and VOI LUT Sequence.
        ("mlut_18.dcm", ["+Wm"], {}, False),
        ("vlut_04.dcm", ["+Wl", "1"], {}, True),
        ("OBXXXX1A.dcm", [], {}, True),
        ("SC_rgb.dcm", [], {}, True),
    ],
)
def test_matches_dcmj2pnm(
    name: str, dcmtk: list[str], options: dict[str, Any], exact: bool, tmp_path: Path
) -> None:
    path = sample(name)
    assert_close(ours(path, **options), dcmj2pnm(path, ["-O", *dcmtk], tmp_path), exact)


def test_monochrome1_ct_matches_dcmj2pnm(tmp_path: Path) -> None:
    """The same CT written as MONOCHROME1 comes out inverted, as dcmtk shows it."""
    ds = dcmread(sample("CT_small.dcm"))
    ds.PhotometricInterpretation = "MONOCHROME1"
    path = tmp_path / "mono1.dcm"
    ds.save_as(path)
    mine = ours(path, window=(40, 400))
    assert_close(mine, dcmj2pnm(path, ["-O", "+Ww", "40", "400"], tmp_path), exact=False)
    normal = ours(sample("CT_small.dcm"), window=(40, 400))
    np.testing.assert_array_equal(mine, 255 - normal)


def test_burnt_in_overlay_matches_dcmj2pnm(tmp_path: Path) -> None:
    path = sample("MR-SIEMENS-DICOM-WithOverlays.dcm")
    mine = ours(path, overlays=True)
    theirs = dcmj2pnm(path, ["+Wi", "1"], tmp_path)  # dcmtk shows every overlay by default
    assert_close(mine, theirs, exact=False)
    assert (mine == 255).sum() > (ours(path) == 255).sum() + 100
