"""Remote DICOM nodes: who we send to, query and retrieve from, and who may ask what of us."""

from __future__ import annotations

from openpacs.nodes.echo import Address, Echo, EchoResult, verify
from openpacs.nodes.errors import (
    DuplicateNode,
    EchoUnavailable,
    NodeNotFound,
    PeerRefused,
    PeerSilent,
    PeerUnavailable,
    ServiceUnavailable,
)
from openpacs.nodes.query import Find, FindResult, query
from openpacs.nodes.registry import (
    NodeDirectory,
    SeedReport,
    create,
    delete,
    destination,
    find,
    get,
    list_nodes,
    permissions,
    permits,
    seed,
    settings_of,
    update,
    uses,
)

__all__ = [
    "Address",
    "DuplicateNode",
    "Echo",
    "EchoResult",
    "EchoUnavailable",
    "Find",
    "FindResult",
    "NodeDirectory",
    "NodeNotFound",
    "PeerRefused",
    "PeerSilent",
    "PeerUnavailable",
    "SeedReport",
    "ServiceUnavailable",
    "create",
    "delete",
    "destination",
    "find",
    "get",
    "list_nodes",
    "permissions",
    "permits",
    "query",
    "seed",
    "settings_of",
    "update",
    "uses",
    "verify",
]
