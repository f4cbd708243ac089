"""Query/Retrieve SCP: C-FIND, C-MOVE and C-GET, Patient Root and Study Root, on the engine.

Each handler translates: decode the identifier, ask the core (`archive.query.find` for C-FIND,
`archive.retrieve.select_instances` for the retrieves), answer in DIMSE terms. Matching,
selection and transcoding rules live in the core and in `dimse/sender.py`.

Choices worth knowing:
- Answers are written in the character set the query asked for when every value fits it, else
  in ISO_IR 192 (UTF-8); a query without one gets ISO_IR 192 only when a value needs it.
- `qrscp.find_limit` reached: the answers up to the limit, then Failure 0xA700 (Refused: Out of
  Resources) with an ErrorComment naming the limit. Not Success: a truncated list presented as
  complete would hide studies from whoever reads it.
- C-MOVE destinations come from an injected `resolve(ae_title)`, so the node registry decides
  where an AE title lives; one sub-association per C-MOVE, so moves run independently.
- Pending C-MOVE/C-GET responses with live counts every 50 sub-operations and at least every
  second; C-CANCEL-RQ is read between answers and between sub-operations.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from pydicom import config
from pydicom.datadict import tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from sqlalchemy.orm import Session, sessionmaker

from openpacs.archive import query, retrieve
from openpacs.archive.errors import ArchiveError, IndexUnavailable
from openpacs.archive.storage import FileSystemStorage
from openpacs.config import Permission, QrScpSettings
from openpacs.dicom import codecs
from openpacs.dicom.charset import (
    TEXT_VRS,
    answer_charset,
    answer_charset_of,
    apply_charset,
    decide_charset,
)
from openpacs.dimse import sender
from openpacs.dimse.admission import admission
from openpacs.dimse.engine import (
    C_FIND_RQ,
    C_FIND_RSP,
    C_GET_RQ,
    C_GET_RSP,
    C_MOVE_RQ,
    C_MOVE_RSP,
    COMPLETED,
    FAILED,
    MOVE_DESTINATION,
    OFFENDING_ELEMENT,
    REMAINING,
    WARNING,
    Association,
    Handler,
    Listener,
    Message,
    Policy,
    at,
    us,
)
from openpacs.dimse.identifier import (
    IDENTIFIER_SYNTAXES,
    decode_identifier,
    encode_answer,
    encode_elements,
    encode_identifier,
)
from openpacs.dimse.sop import (
    PATIENT_ROOT_FIND,
    PATIENT_ROOT_GET,
    PATIENT_ROOT_MOVE,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
    VERIFICATION,
    storage_sop_classes,
)
from openpacs.dimse.status import (
    CANCEL,
    DATASET_DOES_NOT_MATCH,
    MOVE_DESTINATION_UNKNOWN,
    NOT_AUTHORIZED,
    PENDING,
    PENDING_WITH_WARNING,
    SUBOPERATIONS_WARNING,
    SUCCESS,
    UNABLE_TO_CALCULATE_MATCHES,
    UNABLE_TO_PERFORM_SUBOPERATIONS,
    UNABLE_TO_PROCESS,
    query_status_for,
)
from openpacs.logs import get_logger

log = get_logger("qrscp")

P, S = query.Model.PATIENT_ROOT, query.Model.STUDY_ROOT
FIND_MODELS = {PATIENT_ROOT_FIND: P, STUDY_ROOT_FIND: S}
MOVE_MODELS = {PATIENT_ROOT_MOVE: P, STUDY_ROOT_MOVE: S}
GET_MODELS = {PATIENT_ROOT_GET: P, STUDY_ROOT_GET: S}

# C-GET storage contexts: of the requestor's syntaxes, the first lossless one we can write, so
# that any stored object can be converted into it without loss (a syntax we could only read,
# or a lossy one, would fit only objects stored in it).
GET_STORE_SYNTAXES = frozenset(
    uid for uid in codecs.WRITABLE - codecs.LOSSY if codecs.can_encode(uid)
)

QUERY_RETRIEVE_LEVEL = 0x00080052
SPECIFIC_CHARACTER_SET = 0x00080005
RETRIEVE_AE_TITLE = 0x00080054
INSTANCE_AVAILABILITY = 0x00080056

PENDING_EVERY = 50  # sub-operations between pending C-MOVE/C-GET responses
PENDING_INTERVAL = 1.0  # seconds: a pending response at least this often while work is done

# Where a C-MOVE destination AE title listens: (host, port), or None when unknown.
Resolve = Callable[[str], tuple[str, int] | None]


class Refused(Exception):
    """A request answered with a failure status before any work."""

    def __init__(self, status: int, comment: str, offending: int | None = None) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment
        self.offending = offending


@dataclass(frozen=True)
class Request:
    """A decoded C-FIND, C-MOVE or C-GET request."""

    model: query.Model
    level: query.Level
    identifier: Dataset
    charset: tuple[str, ...]


# ----------------------------------------------------------------------------- datasets


def _request(assoc: Association, message: Message, models: Mapping[str, query.Model]) -> Request:
    if message.dataset is None:
        raise Refused(UNABLE_TO_PROCESS, "request without an identifier")
    syntax = assoc.contexts[message.context_id].transfer_syntax
    try:
        identifier = decode_identifier(message.dataset, syntax)
        decision = decide_charset(identifier)
        apply_charset(identifier, decision)
        level_text = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    except Exception as exc:  # pydicom raises many types on malformed input
        raise Refused(UNABLE_TO_PROCESS, f"unreadable identifier: {exc}") from exc
    try:
        level = query.Level(level_text)
    except ValueError:
        raise Refused(
            DATASET_DOES_NOT_MATCH,
            f"QueryRetrieveLevel {level_text!r} is not PATIENT, STUDY, SERIES or IMAGE",
            QUERY_RETRIEVE_LEVEL,
        ) from None
    model = models[assoc.contexts[message.context_id].abstract_syntax]
    return Request(model, level, identifier, decision.effective)


def _offending(exc: Exception) -> int | None:
    """The tag an InvalidQuery names (a sequence item's key: its sequence), if it is one."""
    keyword = getattr(exc, "keyword", None)
    if not isinstance(keyword, str):
        return None
    return tag_for_keyword(keyword.split(">")[0])


def extended_negotiation(sop_class: str, info: bytes) -> bytes | None:
    """SOP class extended negotiation (PS3.4 C.3.4/C.5): what we grant of what is asked.

    C-FIND: relational queries, combined date-time matching, fuzzy matching of person names
    (byte 3, timezone adjustment, is declined). C-MOVE/C-GET: relational retrieval."""
    if sop_class in FIND_MODELS:
        return bytes(int(i < 3 and b == 1) for i, b in enumerate(info[:4]))
    if sop_class in MOVE_MODELS or sop_class in GET_MODELS:
        return bytes(int(i == 0 and b == 1) for i, b in enumerate(info[:1]))
    return None


def _granted(assoc: Association, sop_class: str, byte: int) -> bool:
    info = assoc.extended.get(sop_class, b"")
    return len(info) > byte and info[byte] == 1


# ----------------------------------------------------------------------------- the service


class QrService:
    """The handlers of one Q/R listener over the archive's index and storage."""

    def __init__(
        self,
        settings: QrScpSettings,
        sessions: sessionmaker[Session],
        storage: FileSystemStorage,
        resolve: Resolve,
        *,
        pending_every: int = PENDING_EVERY,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.storage = storage
        self.resolve = resolve
        self.pending_every = pending_every
        # With calling_aes = "registered", each request is checked against its own permission
        # (the association was admitted for any one of them).
        self.allowed = {
            permission: admission(settings.calling_aes, sessions, permission, service="qrscp")
            for permission in (Permission.find, Permission.move, Permission.get)
        }

    def _check_permission(self, assoc: Association, permission: Permission) -> None:
        allowed = self.allowed[permission]
        if allowed is not None and not allowed(assoc.remote_ae):
            raise Refused(
                NOT_AUTHORIZED,
                f"{assoc.remote_ae} may not {permission.value}: grant the node that permission",
            )

    def handlers(self) -> dict[int, Handler]:
        return {C_FIND_RQ: self.find, C_MOVE_RQ: self.move, C_GET_RQ: self.get}

    def policy(self) -> Policy:
        return Policy(
            ae_title=self.settings.ae_title,
            require_called_ae=self.settings.require_called_ae,
            allowed_calling_aes=frozenset(self.settings.allowed_calling_aes),
            sop_classes=frozenset([VERIFICATION, *FIND_MODELS, *MOVE_MODELS, *GET_MODELS]),
            transfer_syntaxes=frozenset(IDENTIFIER_SYNTAXES),
            acse_timeout=self.settings.acse_timeout,
            network_timeout=self.settings.network_timeout,
            max_associations=self.settings.max_associations,
            reverse_classes=frozenset(storage_sop_classes()),
            reverse_syntaxes=GET_STORE_SYNTAXES,
            extended=extended_negotiation,
            admit=admission(
                self.settings.calling_aes,
                self.sessions,
                Permission.find,
                Permission.move,
                Permission.get,
                service="qrscp",
            ),
        )

    # -- C-FIND
    def find(self, assoc: Association, message: Message) -> None:
        started = time.perf_counter()
        try:
            self._check_permission(assoc, Permission.find)
            request = _request(assoc, message, FIND_MODELS)
            answers = self._answers(assoc, message, request)
        except (Refused, ArchiveError) as exc:
            self._refuse(assoc, message, C_FIND_RSP, exc, "C-FIND")
            return
        status = PENDING_WITH_WARNING if answers.ignored else PENDING
        syntax = assoc.contexts[message.context_id].transfer_syntax
        message_id = message.message_id or 0
        sent = 0
        for data in self.encoded(answers, request, syntax):
            if assoc.cancel_requested(message_id):
                assoc.respond(message, C_FIND_RSP, CANCEL)
                log.info("C-FIND from %s cancelled after %d answer(s)", assoc.peer, sent)
                return
            assoc.respond(message, C_FIND_RSP, status, dataset=data)
            sent += 1
        if answers.more:
            limit = self.settings.find_limit
            comment = f"more than {limit} matches (qrscp.find_limit); narrow the query"
            assoc.respond(message, C_FIND_RSP, 0xA700, comment=comment)
            log.warning("C-FIND from %s stopped at %d answers: find_limit", assoc.peer, sent)
            return
        assoc.respond(message, C_FIND_RSP, SUCCESS)
        log.info(
            "C-FIND %s %s from %s: %d answer(s) in %.3f s%s",
            request.model.value,
            request.level.value,
            assoc.peer,
            sent,
            time.perf_counter() - started,
            f"; not matched on: {', '.join(answers.ignored)}" if answers.ignored else "",
        )

    def _answers(self, assoc: Association, message: Message, request: Request) -> query.Answers:
        sop_class = assoc.contexts[message.context_id].abstract_syntax
        options = query.QueryOptions(
            limit=self.settings.find_limit or None,
            relational=_granted(assoc, sop_class, 0),
            combined_datetime=_granted(assoc, sop_class, 1),
            fuzzy=_granted(assoc, sop_class, 2),
        )
        with self.sessions() as session:
            return query.find(session, request.identifier, request.level, request.model, options)

    def encoded(self, answers: query.Answers, request: Request, syntax: str) -> Iterator[bytes]:
        """Each answer completed (`_complete`) and encoded in `syntax`. Flat answers skip
        pydicom's datasets (`_completed_record`): the same bytes at a fifth of the cost."""
        if not answers.flat or syntax == codecs.EXPLICIT_VR_BE:
            for ds in answers:
                self._complete(ds, request)
                yield encode_answer(ds, syntax)
            return
        implicit = syntax == codecs.IMPLICIT_VR_LE
        for record in answers.records():
            elements, charset = self._completed_record(record, request)
            data = encode_elements(elements, charset, implicit=implicit)
            if data is None:  # a value pydicom must write
                ds = Dataset()
                for tag, vr, value in elements:
                    ds.add(DataElement(tag, vr, value, validation_mode=config.IGNORE))
                data = encode_identifier(ds, syntax)
            yield data

    def _completed_record(
        self, record: list[query.Element], request: Request
    ) -> tuple[list[query.Element], str | list[str] | None]:
        """`_complete` for a record: the elements in tag order and the character set."""
        filled = {RETRIEVE_AE_TITLE: self.settings.ae_title, INSTANCE_AVAILABILITY: "ONLINE"}
        elements: list[query.Element] = [
            (tag, vr, filled.get(tag, value)) for tag, vr, value in record
        ]
        elements.append((Tag(QUERY_RETRIEVE_LEVEL), "CS", request.level.value))
        texts = (
            str(one)
            for _, vr, value in elements
            if vr in TEXT_VRS and value is not None
            for one in (value if isinstance(value, list) else [value])
        )
        terms = answer_charset_of(texts, request.charset)
        charset = (terms[0] if len(terms) == 1 else list(terms)) if terms else None
        if charset is not None:
            elements.append((Tag(SPECIFIC_CHARACTER_SET), "CS", charset))
        elements.sort(key=lambda element: element[0])
        return elements, charset

    def _complete(self, ds: Dataset, request: Request) -> None:
        """What the query engine leaves to the caller: level, where to retrieve, charset."""
        ds.QueryRetrieveLevel = request.level.value
        if "RetrieveAETitle" in ds:
            ds.RetrieveAETitle = self.settings.ae_title
        if "InstanceAvailability" in ds:
            ds.InstanceAvailability = "ONLINE"
        terms = answer_charset(ds, request.charset)
        if terms:
            ds.SpecificCharacterSet = terms[0] if len(terms) == 1 else list(terms)

    def _refuse(
        self,
        assoc: Association,
        message: Message,
        command_field: int,
        exc: Exception,
        what: str,
        status: int | None = None,
    ) -> None:
        if isinstance(exc, Refused):
            code, comment, offending = exc.status, exc.comment, exc.offending
        else:
            code, comment, offending = query_status_for(exc), str(exc), _offending(exc)
        code = status if status is not None else code
        extra = {OFFENDING_ELEMENT: at(offending)} if offending is not None else None
        log.warning("%s from %s refused with 0x%04X: %s", what, assoc.peer, code, comment)
        assoc.respond(message, command_field, code, comment=comment, extra=extra)

    # -- C-MOVE and C-GET
    def _select(
        self,
        assoc: Association,
        message: Message,
        models: Mapping[str, query.Model],
    ) -> list[retrieve.StoredInstance]:
        request = _request(assoc, message, models)
        relational = _granted(assoc, assoc.contexts[message.context_id].abstract_syntax, 0)
        with self.sessions() as session:
            return retrieve.select_instances(
                session,
                self.storage,
                request.identifier,
                request.level,
                request.model,
                relational=relational,
            )

    def move(self, assoc: Association, message: Message) -> None:
        destination = message.text(MOVE_DESTINATION)
        try:
            self._check_permission(assoc, Permission.move)
            address = self.resolve(destination) if destination else None
            if address is None:
                raise Refused(
                    MOVE_DESTINATION_UNKNOWN,
                    f"move destination {destination!r} is unknown; register it as a node",
                )
            instances = self._select(assoc, message, MOVE_MODELS)
        except (Refused, ArchiveError) as exc:
            status = UNABLE_TO_CALCULATE_MATCHES if isinstance(exc, IndexUnavailable) else None
            self._refuse(assoc, message, C_MOVE_RSP, exc, "C-MOVE", status)
            return
        peer = sender.Peer(destination, *address)
        progress = _Progress(assoc, message, C_MOVE_RSP, self.pending_every)
        started = time.perf_counter()
        try:
            report = sender.send(
                peer,
                instances,
                calling_ae=self.settings.ae_title,
                timeout=self.settings.dimse_timeout,
                originator=sender.Originator(assoc.remote_ae, message.message_id or 0),
                cancelled=progress.cancelled,
                progress=progress,
                temp_dir=self.storage.temp_dir,
            )
        except sender.AssociationFailed as exc:
            report = sender.SendReport(total=len(instances), error=str(exc))
            for instance in instances:
                report.add(sender.StoreOutcome(instance.sop_instance_uid, None, report.error))
        progress.finish(report)
        _log_retrieve("C-MOVE", assoc, report, f" to {peer}", started)

    def get(self, assoc: Association, message: Message) -> None:
        try:
            self._check_permission(assoc, Permission.get)
            instances = self._select(assoc, message, GET_MODELS)
        except (Refused, ArchiveError) as exc:
            status = UNABLE_TO_CALCULATE_MATCHES if isinstance(exc, IndexUnavailable) else None
            self._refuse(assoc, message, C_GET_RSP, exc, "C-GET", status)
            return
        progress = _Progress(assoc, message, C_GET_RSP, self.pending_every)
        started = time.perf_counter()
        scu = sender.StoreSCU(assoc, reverse=True, temp_dir=self.storage.temp_dir)
        # The association is the requestor's own: if it fails, there is nobody to answer.
        report = sender.send_all(
            scu,
            instances,
            cancelled=progress.cancelled,
            progress=progress,
            catch_link_errors=False,
        )
        progress.finish(report)
        _log_retrieve("C-GET", assoc, report, "", started)


def _log_retrieve(
    what: str, assoc: Association, report: sender.SendReport, where: str, started: float
) -> None:
    log.info(
        "%s for %s%s: %d of %d instance(s) sent (%d failed, %d warning(s)%s) in %.2f s%s",
        what,
        assoc.peer,
        where,
        report.completed + report.warnings,
        report.total,
        report.failed,
        report.warnings,
        ", cancelled" if report.cancelled else "",
        time.perf_counter() - started,
        f"; {report.error}" if report.error else "",
    )


class _Progress:
    """Pending responses with live counts, C-CANCEL between sub-operations, the final response.

    A pending response goes out after every `every` sub-operations, and after the first one
    finished a second or more after the last pending response: live counts for a slow move,
    without a response per instance for a fast one (each costs both sides a wake-up, ~10 % of
    the rate of a fast C-MOVE on two cores)."""

    def __init__(
        self,
        assoc: Association,
        message: Message,
        command_field: int,
        every: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.assoc = assoc
        self.message = message
        self.command_field = command_field
        self.message_id = message.message_id or 0
        self.every = every
        self.clock = clock
        self.last_done = 0
        self.last_time = clock()

    def cancelled(self) -> bool:
        return self.assoc.cancel_requested(self.message_id)

    def __call__(self, outcome: sender.StoreOutcome, report: sender.SendReport) -> None:
        done = report.done
        now = self.clock()
        if done - self.last_done < self.every and now - self.last_time < PENDING_INTERVAL:
            return
        self.last_done, self.last_time = done, now
        self.assoc.respond(
            self.message, self.command_field, PENDING, extra=_counts(report, remaining=True)
        )

    def finish(self, report: sender.SendReport) -> None:
        failed = report.failed_uids
        if report.cancelled:
            status = CANCEL
        elif not failed and not report.warnings:
            status = SUCCESS
        elif report.completed + report.warnings:
            status = SUBOPERATIONS_WARNING
        else:
            status = UNABLE_TO_PERFORM_SUBOPERATIONS
        dataset = None
        if failed:
            ds = Dataset()
            ds.FailedSOPInstanceUIDList = failed
            syntax = self.assoc.contexts[self.message.context_id].transfer_syntax
            dataset = encode_identifier(ds, syntax)
        self.assoc.respond(
            self.message,
            self.command_field,
            status,
            comment=report.error,
            extra=_counts(report, remaining=report.cancelled),
            dataset=dataset,
        )


def _counts(report: sender.SendReport, *, remaining: bool) -> dict[int, bytes]:
    counts = {
        COMPLETED: _count(report.completed),
        FAILED: _count(report.failed),
        WARNING: _count(report.warnings),
    }
    if remaining:  # PS3.4 C.4.2.1.6: only in pending and cancel responses
        counts[REMAINING] = _count(report.pending)
    return counts


def _count(value: int) -> bytes:
    return us(min(value, 0xFFFF))  # US: a patient with more instances shows 65535


def make_qr_listener(
    settings: QrScpSettings,
    sessions: sessionmaker[Session],
    storage: FileSystemStorage,
    resolve: Resolve,
    *,
    pending_every: int = PENDING_EVERY,
) -> Listener:
    service = QrService(settings, sessions, storage, resolve, pending_every=pending_every)
    return Listener(
        service.policy(),
        service.handlers(),
        settings.host,
        settings.port,
        None,  # nothing is received to disk here
        "qrscp",
    )


__all__ = ["QrService", "Resolve", "make_qr_listener"]
