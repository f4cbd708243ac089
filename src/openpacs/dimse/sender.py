"""C-STORE SCU: send stored objects to a peer, as stored when it takes them, else transcoded.

`send` opens an association of its own (C-MOVE sub-operations, send jobs); `StoreSCU` sends
over any established association, including one we accepted (C-GET's sub-operations).

What is proposed (`proposals`): per SOP class, one presentation context per stored transfer
syntax, then Explicit and Implicit VR Little Endian, and for compressed originals the lossless
syntaxes `codecs.choose_syntax` prefers, each as a separate context so the peer's answer says
exactly which syntaxes it takes. Per instance: as stored when accepted (the dataset is streamed
from the file after its file meta, in PDVs sized to the peer's maximum PDU, so a stored file is
never read whole into memory), else `codecs.choose_syntax` and `codecs.transcode_file` into a
spooled temp file. Each C-STORE-RSP is read before the next request (no asynchronous operations).
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, Protocol, cast

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from openpacs.dicom import codecs
from openpacs.dimse.engine import (
    AFFECTED_SOP_CLASS,
    AFFECTED_SOP_INSTANCE,
    C_STORE_RQ,
    C_STORE_RSP,
    COMMAND_FIELD,
    DATASET_PRESENT,
    DATASET_TYPE,
    ERROR_COMMENT,
    MAX_CONTEXTS,
    MESSAGE_ID,
    MOVE_ORIGINATOR_AE,
    MOVE_ORIGINATOR_ID,
    PRIORITY,
    Abort,
    AssociationFailed,
    Link,
    NoContexts,
    PeerGone,
    Proposal,
    Readable,
    ae,
    encode_command,
    request_association,
    ui,
    us,
)
from openpacs.dimse.scu import Peer
from openpacs.logs import get_logger

log = get_logger("storescu")

# Lossless syntaxes proposed besides a compressed original's own, in choose_syntax's order.
FALLBACKS = (codecs.JPEG_LS_LOSSLESS, codecs.JPEG_LOSSLESS_SV1, codecs.JPEG_2000_LOSSLESS)
NATIVE_PROPOSALS = (codecs.EXPLICIT_VR_LE, codecs.IMPLICIT_VR_LE)
SPOOL_IN_MEMORY = 32 << 20  # a transcoded object up to this size stays in memory
_LONG_VRS = frozenset({b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UR", b"UT"})
_LONG_VRS |= {b"UN", b"SV", b"UV"}


class Sendable(Protocol):
    """What the sender needs of a stored object (`archive.retrieve.StoredInstance` has it)."""

    @property
    def sop_instance_uid(self) -> str: ...
    @property
    def sop_class_uid(self) -> str: ...
    @property
    def transfer_syntax_uid(self) -> str: ...
    @property
    def path(self) -> Path: ...


@dataclass(frozen=True)
class Originator:
    """Who asked for a C-MOVE: told to the destination in every sub-operation's request."""

    ae_title: str
    message_id: int


def is_warning(status: int) -> bool:
    # PS3.4 B.2.3: 0xB000, 0xB006, 0xB007 (and the 0xBxxx range) are warnings; 0x0001 is one
    # too for several services.
    return status == 0x0001 or 0xB000 <= status <= 0xBFFF


@dataclass(frozen=True)
class StoreOutcome:
    """One instance's C-STORE: the peer's status, or None when it was never sent."""

    sop_instance_uid: str
    status: int | None
    comment: str | None = None
    transfer_syntax: str | None = None  # as sent

    @property
    def ok(self) -> bool:
        return self.status is not None and (self.status == 0 or is_warning(self.status))

    @property
    def warning(self) -> bool:
        return self.status is not None and is_warning(self.status)


@dataclass
class SendReport:
    """What a run of C-STOREs did, counted as it goes; `remaining` were never attempted
    (cancelled)."""

    total: int
    outcomes: list[StoreOutcome] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)
    cancelled: bool = False
    error: str | None = None  # the association failed; the instances left count as failed
    completed: int = 0
    warnings: int = 0
    failed: int = 0

    def add(self, outcome: StoreOutcome) -> None:
        self.outcomes.append(outcome)
        if not outcome.ok:
            self.failed += 1
        elif outcome.warning:
            self.warnings += 1
        else:
            self.completed += 1

    @property
    def done(self) -> int:
        return len(self.outcomes)

    @property
    def pending(self) -> int:
        return self.total - len(self.outcomes)

    @property
    def failed_uids(self) -> list[str]:
        return [o.sop_instance_uid for o in self.outcomes if not o.ok]


