"""Node errors. Like the archive's, they carry no protocol code; `web/errors.py` maps them."""

from __future__ import annotations

from openpacs.archive.errors import ArchiveError, Conflict, NotFound


class NodeNotFound(NotFound):
    """No registered node has that name."""


class DuplicateNode(Conflict):
    """Another registered node has that name already."""


class ServiceUnavailable(ArchiveError):
    """This process cannot talk to the node: no DIMSE side wired in, or TLS asked for."""


class EchoUnavailable(ServiceUnavailable):
    """This process cannot verify the node (C-ECHO)."""


class PeerUnavailable(ArchiveError):
    """The node did not take part in the exchange; the message says how it failed."""


class PeerRefused(PeerUnavailable):
    """The node answered no: connection refused, association rejected or aborted, or a
    failure status."""


class PeerSilent(PeerUnavailable):
    """Nothing came back from the node before the timeout."""
