"""C-FIND, C-MOVE and C-GET as SCU: query a node, have it send to an AE title, or to us.

Each runs one request over its own association on our engine: pending responses become
answers (C-FIND) or live counts (C-MOVE, C-GET), and a caller's cancel flag, looked at while
waiting, becomes a C-CANCEL-RQ. C-GET's C-STORE sub-operations arrive on the same association,
are spooled to temp files by the engine exactly as the Store SCP spools them, and are handed
to `store` (the archive's ingest path).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import Dataset
from pynetdicom import StoragePresentationContexts

from openpacs.dicom import codecs
from openpacs.dimse.engine import (
    AFFECTED_SOP_CLASS,
    C_CANCEL_RQ,
    C_FIND_RQ,
    C_FIND_RSP,
    C_GET_RQ,
    C_GET_RSP,
    C_MOVE_RQ,
    C_MOVE_RSP,
    C_STORE_RQ,
    C_STORE_RSP,
    COMMAND_FIELD,
    COMPLETED,
    DATASET_PRESENT,
    DATASET_TYPE,
    ERROR_COMMENT,
    FAILED,
    MESSAGE_ID,
    MOVE_DESTINATION,
    NO_DATASET,
    PRIORITY,
    REMAINING,
    RESPONDED_TO,
    UNEXPECTED_PARAMETER,
    WARNING,
    Abort,
    Link,
    Message,
    NoAnswer,
    PeerGone,
    Proposal,
    ae,
    encode_command,
    ui,
    us,
)
from openpacs.dimse.identifier import IDENTIFIER_SYNTAXES, decode_identifier, encode_identifier
from openpacs.dimse.scu import Peer, associate, broke
from openpacs.dimse.sop import QR_MODELS
from openpacs.dimse.status import CANCEL, CANNOT_UNDERSTAND, PENDING, PENDING_WITH_WARNING
from openpacs.logs import get_logger

log = get_logger("qrscu")

POLL_SECONDS = 0.25  # how often a caller's cancel flag is looked at while the node works
MAX_ANSWERS = 100_000  # C-FIND answers kept; past it the query is cancelled

# C-GET storage contexts: every syntax we can store without loss, uncompressed first, so that a
# node choosing by our order never compresses lossy what it holds losslessly.
LOSSLESS_SYNTAXES = (
    codecs.EXPLICIT_VR_LE,
    codecs.IMPLICIT_VR_LE,
    codecs.DEFLATED_VR_LE,
    codecs.JPEG_LOSSLESS_SV1,
    codecs.JPEG_LOSSLESS,
    codecs.JPEG_LS_LOSSLESS,
    codecs.JPEG_2000_LOSSLESS,
    codecs.HTJ2K_LOSSLESS,
    codecs.HTJ2K_LOSSLESS_RPCL,
    codecs.RLE_LOSSLESS,
)
LOSSY_SYNTAXES = tuple(sorted(codecs.LOSSY))
# Classes often stored lossy: each gets a second context offering the lossy syntaxes, so a node
# can send such originals as they are (the 128-context limit leaves room for a few).
OFTEN_LOSSY = (
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
    "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
    "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image Storage
    "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
)


def get_store_proposals() -> list[Proposal]:
    """The storage contexts a C-GET proposes (we take the SCP role for each)."""
    classes = [str(cx.abstract_syntax) for cx in StoragePresentationContexts]
    proposals = [Proposal(uid, LOSSLESS_SYNTAXES) for uid in classes]
    proposals += [Proposal(uid, LOSSY_SYNTAXES) for uid in OFTEN_LOSSY]
    return proposals


@dataclass
class Counts:
    """Sub-operations as the node last reported them (remaining is None until it says)."""

    remaining: int | None = None
    completed: int = 0
    failed: int = 0
    warning: int = 0

    @property
    def total(self) -> int | None:
        if self.remaining is None:
            return None
        return self.remaining + self.completed + self.failed + self.warning

    @property
    def handled(self) -> int:
        return self.completed + self.warning + self.failed


@dataclass
class Result:
    """How a request ended: the node's final status (CANCEL when cancelled) and comment, its
    answers (C-FIND), counts and FailedSOPInstanceUIDList (C-MOVE, C-GET)."""

    status: int
    comment: str
    answers: list[Dataset] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    failed_uids: list[str] = field(default_factory=list)
    cancelled: bool = False


Cancelled = Callable[[], bool]
Progress = Callable[[Counts], None]
# What to do with a C-GET's received object (a Part-10 temp file the callee then owns), told
# the sender's AE title: the C-STORE-RSP status and an error comment.
Store = Callable[[Message, str], tuple[int, str | None]]


def find(
    peer: Peer,
    identifier: Dataset,
    *,
    model: str = "study",
    calling_ae: str,
    timeout: float = 30,
    cancelled: Cancelled | None = None,
) -> Result:
    """C-FIND: every answer to `identifier` (holding QueryRetrieveLevel), in the order the node
    sent them, and the final status. Raises AssociationFailed (Refused, NoAnswer)."""
    sop_class = _model(model, 0)
    link = associate(
        peer, [Proposal(sop_class, IDENTIFIER_SYNTAXES)], calling_ae=calling_ae, timeout=timeout
    )
    return _run(link, sop_class, C_FIND_RQ, identifier, timeout, cancelled, None)


def retrieve(
    peer: Peer,
    identifier: Dataset,
    *,
    model: str = "study",
    calling_ae: str,
    timeout: float = 60,
    destination: str | None = None,
    store: Store | None = None,
    temp_dir: Path | None = None,
    cancelled: Cancelled | None = None,
    progress: Progress | None = None,
) -> Result:
    """C-MOVE to the AE `destination`, or, given `store`, C-GET to us (each object spooled
    under `temp_dir`, then handed to `store`). Raises AssociationFailed (Refused, NoAnswer)."""
    if (destination is None) == (store is None):
        raise ValueError("give a C-MOVE destination or a C-GET store, not both or neither")
    if store is None:
        sop_class = _model(model, 1)
        proposals = [Proposal(sop_class, IDENTIFIER_SYNTAXES)]
        link = associate(peer, proposals, calling_ae=calling_ae, timeout=timeout)
        return _run(
            link, sop_class, C_MOVE_RQ, identifier, timeout, cancelled, progress, destination
        )
    sop_class = _model(model, 2)
    stores = get_store_proposals()
    roles = list(dict.fromkeys(p.abstract_syntax for p in stores))
    proposals = [Proposal(sop_class, IDENTIFIER_SYNTAXES), *stores]
    link = associate(peer, proposals, calling_ae=calling_ae, timeout=timeout, scp_roles=roles)
    link.temp_dir = temp_dir
    return _run(link, sop_class, C_GET_RQ, identifier, timeout, cancelled, progress, store=store)


def _model(name: str, index: int) -> str:
    if name not in QR_MODELS:
        raise ValueError(f"model {name!r}: use one of {', '.join(QR_MODELS)}")
    return QR_MODELS[name][index]


_RESPONSE = {C_FIND_RQ: C_FIND_RSP, C_MOVE_RQ: C_MOVE_RSP, C_GET_RQ: C_GET_RSP}
_NAME = {C_FIND_RQ: "C-FIND", C_MOVE_RQ: "C-MOVE", C_GET_RQ: "C-GET"}


def _run(
    link: Link,
    sop_class: str,
    command_field: int,
    identifier: Dataset,
    timeout: float,
    cancelled: Cancelled | None,
    progress: Progress | None,
    destination: str | None = None,
    *,
    store: Store | None = None,
) -> Result:
    """One request on an established association, every response until the final one, then
    release (or abort, when the exchange broke)."""
    exchange = _Exchange(link, sop_class, command_field, timeout, cancelled, progress, store)
    try:
        result = exchange.run(identifier, destination)
    except (OSError, PeerGone, Abort) as exc:
        raise broke(link, exc, _NAME[command_field]) from exc
    except BaseException:
        link.abort()
        link.close()
        raise
    link.release(timeout)
    return result


class _Exchange:
    """The responses to one request, and the C-STORE sub-operations of a C-GET among them."""

    def __init__(
        self,
        link: Link,
        sop_class: str,
        command_field: int,
        timeout: float,
        cancelled: Cancelled | None,
        progress: Progress | None,
        store: Store | None,
    ) -> None:
        self.link = link
        self.sop_class = sop_class
        self.command_field = command_field
        self.timeout = timeout
        self.cancelled = cancelled
        self.progress = progress
        self.store = store
        self.context = next(c for c in link.contexts.values() if c.abstract_syntax == sop_class)
        self.message_id = link.next_message_id()
        self.cancel_sent = False
        self.result = Result(status=-1, comment="")

    def run(self, identifier: Dataset, destination: str | None) -> Result:
        self._request(identifier, destination)
        self.link.sock.settimeout(self.timeout)
        heard = time.monotonic()
        while True:
            self._cancel_if_asked()
            if not self.link.waiting(POLL_SECONDS):
                if time.monotonic() - heard > self.timeout:
                    raise TimeoutError
                continue
            message = self.link.next_message()
            heard = time.monotonic()
            if message is None:
                raise Abort(UNEXPECTED_PARAMETER, "A-RELEASE-RQ before the final response")
            if message.command_field == C_STORE_RQ:
                self._received(message)
            elif self._answered(message):
                return self.result

    def _request(self, identifier: Dataset, destination: str | None) -> None:
        elements = {
            AFFECTED_SOP_CLASS: ui(self.sop_class),
            COMMAND_FIELD: us(self.command_field),
            MESSAGE_ID: us(self.message_id),
            PRIORITY: us(0),
            DATASET_TYPE: us(DATASET_PRESENT),
        }
        if destination is not None:
            elements[MOVE_DESTINATION] = ae(destination)
        data = encode_identifier(identifier, self.context.transfer_syntax)
        self.link.send(self.context.id, encode_command(elements), data)

    def _cancel_if_asked(self) -> None:
        if self.cancel_sent:
            return
        too_many = len(self.result.answers) >= MAX_ANSWERS
        if too_many or (self.cancelled is not None and self.cancelled()):
            cancel = {
                COMMAND_FIELD: us(C_CANCEL_RQ),
                RESPONDED_TO: us(self.message_id),
                DATASET_TYPE: us(NO_DATASET),
            }
            self.link.send(self.context.id, encode_command(cancel))
            self.cancel_sent = True
            why = f"more than {MAX_ANSWERS} answers" if too_many else "asked to"
            log.info("cancelling %s on %s: %s", _NAME[self.command_field], self.link.peer, why)

    def _answered(self, message: Message) -> bool:
        """Take in a response; whether it was the final one."""
        expected = _RESPONSE[self.command_field]
        if message.command_field != expected or message.responded_to != self.message_id:
            raise Abort(UNEXPECTED_PARAMETER, f"unexpected message {message.command_field!r}")
        status = message.status
        if status is None:
            raise Abort(UNEXPECTED_PARAMETER, "a response without a status")
        _count(message, self.result.counts)
        if status in (PENDING, PENDING_WITH_WARNING):
            if self.command_field == C_FIND_RQ and message.dataset is not None:
                ds = decode_identifier(message.dataset, self.context.transfer_syntax)
                self.result.answers.append(ds)
            if self.progress is not None:
                self.progress(self.result.counts)
            return False
        self.result.status = status
        self.result.comment = message.text(ERROR_COMMENT)
        self.result.failed_uids = _failed_uids(message, self.context.transfer_syntax)
        self.result.cancelled = self.cancel_sent or status == CANCEL
        return True

    def _received(self, message: Message) -> None:
        """Answer one C-STORE sub-operation of our C-GET."""
        uid = message.sop_instance_uid
        comment: str | None
        if self.store is None or message.path is None:
            if message.path is not None:
                message.path.unlink(missing_ok=True)
            status, comment = CANNOT_UNDERSTAND, "no C-STORE expected, or one without data"
        else:
            status, comment = self.store(message, self.link.remote_ae)
        self.link.respond(message, C_STORE_RSP, status, comment=comment, sop_instance_uid=uid)


def _count(message: Message, counts: Counts) -> None:
    remaining = message.ushort(REMAINING)
    if remaining is not None:
        counts.remaining = remaining
    for element, name in ((COMPLETED, "completed"), (FAILED, "failed"), (WARNING, "warning")):
        value = message.ushort(element)
        if value is not None:
            setattr(counts, name, value)
    if message.status not in (PENDING, PENDING_WITH_WARNING):
        counts.remaining = 0


def _failed_uids(message: Message, transfer_syntax: str) -> list[str]:
    if message.dataset is None:
        return []
    try:
        ds = decode_identifier(message.dataset, transfer_syntax)
        value = ds.get("FailedSOPInstanceUIDList")
    except Exception as exc:  # a malformed identifier must not hide the status
        log.warning("unreadable identifier in a final response: %s", exc)
        return []
    if not value:
        return []
    values = [value] if isinstance(value, str) else list(value)
    return [str(uid) for uid in values if str(uid)]


__all__ = [
    "Counts",
    "NoAnswer",
    "Progress",
    "Result",
    "Store",
    "find",
    "get_store_proposals",
    "retrieve",
]
