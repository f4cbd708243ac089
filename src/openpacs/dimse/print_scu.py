"""Print SCU: films sent to a remote Print SCP (a film printer, dcmtk's dcmprscp) on our engine.

The sequence dcmtk's own print spooler uses (PS3.4 H.4): N-GET Printer, N-CREATE Film Session,
then per film N-CREATE Film Box (STANDARD\\1,1: the composed film is one image), N-SET Image
Box, N-ACTION Film Box (print), N-DELETE Film Box; N-DELETE Film Session; release. Colour
films go as colour when the printer takes the Basic Color Print Management Meta class, else
as their luminance on the grayscale class (a grayscale printer still prints them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence

from openpacs.dimse.engine import (
    AFFECTED_SOP_CLASS,
    AFFECTED_SOP_INSTANCE,
    COMMAND_FIELD,
    DATASET_PRESENT,
    DATASET_TYPE,
    ERROR_COMMENT,
    MESSAGE_ID,
    NO_DATASET,
    REQUESTED_SOP_CLASS,
    Abort,
    Link,
    PeerGone,
    Proposal,
    encode_command,
    text,
    ui,
    us,
)
from openpacs.dimse.identifier import IDENTIFIER_SYNTAXES, decode_identifier, encode_identifier
from openpacs.dimse.print_scp import (
    ACTION_TYPE_ID,
    N_ACTION_RQ,
    N_CREATE_RQ,
    N_DELETE_RQ,
    N_GET_RQ,
    N_SET_RQ,
    REQUESTED_SOP_INSTANCE,
)
from openpacs.dimse.scu import Peer, associate, broke
from openpacs.logs import get_logger
from openpacs.printing.session import (
    COLOUR_IMAGE_BOX,
    COLOUR_META,
    FILM_BOX,
    FILM_SESSION,
    GREY_IMAGE_BOX,
    GREY_META,
    PRINTER,
    PRINTER_INSTANCE,
)

log = get_logger("printscu")


@dataclass(frozen=True)
class FilmToPrint:
    """One composed film: display values, (H, W) grey or (H, W, 3) RGB, and its film box's
    size and orientation."""

    pixels: NDArray[np.uint8]
    film_size: str = "8INX10IN"
    orientation: str = "PORTRAIT"


class PrintRefused(Exception):
    """The printer answered a request with a failure status; the message names both."""

    def __init__(self, status: int, why: str) -> None:
        super().__init__(why)
        self.status = status


@dataclass
class PrintReport:
    films: int = 0
    printer_status: str = ""
    warnings: list[str] = field(default_factory=list)


def print_films(
    peer: Peer,
    films: Sequence[FilmToPrint],
    *,
    calling_ae: str,
    timeout: float = 60,
    copies: int = 1,
    label: str = "",
) -> PrintReport:
    """Print `films` in one film session. Raises AssociationFailed (Refused, NoAnswer) when the
    printer cannot be reached or breaks off, PrintRefused when it refuses a request."""
    colour_wanted = any(f.pixels.ndim == 3 for f in films)
    proposals = [Proposal(GREY_META, IDENTIFIER_SYNTAXES)]
    if colour_wanted:
        proposals.insert(0, Proposal(COLOUR_META, IDENTIFIER_SYNTAXES))
    link = associate(peer, proposals, calling_ae=calling_ae, timeout=timeout)
    session = _Session(link, timeout)
    try:
        report = session.run(films, copies=copies, label=label)
    except PrintRefused:
        link.release(timeout)
        raise
    except (OSError, PeerGone, Abort) as exc:
        raise broke(link, exc, "print session") from exc
    link.release(timeout)
    return report


class _Session:
    def __init__(self, link: Link, timeout: float) -> None:
        self.link = link
        self.timeout = timeout
        self.contexts = {c.abstract_syntax: c for c in link.contexts.values()}

    def run(self, films: Sequence[FilmToPrint], *, copies: int, label: str) -> PrintReport:
        report = PrintReport()
        colour = COLOUR_META in self.contexts
        meta = COLOUR_META if colour else GREY_META
        _, printer = self.request(meta, N_GET_RQ, PRINTER, PRINTER_INSTANCE)
        if printer is not None:
            report.printer_status = str(printer.get("PrinterStatus") or "")
            if report.printer_status == "FAILURE":
                info = printer.get("PrinterStatusInfo") or "no reason given"
                raise PrintRefused(0, f"the printer reports FAILURE ({info})")
        attrs = Dataset()
        attrs.NumberOfCopies = copies
        if label:
            attrs.FilmSessionLabel = label[:64]
        session_uid, _ = self.request(meta, N_CREATE_RQ, FILM_SESSION, None, attrs)
        for number, film in enumerate(films, start=1):
            self.film(meta, session_uid, film, colour, report, number)
            report.films += 1
        self.request(meta, N_DELETE_RQ, FILM_SESSION, session_uid)
        return report

    def film(
        self,
        meta: str,
        session_uid: str,
        film: FilmToPrint,
        colour: bool,
        report: PrintReport,
        number: int,
    ) -> None:
        box = Dataset()
        box.ImageDisplayFormat = "STANDARD\\1,1"
        box.FilmOrientation = film.orientation
        box.FilmSizeID = film.film_size
        ref = Dataset()
        ref.ReferencedSOPClassUID = FILM_SESSION
        ref.ReferencedSOPInstanceUID = session_uid
        box.ReferencedFilmSessionSequence = DicomSequence([ref])
        box_uid, created = self.request(meta, N_CREATE_RQ, FILM_BOX, None, box)
        refs = created.get("ReferencedImageBoxSequence") if created is not None else None
        if not refs:
            raise PrintRefused(0, "the printer's film box names no image box")
        image_box = str(refs[0].ReferencedSOPInstanceUID)
        pixels = film.pixels
        if pixels.ndim == 3 and not colour:
            report.warnings.append(f"film {number}: colour printed as grey (grayscale printer)")
            weights = np.array([0.299, 0.587, 0.114])
            pixels = np.clip(np.rint(pixels @ weights), 0, 255).astype(np.uint8)
        box_class = COLOUR_IMAGE_BOX if colour else GREY_IMAGE_BOX
        self.request(meta, N_SET_RQ, box_class, image_box, _image_box(pixels, colour))
        self.request(meta, N_ACTION_RQ, FILM_BOX, box_uid, action=1)
        self.request(meta, N_DELETE_RQ, FILM_BOX, box_uid)

    def request(
        self,
        meta: str,
        field_: int,
        sop_class: str,
        uid: str | None,
        dataset: Dataset | None = None,
        *,
        action: int | None = None,
    ) -> tuple[str, Dataset | None]:
        """One N-request on the meta class's context; (the affected instance, the answer)."""
        context = self.contexts[meta]
        message_id = self.link.next_message_id()
        elements: dict[int, bytes] = {
            COMMAND_FIELD: us(field_),
            MESSAGE_ID: us(message_id),
            DATASET_TYPE: us(DATASET_PRESENT if dataset is not None else NO_DATASET),
        }
        if field_ == N_CREATE_RQ:
            elements[AFFECTED_SOP_CLASS] = ui(sop_class)
        else:
            elements[REQUESTED_SOP_CLASS] = ui(sop_class)
            elements[REQUESTED_SOP_INSTANCE] = ui(uid or "")
        if action is not None:
            elements[ACTION_TYPE_ID] = us(action)
        data = encode_identifier(dataset, context.transfer_syntax) if dataset is not None else None
        self.link.sock.settimeout(self.timeout)
        self.link.send(context.id, encode_command(elements), data)
        answer = self.link.next_response()
        if answer.responded_to != message_id or answer.command_field != field_ | 0x8000:
            raise Abort(0, f"answer to message {answer.responded_to}, not {message_id}")
        status = answer.status or 0
        comment = text(answer.command.get(ERROR_COMMENT))
        if status not in (0x0000, 0x0001, 0x0107, 0x0116) and not 0xB000 <= status <= 0xBFFF:
            name = _NAMES.get(field_, f"0x{field_:04X}")
            raise PrintRefused(
                status,
                f"{name} {_CLASS_NAMES.get(sop_class, sop_class)}: status 0x{status:04X}"
                + (f" ({comment})" if comment else ""),
            )
        if status:
            log.info("printer answered 0x%04X to 0x%04X: %s", status, field_, comment)
        affected = text(answer.command.get(AFFECTED_SOP_INSTANCE)) or (uid or "")
        body = (
            decode_identifier(answer.dataset, context.transfer_syntax) if answer.dataset else None
        )
        return affected, body


