"""Building and running pynetdicom application entities for our listeners."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AE, evt
from pynetdicom.events import EventHandlerType
from pynetdicom.sop_class import _STORAGE_CLASSES
from pynetdicom.transport import AssociationServer, ThreadedAssociationServer

from openpacs.config import StoreScpSettings
from openpacs.logs import get_logger

# Every syntax a modality may send, stored as received: uncompressed, deflated, the JPEG family,
# JPEG-LS, JPEG 2000, HTJ2K, RLE and the video syntaxes.
STORE_TRANSFER_SYNTAXES: list[str] = [str(uid) for uid in AllTransferSyntaxes]
VERIFICATION = "1.2.840.10008.1.1"


def storage_sop_classes() -> list[str]:
    """Every storage SOP class pynetdicom knows."""
    return sorted(str(uid) for uid in _STORAGE_CLASSES.values())


def make_ae(settings: StoreScpSettings, sop_classes: Sequence[str]) -> AE:
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_pdu_size = settings.max_pdu
    ae.acse_timeout = settings.acse_timeout
    ae.dimse_timeout = settings.dimse_timeout
    ae.network_timeout = settings.network_timeout
    ae.require_called_aet = settings.require_called_ae
    ae.require_calling_aet = list(settings.allowed_calling_aes)
    # pynetdicom caps associations at 10 by default; a busy department opens more.
    ae.maximum_associations = 64
    ae.add_supported_context(VERIFICATION, STORE_TRANSFER_SYNTAXES)
    for sop_class in sop_classes:
        ae.add_supported_context(sop_class, STORE_TRANSFER_SYNTAXES)
    return ae


def association_handlers(service: str) -> list[EventHandlerType]:
    """Negotiation preference, and a log line for who came, from where and how it ended."""
    log = get_logger(service)

    def peer(event: Any) -> str:
        requestor = event.assoc.requestor
        return f"{requestor.ae_title}@{requestor.address}:{requestor.port}"

    def accepted(event: Any) -> None:
        log.info("association accepted from %s", peer(event))

    def rejected(event: Any) -> None:
        log.warning("association rejected from %s", peer(event))

    def released(event: Any) -> None:
        log.info("association released by %s", peer(event))

    def aborted(event: Any) -> None:
        log.warning("association aborted with %s", peer(event))

    return [
        (evt.EVT_REQUESTED, prefer_requestor_syntaxes),
        (evt.EVT_ACCEPTED, accepted),
        (evt.EVT_REJECTED, rejected),
        (evt.EVT_RELEASED, released),
        (evt.EVT_ABORTED, aborted),
    ]


def prefer_requestor_syntaxes(event: Any) -> None:
    """Accept, per presentation context, the first transfer syntax the requestor proposed.

    pynetdicom picks the first syntax of *our* list that the requestor proposed; we support them
    all, so letting the requestor's order win means a modality sends its native encoding (a
    compressed image stays compressed) and we store the bytes as they were meant. Runs on
    EVT_REQUESTED, before negotiation, when the acceptor's contexts may still be changed.
    """
    assoc = event.assoc
    proposed: dict[str, list[str]] = {}
    for context in assoc.requestor.primitive.presentation_context_definition_list:
        order = proposed.setdefault(str(context.abstract_syntax), [])
        order.extend(str(ts) for ts in context.transfer_syntax if str(ts) not in order)
    contexts = assoc.acceptor.supported_contexts
    for context in contexts:
        wanted = proposed.get(str(context.abstract_syntax))
        if wanted:
            ours = [str(ts) for ts in context.transfer_syntax]
            context.transfer_syntax = [ts for ts in wanted if ts in ours] + [
                ts for ts in ours if ts not in wanted
            ]
    assoc.acceptor.supported_contexts = contexts


def handle_echo(_event: Any) -> int:
    return 0x0000


class Listener:
    """One DIMSE listener: started in the background, stopped with a grace period."""

    def __init__(
        self,
        ae: AE,
        host: str,
        port: int,
        handlers: list[EventHandlerType],
        service: str,
        *,
        reuse_port: bool = False,
    ) -> None:
        self.ae = ae
        self.address = (host, port)
        self.handlers = handlers
        self.log = get_logger(service)
        self.reuse_port = reuse_port
        self.server: AssociationServer | None = None

    def start(self) -> None:
        server = self.ae.make_server(
            self.address,
            evt_handlers=self.handlers,
            server_class=_server_class(self.reuse_port),
        )
        thread = threading.Thread(
            target=server.serve_forever, name=f"{self.log.name}-acceptor", daemon=True
        )
        thread.start()
        self.ae._servers.append(server)
        self.server = server
        self.log.info("listening as %s on %s:%d", self.ae.ae_title, self.address[0], self.port)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server_address[1])

    def stop(self, grace: float) -> None:
        """Stop accepting, let associations in flight finish for `grace` seconds, abort the rest.

        Only established associations earn the wait: a connection that never sent an
        A-ASSOCIATE-RQ (a port scan, a load balancer's TCP probe) is dropped at once.
        """
        if self.server is None:
            return
        server, self.server = self.server, None
        server.shutdown()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(
            assoc.is_established for assoc in server.active_associations
        ):
            time.sleep(0.05)
        for assoc in server.active_associations:
            if assoc.is_established:
                self.log.warning(
                    "aborting association with %s at shutdown", assoc.requestor.ae_title
                )
                assoc.abort()
            elif assoc.dul.socket is not None:
                # No association yet (A-ABORT is not valid before one): just hang up.
                assoc.dul.socket.close()
        self.log.info("stopped")


class _Server(ThreadedAssociationServer):
    # socketserver's default backlog of 5 refuses connections when a department's modalities
    # and workstations open associations at the same moment.
    request_queue_size = 64


class _ReusePortServer(_Server):
    def server_bind(self) -> None:
        assert self.socket is not None
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def _server_class(reuse_port: bool) -> type[ThreadedAssociationServer]:
    return _ReusePortServer if reuse_port else _Server
