"""Verifying a node (C-ECHO) without knowing DIMSE: the composition root injects the sender."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from openpacs.archive.models import Node
from openpacs.nodes.errors import EchoUnavailable, PeerRefused


@dataclass(frozen=True)
class Address:
    """Where a node listens: what a DIMSE sender needs, detached from any session."""

    name: str
    ae_title: str
    host: str
    port: int
    tls: bool

    @classmethod
    def of(cls, node: Node) -> Address:
        return cls(node.name, node.ae_title, node.host, node.port, node.tls)


@dataclass(frozen=True)
class EchoResult:
    status: int
    seconds: float


# Raises PeerRefused or PeerSilent when the association fails.
Echo = Callable[[Address], EchoResult]


def verify(echo: Echo | None, node: Node) -> EchoResult:
    """C-ECHO the node; success or an error that says what went wrong."""
    if echo is None:
        raise EchoUnavailable("C-ECHO is not available in this process (openpacs serve has it)")
    result = echo(Address.of(node))
    if result.status != 0:
        raise PeerRefused(
            f"node {node.name!r} ({node.ae_title}@{node.host}:{node.port}) answered C-ECHO "
            f"with status 0x{result.status:04X}"
        )
    return result
