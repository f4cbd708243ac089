"""Print peers for the tests: our Print SCP in process, dcmtk's print chain (dcmpsprt renders a
print job from images, dcmprscu sends it), and a pynetdicom Print SCU."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset
from pynetdicom import AE
from pynetdicom.association import Association as PynetAssociation

from openpacs.archive.core import Core
from openpacs.dimse.engine import Listener
from openpacs.dimse.print_scp import make_print_listener
from openpacs.printing.films import FilmKeeper
from openpacs.printing.session import COLOUR_META, GREY_META, PRESENTATION_LUT
from tests.conftest import need

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
"""


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
) -> DcmtkPrint:
    """dcmpsprt writes a stored print job for `images` (`options`: layout, film...), dcmprscu
    sends it to our SCP (`session`: its film session options, --label, --copies...)."""
    dcmpsprt, dcmprscu = need("dcmpsprt"), need("dcmprscu")
    work.mkdir(parents=True, exist_ok=True)
    for folder in ("db", "spool", "lut", "log"):
        (work / folder).mkdir(exist_ok=True)
    text = _CONFIG.format(
        ae_title=ae_title, port=port, twelve_bit="true" if twelve_bit else "false"
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
    """A pynetdicom association offering both print meta classes and Presentation LUT."""
    ae = AE(ae_title=calling_ae)
    for uid in (GREY_META, COLOUR_META, PRESENTATION_LUT):
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
