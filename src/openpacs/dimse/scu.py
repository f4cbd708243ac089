"""The SCU side's common ground: who a peer is, C-ECHO, and one request-response exchange.

Every SCU (C-ECHO here, C-FIND/C-MOVE/C-GET in qr_scu.py, C-STORE in sender.py) runs on our
own engine; failures are `AssociationFailed`: `Refused` when the peer said no, `NoAnswer` when
it stayed silent.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from openpacs.dicom import codecs
from openpacs.dimse.engine import (
    AFFECTED_SOP_CLASS,
    C_ECHO_RQ,
    C_ECHO_RSP,
    COMMAND_FIELD,
    DATASET_TYPE,
    MESSAGE_ID,
    NO_DATASET,
    Abort,
    AssociationFailed,
    Link,
    NoAnswer,
    PeerGone,
    Proposal,
    Refused,
    encode_command,
    request_association,
    ui,
    us,
)
from openpacs.dimse.sop import VERIFICATION
from openpacs.logs import get_logger

log = get_logger("qrscu")

_ADDRESS = re.compile(r"(?P<ae>[^@]{1,16})@(?P<host>[^:]+):(?P<port>\d{1,5})")


@dataclass(frozen=True)
class Peer:
    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str) -> Peer:
        """'AE@host:port' as typed on a command line."""
        match = _ADDRESS.fullmatch(text.strip())
        if not match:
            raise ValueError(
                f"{text!r}: write the peer as AE@host:port, e.g. ORTHANC@127.0.0.1:4242"
            )
        port = int(match["port"])
        if not 0 < port < 65536:
            raise ValueError(f"{text!r}: port {port} is out of range")
        return cls(match["ae"], match["host"], port)


def associate(
    peer: Peer,
    proposals: list[Proposal],
    *,
    calling_ae: str,
    timeout: float,
    scp_roles: list[str] | None = None,
) -> Link:
    """An association whose first proposal (the service asked for) was accepted."""
    link = request_association(
        peer.host,
        peer.port,
        calling_ae=calling_ae,
        called_ae=peer.ae_title,
        proposals=proposals,
        log=log,
        timeout=timeout,
        scp_roles=scp_roles or [],
    )
    wanted = proposals[0].abstract_syntax
    if not any(context.abstract_syntax == wanted for context in link.contexts.values()):
        link.release(timeout)
        raise Refused(f"{peer} does not offer {describe(wanted)}")
    return link


def describe(sop_class: str) -> str:
    """A service class as a person names it."""
    from openpacs.dimse.sop import QR_MODELS

    for name, models in QR_MODELS.items():
        if sop_class in models:
            verb = ("C-FIND", "C-MOVE", "C-GET")[models.index(sop_class)]
            other = "patient" if name == "study" else "study"
            return f"the {name} root {verb} model (try the {other} root model)"
    return "verification (C-ECHO)" if sop_class == VERIFICATION else sop_class


def broke(link: Link, exc: Exception, what: str) -> AssociationFailed:
    """Close a link that failed mid-exchange; the error to raise, saying how it failed."""
    link.abort(exc.reason if isinstance(exc, Abort) else 0)
    link.close()
    if isinstance(exc, TimeoutError):
        return NoAnswer(f"{link.peer} did not answer the {what} in time")
    if isinstance(exc, PeerGone):
        return Refused(f"{link.peer} ended the association instead of answering the {what}")
    return Refused(f"the association with {link.peer} broke during the {what}: {exc}")


@dataclass(frozen=True)
class EchoResult:
    status: int
    seconds: float


def echo(peer: Peer, *, calling_ae: str = "OPENPACS", timeout: float = 10) -> EchoResult:
    """C-ECHO: the status and the round-trip time of association, echo and release."""
    started = time.perf_counter()
    syntaxes = (codecs.IMPLICIT_VR_LE, codecs.EXPLICIT_VR_LE)
    link = associate(
        peer, [Proposal(VERIFICATION, syntaxes)], calling_ae=calling_ae, timeout=timeout
    )
    try:
        link.sock.settimeout(timeout)
        context = next(iter(link.contexts))
        message_id = link.next_message_id()
        command = {
            AFFECTED_SOP_CLASS: ui(VERIFICATION),
            COMMAND_FIELD: us(C_ECHO_RQ),
            MESSAGE_ID: us(message_id),
            DATASET_TYPE: us(NO_DATASET),
        }
        link.send(context, encode_command(command))
        answer = link.next_message()
        if answer is None or answer.command_field != C_ECHO_RSP or answer.status is None:
            raise Abort(0, "no C-ECHO response")
    except (OSError, PeerGone, Abort) as exc:
        raise broke(link, exc, "C-ECHO") from exc
    link.release(timeout)
    return EchoResult(answer.status, time.perf_counter() - started)


__all__ = [
    "AssociationFailed",
    "EchoResult",
    "NoAnswer",
    "Peer",
    "Refused",
    "associate",
    "broke",
    "describe",
    "echo",
]
