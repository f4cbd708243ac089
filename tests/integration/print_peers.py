"""Print peers for the tests: our Print SCP in process, dcmtk's print chain (dcmpsprt renders a
print job from images, dcmprscu sends it), and a pynetdicom Print SCU."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pynetdicom import AE
from pynetdicom.association import Association as PynetAssociation

from openpacs.archive.core import Core
from openpacs.dimse.engine import Listener
from openpacs.dimse.print_scp import make_print_listener
from openpacs.printing.films import FilmKeeper
from openpacs.printing.session import ANNOTATION_BOX, COLOUR_META, GREY_META, PRESENTATION_LUT
from tests.conftest import free_port, need

DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


@contextmanager
def print_scp(core: Core) -> Iterator[Listener]:
    settings = core.settings.printscp
    listener = make_print_listener(settings, FilmKeeper(core, settings), core.sessions)
    listener.start()
    try:
        yield listener
    finally:
        listener.stop(2)


# A dcmpstat.cfg with one Type=PRINTER target (our SCP) for dcmpsprt and dcmprscu.
_CONFIG = """\
[[GENERAL]]
[APPLICATION]
LogDirectory = log
LogFile = general.log
LogLevel = ERROR
[PRINT]
Spooler = dcmprscu
Server = dcmprscp
Directory = spool
DetailedLog = false
BinaryLog = false
Sleep = 1
DeletePrintJobs = false
[DATABASE]
Directory = db
[LUT]
Directory = lut
[NETWORK]
aetitle = MODALITY
[[COMMUNICATION]]
[OPENPACS]
Type = PRINTER
Aetitle = {ae_title}
Description = openpacs print SCP
Hostname = 127.0.0.1
Port = {port}
MaxPDU = 16384
ImplicitOnly = false
DisableNewVRs = false
SupportsPresentationLUT = false
Supports12Bit = {twelve_bit}
SupportsImageSize = true
SupportsDecimateCrop = true
SupportsTrim = true
DisplayFormat = 1,1\\2,1\\2,2\\3,4
FilmSizeID = 8INX10IN\\14INX17IN\\A4
MagnificationType = REPLICATE\\BILINEAR\\NONE
BorderDensity = BLACK\\WHITE\\150
EmptyImageDensity = BLACK\\WHITE
{annotation}"""


@dataclass
class DcmtkPrint:
    returncode: int
    output: str


def dcmtk_print(
    work: Path,
    port: int,
    images: Sequence[Path],
    *options: str,
    ae_title: str = "PRINTSCP",
    twelve_bit: bool = True,
    session: Sequence[str] = (),
    annotations: bool = False,
) -> DcmtkPrint:
    """dcmpsprt writes a stored print job for `images` (`options`: layout, film...), dcmprscu
    sends it to our SCP (`session`: its film session options, --label, --copies...)."""
    dcmpsprt, dcmprscu = need("dcmpsprt"), need("dcmprscu")
    work.mkdir(parents=True, exist_ok=True)
    for folder in ("db", "spool", "lut", "log"):
        (work / folder).mkdir(exist_ok=True)
    text = _CONFIG.format(
        ae_title=ae_title,
        port=port,
        twelve_bit="true" if twelve_bit else "false",
        # The printer takes Basic Annotation Boxes: two, format ID ANNOTATION.
        annotation="Annotation = 2\\ANNOTATION\n" if annotations else "",
    )
    (work / "dcmpstat.cfg").write_text(text)
    base = ["-c", "dcmpstat.cfg", "-p", "OPENPACS"]
    rendered = subprocess.run(
        [dcmpsprt, *base, *options, *map(str, images)],
        cwd=work,
        env=DCMTK_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rendered.returncode == 0, rendered.stderr
    stored = sorted((work / "db").glob("SP_*.dcm"))
    assert len(stored) == 1, list((work / "db").iterdir())
    sent = subprocess.run(
        [dcmprscu, *base, *session, "-v", str(stored[0])],
        cwd=work,
        env=DCMTK_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    stored[0].unlink()
    return DcmtkPrint(sent.returncode, sent.stdout + sent.stderr)


@contextmanager
def pynetdicom_print(
    port: int, ae_title: str = "PRINTSCP", calling_ae: str = "PYPRINT"
) -> Iterator[PynetAssociation]:
    """A pynetdicom association offering both print meta classes, Presentation LUT and Basic
    Annotation Box."""
    ae = AE(ae_title=calling_ae)
    for uid in (GREY_META, COLOUR_META, PRESENTATION_LUT, ANNOTATION_BOX):
        ae.add_requested_context(uid)
    assoc = ae.associate("127.0.0.1", port, ae_title=ae_title)
    assert assoc.is_established
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def referenced(sop_class: str, uid: str) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = uid
    return item


class DcmPrScp:
    """dcmtk's reference Print SCP (dcmprscp) on a free port; what it printed lands in its
    database folder as Stored Print and Hardcopy Grayscale objects."""

    ae_title = "DCMPRSCP"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DcmPrScp:
        dcmprscp = need("dcmprscp")
        for folder in ("db", "spool", "lut", "log"):
            (self.work / folder).mkdir(parents=True, exist_ok=True)
        (self.work / "dcmpstat.cfg").write_text(_SCP_CONFIG.format(port=self.port))
        self.process = subprocess.Popen(
            [dcmprscp, "-c", "dcmpstat.cfg", "-p", "PRINTER"],
            cwd=self.work,
            env=DCMTK_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return self
            time.sleep(0.05)
        raise RuntimeError("dcmprscp did not start listening")

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    def hardcopies(self) -> list[Path]:
        return sorted((self.work / "db").glob("HG_*.dcm"), key=lambda p: p.stat().st_mtime_ns)

    def stored_prints(self) -> list[Path]:
        return sorted((self.work / "db").glob("SP_*.dcm"), key=lambda p: p.stat().st_mtime_ns)


_SCP_CONFIG = """\
[[GENERAL]]
[APPLICATION]
LogDirectory = log
LogFile = general.log
LogLevel = ERROR
[PRINT]
Directory = spool
DetailedLog = false
BinaryLog = false
DeletePrintJobs = false
[DATABASE]
Directory = db
[LUT]
Directory = lut
[[COMMUNICATION]]
[PRINTER]
Type = LOCALPRINTER
Aetitle = DCMPRSCP
Description = dcmtk reference print SCP
Hostname = 127.0.0.1
Port = {port}
MaxPDU = 16384
ImplicitOnly = false
DisableNewVRs = false
SupportsPresentationLUT = false
Supports12Bit = true
SupportsImageSize = true
SupportsDecimateCrop = false
SupportsTrim = true
DisplayFormat = 1,1\\2,1\\2,2\\3,3\\3,4\\4,4\\4,5\\5,5
FilmSizeID = 8INX10IN\\14INX17IN\\A4
MagnificationType = REPLICATE\\BILINEAR\\NONE
BorderDensity = BLACK\\WHITE
EmptyImageDensity = BLACK\\WHITE
MaxDensity = 320
MinDensity = 20
"""


def colour_item(rows: int, columns: int, rgb: tuple[int, int, int], planar: int) -> Dataset:
    """An RGB image of one colour with a white top-left quarter."""
    item = Dataset()
    item.SamplesPerPixel, item.PhotometricInterpretation = 3, "RGB"
    item.PlanarConfiguration = planar
    item.Rows, item.Columns = rows, columns
    item.BitsAllocated, item.BitsStored, item.HighBit, item.PixelRepresentation = 8, 8, 7, 0
    pixels = np.zeros((rows, columns, 3), dtype=np.uint8)
    pixels[:, :] = rgb
    pixels[0 : rows // 2, 0 : columns // 2] = (255, 255, 255)
    data = pixels.transpose(2, 0, 1) if planar == 1 else pixels
    item.PixelData = np.ascontiguousarray(data).tobytes()
    return item


def colour_box(position: int, item: Dataset) -> Dataset:
    ds = Dataset()
    ds.ImageBoxPosition = position
    ds.Polarity = "NORMAL"
    ds.BasicColorImageSequence = DicomSequence([item])
    return ds
