"""The Store SCP's network engine: C-ECHO and C-STORE over plain blocking sockets.

pynetdicom's general-purpose engine polls its queues from two threads per association and spends
~6.5 ms of CPU on every received object (docs/performance.md); this engine spends under 1 ms.
It does the one thing the Store SCP needs: negotiate (pynetdicom's PDU classes encode and decode
the association PDUs), then read P-DATA PDV by PDV, writing each dataset fragment straight into a
temp file in the storage's temporary folder (so a 1 GB object never sits in memory), hand the
complete file to the handler, and answer with a hand-encoded response. One thread per
association; socket timeouts stand in for the ARTIM and network timers. Other services (Q/R,
worklist, print) and the SCU side stay on pynetdicom.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pynetdicom import pdu
from pynetdicom import pdu_primitives as prim
from pynetdicom.presentation import PresentationContext

from openpacs.dicom.uids import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION
from openpacs.logs import get_logger

APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
VERIFICATION = "1.2.840.10008.1.1"

MAX_ASSOCIATE_RQ = 1 << 20  # bytes; a larger request is not a real one
MAX_COMMAND = 1 << 16
CONNECTION_FACTOR = 4  # open connections allowed per permitted association
BUFFER = 1 << 18

C_STORE_RQ, C_STORE_RSP, C_ECHO_RQ, C_ECHO_RSP = 0x0001, 0x8001, 0x0030, 0x8030
NO_DATASET = 0x0101
UNRECOGNIZED_OPERATION = 0x0211

# A-ABORT reasons (PS3.8 9.3.8), source 2: the service provider.
UNRECOGNIZED_PDU, UNEXPECTED_PDU, UNEXPECTED_PARAMETER, INVALID_PARAMETER = 1, 2, 5, 6

_PDU_HEADER = struct.Struct(">BxI")
_PDV_HEADER = struct.Struct(">IBB")
_IMPLICIT_ELEMENT = struct.Struct("<HHI")
_RELEASE_RP = b"\x06\x00\x00\x00\x00\x04\x00\x00\x00\x00"


class Abort(Exception):
    """The peer broke the protocol: answer with A-ABORT and drop the connection."""

    def __init__(self, reason: int, why: str) -> None:
        super().__init__(why)
        self.reason = reason


class PeerGone(Exception):
    """The peer closed the connection."""


@dataclass(frozen=True)
class Received:
    """A complete C-STORE: the file (preamble, file meta, dataset as received) and its command."""

    path: Path
    calling_ae: str
    sop_class_uid: str
    sop_instance_uid: str


# The handler takes ownership of the file and answers (status, error comment or None).
StoreHandler = Callable[[Received], tuple[int, str | None]]


@dataclass(frozen=True)
class Policy:
    """Who may associate and what they may propose."""

    ae_title: str
    require_called_ae: bool
    allowed_calling_aes: frozenset[str]
    sop_classes: frozenset[str]
    transfer_syntaxes: frozenset[str]
    acse_timeout: float
    network_timeout: float
    max_associations: int = 64


# ----------------------------------------------------------------------------- encoding


def _even(value: bytes, pad: bytes = b"\0") -> bytes:
    return value + pad if len(value) % 2 else value


def _implicit(element: int, value: bytes) -> bytes:
    return _IMPLICIT_ELEMENT.pack(0x0000, element, len(value)) + value


def _us(value: int) -> bytes:
    return struct.pack("<H", value)


def encode_response(
    command_field: int,
    sop_class_uid: str,
    message_id: int,
    status: int,
    sop_instance_uid: str | None = None,
    comment: str | None = None,
) -> bytes:
    """A response command set (implicit VR LE, with its group length), elements in tag order."""
    elements = [
        _implicit(0x0002, _even(sop_class_uid.encode())),
        _implicit(0x0100, _us(command_field)),
        _implicit(0x0120, _us(message_id)),
        _implicit(0x0800, _us(NO_DATASET)),
        _implicit(0x0900, _us(status)),
    ]
    if comment:
        text = comment.encode("ascii", "replace")[:64]
        elements.append(_implicit(0x0902, _even(text, b" ")))
    if sop_instance_uid:
        elements.append(_implicit(0x1000, _even(sop_instance_uid.encode())))
    body = b"".join(elements)
    return _implicit(0x0000, struct.pack("<I", len(body))) + body


def _p_data(context_id: int, command: bytes) -> bytes:
    pdv = _PDV_HEADER.pack(len(command) + 2, context_id, 0x03) + command
    return _PDU_HEADER.pack(0x04, len(pdv)) + pdv


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


def _text(value: bytes | None) -> str:
    return (value or b"").rstrip(b"\0 ").decode("ascii", "replace")


def _ushort(value: bytes | None) -> int | None:
    return int(struct.unpack("<H", value)[0]) if value and len(value) == 2 else None


# ----------------------------------------------------------------------------- negotiation


def negotiate(
    rq: prim.A_ASSOCIATE, policy: Policy
) -> tuple[list[PresentationContext], dict[int, str]]:
    """Answer each proposed context: the requestor's first transfer syntax we support wins,
    so a modality sends its native encoding and a compressed image stays compressed."""
    results: list[PresentationContext] = []
    accepted: dict[int, str] = {}
    for proposed in rq.presentation_context_definition_list:
        answer = PresentationContext()
        answer.context_id = proposed.context_id
        answer.abstract_syntax = proposed.abstract_syntax
        syntaxes = [str(ts) for ts in proposed.transfer_syntax]
        chosen = next((ts for ts in syntaxes if ts in policy.transfer_syntaxes), None)
        if str(proposed.abstract_syntax) not in policy.sop_classes:
            answer.result = 0x03  # abstract syntax not supported
        elif chosen is None:
            answer.result = 0x04  # transfer syntaxes not supported
        else:
            answer.result = 0x00
            assert proposed.context_id is not None
            accepted[proposed.context_id] = chosen
        answer.transfer_syntax = [chosen or syntaxes[0]]
        results.append(answer)
    return results, accepted


def _rejection(result: int, source: int, diagnostic: int) -> bytes:
    rj = prim.A_ASSOCIATE()
    rj.result, rj.result_source, rj.diagnostic = result, source, diagnostic
    return bytes(pdu.A_ASSOCIATE_RJ(rj).encode())


# ----------------------------------------------------------------------------- association


class Association:
    """One association, served on its own thread from A-ASSOCIATE-RQ to release or abort."""

    def __init__(
        self,
        sock: socket.socket,
        address: tuple[str, int],
        listener: StoreListener,
    ) -> None:
        self.sock = sock
        self.address = address
        self.listener = listener
        self.policy = listener.policy
        self.log = listener.log
        self.calling_ae = ""
        self.established = False
        self.contexts: dict[int, str] = {}
        self.buffer = bytearray(BUFFER)
        self.view = memoryview(self.buffer)
        self.temp: tuple[int, Path] | None = None

    @property
    def peer(self) -> str:
        return f"{self.calling_ae or '?'}@{self.address[0]}:{self.address[1]}"

    # -- socket
    def _read_into(self, view: memoryview) -> None:
        got, wanted = 0, len(view)
        while got < wanted:
            count = self.sock.recv_into(view[got:])
            if not count:
                raise PeerGone
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

    # -- life
    def run(self) -> None:
        try:
            self.sock.settimeout(self.policy.acse_timeout)
            if not self._associate():
                return
            self.sock.settimeout(self.policy.network_timeout)
            self._serve()
        except Abort as exc:
            self.log.warning("aborting association with %s: %s", self.peer, exc)
            self.abort(exc.reason)
        except TimeoutError:
            state = "no association request" if not self.established else "peer silent"
            self.log.warning("dropping connection from %s: %s (timeout)", self.peer, state)
            self.abort()
        except PeerGone:
            if self.established:
                self.log.warning("association with %s ended without release", self.peer)
        except OSError as exc:
            if self.established:
                self.log.warning("association with %s failed: %s", self.peer, exc)
        finally:
            self._discard_partial()
            with contextlib.suppress(OSError):
                self.sock.close()
            self.listener.forget(self)

    def _associate(self) -> bool:
        kind, length = self._pdu_header()
        if kind != 0x01:
            raise Abort(UNEXPECTED_PDU, f"PDU type {kind} before A-ASSOCIATE-RQ")
        if not 68 <= length <= MAX_ASSOCIATE_RQ:
            raise Abort(INVALID_PARAMETER, f"A-ASSOCIATE-RQ of {length} bytes")
        raw = _PDU_HEADER.pack(kind, length) + self._read(length)
        try:
            request = pdu.A_ASSOCIATE_RQ()
            request.decode(raw)
            rq = request.to_primitive()
        except Exception as exc:
            raise Abort(INVALID_PARAMETER, f"undecodable A-ASSOCIATE-RQ: {exc}") from exc
        self.calling_ae = str(rq.calling_ae_title or "").strip()
        refusal = self._refusal(rq)
        if refusal is not None:
            reason, answer = refusal
            self.log.warning("association rejected from %s: %s", self.peer, reason)
            self.sock.sendall(answer)
            return False
        results, self.contexts = negotiate(rq, self.policy)
        self.sock.sendall(self._acceptance(rq, results))
        self.established = True
        self.log.info("association accepted from %s", self.peer)
        return True

    def _refusal(self, rq: prim.A_ASSOCIATE) -> tuple[str, bytes] | None:
        policy = self.policy
        called = str(rq.called_ae_title or "").strip()
        if str(rq.application_context_name) != APPLICATION_CONTEXT:
            return "unknown application context", _rejection(1, 1, 2)
        if policy.require_called_ae and called != policy.ae_title:
            return f"called AE {called!r} is not {policy.ae_title!r}", _rejection(1, 1, 7)
        if policy.allowed_calling_aes and self.calling_ae not in policy.allowed_calling_aes:
            return f"calling AE {self.calling_ae!r} is not allowed", _rejection(1, 1, 3)
        if self.listener.established() >= policy.max_associations:
            return "too many associations", _rejection(2, 3, 2)
        return None

    def _acceptance(self, rq: prim.A_ASSOCIATE, results: list[PresentationContext]) -> bytes:
        ac = prim.A_ASSOCIATE()
        ac.application_context_name = rq.application_context_name
        ac.calling_ae_title = rq.calling_ae_title
        ac.called_ae_title = rq.called_ae_title
        ac.result = 0x00
        ac.result_source = 0x01
        ac.presentation_context_definition_results_list = results
        maximum = prim.MaximumLengthNotification()
        maximum.maximum_length_received = 0  # unlimited: fewest, largest PDUs
        uid = prim.ImplementationClassUIDNotification()
        uid.implementation_class_uid = IMPLEMENTATION_CLASS_UID
        version = prim.ImplementationVersionNameNotification()
        version.implementation_version_name = IMPLEMENTATION_VERSION
        ac.user_information = [maximum, uid, version]
        return bytes(pdu.A_ASSOCIATE_AC(ac).encode())

    def _serve(self) -> None:
        command = bytearray()
        pending: dict[int, bytes] | None = None  # a command whose dataset is arriving
        pending_context = 0
        while True:
            kind, length = self._pdu_header()
            if kind == 0x05:  # A-RELEASE-RQ
                self._read(length)
                self.sock.sendall(_RELEASE_RP)
                self.log.info("association released by %s", self.peer)
                return
            if kind == 0x07:  # A-ABORT
                self.log.warning("association aborted by %s", self.peer)
                return
            if kind != 0x04:
                raise Abort(UNEXPECTED_PDU, f"unexpected PDU type {kind}")
            remaining = length
            while remaining:
                if remaining < 6:
                    raise Abort(INVALID_PARAMETER, "truncated PDV")
                self._read_into(self.view[:6])
                pdv_length, context_id, control = _PDV_HEADER.unpack_from(self.buffer)
                if pdv_length < 2 or pdv_length + 4 > remaining:
                    raise Abort(INVALID_PARAMETER, "PDV longer than its PDU")
                if context_id not in self.contexts:
                    raise Abort(UNEXPECTED_PARAMETER, f"context {context_id} was not accepted")
                remaining -= pdv_length + 4
                size = pdv_length - 2
                if control & 0x01:  # a command fragment
                    if pending is not None or len(command) + size > MAX_COMMAND:
                        raise Abort(UNEXPECTED_PARAMETER, "command out of sequence")
                    command += self._read(size)
                    if control & 0x02:
                        parsed = parse_command(bytes(command))
                        command.clear()
                        if _ushort(parsed.get(0x0800)) == NO_DATASET:
                            self._answer(parsed, context_id)
                        else:
                            pending, pending_context = parsed, context_id
                            self._begin_dataset(parsed, context_id)
                else:  # a dataset fragment
                    if pending is None or context_id != pending_context:
                        raise Abort(UNEXPECTED_PARAMETER, "dataset without its command")
                    self._receive(size)
                    if control & 0x02:
                        self._answer(pending, context_id)
                        pending = None

    # -- datasets
    def _begin_dataset(self, cmd: dict[int, bytes], context_id: int) -> None:
        if _ushort(cmd.get(0x0100)) != C_STORE_RQ:
            return  # another service's dataset: read and dropped, answered 0x0211
        fd, name = tempfile.mkstemp(dir=self.listener.temp_dir, suffix=".part")
        self.temp = (fd, Path(name))
        meta = file_meta(
            _text(cmd.get(0x0002)),
            _text(cmd.get(0x1000)),
            self.contexts[context_id],
            self.calling_ae,
        )
        os.write(fd, meta)

    def _receive(self, size: int) -> None:
        fd = self.temp[0] if self.temp else None
        while size:
            count = min(size, BUFFER)
            chunk = self.view[:count]
            self._read_into(chunk)
            while fd is not None and chunk:
                chunk = chunk[os.write(fd, chunk) :]
            size -= count

    def _discard_partial(self) -> None:
        if self.temp is None:
            return
        fd, path = self.temp
        self.temp = None
        with contextlib.suppress(OSError):
            os.close(fd)
        path.unlink(missing_ok=True)
        self.log.warning("discarded a partly received object from %s", self.peer)

    def _answer(self, cmd: dict[int, bytes], context_id: int) -> None:
        field = _ushort(cmd.get(0x0100))
        message_id = _ushort(cmd.get(0x0110))
        if field is None or message_id is None:
            raise Abort(INVALID_PARAMETER, "command without CommandField or MessageID")
        sop_class = _text(cmd.get(0x0002))
        sop_instance = _text(cmd.get(0x1000))
        if field == C_ECHO_RQ:
            response = encode_response(C_ECHO_RSP, sop_class or VERIFICATION, message_id, 0x0000)
        elif field == C_STORE_RQ and self.temp is not None:
            fd, path = self.temp
            self.temp = None
            os.close(fd)
            status, comment = self.listener.handler(
                Received(path, self.calling_ae, sop_class, sop_instance)
            )
            response = encode_response(
                C_STORE_RSP, sop_class, message_id, status, sop_instance, comment
            )
        else:
            response = encode_response(
                field | 0x8000, sop_class, message_id, UNRECOGNIZED_OPERATION, sop_instance or None
            )
        self.sock.sendall(_p_data(context_id, response))


# ----------------------------------------------------------------------------- listener


class StoreListener:
    """Accepts connections and serves each association on its own thread."""

    def __init__(
        self,
        policy: Policy,
        handler: StoreHandler,
        host: str,
        port: int,
        temp_dir: Path,
        service: str,
        *,
        shared_socket: socket.socket | None = None,
    ) -> None:
        self.policy = policy
        self.handler = handler
        self.address = (host, port)
        self.temp_dir = temp_dir
        # A listening socket made by the main process and shared with receiver processes: each
        # process blocks in accept() on it and the kernel hands every new connection to one
        # waiting acceptor in turn, which spreads associations evenly (SO_REUSEPORT's hash of
        # the peer address does not: four associations could all land on one process).
        self.shared_socket = shared_socket
        self.log = get_logger(service)
        self._socket: socket.socket | None = None
        self._associations: set[Association] = set()
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        assert self._socket is not None
        return int(self._socket.getsockname()[1])

    def start(self) -> None:
        self._socket = self.shared_socket or socket.create_server(self.address, backlog=64)
        threading.Thread(target=self._accept, args=(self._socket,), daemon=True).start()
        self.log.info("listening as %s on %s:%d", self.policy.ae_title, self.address[0], self.port)

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                sock, address = server.accept()
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