Progress = Callable[[StoreOutcome, SendReport], None]
Cancelled = Callable[[], bool]


# ----------------------------------------------------------------------------- proposals


def proposals(instances: Iterable[Sendable]) -> list[Proposal]:
    """Presentation contexts for these instances, each transfer syntax a context of its own.

    When there are more than 128, the lossless fallbacks go first (the stored syntaxes and
    native ones remain), then whole SOP classes (whose instances will fail with the reason).
    """
    by_class: dict[str, dict[str, None]] = {}
    for instance in instances:
        stored = instance.transfer_syntax_uid.rstrip("\0 ")
        by_class.setdefault(instance.sop_class_uid, {})[stored] = None
    essential: list[Proposal] = []
    optional: list[Proposal] = []
    for sop_class, syntaxes in by_class.items():
        wanted = dict.fromkeys([*syntaxes, *NATIVE_PROPOSALS])
        essential += [Proposal(sop_class, (ts,)) for ts in wanted]
        if any(ts not in codecs.NATIVE for ts in syntaxes):
            extra = [ts for ts in FALLBACKS if ts not in wanted and codecs.can_encode(ts)]
            optional += [Proposal(sop_class, (ts,)) for ts in extra]
    chosen = essential + optional
    if len(chosen) > MAX_CONTEXTS:
        log.warning(
            "%d presentation contexts needed, %d allowed: proposing fewer fallbacks",
            len(chosen),
            MAX_CONTEXTS,
        )
    return chosen[:MAX_CONTEXTS]


# ----------------------------------------------------------------------------- the SCU


@dataclass
class _Ready:
    uid: str
    fh: io.BufferedReader
    length: int
    syntax: str
    preloaded: int


