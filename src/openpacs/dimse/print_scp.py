"""Print SCP: Basic Grayscale and Basic Color Print Management (PS3.4 H) on our engine (AE
PRINTSCP, port 11115), translated into `openpacs.printing` calls.

Each association gets its own `PrintSession` (a film session and what hangs under it exist only
within the association that made them, PS3.4 H.4.1); the listener's `closed` hook ends it
however the association ends, so a job never stays "received" after its modality left.
Handlers decode the request, call the session, and map `printing.errors` to N-service statuses
through `dimse.status.PRINT_STATUS`; every refusal carries the reason in ErrorComment and leaves
the session as it was.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from sqlalchemy.orm import Session, sessionmaker

from openpacs import __version__
from openpacs.config import Permission, PrintScpSettings
from openpacs.dicom.charset import apply_charset, decide_charset
from openpacs.dimse.admission import admission
from openpacs.dimse.engine import (
    AFFECTED_SOP_CLASS,
    AFFECTED_SOP_INSTANCE,
    REQUESTED_SOP_CLASS,
    Association,
    Handler,
    Listener,
    Message,
    Policy,
    at,
    ui,
    us,
)
from openpacs.dimse.identifier import IDENTIFIER_SYNTAXES, decode_identifier, encode_identifier
from openpacs.dimse.sop import VERIFICATION
from openpacs.dimse.status import (
    EMPTY_FILM_BOX,
    EMPTY_FILM_SESSION,
    NO_SUCH_SOP_CLASS,
    PROCESSING_FAILURE,
    SUCCESS,
    print_status_for,
)
from openpacs.logs import get_logger
from openpacs.printing import errors
from openpacs.printing.session import (
    ANNOTATION_BOX,
    COLOUR_IMAGE_BOX,
    COLOUR_META,
    FILM_BOX,
    FILM_SESSION,
    GREY_IMAGE_BOX,
    GREY_META,
    PRESENTATION_LUT,
    PRINTER,
    PRINTER_INSTANCE,
    Defaults,
    Keeper,
    PrintSession,
    unsupported,
)

log = get_logger("printscp")

N_GET_RQ, N_GET_RSP = 0x0110, 0x8110
N_SET_RQ, N_SET_RSP = 0x0120, 0x8120
N_ACTION_RQ, N_ACTION_RSP = 0x0130, 0x8130
N_CREATE_RQ, N_CREATE_RSP = 0x0140, 0x8140
N_DELETE_RQ, N_DELETE_RSP = 0x0150, 0x8150
REQUESTED_SOP_INSTANCE = 0x1001
ATTRIBUTE_IDENTIFIER_LIST = 0x1005
ACTION_TYPE_ID = 0x1008

KNOWN_CLASSES = frozenset(
    {
        FILM_SESSION,
        FILM_BOX,
        GREY_IMAGE_BOX,
        COLOUR_IMAGE_BOX,
        PRINTER,
        PRESENTATION_LUT,
        ANNOTATION_BOX,
    }
)


class NoSuchClass(errors.PrintError):
    """A request names a SOP class this SCP does not know."""


class PrintService:
    """The handlers of the print listener; one `PrintSession` per association."""

    def __init__(
        self,
        settings: PrintScpSettings,
        keeper: Keeper,
        sessions: sessionmaker[Session] | None = None,
    ) -> None:
        self.settings = settings
        self.keeper = keeper
        self.defaults = Defaults(
            film_size=settings.film_size,
            orientation=settings.film_orientation,
            magnification=settings.magnification,
            border_density=settings.border_density,
            empty_image_density=settings.empty_image_density,
        )
        self.allowed = (
            admission(settings.calling_aes, sessions, Permission.print, service="printscp")
            if sessions is not None
            else None
        )
        self._sessions: dict[Association, PrintSession] = {}
        self._lock = threading.Lock()

    def handlers(self) -> dict[int, Handler]:
        return {
            N_GET_RQ: self.n_get,
            N_SET_RQ: self.n_set,
            N_ACTION_RQ: self.n_action,
            N_CREATE_RQ: self.n_create,
            N_DELETE_RQ: self.n_delete,
        }

    def policy(self) -> Policy:
        return Policy(
            ae_title=self.settings.ae_title,
            require_called_ae=self.settings.require_called_ae,
            allowed_calling_aes=frozenset(self.settings.allowed_calling_aes),
            sop_classes=frozenset(
                [VERIFICATION, GREY_META, COLOUR_META, PRESENTATION_LUT, PRINTER, ANNOTATION_BOX]
            ),
            transfer_syntaxes=frozenset(IDENTIFIER_SYNTAXES),
            acse_timeout=self.settings.acse_timeout,
            network_timeout=self.settings.network_timeout,
            max_associations=self.settings.max_associations,
            admit=self.allowed,
        )

    def session(self, assoc: Association) -> PrintSession:
        with self._lock:
            found = self._sessions.get(assoc)
            if found is None:
                found = PrintSession(assoc.calling_ae, assoc.called_ae, self.keeper, self.defaults)
                self._sessions[assoc] = found
            return found

    def closed(self, assoc: Association) -> None:
        """The association ended (released, aborted, dropped): so does its print session."""
        with self._lock:
            session = self._sessions.pop(assoc, None)
        if session is not None:
            session.end("the association ended before anything was printed")

    # -- requests
    def n_create(self, assoc: Association, message: Message) -> None:
        sop_class = message.sop_class_uid
        uid = message.sop_instance_uid or None

        def create() -> tuple[str, Dataset | None, int]:
            session, attrs = self.session(assoc), _attributes(assoc, message)
            colour = _colour(assoc, message)
            if sop_class == FILM_SESSION:
                made, ds = session.create_film_session(uid, attrs, colour=colour)
                log.info("film session %s from %s (job %s)", made, assoc.peer, session.job_id)
            elif sop_class == FILM_BOX:
                made, ds = session.create_film_box(uid, attrs, colour=colour)
                log.info("film box %s from %s: %s", made, assoc.peer, ds.ImageDisplayFormat)
            elif sop_class == PRESENTATION_LUT:
                made, ds = session.create_lut(uid, attrs)
            else:
                raise _not_for(sop_class, "N-CREATE")
            return made, ds, SUCCESS

        self._answer(assoc, message, N_CREATE_RSP, sop_class, uid or "", create)

    def n_set(self, assoc: Association, message: Message) -> None:
        sop_class, uid = _requested(message)

        def set_() -> tuple[str, Dataset | None, int]:
            if message.oversized:
                raise errors.ResourceLimit(
                    f"dataset larger than {self.settings.max_image_box_bytes} bytes "
                    "(printscp.max_image_box_bytes)"
                )
            session, attrs = self.session(assoc), _attributes(assoc, message)
            answer: Dataset | None = None
            if sop_class == FILM_SESSION:
                session.set_film_session(uid, attrs)
            elif sop_class == FILM_BOX:
                session.set_film_box(uid, attrs)
            elif sop_class in (GREY_IMAGE_BOX, COLOUR_IMAGE_BOX):
                answer = session.set_image_box(uid, sop_class, attrs)
            elif sop_class == ANNOTATION_BOX:
                answer = session.set_annotation_box(uid, attrs)
            else:
                raise _not_for(sop_class, "N-SET")
            return uid, answer, SUCCESS

        self._answer(assoc, message, N_SET_RSP, sop_class, uid, set_)

    def n_get(self, assoc: Association, message: Message) -> None:
        sop_class, uid = _requested(message)

        def get() -> tuple[str, Dataset | None, int]:
            if sop_class != PRINTER:
                raise _not_for(sop_class, "N-GET")
            if uid != PRINTER_INSTANCE:
                raise errors.NoSuchInstance(f"the Printer is {PRINTER_INSTANCE}, not {uid}")
            return uid, self.printer(_tags(message.command.get(ATTRIBUTE_IDENTIFIER_LIST))), SUCCESS

        self._answer(assoc, message, N_GET_RSP, sop_class, uid, get)

    def n_action(self, assoc: Association, message: Message) -> None:
        sop_class, uid = _requested(message)
        action = message.ushort(ACTION_TYPE_ID) or 0

        def act() -> tuple[str, Dataset | None, int]:
            session = self.session(assoc)
            if sop_class == FILM_BOX:
                empty = session.print_film_box(uid, action)
                status = EMPTY_FILM_BOX if empty else SUCCESS
            elif sop_class == FILM_SESSION:
                empty = session.print_film_session(uid, action)
                status = EMPTY_FILM_SESSION if empty else SUCCESS
            else:
                raise _not_for(sop_class, "N-ACTION")
            return uid, None, status

        self._answer(
            assoc, message, N_ACTION_RSP, sop_class, uid, act, {ACTION_TYPE_ID: us(action)}
        )

    def n_delete(self, assoc: Association, message: Message) -> None:
        sop_class, uid = _requested(message)

        def delete() -> tuple[str, Dataset | None, int]:
            session = self.session(assoc)
            if sop_class == FILM_SESSION:
                session.delete_film_session(uid)
            elif sop_class == FILM_BOX:
                session.delete_film_box(uid)
            elif sop_class == PRESENTATION_LUT:
                session.delete_lut(uid)
            else:
                raise _not_for(sop_class, "N-DELETE")
            return uid, None, SUCCESS

        self._answer(assoc, message, N_DELETE_RSP, sop_class, uid, delete)

    def printer(self, keys: list[int]) -> Dataset:
        """The Printer's attributes (PS3.3 C.13.9), only `keys` when the SCU listed some."""
        ds = Dataset()
        ds.PrinterStatus = "NORMAL"
        ds.PrinterStatusInfo = "NORMAL"
        ds.PrinterName = self.settings.printer_name
        ds.Manufacturer = "openpacs"
        ds.ManufacturerModelName = "openpacs Print SCP"
        ds.SoftwareVersions = __version__
        if not keys:
            return ds
        chosen = Dataset()
        for tag in keys:
            if tag in ds:
                chosen.add(ds[tag])
        return chosen

    def _answer(
        self,
        assoc: Association,
        message: Message,
        field: int,
        sop_class: str,
        uid: str,
        work: Callable[[], tuple[str, Dataset | None, int]],
        extra: dict[int, bytes] | None = None,
    ) -> None:
        """Run the request and answer it: success with the object's attributes, or the
        status of what went wrong with the reason."""
        elements = dict(extra or {})
        if sop_class:
            elements[AFFECTED_SOP_CLASS] = ui(sop_class)
        try:
            uid, answer, status = work()
        except Exception as exc:
            code = NO_SUCH_SOP_CLASS if isinstance(exc, NoSuchClass) else print_status_for(exc)
            if code == PROCESSING_FAILURE and not isinstance(exc, errors.PrintError):
                log.exception("print request 0x%04X from %s failed", field & 0x7FFF, assoc.peer)
            else:
                log.warning(
                    "print request 0x%04X from %s refused with 0x%04X: %s",
                    field & 0x7FFF,
                    assoc.peer,
                    code,
                    exc,
                )
            if isinstance(exc, errors.InvalidValue):
                tag = tag_for_keyword(exc.keyword)
                if tag is not None:
                    elements[ATTRIBUTE_IDENTIFIER_LIST] = at(tag)
            if uid:
                elements[AFFECTED_SOP_INSTANCE] = ui(uid)
            known = isinstance(exc, errors.PrintError)
            comment = str(exc) if known else "internal error; see the log"
            assoc.respond(message, field, code, comment=comment, extra=elements)
            return
        if uid:
            elements[AFFECTED_SOP_INSTANCE] = ui(uid)
        syntax = assoc.contexts[message.context_id].transfer_syntax
        data = encode_identifier(answer, syntax) if answer is not None else None
        assoc.respond(message, field, status, extra=elements, dataset=data)


