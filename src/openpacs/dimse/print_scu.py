"""Print SCU: films sent to a remote Print SCP (a film printer, dcmtk's dcmprscp) on our engine.

The sequence dcmtk's own print spooler uses (PS3.4 H.4): N-GET Printer, N-CREATE Film Session,
then per film N-CREATE Film Box, N-SET of each Image Box (and Annotation Box), N-ACTION Film
Box (print), N-DELETE Film Box; N-DELETE Film Session; release. Event reports the printer sends
meanwhile (N-EVENT-REPORT: its status changing, a print job's progress) are acknowledged and
logged, a warning or failure also noted in the job's outcome. What a film box holds is
`printing.outgoing.FilmToPrint`: a composed film as one image, or the modality's own layout.
Colour films go as colour when the printer takes the Basic Color Print Management Meta class,
else as their luminance on the grayscale class (a grayscale printer still prints them); on the
colour class, grey images go as RGB (its image boxes take nothing else).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

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
    Message,
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
from openpacs.printing import outgoing
from openpacs.printing.outgoing import FilmToPrint
from openpacs.printing.session import (
    ANNOTATION_BOX,
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

N_EVENT_REPORT_RQ, N_EVENT_REPORT_RSP = 0x0100, 0x8100
EVENT_TYPE_ID = 0x00001002
PRINT_JOB = "1.2.840.10008.5.1.1.14"
# PS3.4 H.4.4.1.2 (Printer) and H.4.6.1.2 (Print Job): event type → the state it reports, and
# whether a user should hear of it.
_EVENTS: Mapping[str, Mapping[int, tuple[str, bool]]] = {
    PRINTER: {1: ("NORMAL", False), 2: ("WARNING", True), 3: ("FAILURE", True)},
    PRINT_JOB: {
        1: ("PENDING", False),
        2: ("PRINTING", False),
        3: ("DONE", False),
        4: ("FAILURE", True),
    },
}
_EVENT_DETAIL = ("PrinterStatusInfo", "ExecutionStatusInfo")


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
    proposals = [Proposal(GREY_META, IDENTIFIER_SYNTAXES)]
    if any(film.colour for film in films):
        proposals.insert(0, Proposal(COLOUR_META, IDENTIFIER_SYNTAXES))
    if any(film.annotations for film in films):
        proposals.append(Proposal(ANNOTATION_BOX, IDENTIFIER_SYNTAXES))
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
        self.events: list[str] = []  # what the printer reported that the user should hear

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
            if not label.isascii():
                attrs.SpecificCharacterSet = "ISO_IR 192"
            attrs.FilmSessionLabel = label[:64]
        session_uid, _ = self.request(meta, N_CREATE_RQ, FILM_SESSION, None, attrs)
        for number, film in enumerate(films, start=1):
            self.film(meta, session_uid, film, colour, report, number)
            report.films += 1
        self.request(meta, N_DELETE_RQ, FILM_SESSION, session_uid)
        report.warnings += self.events
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
        box.update(film.film_box)
        annotate = bool(film.annotations) and ANNOTATION_BOX in self.contexts
        if film.annotations and not annotate:
            report.warnings.append(f"film {number}: the printer takes no annotation boxes")
        if not annotate and "AnnotationDisplayFormatID" in box:
            del box.AnnotationDisplayFormatID
        box.ReferencedFilmSessionSequence = DicomSequence([_reference(FILM_SESSION, session_uid)])
        box_uid, created = self.request(meta, N_CREATE_RQ, FILM_BOX, None, box)
        refs = created.get("ReferencedImageBoxSequence") if created is not None else None
        needed = max(film.image_boxes, default=1)
        if not refs or len(refs) < needed:
            raise PrintRefused(
                0,
                f"the printer's film box has {len(refs or [])} image box(es) for "
                f"{box.get('ImageDisplayFormat')}; film {number} needs {needed}",
            )
        report.warnings += [f"film {number}: {note}" for note in film.notes]
        for position, image_box in sorted(film.image_boxes.items()):
            if film.colour and not colour and outgoing.COLOUR_SEQUENCE in image_box:
                image_box = outgoing.as_grey(image_box)
                report.warnings.append(f"film {number}: colour printed as grey (grayscale printer)")
            elif colour and outgoing.GREY_SEQUENCE in image_box:
                image_box = outgoing.as_colour(image_box)
            image_box = _at(image_box, position)
            uid = str(refs[position - 1].ReferencedSOPInstanceUID)
            box_class = COLOUR_IMAGE_BOX if colour else GREY_IMAGE_BOX
            self.request(meta, N_SET_RQ, box_class, uid, image_box)
        if annotate:
            self.annotations(film, created, report, number)
        self.request(meta, N_ACTION_RQ, FILM_BOX, box_uid, action=1)
        self.request(meta, N_DELETE_RQ, FILM_BOX, box_uid)

    def annotations(
        self, film: FilmToPrint, created: Dataset | None, report: PrintReport, number: int
    ) -> None:
        """The film's texts into the annotation boxes the printer made, by position."""
        refs = (created.get("ReferencedBasicAnnotationBoxSequence") if created else None) or []
        for position, value in sorted(film.annotations.items()):
            if position > len(refs):
                report.warnings.append(
                    f"film {number}: annotation {position} left out (the printer has "
                    f"{len(refs)} annotation box(es))"
                )
                continue
            attrs = Dataset()
            if not value.isascii():
                attrs.SpecificCharacterSet = "ISO_IR 192"
            attrs.AnnotationPosition = position
            attrs.TextString = value[:64]
            uid = str(refs[position - 1].ReferencedSOPInstanceUID)
            self.request(ANNOTATION_BOX, N_SET_RQ, ANNOTATION_BOX, uid, attrs)

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
        """One N-request on `meta`'s presentation context (the print meta class, or the
        Annotation Box's own); (the affected instance, the answer)."""
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
        answer = self._response()
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

    def _response(self) -> Message:
        """The printer's next response, acknowledging the event reports it sends first."""
        while True:
            message = self.link.next_response()
            if message.command_field != N_EVENT_REPORT_RQ:
                return message
            self._event(message)

    def _event(self, message: Message) -> None:
        sop_class, event = message.sop_class_uid, message.ushort(EVENT_TYPE_ID) or 0
        self.link.respond(
            message,
            N_EVENT_REPORT_RSP,
            0x0000,
            sop_instance_uid=message.sop_instance_uid or None,
            extra={EVENT_TYPE_ID: us(event)},
        )
        state, notable = _EVENTS.get(sop_class, {}).get(event, (f"event {event}", False))
        what = _CLASS_NAMES.get(sop_class, sop_class)
        detail = ""
        if message.dataset:
            syntax = self.link.contexts[message.context_id].transfer_syntax
            try:
                info = decode_identifier(message.dataset, syntax)
                detail = next((str(info.get(k)) for k in _EVENT_DETAIL if info.get(k)), "")
            except Exception:  # the event is told without its details
                log.warning("undecodable event information from the printer", exc_info=True)
        line = f"the printer reported {what} {state}" + (f" ({detail})" if detail else "")
        if notable:
            log.warning("%s", line)
            self.events.append(line)
        else:
            log.info("%s", line)


_NAMES: Mapping[int, str] = {
    N_GET_RQ: "N-GET",
    N_SET_RQ: "N-SET",
    N_ACTION_RQ: "N-ACTION",
    N_CREATE_RQ: "N-CREATE",
    N_DELETE_RQ: "N-DELETE",
}
_CLASS_NAMES: Mapping[str, str] = {
    PRINTER: "Printer",
    PRINT_JOB: "Print Job",
    FILM_SESSION: "Film Session",
    FILM_BOX: "Film Box",
    GREY_IMAGE_BOX: "Grayscale Image Box",
    COLOUR_IMAGE_BOX: "Color Image Box",
    ANNOTATION_BOX: "Annotation Box",
}


def _reference(sop_class: str, uid: str) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = sop_class
    ref.ReferencedSOPInstanceUID = uid
    return ref


def _at(image_box: Dataset, position: int) -> Dataset:
    """The image box's N-SET with its position (the printer's box of that number)."""
    out = Dataset()
    out.ImageBoxPosition = position
    for element in image_box:
        if element.keyword != "ImageBoxPosition":
            out.add(element)
    return out
