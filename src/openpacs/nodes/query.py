"""Querying a node (C-FIND) without knowing DIMSE: the composition root injects the client."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydicom import Dataset

from openpacs.nodes.echo import Address
from openpacs.nodes.errors import PeerRefused, ServiceUnavailable

PENDING = frozenset({0xFF00, 0xFF01})


@dataclass(frozen=True)
class FindResult:
    answers: list[Dataset]  # in the order the node sent them
    status: int  # the final status
    comment: str  # the final status's ErrorComment


# (where, identifier, information model "study" or "patient"); raises PeerRefused or PeerSilent
# when the association fails.
Find = Callable[[Address, Dataset, str], FindResult]


def query(find: Find | None, address: Address, identifier: Dataset, model: str) -> FindResult:
    """C-FIND the node: its answers, or an error saying what went wrong (a failure status
    is the node refusing the query)."""
    if find is None:
        raise ServiceUnavailable("C-FIND is not available in this process (openpacs serve has it)")
    result = find(address, identifier, model)
    if result.status != 0:
        reason = f": {result.comment}" if result.comment else ""
        raise PeerRefused(
            f"node {address.name!r} ({address.ae_title}@{address.host}:{address.port}) answered "
            f"the C-FIND with status 0x{result.status:04X}{reason}"
        )
    return result
