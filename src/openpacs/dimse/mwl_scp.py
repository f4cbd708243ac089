"""Modality Worklist SCP: C-FIND on the worklist (PS3.4 K), and MPPS N-CREATE / N-SET (PS3.4 F.7)
on the same listener (AE WORKLISTSCP, port 11113), translated into `openpacs.worklist` calls."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from openpacs.archive import db
from openpacs.archive.errors import ArchiveError, IndexUnavailable, InvalidQuery
from openpacs.config import Permission, WorklistSettings, WorklistStation
from openpacs.dicom.charset import CharsetDecision, apply_charset, decide_charset
from openpacs.dimse.admission import admission
from openpacs.dimse.engine import (
    AFFECTED_SOP_INSTANCE,
    C_FIND_RQ,
    C_FIND_RSP,
    OFFENDING_ELEMENT,
    Association,
    Handler,
    Listener,
    Message,
    Policy,
    at,
    ui,
)
from openpacs.dimse.identifier import IDENTIFIER_SYNTAXES, decode_identifier, encode_answer
from openpacs.dimse.sop import VERIFICATION
from openpacs.dimse.status import (
    CANCEL,
    DATASET_DOES_NOT_MATCH,
    OUT_OF_RESOURCES,
    PENDING,
    PENDING_WITH_WARNING,
    SUCCESS,
    UNABLE_TO_PROCESS,
)
from openpacs.logs import get_logger
from openpacs.worklist import answer, mpps
from openpacs.worklist import query as mwl

log = get_logger("worklist")

MWL_FIND = "1.2.840.10008.5.1.4.31"  # Modality Worklist Information Model - FIND
MPPS = "1.2.840.10008.3.1.2.3.3"  # Modality Performed Procedure Step
N_SET_RQ, N_SET_RSP = 0x0120, 0x8120
N_CREATE_RQ, N_CREATE_RSP = 0x0140, 0x8140
REQUESTED_SOP_INSTANCE = 0x1001

# N-service statuses (PS3.7 C.4, PS3.4 F.7.2).
NO_SUCH_OBJECT_INSTANCE = 0x0112
DUPLICATE_SOP_INSTANCE = 0x0111
PROCESSING_FAILURE = 0x0110
INVALID_ATTRIBUTE_VALUE = 0x0106


class WorklistService:
    """The handlers of the worklist listener over the index."""

    def __init__(
        self,
        settings: WorklistSettings,
        sessions: sessionmaker[Session],
        stations: Sequence[WorklistStation] = (),
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.stations = list(stations)
        self.allowed = admission(
            settings.calling_aes, sessions, Permission.find, service="worklist"
        )

    def handlers(self) -> dict[int, Handler]:
        return {C_FIND_RQ: self.find, N_CREATE_RQ: self.n_create, N_SET_RQ: self.n_set}

    def policy(self) -> Policy:
        return Policy(
            ae_title=self.settings.ae_title,
            require_called_ae=self.settings.require_called_ae,
            allowed_calling_aes=frozenset(self.settings.allowed_calling_aes),
            sop_classes=frozenset([VERIFICATION, MWL_FIND, MPPS]),
            transfer_syntaxes=frozenset(IDENTIFIER_SYNTAXES),
            acse_timeout=self.settings.acse_timeout,
            network_timeout=self.settings.network_timeout,
            max_associations=self.settings.max_associations,
            admit=self.allowed,
        )

    # -- C-FIND
    def find(self, assoc: Association, message: Message) -> None:
        started = time.perf_counter()
        syntax = assoc.contexts[message.context_id].transfer_syntax
        try:
            if message.dataset is None:
                raise InvalidQuery("identifier", "the C-FIND request carries no identifier")
            identifier, requested = _identifier(message.dataset, syntax)
            with self.sessions() as session:
                answers, ignored = mwl.find(
                    session,
                    identifier,
                    include_finished=self.settings.include_finished,
                    limit=self.settings.find_limit,
                )
                found = list(answers)
        except InvalidQuery as exc:
            self._refuse(assoc, message, DATASET_DOES_NOT_MATCH, str(exc), exc.keyword)
            return
        except (ArchiveError, SQLAlchemyError) as exc:
            code = OUT_OF_RESOURCES if isinstance(exc, IndexUnavailable) else UNABLE_TO_PROCESS
            self._refuse(assoc, message, code, f"the worklist is not available: {exc}")
            return
        policy = answer.policy_for(assoc.remote_ae, self.stations)
        status = PENDING_WITH_WARNING if ignored else PENDING
        message_id = message.message_id or 0
        for sent, ds in enumerate(found):
            if assoc.cancel_requested(message_id):
                assoc.respond(message, C_FIND_RSP, CANCEL)
                log.info("worklist query from %s cancelled after %d item(s)", assoc.peer, sent)
                return
            terms = answer.encode_for(ds, requested, policy)
            if terms:
                ds.SpecificCharacterSet = terms[0] if len(terms) == 1 else list(terms)
            assoc.respond(message, C_FIND_RSP, status, dataset=encode_answer(ds, syntax))
        assoc.respond(message, C_FIND_RSP, SUCCESS)
        log.info(
            "worklist query from %s: %d item(s) in %.3f s%s",
            assoc.peer,
            len(found),
            time.perf_counter() - started,
            f"; not matched on: {', '.join(ignored)}" if ignored else "",
        )

    def _refuse(
        self,
        assoc: Association,
        message: Message,
        code: int,
        comment: str,
        keyword: str | None = None,
    ) -> None:
        extra = None
        if keyword:
            tag = tag_for_keyword(keyword)
            extra = {OFFENDING_ELEMENT: at(tag)} if tag is not None else None
        log.warning("worklist query from %s refused with 0x%04X: %s", assoc.peer, code, comment)
        assoc.respond(message, C_FIND_RSP, code, comment=comment, extra=extra)

    # -- MPPS
    def n_create(self, assoc: Association, message: Message) -> None:
        uid = message.sop_instance_uid or f"2.25.{uuid.uuid4().int}"
        syntax = assoc.contexts[message.context_id].transfer_syntax
        try:
            ds = _attributes(message, syntax)
            with db.write_session(self.sessions) as session:
                step = mpps.create(session, uid, ds, assoc.remote_ae)
                linked = step.item_id
        except Exception as exc:
            self._n_failed(assoc, message, N_CREATE_RSP, uid, exc)
            return
        log.info(
            "MPPS %s started by %s%s",
            uid,
            assoc.peer,
            f" for worklist item {linked}" if linked else " (no worklist item matched)",
        )
        assoc.respond(
            message,
            N_CREATE_RSP,
            SUCCESS,
            sop_instance_uid=uid,
            extra={AFFECTED_SOP_INSTANCE: ui(uid)},
        )

    def n_set(self, assoc: Association, message: Message) -> None:
        uid = message.text(REQUESTED_SOP_INSTANCE)
        syntax = assoc.contexts[message.context_id].transfer_syntax
        try:
            ds = _attributes(message, syntax)
            with db.write_session(self.sessions) as session:
                step = mpps.update(session, uid, ds)
                status = step.status
        except Exception as exc:
            self._n_failed(assoc, message, N_SET_RSP, uid, exc)
            return
        log.info("MPPS %s from %s: %s", uid, assoc.peer, status)
        assoc.respond(message, N_SET_RSP, SUCCESS, sop_instance_uid=uid)

    def _n_failed(
        self, assoc: Association, message: Message, field: int, uid: str, exc: Exception
    ) -> None:
        code = _n_status(exc)
        comment = str(exc) if code != PROCESSING_FAILURE else f"could not record it: {exc}"
        level = log.exception if code == PROCESSING_FAILURE else log.warning
        level("MPPS %s from %s refused with 0x%04X: %s", uid, assoc.peer, code, exc)
        assoc.respond(message, field, code, comment=comment, sop_instance_uid=uid or None)


def _n_status(exc: Exception) -> int:
    if isinstance(exc, mpps.StepNotFound):
        return NO_SUCH_OBJECT_INSTANCE
    if isinstance(exc, mpps.StepExists):
        return DUPLICATE_SOP_INSTANCE
    if isinstance(exc, mpps.InvalidStep):
        return INVALID_ATTRIBUTE_VALUE
    return PROCESSING_FAILURE


def _attributes(message: Message, syntax: str) -> Dataset:
    if message.dataset is None:
        raise mpps.InvalidStep("the request carries no attributes")
    try:
        ds = decode_identifier(message.dataset, syntax)
        _decode(ds)
        return ds
    except Exception as exc:
        raise mpps.InvalidStep(f"unreadable attributes: {exc}") from exc


def _identifier(data: bytes, syntax: str) -> tuple[Dataset, tuple[str, ...]]:
    """The query with its text decoded, and the character set it was written in (what the
    modality reads: PS3.5 6.1)."""
    try:
        identifier = decode_identifier(data, syntax)
        decision = _decode(identifier)
    except Exception as exc:  # pydicom raises many types on malformed input
        raise InvalidQuery("identifier", f"unreadable: {exc}") from exc
    return identifier, decision.effective


def _decode(ds: Dataset) -> CharsetDecision:
    """Decode the text of `ds` by the charset it declares (repaired where a modality
    misspells it), every element read now, while errors still have a place to go."""
    decision = decide_charset(ds)
    apply_charset(ds, decision)
    for element in ds.iterall():
        _ = element.value
    return decision


def make_worklist_listener(
    settings: WorklistSettings,
    sessions: sessionmaker[Session],
    stations: Sequence[WorklistStation] = (),
) -> Listener:
    service = WorklistService(settings, sessions, stations)
    return Listener(
        service.policy(),
        service.handlers(),
        settings.host,
        settings.port,
        None,  # nothing is received to disk here
        "worklist",
    )


__all__ = ["MPPS", "MWL_FIND", "WorklistService", "make_worklist_listener"]
