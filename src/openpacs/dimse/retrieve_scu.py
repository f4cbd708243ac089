"""C-MOVE and C-GET as SCU: ask a node to send instances to an AE title, or to us.

Both run on our own engine (like the sender): one association, one request per identifier,
pending responses turned into live counts, C-CANCEL-RQ sent when the caller cancels. C-GET's
C-STORE sub-operations arrive on the same association, are spooled to temp files by the engine
exactly as the Store SCP spools them, and are handed to `store` (the archive's ingest path).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import Dataset
from pynetdicom import StoragePresentationContexts

from openpacs.dicom import codecs
from openpacs.dimse.engine import (
    AFFECTED_SOP_CLASS,
    C_CANCEL_RQ,
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
    AssociationFailed,
    Link,
    Message,
    PeerGone,
    Proposal,
    ae,
    encode_command,
    request_association,
    ui,
    us,
)
from openpacs.dimse.identifier import IDENTIFIER_SYNTAXES, decode_identifier, encode_identifier
from openpacs.dimse.sop import QR_MODELS
from openpacs.dimse.status import CANCEL, CANNOT_UNDERSTAND, PENDING, PENDING_WITH_WARNING
from openpacs.logs import get_logger

log = get_logger("qrscu")

POLL_SECONDS = 0.25  # how often a caller's cancel flag is looked at while the node works

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


@dataclass
class RetrieveResult:
    """How a C-MOVE or C-GET ended. `status` is the node's final status (CANCEL when we
    cancelled); `failed_uids` what it listed in FailedSOPInstanceUIDList."""

    status: int
    comment: str
    counts: Counts
    failed_uids: list[str] = field(default_factory=list)
    cancelled: bool = False


@dataclass(frozen=True)
class Node:
    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


class NoAnswer(AssociationFailed):
    """The node went silent in the middle of a retrieve."""


Cancelled = Callable[[], bool]
Progress = Callable[[Counts], None]
# What to do with a C-GET's received object (a Part-10 temp file the callee then owns):
# the C-STORE-RSP status and an error comment.
Store = Callable[[Message, str], tuple[int, str | None]]


def move(
    node: Node,
    identifier: Dataset,
    *,
    destination: str,
    model: str = "study",
    calling_ae: str,
    timeout: float = 60,
    cancelled: Cancelled | None = None,
    progress: Progress | None = None,
) -> RetrieveResult:
    """C-MOVE: ask `node` to send what `identifier` selects to the AE `destination`.

    Raises AssociationFailed (with the reason) when the association cannot be established or
    breaks before the final response."""
    sop_class = _model(model, 1)
    link = _associate(node, [Proposal(sop_class, IDENTIFIER_SYNTAXES)], calling_ae, timeout)
    return _run(
        link,
        sop_class,
        C_MOVE_RQ,
        identifier,
        timeout,
        cancelled,
        progress,
        destination=destination,
    )


def get(
    node: Node,
    identifier: Dataset,
    *,
    store: Store,
    model: str = "study",
    calling_ae: str,
    timeout: float = 60,
    temp_dir: Path,
    cancelled: Cancelled | None = None,
    progress: Progress | None = None,
) -> RetrieveResult:
    """C-GET: ask `node` to send what `identifier` selects to us over this association; each
    object goes to `store` as it arrives (spooled under `temp_dir`)."""
    sop_class = _model(model, 2)
    stores = get_store_proposals()
    proposals = [Proposal(sop_class, IDENTIFIER_SYNTAXES), *stores]
    link = _associate(
        node,
        proposals,
        calling_ae,
        timeout,
        scp_roles=list(dict.fromkeys(p.abstract_syntax for p in stores)),
    )
    link.temp_dir = temp_dir
    return _run(link, sop_class, C_GET_RQ, identifier, timeout, cancelled, progress, store=store)


def _model(name: str, index: int) -> str:
    if name not in QR_MODELS:
        raise ValueError(f"model {name!r}: use one of {', '.join(QR_MODELS)}")
    return QR_MODELS[name][index]


def _associate(
    node: Node,
    proposals: Sequence[Proposal],
    calling_ae: str,
    timeout: float,
    *,
    scp_roles: Sequence[str] = (),
) -> Link:
    link = request_association(
        node.host,
        node.port,
        calling_ae=calling_ae,
        called_ae=node.ae_title,
        proposals=proposals,
        log=log,
        timeout=timeout,
        scp_roles=scp_roles,
    )
    if not any(c.abstract_syntax == proposals[0].abstract_syntax for c in link.contexts.values()):
        link.release(timeout)
        raise AssociationFailed(
            f"{node} does not offer {_what(proposals[0].abstract_syntax)}; try the other "
            "information model (study or patient root)"
        )
    return link


def _what(sop_class: str) -> str:
    for name, models in QR_MODELS.items():
        if sop_class in models:
            verb = ("C-FIND", "C-MOVE", "C-GET")[models.index(sop_class)]
            return f"the {name} root {verb} model"
    return sop_class


def _run(
    link: Link,
    sop_class: str,
    command_field: int,
    identifier: Dataset,
    timeout: float,
    cancelled: Cancelled | None,
    progress: Progress | None,
    *,
    destination: str | None = None,
    store: Store | None = None,
) -> RetrieveResult:
    """One request on an established association, every response until the final one, then
    release (or abort if the exchange broke)."""
    try:
        result = _exchange(
            link,
            sop_class,
            command_field,
            identifier,
            timeout,
            cancelled,
            progress,
            destination,
            store,
        )
    except (OSError, PeerGone, Abort) as exc:
        reason = "no response before the timeout" if isinstance(exc, TimeoutError) else str(exc)
        link.abort(exc.reason if isinstance(exc, Abort) else 0)
        link.close()
        raise AssociationFailed(f"the association with {link.peer} broke: {reason}") from exc
    except BaseException:
        link.abort()
        link.close()
        raise
    link.release(timeout)
    return result


def _exchange(
    link: Link,
    sop_class: str,
    command_field: int,
    identifier: Dataset,
    timeout: float,
    cancelled: Cancelled | None,
    progress: Progress | None,
    destination: str | None,
    store: Store | None,
) -> RetrieveResult:
    context = next(c for c in link.contexts.values() if c.abstract_syntax == sop_class)
    message_id = link.next_message_id()
    elements = {
        AFFECTED_SOP_CLASS: ui(sop_class),
        COMMAND_FIELD: us(command_field),
        MESSAGE_ID: us(message_id),
        PRIORITY: us(0),
        DATASET_TYPE: us(DATASET_PRESENT),
    }
    if destination is not None:
        elements[MOVE_DESTINATION] = ae(destination)
    data = encode_identifier(identifier, context.transfer_syntax)
    link.send(context.id, encode_command(elements), data)
    response_field = C_MOVE_RSP if command_field == C_MOVE_RQ else C_GET_RSP
    counts = Counts()
    cancel_sent = False
    heard = time.monotonic()
    link.sock.settimeout(timeout)
    while True:
        if not cancel_sent and cancelled is not None and cancelled():
            cancel = {
                COMMAND_FIELD: us(C_CANCEL_RQ),
                RESPONDED_TO: us(message_id),
                DATASET_TYPE: us(NO_DATASET),
            }
            link.send(context.id, encode_command(cancel))
            cancel_sent = True
            log.info("asked %s to cancel its retrieve (message %d)", link.peer, message_id)
        if not link.waiting(POLL_SECONDS):
            if time.monotonic() - heard > timeout:
                raise NoAnswer(f"{link.peer} sent nothing for {timeout:g} s during the retrieve")
            continue
        message = link.next_message()
        heard = time.monotonic()
        if message is None:
            raise Abort(UNEXPECTED_PARAMETER, "A-RELEASE-RQ before the final response")
        if message.command_field == C_STORE_RQ:
            _received(link, message, store)
            continue
        if message.command_field != response_field or message.responded_to != message_id:
            raise Abort(UNEXPECTED_PARAMETER, f"unexpected message {message.command_field!r}")
        _count(message, counts)
        status = message.status
        if status is None:
            raise Abort(UNEXPECTED_PARAMETER, "a response without a status")
        if status in (PENDING, PENDING_WITH_WARNING):
            if progress is not None:
                progress(counts)
            continue
        failed_uids = _failed_uids(message, context.transfer_syntax)
        return RetrieveResult(
            status,
            message.text(0x0902),  # ErrorComment
            counts,
            failed_uids,
            cancelled=cancel_sent or status == CANCEL,
        )


def _received(link: Link, message: Message, store: Store | None) -> None:
    """Answer one C-STORE sub-operation of our C-GET."""
    uid = message.sop_instance_uid
    comment: str | None
    if store is None or message.path is None:
        if message.path is not None:
            message.path.unlink(missing_ok=True)
        status, comment = CANNOT_UNDERSTAND, "C-STORE without a dataset"
    else:
        status, comment = store(message, link.remote_ae)
    link.respond(message, C_STORE_RSP, status, comment=comment, sop_instance_uid=uid)


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
        log.warning("unreadable identifier in a final retrieve response: %s", exc)
        return []
    if not value:
        return []
    values = [value] if isinstance(value, str) else list(value)
    return [str(uid) for uid in values if str(uid)]