def _requested(message: Message) -> tuple[str, str]:
    return message.text(REQUESTED_SOP_CLASS), message.text(REQUESTED_SOP_INSTANCE)


def _not_for(sop_class: str, operation: str) -> errors.PrintError:
    if sop_class not in KNOWN_CLASSES:
        return NoSuchClass(f"SOP class {sop_class or '(none)'} is not a print class we serve")
    return unsupported(operation, sop_class)


def _colour(assoc: Association, message: Message) -> bool:
    return assoc.contexts[message.context_id].abstract_syntax == COLOUR_META


def _attributes(assoc: Association, message: Message) -> Dataset:
    """The request's dataset decoded, its text by the charset it declares, every element read
    now while errors still have a request to be reported on; none: an empty dataset."""
    if not message.dataset:
        return Dataset()
    syntax = assoc.contexts[message.context_id].transfer_syntax
    try:
        ds = decode_identifier(message.dataset, syntax)
        apply_charset(ds, decide_charset(ds))
        for element in ds.iterall():
            _ = element.value
    except Exception as exc:  # pydicom raises many kinds on malformed input
        raise errors.InvalidValue("dataset", f"unreadable: {exc}") from exc
    return ds


def _tags(value: bytes | None) -> list[int]:
    """An Attribute Identifier List (AT values, implicit VR LE in the command)."""
    if not value:
        return []
    pairs = struct.iter_unpack("<HH", value[: len(value) // 4 * 4])
    return [(group << 16) | element for group, element in pairs]


def make_print_listener(
    settings: PrintScpSettings, keeper: Keeper, sessions: sessionmaker[Session] | None = None
) -> Listener:
    service = PrintService(settings, keeper, sessions)
    return Listener(
        service.policy(),
        service.handlers(),
        settings.host,
        settings.port,
        None,  # datasets are held in memory, up to max_image_box_bytes
        "printscp",
        max_dataset=settings.max_image_box_bytes,
        answer_oversized=True,
        closed=service.closed,
    )


__all__ = ["PrintService", "make_print_listener"]
