"""The SCU side: what openpacs asks of other DICOM nodes."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from pynetdicom import AE

from openpacs.dimse.sop import QR_MODELS, VERIFICATION

_ADDRESS = re.compile(r"(?P<ae>[^@]{1,16})@(?P<host>[^:]+):(?P<port>\d{1,5})")


@dataclass(frozen=True)
class Peer:
    ae_title: str
    host: str
    port: int

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


class AssociationFailed(Exception):
    """The peer could not be reached or rejected the association."""


class Refused(AssociationFailed):
    """The peer said no: connection refused, association rejected or aborted."""


class NoAnswer(AssociationFailed):
    """Nothing came back from the peer before the timeout."""


# Only waiting for silence takes (nearly) the whole timeout; a refusal comes back at once.
SILENCE = 0.9


@dataclass(frozen=True)
class EchoResult:
    status: int
    seconds: float


def echo(peer: Peer, *, calling_ae: str = "OPENPACS", timeout: float = 10) -> EchoResult:
    """C-ECHO: the status and the round-trip time of association plus echo."""
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = timeout
    ae.add_requested_context(VERIFICATION)
    started = time.perf_counter()
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title)
    if not assoc.is_established:
        raise _failure(peer, assoc, time.perf_counter() - started, timeout)
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    elapsed = time.perf_counter() - started
    if not status or "Status" not in status:
        where = f"{peer.ae_title}@{peer.host}:{peer.port}"
        if elapsed >= SILENCE * timeout:
            raise NoAnswer(f"{where} did not answer the C-ECHO within {timeout:g} s")
        raise Refused(f"{where} aborted the association instead of answering the C-ECHO")
    return EchoResult(int(status.Status), elapsed)


def _failure(peer: Peer, assoc: Any, elapsed: float, timeout: float) -> AssociationFailed:
    failed = f"association with {peer.ae_title}@{peer.host}:{peer.port} failed"
    if assoc.is_rejected:
        answer = assoc.acceptor.primitive
        why = f"{answer.result_str}, {answer.source_str}: {answer.reason_str}" if answer else "-"
        return Refused(
            f"{failed} (rejected); the node says {why}; check the called AE title and that "
            f"the node accepts our AE title {assoc.requestor.ae_title}"
        )
    if elapsed >= SILENCE * timeout:
        return NoAnswer(
            f"{failed} (no answer within {timeout:g} s); check the host, port and firewalls "
            "on the way"
        )
    return Refused(
        f"{failed} (refused or aborted); check the host, port and that the node is running"
    )


# C-FIND information models by the name a command line uses.
FIND_MODELS = {name: models[0] for name, models in QR_MODELS.items()}
PENDING = frozenset({0xFF00, 0xFF01})


@dataclass(frozen=True)
class FindResult:
    answers: list[Any]  # pydicom Datasets, in the order the peer sent them
    status: int  # the final status
    comment: str = ""  # the final status's ErrorComment: why a query failed


def find(
    peer: Peer,
    identifier: Any,
    *,
    model: str = "study",
    calling_ae: str = "OPENPACS",
    timeout: float = 30,
) -> FindResult:
    """C-FIND: every answer to `identifier` (a pydicom Dataset holding QueryRetrieveLevel) and
    the final status. Raises AssociationFailed like `echo`, NoAnswer when answers stop."""
    if model not in FIND_MODELS:
        raise ValueError(f"model {model!r}: use one of {', '.join(FIND_MODELS)}")
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    ae.connection_timeout = timeout
    ae.add_requested_context(FIND_MODELS[model])
    started = time.perf_counter()
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title)
    if not assoc.is_established:
        raise _failure(peer, assoc, time.perf_counter() - started, timeout)
    answers = []
    final: int | None = None
    comment = ""
    try:
        if not any(cx.abstract_syntax == FIND_MODELS[model] for cx in assoc.accepted_contexts):
            raise Refused(
                f"{peer.ae_title}@{peer.host}:{peer.port} does not offer the {model} root C-FIND"
                f" model; try --model {'patient' if model == 'study' else 'study'}"
            )
        for status, answer in assoc.send_c_find(identifier, FIND_MODELS[model]):
            if not status or "Status" not in status:
                break  # the association was aborted or timed out: no final status
            code = int(status.Status)
            if code in PENDING:
                if answer is not None:
                    answers.append(answer)
                continue
            final = code
            comment = str(status.get("ErrorComment", "") or "")
    finally:
        if assoc.is_established:
            assoc.release()
    if final is None:
        raise NoAnswer(
            f"{peer.ae_title}@{peer.host}:{peer.port} stopped answering the C-FIND "
            f"(aborted, or silent for {timeout:g} s) after {len(answers)} answer(s)"
        )
    return FindResult(answers, final, comment)