class StoreSCU:
    """C-STORE requests over one established association.

    reverse: the association was accepted by us and its storage contexts were granted to us
    by role selection (C-GET); otherwise we requested it.
    """

    def __init__(
        self,
        link: Link,
        *,
        reverse: bool = False,
        allow_lossy: bool = False,
        temp_dir: Path | None = None,
        originator: Originator | None = None,
    ) -> None:
        self.link = link
        self.allow_lossy = allow_lossy
        self.temp_dir = temp_dir
        self.originator = originator
        self._ready: _Ready | None = None  # the next instance's file, opened and preloaded
        self.syntaxes: dict[str, dict[str, int]] = {}  # SOP class → transfer syntax → context
        for context in link.contexts.values():
            if context.reverse == reverse:
                by_syntax = self.syntaxes.setdefault(context.abstract_syntax, {})
                by_syntax.setdefault(context.transfer_syntax, context.id)

    def store(self, instance: Sendable, upcoming: Sendable | None = None) -> StoreOutcome:
        """Send one instance and read its response. A failure to read or convert the stored
        file is this instance's failure; a network or protocol failure raises (the association
        is gone). `upcoming`: the instance sent next, whose file is opened and its first block
        read while the peer stores this one (the two would otherwise take turns)."""
        uid = instance.sop_instance_uid
        accepted = self.syntaxes.get(instance.sop_class_uid)
        if not accepted:
            return StoreOutcome(uid, None, f"peer accepted no context for {instance.sop_class_uid}")
        with self._source(instance, accepted) as source:
            if isinstance(source, StoreOutcome):
                return source
            stream, length, syntax, preloaded = source
            message_id = self.link.next_message_id()
            command = self._command(instance, message_id)
            self.link.send_stream(accepted[syntax], command, stream, length, preloaded=preloaded)
        if upcoming is not None:
            self._prepare(upcoming)
        response = self.link.next_response()
        if response.command_field != C_STORE_RSP or response.responded_to != message_id:
            raise Abort(0, f"expected the C-STORE-RSP to message {message_id}")
        status = response.status
        if status is None:
            raise Abort(0, "C-STORE-RSP without a status")
        comment = response.text(ERROR_COMMENT) or None
        return StoreOutcome(uid, status, comment, syntax)

    def _command(self, instance: Sendable, message_id: int) -> bytes:
        elements = {
            AFFECTED_SOP_CLASS: ui(instance.sop_class_uid),
            COMMAND_FIELD: us(C_STORE_RQ),
            MESSAGE_ID: us(message_id),
            PRIORITY: us(0),
            DATASET_TYPE: us(DATASET_PRESENT),
            AFFECTED_SOP_INSTANCE: ui(instance.sop_instance_uid),
        }
        if self.originator is not None:
            elements[MOVE_ORIGINATOR_AE] = ae(self.originator.ae_title)
            elements[MOVE_ORIGINATOR_ID] = us(self.originator.message_id)
        return encode_command(elements)

    def _prepare(self, instance: Sendable) -> None:
        """Open a file sent as stored and preload its first block; anything odd is left for
        `store` to meet and report."""
        self.close()
        accepted = self.syntaxes.get(instance.sop_class_uid, {})
        try:
            fh = open(instance.path, "rb")  # noqa: SIM115 - kept open until sent or closed
        except OSError:
            return
        try:
            start, stored = dataset_start(fh)
            if stored not in accepted:
                fh.close()
                return
            fh.seek(start)
            length = os.fstat(fh.fileno()).st_size - start
            preloaded = self.link.preload(fh, length)
        except (OSError, ValueError):
            fh.close()
            return
        self._ready = _Ready(instance.sop_instance_uid, fh, length, stored, preloaded)

    def close(self) -> None:
        """Drop a prepared file that will not be sent."""
        if self._ready is not None:
            self._ready.fh.close()
            self._ready = None

    @contextmanager
    def _source(
        self, instance: Sendable, accepted: dict[str, int]
    ) -> Iterator[tuple[Readable, int, str, int] | StoreOutcome]:
        """The dataset to send: (stream at its first byte, length, transfer syntax, bytes
        preloaded), or the outcome that says why this instance cannot be sent."""
        uid = instance.sop_instance_uid
        ready, self._ready = self._ready, None
        if ready is not None and ready.uid == uid:
            try:
                yield ready.fh, ready.length, ready.syntax, ready.preloaded
            finally:
                ready.fh.close()
            return
        if ready is not None:
            ready.fh.close()
        try:
            fh = open(instance.path, "rb")  # noqa: SIM115 - closed below, after the send
        except OSError as exc:
            yield StoreOutcome(uid, None, f"cannot read the stored file: {exc.strerror}")
            return
        try:
            try:
                start, stored = dataset_start(fh)
            except (OSError, ValueError) as exc:
                yield StoreOutcome(uid, None, f"unreadable stored file: {exc}")
                return
            if stored in accepted:
                fh.seek(start)
                yield fh, os.fstat(fh.fileno()).st_size - start, stored, 0
                return
            with self._transcoded(instance, stored, accepted) as converted:
                yield converted if isinstance(converted, StoreOutcome) else (*converted, 0)
        finally:
            fh.close()

    @contextmanager
    def _transcoded(
        self, instance: Sendable, stored: str, accepted: dict[str, int]
    ) -> Iterator[tuple[Readable, int, str] | StoreOutcome]:
        uid = instance.sop_instance_uid
        try:
            header = dcmread(instance.path, stop_before_pixels=True)
            target = codecs.choose_syntax(stored, accepted, allow_lossy=self.allow_lossy, ds=header)
        except (OSError, InvalidDicomError, ValueError) as exc:
            yield StoreOutcome(uid, None, f"unreadable stored file: {exc}")
            return
        if target is None:
            yield StoreOutcome(uid, None, f"peer accepts no syntax {stored} converts to")
            return
        folder = str(self.temp_dir) if self.temp_dir is not None else None
        with tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY, dir=folder) as spooled:
            started = time.perf_counter()
            try:
                codecs.transcode_file(
                    instance.path, cast(BinaryIO, spooled), target, allow_lossy=self.allow_lossy
                )
                spooled.seek(0)
                start, _ = dataset_start(spooled)
            except Exception as exc:  # decoders and encoders raise their own types
                log.warning("cannot convert %s from %s to %s: %s", uid, stored, target, exc)
                yield StoreOutcome(uid, None, f"conversion to {target} failed: {exc}")
                return
            length = spooled.seek(0, os.SEEK_END) - start
            spooled.seek(start)
            log.debug(
                "converted %s from %s to %s in %.3f s",
                uid,
                stored,
                target,
                time.perf_counter() - started,
            )
            yield spooled, length, target


