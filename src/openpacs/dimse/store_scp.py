"""Store SCP: C-ECHO and C-STORE, translated into `Archive.store` calls."""

from __future__ import annotations

import socket

from openpacs.archive.errors import ArchiveError
from openpacs.archive.ingest import Archive, Incoming, Origin
from openpacs.config import StoreScpSettings
from openpacs.dimse.receiver import Policy, Received, StoreHandler, StoreListener
from openpacs.dimse.sop import STORE_TRANSFER_SYNTAXES, VERIFICATION, storage_sop_classes
from openpacs.dimse.status import SUCCESS, status_for
from openpacs.logs import get_logger

log = get_logger("storescp")


def make_store_handler(archive: Archive) -> StoreHandler:
    def handle_store(received: Received) -> tuple[int, str | None]:
        incoming = Incoming(
            path=received.path,
            origin=Origin.dimse,
            calling_ae=received.calling_ae,
            expected_sop_class_uid=received.sop_class_uid,
            expected_sop_instance_uid=received.sop_instance_uid,
        )
        try:
            result = archive.store(incoming)
        except ArchiveError as exc:
            code = status_for(exc)
            log.warning(
                "refused %s from %s with 0x%04X: %s",
                received.sop_instance_uid[:64],
                received.calling_ae,
                code,
                exc,
            )
            return code, str(exc)
        except Exception as exc:
            log.exception("failed to store %s", received.sop_instance_uid[:64])
            return status_for(exc), "internal error; see the storescp log"
        log.info(
            "%s %s from %s%s",
            result.outcome.value,
            result.keys.sop_instance_uid,
            received.calling_ae,
            f" ({'; '.join(result.notes)})" if result.notes else "",
        )
        return SUCCESS, None

    return handle_store


def make_store_listener(
    settings: StoreScpSettings, archive: Archive, *, shared_socket: socket.socket | None = None
) -> StoreListener:
    policy = Policy(
        ae_title=settings.ae_title,
        require_called_ae=settings.require_called_ae,
        allowed_calling_aes=frozenset(settings.allowed_calling_aes),
        sop_classes=frozenset([VERIFICATION, *storage_sop_classes()]),
        transfer_syntaxes=frozenset(STORE_TRANSFER_SYNTAXES),
        acse_timeout=settings.acse_timeout,
        network_timeout=settings.network_timeout,
        max_associations=settings.max_associations,
    )
    return StoreListener(
        policy,
        make_store_handler(archive),
        settings.host,
        settings.port,
        archive.storage.temp_dir,
        "storescp",
        shared_socket=shared_socket,
    )
