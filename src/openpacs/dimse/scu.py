"""The SCU side: what openpacs asks of other DICOM nodes."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from pynetdicom import AE

from openpacs.dimse.sop import VERIFICATION

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
    ae.add_requested_context(VERIFICATION)
    started = time.perf_counter()
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title)
    if not assoc.is_established:
        reason = "rejected" if assoc.is_rejected else "no answer or aborted"
        raise AssociationFailed(
            f"association with {peer.ae_title}@{peer.host}:{peer.port} failed ({reason}); "
            "check the host, port and the called AE title"
        )
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    elapsed = time.perf_counter() - started
    code = int(status.Status) if status and "Status" in status else 0xFFFF
    return EchoResult(code, elapsed)