_NAMES: Mapping[int, str] = {
    N_GET_RQ: "N-GET",
    N_SET_RQ: "N-SET",
    N_ACTION_RQ: "N-ACTION",
    N_CREATE_RQ: "N-CREATE",
    N_DELETE_RQ: "N-DELETE",
}
_CLASS_NAMES: Mapping[str, str] = {
    PRINTER: "Printer",
    FILM_SESSION: "Film Session",
    FILM_BOX: "Film Box",
    GREY_IMAGE_BOX: "Grayscale Image Box",
    COLOUR_IMAGE_BOX: "Color Image Box",
}


def _image_box(pixels: NDArray[Any], colour: bool) -> Dataset:
    """The N-SET of the film's one image box: the film as 8-bit P-values."""
    item = Dataset()
    item.Rows, item.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    if colour:
        rgb = pixels if pixels.ndim == 3 else np.stack([pixels] * 3, axis=2)
        item.SamplesPerPixel, item.PhotometricInterpretation = 3, "RGB"
        item.PlanarConfiguration = 1  # colour-by-plane, as the Basic Color Image Box asks
        data = np.ascontiguousarray(rgb.transpose(2, 0, 1)).tobytes()
    else:
        item.SamplesPerPixel, item.PhotometricInterpretation = 1, "MONOCHROME2"
        data = np.ascontiguousarray(pixels).tobytes()
    item.BitsAllocated, item.BitsStored, item.HighBit, item.PixelRepresentation = 8, 8, 7, 0
    item.add_new(0x7FE00010, "OB", data)
    ds = Dataset()
    ds.ImageBoxPosition = 1
    ds.Polarity = "NORMAL"
    key = "BasicColorImageSequence" if colour else "BasicGrayscaleImageSequence"
    setattr(ds, key, DicomSequence([item]))
    return ds
