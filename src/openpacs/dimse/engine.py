"""The DIMSE engine: associations over plain blocking sockets, for both roles.

pynetdicom's general-purpose engine polls its queues from two threads per association and spends
~6.5 ms of CPU on every received object, and as a sender it is CPU-bound at 50-130 objects/s
(docs/performance.md). This engine reuses pynetdicom's PDU classes only to encode and decode the
A-ASSOCIATE PDUs and does the rest by hand: PS3.8 PDU/PDV framing, the command set (implicit VR
LE), negotiation (SCP/SCU role selection, SOP class extended negotiation) and dispatch by command
field. One thread per association; socket timeouts stand in for the ARTIM and DIMSE timers.

- `Link`: the data phase of an association, either side: read whole messages (a C-STORE dataset
  goes straight into a temp file in the storage's temporary folder, so a 1 GB object never sits
  in memory; other datasets into memory), send commands and datasets in PDVs sized to the peer's
  maximum PDU, notice C-CANCEL-RQ between answers, release, abort.
- `Listener` + `Association`: the acceptor: negotiate against a `Policy`, then hand each request
  to the service's handler for its command field (C-ECHO is answered here).
- `request_association`: the requestor side (C-STORE SCU, C-MOVE sub-operations).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from logging import Logger
from pathlib import Path
from typing import Any, Protocol, cast

from pynetdicom import pdu
from pynetdicom import pdu_primitives as prim
from pynetdicom.presentation import PresentationContext

from openpacs.dicom.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION
from openpacs.dimse.shared_socket import SharedSocket
from openpacs.logs import get_logger
from openpacs.monitoring.associations import Associations

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"

MAX_ASSOCIATE_PDU = 1 << 20  # bytes; a larger association PDU is not a real one
MAX_COMMAND = 1 << 16
MAX_IDENTIFIER = 1 << 24  # a C-FIND/C-MOVE/C-GET identifier held in memory
CONNECTION_FACTOR = 4  # open connections allowed per permitted association
BUFFER = 1 << 18
# What we send in one PDU when the peer sets no maximum (0): few syscalls, bounded memory.
UNLIMITED_PDU = 1 << 20
STREAM_BLOCK = 1 << 20  # bytes of a stored file read and sent at a time
IOV_PARTS = 1024  # buffers one sendmsg takes (Linux IOV_MAX)

# Command fields (PS3.7 E.1).
C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
C_GET_RQ, C_GET_RSP = 0x0010, 0x8010
C_FIND_RQ, C_FIND_RSP = 0x0020, 0x8020
C_MOVE_RQ, C_MOVE_RSP = 0x0021, 0x8021
C_ECHO_RQ, C_ECHO_RSP = 0x0030, 0x8030
C_CANCEL_RQ = 0x0FFF

# Command elements (group 0000).
AFFECTED_SOP_CLASS, REQUESTED_SOP_CLASS = 0x0002, 0x0003
COMMAND_FIELD, MESSAGE_ID, RESPONDED_TO = 0x0100, 0x0110, 0x0120
MOVE_DESTINATION, PRIORITY, DATASET_TYPE = 0x0600, 0x0700, 0x0800
STATUS, OFFENDING_ELEMENT, ERROR_COMMENT = 0x0900, 0x0901, 0x0902
AFFECTED_SOP_INSTANCE = 0x1000
REMAINING, COMPLETED, FAILED, WARNING = 0x1020, 0x1021, 0x1022, 0x1023
MOVE_ORIGINATOR_AE, MOVE_ORIGINATOR_ID = 0x1030, 0x1031

NO_DATASET, DATASET_PRESENT = 0x0101, 0x0001
UNRECOGNIZED_OPERATION, UNABLE_TO_PROCESS = 0x0211, 0xC000

# A-ABORT reasons (PS3.8 9.3.8), source 2: the service provider.
UNRECOGNIZED_PDU, UNEXPECTED_PDU, UNEXPECTED_PARAMETER, INVALID_PARAMETER = 1, 2, 5, 6

_PDU_HEADER = struct.Struct(">BxI")
_PDV_HEADER = struct.Struct(">IBB")
_IMPLICIT_ELEMENT = struct.Struct("<HHI")
_RELEASE_RQ = b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00"
_RELEASE_RP = b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00"


class Abort(Exception):
    """The peer broke the protocol: answer with A-ABORT and drop the connection."""

    def __init__(self, reason: int, why: str) -> None:
        super().__init__(why)
        self.reason = reason


class PeerGone(Exception):
    """The peer closed the connection or aborted the association."""


class AssociationFailed(Exception):
    """An association we asked for did not come about, or broke; the message says why."""


class Refused(AssociationFailed):
    """The peer said no: connection refused, association rejected or aborted."""


class NoAnswer(AssociationFailed):
    """Nothing came back from the peer before the timeout."""


class NoContexts(Refused):
    """The peer accepted the association but none of the presentation contexts proposed."""


# ----------------------------------------------------------------------------- commands


def _even(value: bytes, pad: bytes = b"\0") -> bytes:
    return value + pad if len(value) % 2 else value


def _implicit(element: int, value: bytes) -> bytes:
    return _IMPLICIT_ELEMENT.pack(0x0000, element, len(value)) + value


def ui(value: str) -> bytes:
    return _even(value.encode("ascii", "replace"))


def us(value: int) -> bytes:
    return struct.pack("<H", value & 0xFFFF)


def ae(value: str) -> bytes:
    return _even(value.encode("ascii", "replace")[:16], b" ")


def lo(value: str) -> bytes:
    """A LO value (ErrorComment): 64 characters of the default repertoire at most."""
    return _even(value.encode("ascii", "replace")[:64], b" ")


def at(*tags: int) -> bytes:
    return b"".join(struct.pack("<HH", tag >> 16, tag & 0xFFFF) for tag in tags)


def encode_command(elements: Mapping[int, bytes]) -> bytes:
    """A command set (implicit VR LE, group 0000) with its group length, elements in tag order."""
    body = b"".join(_implicit(element, elements[element]) for element in sorted(elements))
    return _implicit(0x0000, struct.pack("<I", len(body))) + body


def encode_response(
    command_field: int,
    sop_class_uid: str,
    message_id: int,
    status: int,
    sop_instance_uid: str | None = None,
    comment: str | None = None,
    *,
    dataset: bool = False,
    extra: Mapping[int, bytes] | None = None,
) -> bytes:
    """A response command set: status, optional ErrorComment, optional further elements."""
    elements = {
        AFFECTED_SOP_CLASS: ui(sop_class_uid),
        COMMAND_FIELD: us(command_field),
        RESPONDED_TO: us(message_id),
        DATASET_TYPE: us(DATASET_PRESENT if dataset else NO_DATASET),
        STATUS: us(status),
    }
    if comment:
        elements[ERROR_COMMENT] = lo(comment)
    if sop_instance_uid:
        elements[AFFECTED_SOP_INSTANCE] = ui(sop_instance_uid)
    if extra:
        elements.update(extra)
    return encode_command(elements)


def parse_command(data: bytes) -> dict[int, bytes]:
    """A command set (implicit VR LE, group 0000) as {element: raw value}."""
    elements: dict[int, bytes] = {}
    offset, end = 0, len(data)
    while offset < end:
        if offset + 8 > end:
            raise Abort(INVALID_PARAMETER, "truncated command element")
        group, element, length = _IMPLICIT_ELEMENT.unpack_from(data, offset)
        offset += 8
        if group != 0x0000 or length == 0xFFFFFFFF or offset + length > end:
            raise Abort(INVALID_PARAMETER, "malformed command set")
        elements[element] = data[offset : offset + length]
        offset += length
    return elements


def text(value: bytes | None) -> str:
    return (value or b"").rstrip(b"\0 ").decode("ascii", "replace").strip()


def ushort(value: bytes | None) -> int | None:
    return int(struct.unpack("<H", value)[0]) if value and len(value) == 2 else None


def _explicit(element: int, vr: bytes, value: bytes) -> bytes:
    if vr == b"OB":
        return (
            struct.pack("<HH", 0x0002, element)
            + vr
            + b"\0\0"
            + struct.pack("<I", len(value))
            + value
        )
    return struct.pack("<HH", 0x0002, element) + vr + struct.pack("<H", len(value)) + value


def file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str, ae: str) -> bytes:
    """Preamble, 'DICM' and the file meta group (PS3.10 7.1) for a received dataset."""
    body = b"".join(
        (
            _explicit(0x0001, b"OB", b"\0\1"),
            _explicit(0x0002, b"UI", _even(sop_class_uid.encode())),
            _explicit(0x0003, b"UI", _even(sop_instance_uid.encode())),
            _explicit(0x0010, b"UI", _even(transfer_syntax.encode())),
            _explicit(0x0012, b"UI", _even(IMPLEMENTATION_CLASS_UID.encode())),
            _explicit(0x0013, b"SH", _even(IMPLEMENTATION_VERSION.encode(), b" ")),
            _explicit(0x0016, b"AE", _even(ae.encode("ascii", "replace"), b" ")),
        )
    )
    group_length = _explicit(0x0000, b"UL", struct.pack("<I", len(body)))
    return b"\0" * 128 + b"DICM" + group_length + body


@dataclass(slots=True)
class Message:
    """One complete DIMSE message: its command and, if any, its dataset (in memory, or for a
    C-STORE-RQ a Part-10 temp file whose ownership passes to whoever handles the message)."""

    context_id: int
    command: dict[int, bytes]
    dataset: bytes | None = None
    path: Path | None = None
    # The dataset exceeded the link's `max_dataset` and was read and dropped (only on links
    # that answer such requests instead of aborting: `answer_oversized`).
    oversized: bool = False

    @property
    def command_field(self) -> int | None:
        return ushort(self.command.get(COMMAND_FIELD))

    @property
    def message_id(self) -> int | None:
        return ushort(self.command.get(MESSAGE_ID))

    @property
    def responded_to(self) -> int | None:
        return ushort(self.command.get(RESPONDED_TO))

    @property
    def status(self) -> int | None:
        return ushort(self.command.get(STATUS))

    @property
    def sop_class_uid(self) -> str:
        return text(self.command.get(AFFECTED_SOP_CLASS))

    @property
    def sop_instance_uid(self) -> str:
        return text(self.command.get(AFFECTED_SOP_INSTANCE))

    def text(self, element: int) -> str:
        return text(self.command.get(element))

    def ushort(self, element: int) -> int | None:
        return ushort(self.command.get(element))


# ----------------------------------------------------------------------------- negotiation


@dataclass(frozen=True, slots=True)
class Context:
    """An accepted presentation context. `reverse`: the roles are swapped by SCP/SCU role
    selection, so the acceptor sends the requests on it (C-STORE sub-operations of a C-GET)."""

    id: int
    abstract_syntax: str
    transfer_syntax: str
    reverse: bool = False


# Given a SOP class and the requestor's extended negotiation bytes, what we accept (or None).
ExtendedNegotiation = Callable[[str, bytes], bytes | None]


@dataclass(frozen=True)
class Policy:
    """Who may associate and what they may propose.

    reverse_classes: SOP classes accepted only when the requestor takes the SCP role for them
    (storage classes on a Q/R listener, for C-GET); the requestor's transfer syntax order wins.
    """

    ae_title: str
    require_called_ae: bool
    allowed_calling_aes: frozenset[str]
    sop_classes: frozenset[str]
    transfer_syntaxes: frozenset[str]
    acse_timeout: float
    network_timeout: float
    max_associations: int = 64
    reverse_classes: frozenset[str] = frozenset()
    reverse_syntaxes: frozenset[str] = frozenset()
    extended: ExtendedNegotiation | None = None
    # Whether a calling AE may associate at all (e.g. a registered node with the permission);
    # None admits every one.
    admit: Callable[[str], bool] | None = None


@dataclass
class Negotiated:
    results: list[PresentationContext]
    contexts: dict[int, Context]
    user_items: list[prim.ServiceParameter] = field(default_factory=list)
    extended: dict[str, bytes] = field(default_factory=dict)


def _scp_roles(rq: prim.A_ASSOCIATE) -> dict[str, bool]:
    """SOP class → whether the requestor proposed to act as SCP for it."""
    return {
        str(item.sop_class_uid): bool(item.scp_role)
        for item in rq.user_information
        if isinstance(item, prim.SCP_SCU_RoleSelectionNegotiation)
    }


def negotiate(rq: prim.A_ASSOCIATE, policy: Policy) -> Negotiated:
    """Answer each proposed context: the requestor's first transfer syntax we support wins,
    so a modality sends its native encoding and a compressed image stays compressed."""
    scp_roles = _scp_roles(rq)
    done = Negotiated([], {})
    granted: set[str] = set()
    for proposed in rq.presentation_context_definition_list:
        abstract = str(proposed.abstract_syntax)
        reverse = abstract in policy.reverse_classes and abstract not in policy.sop_classes
        offered = policy.reverse_syntaxes if reverse else policy.transfer_syntaxes
        answer = PresentationContext()
        answer.context_id = proposed.context_id
        answer.abstract_syntax = proposed.abstract_syntax
        syntaxes = [str(ts) for ts in proposed.transfer_syntax]
        chosen = next((ts for ts in syntaxes if ts in offered), None)
        if abstract not in policy.sop_classes and abstract not in policy.reverse_classes:
            answer.result = 0x03  # abstract syntax not supported
        elif reverse and not scp_roles.get(abstract):
            answer.result = 0x01  # a store class here serves C-GET only: needs the SCP role
        elif chosen is None:
            answer.result = 0x04  # transfer syntaxes not supported
        else:
            answer.result = 0x00
            assert proposed.context_id is not None
            done.contexts[proposed.context_id] = Context(
                proposed.context_id, abstract, chosen, reverse
            )
            if reverse:
                granted.add(abstract)
        answer.transfer_syntax = [chosen or syntaxes[0]]
        done.results.append(answer)
    for uid in sorted(granted):
        role = prim.SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid = uid
        role.scu_role = False
        role.scp_role = True
        done.user_items.append(role)
    _extended(rq, policy, done)
    return done


def _extended(rq: prim.A_ASSOCIATE, policy: Policy, done: Negotiated) -> None:
    if policy.extended is None:
        return
    accepted_classes = {c.abstract_syntax for c in done.contexts.values()}
    for item in rq.user_information:
        if not isinstance(item, prim.SOPClassExtendedNegotiation):
            continue
        uid = str(item.sop_class_uid)
        if uid not in accepted_classes:
            continue
        answer = policy.extended(uid, bytes(item.service_class_application_information or b""))
        if answer is None:
            continue
        reply = prim.SOPClassExtendedNegotiation()
        reply.sop_class_uid = uid
        reply.service_class_application_information = answer
        done.user_items.append(reply)
        done.extended[uid] = answer


def _rejection(result: int, source: int, diagnostic: int) -> bytes:
    rj = prim.A_ASSOCIATE()
    rj.result, rj.result_source, rj.diagnostic = result, source, diagnostic
    return bytes(pdu.A_ASSOCIATE_RJ(rj).encode())


def _implementation_items(max_pdu: int) -> list[prim.ServiceParameter]:
    maximum = prim.MaximumLengthNotification()
    maximum.maximum_length_received = max_pdu
    uid = prim.ImplementationClassUIDNotification()
    uid.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    version = prim.ImplementationVersionNameNotification()
    version.implementation_version_name = IMPLEMENTATION_VERSION
    return [maximum, uid, version]


def _peer_max_pdu(primitive: prim.A_ASSOCIATE) -> int:
    for item in primitive.user_information:
        if isinstance(item, prim.MaximumLengthNotification):
            return int(item.maximum_length_received or 0)
    return 0


# ----------------------------------------------------------------------------- the data phase


class Readable(Protocol):
    """A binary stream `send_stream` reads from: an open file, a spooled temp file."""

    def readinto(self, buffer: bytearray | memoryview, /) -> int | None: ...


def _pdv_headers(size: int, context_id: int, *, last: bool, command: bool = False) -> bytes:
    """The P-DATA-TF PDU header and PDV item header before `size` bytes of a message."""
    control = (0x02 if last else 0x00) | (0x01 if command else 0x00)
    return _PDU_HEADER.pack(0x04, size + 6) + _PDV_HEADER.pack(size + 2, context_id, control)


class Link:
    """The data phase of one association: whole messages in, commands and datasets out."""

    def __init__(
        self,
        sock: socket.socket,
        address: tuple[str, int],
        log: Logger,
        *,
        temp_dir: Path | None = None,
        max_dataset: int = MAX_IDENTIFIER,
        answer_oversized: bool = False,
    ) -> None:
        self.sock = sock
        self.address = address
        self.log = log
        self.temp_dir = temp_dir  # where C-STORE datasets are spooled; None: into memory
        # Datasets read into memory may be this large; past it the association is aborted,
        # or with `answer_oversized` the rest is read and dropped and the message delivered
        # with `oversized` set, so the service can refuse that request alone.
        self.max_dataset = max_dataset
        self.answer_oversized = answer_oversized
        self._dropping = False
        self.calling_ae = ""
        self.called_ae = ""
        self.remote_ae = ""  # the peer's AE title: calling AE as acceptor, called as requestor
        self.established = False
        self.closed = False
        self.contexts: dict[int, Context] = {}
        self.extended: dict[str, bytes] = {}
        self.peer_max_pdu = 0
        self.cancelled: set[int] = set()  # MessageIDs the peer sent C-CANCEL-RQ for
        self.buffer = bytearray(BUFFER)
        self.view = memoryview(self.buffer)
        self._remaining = 0  # bytes of the current P-DATA-TF PDU not read yet
        self._command = bytearray()
        self._pending: Message | None = None  # a command whose dataset is arriving
        self._fd: int | None = None
        self._data: bytearray | None = None
        self._ids = itertools.count(1)
        self._block: bytearray | None = None  # send_stream's read buffer, kept for the next

    @property
    def peer(self) -> str:
        return f"{self.remote_ae or '?'}@{self.address[0]}:{self.address[1]}"

    def next_message_id(self) -> int:
        """A MessageID for a request we send: 1..65535, then round again."""
        return (next(self._ids) - 1) % 0xFFFF + 1

    # -- socket
    def _read_into(self, view: memoryview) -> None:
        got, wanted = 0, len(view)
        while got < wanted:
            count = self.sock.recv_into(view[got:])
            if not count:
                raise PeerGone("connection closed by the peer")
            got += count

    def _read(self, size: int) -> bytes:
        data = bytearray(size)
        self._read_into(memoryview(data))
        return bytes(data)

    def _pdu_header(self) -> tuple[int, int]:
        kind, length = _PDU_HEADER.unpack(self._read(6))
        return int(kind), int(length)

    def abort(self, reason: int = 0) -> None:
        """Send A-ABORT (service provider) and hang up; safe from any thread."""
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\x07\x00\x00\x00\x00\x04\x00\x00\x02" + bytes([reason]))
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        self.discard_partial()
        with contextlib.suppress(OSError):
            self.sock.close()

    # -- reading
    def next_message(self) -> Message | None:
        """The next complete message; None when the peer released the association (answered).

        The PDV loop is written out here, not split per PDV: a CT slice arrives in dozens of
        PDVs, and each extra call per PDV showed in the Store SCP's CPU per object."""
        while True:
            if not self._remaining:
                kind, length = self._pdu_header()
                if kind == 0x04:
                    self._remaining = length
                    continue
                if kind == 0x05:  # A-RELEASE-RQ
                    self._read(length)
                    self.sock.sendall(_RELEASE_RP)
                    return None
                if kind == 0x07:
                    raise PeerGone("association aborted by the peer")
                raise Abort(UNEXPECTED_PDU, f"unexpected PDU type {kind}")
            if self._remaining < 6:
                raise Abort(INVALID_PARAMETER, "truncated PDV")
            self._read_into(self.view[:6])
            pdv_length, context_id, control = _PDV_HEADER.unpack_from(self.buffer)
            if pdv_length < 2 or pdv_length + 4 > self._remaining:
                raise Abort(INVALID_PARAMETER, "PDV longer than its PDU")
            if context_id not in self.contexts:
                raise Abort(UNEXPECTED_PARAMETER, f"context {context_id} was not accepted")
            self._remaining -= pdv_length + 4
            if control & 0x01:
                message = self._command_fragment(context_id, control, pdv_length - 2)
                if message is not None:
                    return message
                continue
            pending = self._pending  # a dataset fragment
            if pending is None or context_id != pending.context_id:
                raise Abort(UNEXPECTED_PARAMETER, "dataset without its command")
            self._receive(pdv_length - 2)
            if control & 0x02:
                return self._dataset_complete(pending)

    def _command_fragment(self, context_id: int, control: int, size: int) -> Message | None:
        if self._pending is not None or len(self._command) + size > MAX_COMMAND:
            raise Abort(UNEXPECTED_PARAMETER, "command out of sequence")
        self._command += self._read(size)
        if not control & 0x02:
            return None
        message = Message(context_id, parse_command(bytes(self._command)))
        self._command.clear()
        if ushort(message.command.get(DATASET_TYPE)) == NO_DATASET:
            return message
        self._pending = message
        self._begin_dataset(message)
        return None

    def _dataset_complete(self, pending: Message) -> Message:
        self._pending = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        elif self._dropping:
            self._dropping = False
            pending.oversized = True
        else:
            pending.dataset = bytes(self._data or b"")
            self._data = None
        return pending

    def _begin_dataset(self, message: Message) -> None:
        if message.command_field == C_STORE_RQ and self.temp_dir is not None:
            fd, name = tempfile.mkstemp(dir=self.temp_dir, suffix=".part")
            self._fd, message.path = fd, Path(name)
            meta = file_meta(
                message.sop_class_uid,
                message.sop_instance_uid,
                self.contexts[message.context_id].transfer_syntax,
                self.remote_ae,  # the sender: the requestor, or the acceptor of our C-GET
            )
            os.write(fd, meta)
        else:
            self._data = bytearray()

    def _receive(self, size: int) -> None:
        fd, data = self._fd, self._data
        if data is not None and len(data) + size > self.max_dataset:
            if not self.answer_oversized:
                raise Abort(UNEXPECTED_PARAMETER, f"dataset larger than {self.max_dataset} bytes")
            self._data, data, self._dropping = None, None, True
        while size:
            count = min(size, BUFFER)
            chunk = self.view[:count]
            self._read_into(chunk)
            if fd is not None:
                while chunk:
                    chunk = chunk[os.write(fd, chunk) :]
            elif data is not None:
                data += chunk
            size -= count

    def discard_partial(self) -> None:
        """Remove the temp file of a C-STORE cut off mid-dataset."""
        pending, fd = self._pending, self._fd
        self._pending, self._fd, self._data = None, None, None
        self._dropping = False
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
        if pending is not None and pending.path is not None:
            pending.path.unlink(missing_ok=True)
            self.log.warning("discarded a partly received object from %s", self.peer)

    def waiting(self, timeout: float = 0) -> bool:
        """Whether the peer has sent something not read yet, waiting up to `timeout` seconds
        for it (by default not at all)."""
        if self._remaining:
            return True
        readable, _, _ = select.select([self.sock], [], [], timeout)
        return bool(readable)

    def next_response(self) -> Message:
        """The next message, noting any C-CANCEL-RQ met on the way: what a requester waiting
        for a response (C-STORE-RSP of a C-GET's sub-operation) must not miss."""
        while True:
            message = self.next_message()
            if message is None:
                raise Abort(UNEXPECTED_PDU, "A-RELEASE-RQ while a response was awaited")
            if message.command_field == C_CANCEL_RQ:
                self._note_cancel(message)
                continue
            return message

    def cancel_requested(self, message_id: int) -> bool:
        """Read whatever the peer sent meanwhile (only C-CANCEL-RQ may come: no asynchronous
        operations are negotiated) and say whether it cancelled `message_id`."""
        while self.waiting():
            message = self.next_message()
            if message is None:
                raise Abort(UNEXPECTED_PDU, "A-RELEASE-RQ during an operation")
            if message.command_field != C_CANCEL_RQ:
                if message.path is not None:
                    message.path.unlink(missing_ok=True)
                raise Abort(UNEXPECTED_PARAMETER, "a new request during an operation")
            self._note_cancel(message)
        return message_id in self.cancelled

    def _note_cancel(self, message: Message) -> None:
        responded_to = message.responded_to
        if responded_to is not None:
            self.cancelled.add(responded_to)

    # -- writing
    @property
    def max_fragment(self) -> int:
        """Bytes of data per PDV: the peer's maximum PDU less the PDV item header."""
        return (self.peer_max_pdu or UNLIMITED_PDU) - 6

    def send(self, context_id: int, command: bytes, dataset: bytes | None = None) -> None:
        """One message; the command and a small dataset go out in one write."""
        if dataset is None and len(command) <= self.max_fragment:  # a response, usually
            header = _pdv_headers(len(command), context_id, last=True, command=True)
            self.sock.sendall(header + command)
            return
        self.sock.sendall(self.frames(context_id, command, dataset))

    def frames(self, context_id: int, command: bytes, dataset: bytes | None = None) -> bytes:
        """A message as P-DATA-TF PDUs sized to the peer's maximum."""
        out = bytearray()
        self._frame(out, context_id, 0x01, command)
        if dataset is not None:
            self._frame(out, context_id, 0x00, dataset)
        return bytes(out)

    def _frame(self, out: bytearray, context_id: int, kind: int, data: bytes) -> None:
        step = self.max_fragment
        view = memoryview(data)
        for start in range(0, max(len(data), 1), step):
            chunk = view[start : start + step]
            last = start + step >= len(data)
            out += _PDU_HEADER.pack(0x04, len(chunk) + 6)
            out += _PDV_HEADER.pack(len(chunk) + 2, context_id, kind | (0x02 if last else 0))
            out += chunk

    def _block_size(self) -> int:
        return min(STREAM_BLOCK, self.max_fragment * (IOV_PARTS // 2 - 1))

    def _block_view(self) -> memoryview:
        size = self._block_size()
        if self._block is None or len(self._block) < size:
            self._block = bytearray(size)
        return memoryview(self._block)[:size]

    def preload(self, source: Readable, length: int) -> int:
        """Read the first block of a dataset to send next (while the peer still works on the
        last one); pass the count to `send_stream` as `preloaded`."""
        return source.readinto(self._block_view()[:length]) or 0

    def send_stream(
        self,
        context_id: int,
        command: bytes,
        source: Readable,
        length: int,
        *,
        preloaded: int = 0,
    ) -> None:
        """A command and a dataset read from `source` (`length` bytes from its position), in
        PDVs sized to the peer's maximum PDU, never more than one read block in memory;
        `preloaded`: bytes `preload` put in the block already.

        Each block goes out in one gathering sendmsg (PDU headers between slices of the block):
        a syscall per PDU cost more than the rest of sending a CT slice to a 16 KB-PDU peer."""
        step = self.max_fragment
        view = self._block_view()
        parts: list[bytes | memoryview] = [self.frames(context_id, command)]
        full = _pdv_headers(step, context_id, last=False)  # every PDU but the last
        remaining = length
        while remaining:
            got = preloaded or source.readinto(view[: min(remaining, len(view))])
            preloaded = 0
            if not got:
                raise OSError(f"file ended {remaining} bytes early")
            remaining -= got
            for start in range(0, got, step):
                end = min(start + step, got)
                last = not remaining and end == got
                if end - start == step and not last:
                    parts.append(full)
                else:
                    parts.append(_pdv_headers(end - start, context_id, last=last))
                parts.append(view[start:end])
            self._send_gathered(parts)
            parts = []
        if parts:  # an empty dataset: the command alone
            self._send_gathered(parts)

    def _send_gathered(self, parts: list[bytes | memoryview]) -> None:
        left = sum(map(len, parts))
        index = 0
        while True:
            sent = self.sock.sendmsg(parts[index:] if index else parts)
            left -= sent
            if not left:
                return  # usually after the first call
            while sent >= len(parts[index]):  # skip the parts that went whole
                sent -= len(parts[index])
                index += 1
            if sent:
                parts[index] = memoryview(parts[index])[sent:]

    def respond(
        self,
        message: Message,
        command_field: int,
        status: int,
        *,
        comment: str | None = None,
        sop_instance_uid: str | None = None,
        extra: Mapping[int, bytes] | None = None,
        dataset: bytes | None = None,
    ) -> None:
        """Answer `message` on its own context."""
        message_id = message.message_id or 0
        response = encode_response(
            command_field,
            message.sop_class_uid or self.contexts[message.context_id].abstract_syntax,
            message_id,
            status,
            sop_instance_uid,
            comment,
            dataset=dataset is not None,
            extra=extra,
        )
        self.send(message.context_id, response, dataset)

    def release(self, timeout: float) -> None:
        """A-RELEASE as requestor: ask, then wait for the answer (or hang up after `timeout`)."""
        try:
            self.sock.settimeout(timeout)
            self.sock.sendall(_RELEASE_RQ)
            while True:
                kind, length = self._pdu_header()
                self._read(length)
                if kind in (0x06, 0x07):
                    return
                if kind == 0x05:  # both sides released at once (PS3.8 9.2.7)
                    self.sock.sendall(_RELEASE_RP)
                    return
        except (OSError, PeerGone) as exc:
            self.log.warning("release of the association with %s failed: %s", self.peer, exc)
        finally:
            self.close()


# ----------------------------------------------------------------------------- acceptor

# A service's answer to one request: it reads the message and writes the response(s) itself.
Handler = Callable[["Association", Message], None]


class Association(Link):
    """One accepted association, served on its own thread from A-ASSOCIATE-RQ to release."""

    def __init__(self, sock: socket.socket, address: tuple[str, int], listener: Listener) -> None:
        super().__init__(
            sock,
            address,
            listener.log,
            temp_dir=listener.temp_dir,
            max_dataset=listener.max_dataset,
            answer_oversized=listener.answer_oversized,
        )
        self.listener = listener
        self.policy = listener.policy
        self.monitored = 0  # its number in the listener's `Associations`, once accepted
        self.ending = "aborted"  # how it ended, for the status page

    def run(self) -> None:
        try:
            self.sock.settimeout(self.policy.acse_timeout)
            if not self._associate():
                return
            self.sock.settimeout(self.policy.network_timeout)
            self._serve()
            self.ending = "released"
        except Abort as exc:
            self.log.warning("aborting association with %s: %s", self.peer, exc)
            self.ending = f"aborted: {exc}"
            self.abort(exc.reason)
        except TimeoutError:
            state = "no association request" if not self.established else "peer silent"
            self.log.warning("dropping connection from %s: %s (timeout)", self.peer, state)
            self.ending = f"dropped: {state}"
            self.abort()
        except PeerGone as exc:
            self.ending = str(exc)
            if self.established:
                self.log.warning("association with %s ended: %s", self.peer, exc)
        except OSError as exc:
            self.ending = f"failed: {exc}"
            if self.established:
                self.log.warning("association with %s failed: %s", self.peer, exc)
        finally:
            self.close()
            self.listener.forget(self)
            if self.monitored:
                self.listener.monitor.ended(self.monitored, self.ending)
            if self.established and self.listener.closed is not None:
                try:
                    self.listener.closed(self)
                except Exception:
                    self.log.exception("cleaning up after the association with %s", self.peer)

    def _associate(self) -> bool:
        kind, length = self._pdu_header()
        if kind != 0x01:
            raise Abort(UNEXPECTED_PDU, f"PDU type {kind} before A-ASSOCIATE-RQ")
        if not 68 <= length <= MAX_ASSOCIATE_PDU:
            raise Abort(INVALID_PARAMETER, f"A-ASSOCIATE-RQ of {length} bytes")
        raw = _PDU_HEADER.pack(kind, length) + self._read(length)
        known = self.listener.proposals.get(raw)
        if known is not None:
            rq = known.request
        else:
            try:
                request = pdu.A_ASSOCIATE_RQ()
                request.decode(raw)
                rq = request.to_primitive()
            except Exception as exc:
                raise Abort(INVALID_PARAMETER, f"undecodable A-ASSOCIATE-RQ: {exc}") from exc
        self.calling_ae = str(rq.calling_ae_title or "").strip()
        self.called_ae = str(rq.called_ae_title or "").strip()
        self.remote_ae = self.calling_ae
        refusal = self._refusal(rq)
        if refusal is not None:
            reason, answer = refusal
            self.log.warning("association rejected from %s: %s", self.peer, reason)
            self.listener.monitor.rejected(
                self.listener.service, self.calling_ae, self.called_ae, self.peer, reason
            )
            self.sock.sendall(answer)
            return False
        if known is None:
            negotiated = negotiate(rq, self.policy)
            known = _Answered(rq, negotiated, self._acceptance(rq, negotiated))
            self.listener.proposals.put(raw, known)
        self.contexts = dict(known.negotiated.contexts)
        self.extended = dict(known.negotiated.extended)
        self.peer_max_pdu = _peer_max_pdu(rq)
        self.sock.sendall(known.acceptance)
        self.established = True
        self.monitored = self.listener.monitor.accepted(
            self.listener.service, self.calling_ae, self.called_ae, self.peer
        )
        self.log.info("association accepted from %s", self.peer)
        return True

    def _refusal(self, rq: prim.A_ASSOCIATE) -> tuple[str, bytes] | None:
        policy = self.policy
        if str(rq.application_context_name) != APPLICATION_CONTEXT:
            return "unknown application context", _rejection(1, 1, 2)
        if policy.require_called_ae and self.called_ae != policy.ae_title:
            return f"called AE {self.called_ae!r} is not {policy.ae_title!r}", _rejection(1, 1, 7)
        if policy.allowed_calling_aes and self.calling_ae not in policy.allowed_calling_aes:
            return f"calling AE {self.calling_ae!r} is not allowed", _rejection(1, 1, 3)
        if policy.admit is not None and not policy.admit(self.calling_ae):
            reason = f"calling AE {self.calling_ae!r} is not a registered node with permission"
            return reason, _rejection(1, 1, 3)
        if self.listener.established() >= policy.max_associations:
            return "too many associations", _rejection(2, 3, 2)
        return None

    def _acceptance(self, rq: prim.A_ASSOCIATE, negotiated: Negotiated) -> bytes:
        ac = prim.A_ASSOCIATE()
        ac.application_context_name = rq.application_context_name
        ac.calling_ae_title = rq.calling_ae_title
        ac.called_ae_title = rq.called_ae_title
        ac.result = 0x00
        ac.result_source = 0x01
        ac.presentation_context_definition_results_list = negotiated.results
        # Maximum PDU 0: unlimited, so the peer sends the fewest, largest PDUs.
        ac.user_information = cast(Any, _implementation_items(0) + negotiated.user_items)
        return bytes(pdu.A_ASSOCIATE_AC(ac).encode())

    def _serve(self) -> None:
        handlers = self.listener.handlers
        monitor, service = self.listener.monitor, self.listener.service
        while True:
            message = self.next_message()
            if message is None:
                self.log.info("association released by %s", self.peer)
                return
            started = time.perf_counter()
            command_field, message_id = message.command_field, message.message_id
            if command_field == C_CANCEL_RQ:
                continue  # for an operation already answered: nothing left to stop
            if command_field is None or message_id is None:
                raise Abort(INVALID_PARAMETER, "command without CommandField or MessageID")
            if command_field == C_ECHO_RQ:
                self.respond(message, C_ECHO_RSP, 0x0000)
                monitor.served(self.monitored, service, command_field, started)
                continue
            handler = handlers.get(command_field)
            if handler is None:
                if message.path is not None:
                    message.path.unlink(missing_ok=True)
                self.respond(
                    message,
                    command_field | 0x8000,
                    UNRECOGNIZED_OPERATION,
                    sop_instance_uid=message.sop_instance_uid or None,
                )
                continue
            self._handle(handler, message, command_field)
            monitor.served(self.monitored, service, command_field, started)

    def _handle(self, handler: Handler, message: Message, command_field: int) -> None:
        try:
            handler(self, message)
        except (Abort, PeerGone, OSError):
            raise  # the association itself failed: run() ends it
        except Exception:
            # A bug must cost one request, not the association and its thread.
            self.log.exception("request 0x%04X from %s failed", command_field, self.peer)
            if message.path is not None:
                message.path.unlink(missing_ok=True)
            self.respond(
                message,
                command_field | 0x8000,
                UNABLE_TO_PROCESS,
                comment="internal error; see the log",
            )


@dataclass(frozen=True)
class _Answered:
    """An A-ASSOCIATE-RQ decoded, negotiated and answered (A-ASSOCIATE-AC bytes)."""

    request: prim.A_ASSOCIATE
    negotiated: Negotiated
    acceptance: bytes


class Proposals:
    """Association requests already answered, by their exact bytes. Decoding a request with
    pynetdicom's PDU classes, negotiating and encoding the answer cost ~12 ms of CPU for a
    storescu proposing ~120 contexts, and a modality sends the same request every time. The
    answer depends only on the request and the listener's fixed policy; who may associate
    (AE titles, admission, the association limit) is still decided for every request."""

    LIMIT = 64

    def __init__(self) -> None:
        self._known: dict[bytes, _Answered] = {}
        self._lock = threading.Lock()

    def get(self, raw: bytes) -> _Answered | None:
        with self._lock:
            return self._known.get(raw)

    def put(self, raw: bytes, answered: _Answered) -> None:
        with self._lock:
            if len(self._known) >= self.LIMIT:
                self._known.clear()
            self._known[raw] = answered

    def __len__(self) -> int:
        return len(self._known)


class Listener:
    """Accepts connections and serves each association on its own thread."""

    def __init__(
        self,
        policy: Policy,
        handlers: Mapping[int, Handler],
        host: str,
        port: int,
        temp_dir: Path | None,
        service: str,
        *,
        shared_socket: SharedSocket | None = None,
        max_dataset: int = MAX_IDENTIFIER,
        answer_oversized: bool = False,
        closed: Callable[[Association], None] | None = None,
        monitor: Associations | None = None,
    ) -> None:
        self.policy = policy
        self.handlers = handlers
        # Non-C-STORE datasets are held in memory up to max_dataset (image boxes of a print
        # session are larger than any identifier); `closed` is told when an established
        # association ends, however it ends (a service's per-association state).
        self.max_dataset = max_dataset
        self.answer_oversized = answer_oversized
        self.closed = closed
        self.address = (host, port)
        self.temp_dir = temp_dir
        # A listening socket made by the main process and shared with receiver processes, which
        # hands each new connection to the process serving the fewest (SO_REUSEPORT's hash of
        # the peer address would not: four associations could all land on one process).
        self.shared_socket = shared_socket
        self.service = service
        self.log = get_logger(service)
        # Told of every association and request (status page, /metrics); server.py gives the
        # listeners of a process one shared `Associations`.
        self.monitor = monitor or Associations()
        self._socket: socket.socket | None = None
        self._associations: set[Association] = set()
        self._lock = threading.Lock()
        self.proposals = Proposals()

    @property
    def port(self) -> int:
        assert self._socket is not None
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        if self.shared_socket is not None:
            self._socket = self.shared_socket.sock
            take = self.shared_socket.accept
        else:
            self._socket = socket.create_server(self.address, backlog=64)
            take = self._socket.accept
        threading.Thread(target=self._accept, args=(take,), daemon=True).start()
        self.log.info("listening as %s on %s:%d", self.policy.ae_title, self.address[0], self.port)

    def _accept(self, take: Callable[[], tuple[socket.socket, Any]]) -> None:
        while True:
            try:
                sock, address = take()
            except OSError:
                return  # the listening socket was closed: stop()
            with self._lock:
                crowded = (
                    len(self._associations) >= CONNECTION_FACTOR * self.policy.max_associations
                )
            if crowded:
                # Connections that never associate hold a thread until acse_timeout; a flood of
                # them must not exhaust the process.
                self.log.warning("refusing a connection from %s: too many open", address[0])
                sock.close()
                self._ended()
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            association = Association(sock, address[:2], self)
            with self._lock:
                self._associations.add(association)
            threading.Thread(
                target=association.run, name=f"{self.log.name}-{address[0]}", daemon=True
            ).start()

    def forget(self, association: Association) -> None:
        with self._lock:
            self._associations.discard(association)
        self._ended()

    def _ended(self) -> None:
        if self.shared_socket is not None:
            self.shared_socket.closed()

    def established(self) -> int:
        with self._lock:
            return sum(1 for a in self._associations if a.established)

    def stop(self, grace: float) -> None:
        """Stop accepting, give established associations `grace` seconds, abort the rest.

        Connections that never associated (a port scan, a load balancer's probe) get no wait.
        """
        server, self._socket = self._socket, None
        if server is None:
            return
        if self.shared_socket is not None:
            # Only this process's descriptor: shutdown() would stop the others' accepting too.
            # The acceptor notices within a second (SharedSocket.accept).
            self.shared_socket.retire()
        else:
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
        server.close()
        deadline = time.monotonic() + grace
        while self.established() and time.monotonic() < deadline:
            time.sleep(0.05)
        with self._lock:
            remaining = list(self._associations)
        for association in remaining:
            if association.established:
                self.log.warning("aborting association with %s at shutdown", association.peer)
            association.abort()
        self.log.info("stopped")


# ----------------------------------------------------------------------------- requestor


@dataclass(frozen=True)
class Proposal:
    """One presentation context to propose: an abstract syntax and its transfer syntaxes."""

    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]


MAX_CONTEXTS = 128  # odd context IDs 1..255 (PS3.8 9.3.2.2)


def request_association(
    host: str,
    port: int,
    *,
    calling_ae: str,
    called_ae: str,
    proposals: Sequence[Proposal],
    log: Logger,
    timeout: float,
    scp_roles: Sequence[str] = (),
) -> Link:
    """Open an association as requestor; AssociationFailed says why when it does not come about.

    `scp_roles`: SOP classes for which we propose to be the SCP (role selection).
    """
    if not 0 < len(proposals) <= MAX_CONTEXTS:
        raise ValueError(f"{len(proposals)} presentation contexts; 1 to {MAX_CONTEXTS} allowed")
    where = f"{called_ae}@{host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError as exc:
        raise NoAnswer(
            f"cannot connect to {where}: no answer within {timeout:g} s; check the host, port "
            "and firewalls on the way"
        ) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise Refused(
            f"cannot connect to {where}: {reason}; check the host, port and that the node is "
            "running"
        ) from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    link = Link(sock, (host, port), log)
    link.calling_ae, link.called_ae, link.remote_ae = calling_ae, called_ae, called_ae
    try:
        sock.sendall(_associate_rq(calling_ae, called_ae, proposals, scp_roles))
        _read_acceptance(link, proposals, where)
    except AssociationFailed:
        link.close()
        raise
    except TimeoutError as exc:
        link.abort()
        link.close()
        raise NoAnswer(
            f"{where} accepted the connection but did not answer the association request "
            f"within {timeout:g} s; check that it is a DICOM port"
        ) from exc
    except (OSError, PeerGone, Abort) as exc:
        link.abort()
        link.close()
        raise Refused(f"association with {where} failed: {exc}") from exc
    link.established = True
    return link


def _associate_rq(
    calling_ae: str, called_ae: str, proposals: Sequence[Proposal], scp_roles: Sequence[str]
) -> bytes:
    rq = prim.A_ASSOCIATE()
    rq.application_context_name = APPLICATION_CONTEXT
    rq.calling_ae_title = calling_ae
    rq.called_ae_title = called_ae
    contexts = []
    for number, proposal in enumerate(proposals):
        context = PresentationContext()
        context.context_id = 2 * number + 1
        context.abstract_syntax = proposal.abstract_syntax
        context.transfer_syntax = list(proposal.transfer_syntaxes)
        contexts.append(context)
    rq.presentation_context_definition_list = contexts
    items = _implementation_items(0)
    for uid in scp_roles:
        role = prim.SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid = uid
        role.scu_role = True
        role.scp_role = True
        items.append(role)
    rq.user_information = cast(Any, items)
    return bytes(pdu.A_ASSOCIATE_RQ(rq).encode())


_REJECT_REASONS = {
    (1, 1): "no reason given",
    (1, 2): "application context not supported",
    (1, 3): "calling AE title not recognised",
    (1, 7): "called AE title not recognised",
    (2, 1): "no reason given",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}


def _read_acceptance(link: Link, proposals: Sequence[Proposal], where: str) -> None:
    kind, length = link._pdu_header()
    if not 0 < length <= MAX_ASSOCIATE_PDU:
        raise Abort(INVALID_PARAMETER, f"association answer of {length} bytes")
    raw = _PDU_HEADER.pack(kind, length) + link._read(length)
    if kind == 0x03:
        rejection = pdu.A_ASSOCIATE_RJ()
        rejection.decode(raw)
        answer = rejection.to_primitive()
        source, diagnostic = int(answer.result_source or 0), int(answer.diagnostic or 0)
        why = _REJECT_REASONS.get((source, diagnostic), f"source {source} reason {diagnostic}")
        permanence = "permanently" if answer.result == 1 else "for now"
        raise Refused(
            f"{where} rejected the association {permanence}: {why}; check the called AE title "
            f"and that the node accepts our AE title {link.calling_ae}"
        )
    if kind == 0x07:
        raise Refused(f"{where} aborted the association request")
    if kind != 0x02:
        raise Abort(UNEXPECTED_PDU, f"PDU type {kind} in answer to A-ASSOCIATE-RQ")
    accepted = pdu.A_ASSOCIATE_AC()
    accepted.decode(raw)
    ac = accepted.to_primitive()
    link.peer_max_pdu = _peer_max_pdu(ac)
    roles = {
        str(item.sop_class_uid): bool(item.scp_role)
        for item in ac.user_information
        if isinstance(item, prim.SCP_SCU_RoleSelectionNegotiation)
    }
    for result in ac.presentation_context_definition_results_list:
        context_id = int(result.context_id or 0)
        number = (context_id - 1) // 2
        if result.result != 0x00 or not 0 <= number < len(proposals) or context_id % 2 == 0:
            continue
        abstract = proposals[number].abstract_syntax
        link.contexts[context_id] = Context(
            context_id,
            abstract,
            str(result.transfer_syntax[0]).rstrip("\0 "),
            reverse=roles.get(abstract, False),
        )
    if not link.contexts:
        raise NoContexts(f"{where} accepted none of the proposed presentation contexts")