def dataset_start(fh: IO[bytes]) -> tuple[int, str]:
    """Where a Part-10 file's dataset starts (after its file meta) and its transfer syntax."""
    head = fh.read(132)
    offset = 132 if head[128:132] == b"DICM" else 0
    fh.seek(offset)
    syntax = None
    while True:
        header = fh.read(8)
        if len(header) < 8:
            raise ValueError("the file ends inside its file meta information")
        group, element = struct.unpack_from("<HH", header)
        if group != 0x0002:
            break
        vr = header[4:6]
        if vr in _LONG_VRS:
            extra = fh.read(4)
            if len(extra) < 4:
                raise ValueError("truncated file meta element")
            (length,) = struct.unpack("<I", extra)
        else:
            (length,) = struct.unpack_from("<H", header, 6)
        value = fh.read(length)
        if element == 0x0010:
            syntax = value.rstrip(b"\0 ").decode("ascii", "replace")
        offset = fh.tell()
    if not syntax:
        raise ValueError("no TransferSyntaxUID in the file meta information")
    return offset, syntax


def send_all(
    scu: StoreSCU,
    instances: Sequence[Sendable],
    *,
    cancelled: Cancelled | None = None,
    progress: Progress | None = None,
    catch_link_errors: bool = True,
) -> SendReport:
    """C-STORE each instance in turn; `cancelled` is asked before each one, `progress` told
    after each. A lost association ends the run with the rest counted failed (or raises, with
    catch_link_errors=False: a C-GET's association is the requester's own)."""
    report = SendReport(total=len(instances))
    try:
        for index, instance in enumerate(instances):
            if cancelled is not None and cancelled():
                report.cancelled = True
                report.remaining = [i.sop_instance_uid for i in instances[index:]]
                break
            upcoming = instances[index + 1] if index + 1 < len(instances) else None
            try:
                outcome = scu.store(instance, upcoming)
            except (OSError, PeerGone, Abort) as exc:
                if not catch_link_errors:
                    raise
                _lost(scu.link, report, instances[index:], exc)
                break
            _note(scu.link.peer, report, outcome, progress)
    finally:
        scu.close()
    return report


def _note(peer: str, report: SendReport, outcome: StoreOutcome, progress: Progress | None) -> None:
    if not outcome.ok:
        log.warning(
            "C-STORE of %s to %s failed%s: %s",
            outcome.sop_instance_uid,
            peer,
            f" with 0x{outcome.status:04X}" if outcome.status is not None else "",
            outcome.comment or "no reason given",
        )
    report.add(outcome)
    if progress is not None:
        progress(outcome, report)


def _lost(link: Link, report: SendReport, rest: Sequence[Sendable], exc: Exception) -> None:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        reason = "no response before the timeout"
    report.error = f"association with {link.peer} failed: {reason}"
    log.warning("%s; %d instance(s) not sent", report.error, len(rest))
    link.abort(exc.reason if isinstance(exc, Abort) else 0)
    link.close()
    for instance in rest:
        report.add(StoreOutcome(instance.sop_instance_uid, None, report.error))


def send(
    peer: Peer,
    instances: Sequence[Sendable],
    *,
    calling_ae: str,
    timeout: float = 60,
    originator: Originator | None = None,
    cancelled: Cancelled | None = None,
    progress: Progress | None = None,
    allow_lossy: bool = False,
    temp_dir: Path | None = None,
) -> SendReport:
    """Send `instances` to `peer` over one new association, then release it.

    Raises AssociationFailed (with the reason) when the association cannot be established.
    """
    if not instances:
        return SendReport(total=0)
    started = time.perf_counter()
    try:
        link = request_association(
            peer.host,
            peer.port,
            calling_ae=calling_ae,
            called_ae=peer.ae_title,
            proposals=proposals(instances),
            log=log,
            timeout=timeout,
        )
    except NoContexts:
        # The peer is there and answered: it takes none of these SOP classes or syntaxes,
        # which is each instance's failure, not a reason to try again later.
        report = SendReport(total=len(instances))
        for instance in instances:
            why = f"peer accepted no context for {instance.sop_class_uid}"
            _note(str(peer), report, StoreOutcome(instance.sop_instance_uid, None, why), progress)
        return report
    scu = StoreSCU(link, allow_lossy=allow_lossy, temp_dir=temp_dir, originator=originator)
    try:
        report = send_all(scu, instances, cancelled=cancelled, progress=progress)
    finally:
        if not link.closed:
            link.release(timeout)
    log.info(
        "sent %d of %d instance(s) to %s in %.2f s (%d failed, %d warning(s)%s)",
        report.completed + report.warnings,
        report.total,
        peer,
        time.perf_counter() - started,
        report.failed,
        report.warnings,
        ", cancelled" if report.cancelled else "",
    )
    return report


__all__ = [
    "AssociationFailed",
    "Originator",
    "Peer",
    "SendReport",
    "Sendable",
    "StoreOutcome",
    "StoreSCU",
    "dataset_start",
    "proposals",
    "send",
    "send_all",
]
