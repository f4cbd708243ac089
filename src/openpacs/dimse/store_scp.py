"""Store SCP: C-ECHO and C-STORE, translated into `Archive.store` calls."""

from __future__ import annotations

from collections.abc import Callable

from openpacs.archive.errors import ArchiveError
from openpacs.archive.ingest import Archive, Incoming, Origin
from openpacs.config import Permission, StoreScpSettings
from openpacs.dimse.admission import admission
from openpacs.dimse.engine import (
    C_STORE_RQ,
    C_STORE_RSP,
    Association,
    Handler,
    Listener,
    Message,
    Policy,
)
from openpacs.dimse.shared_socket import SharedSocket
from openpacs.dimse.sop import STORE_TRANSFER_SYNTAXES, VERIFICATION, storage_sop_classes
from openpacs.dimse.status import CANNOT_UNDERSTAND, SUCCESS, status_for
from openpacs.logs import get_logger

log = get_logger("storescp")


def store(archive: Archive, received: Incoming) -> tuple[int, str | None]:
    """Store one received object: (status, error comment or None), with a log line."""
    uid = (received.expected_sop_instance_uid or "")[:64]
    try:
        result = archive.store(received)
    except ArchiveError as exc:
        code = status_for(exc)
        log.warning("refused %s from %s with 0x%04X: %s", uid, received.calling_ae, code, exc)
        return code, str(exc)
    except Exception as exc:
        log.exception("failed to store %s", uid)
        return status_for(exc), "internal error; see the storescp log"
    log.info(
        "%s %s from %s%s",
        result.outcome.value,
        result.keys.sop_instance_uid,
        received.calling_ae,
        f" ({'; '.join(result.notes)})" if result.notes else "",
    )
    return SUCCESS, None


def retrieved_into(archive: Archive) -> Callable[[Message, str], tuple[int, str | None]]:
    """Where our C-GET's C-STORE sub-operations go (a Part-10 temp file each, from the node
    `sender_ae`): the archive's ingest, exactly as the Store SCP stores."""

    def store_retrieved(message: Message, sender_ae: str) -> tuple[int, str | None]:
        if message.path is None:
            return CANNOT_UNDERSTAND, "C-STORE-RQ without a dataset"
        incoming = Incoming(
            path=message.path,
            origin=Origin.retrieve,
            calling_ae=sender_ae,
            expected_sop_class_uid=message.sop_class_uid,
            expected_sop_instance_uid=message.sop_instance_uid,
        )
        return store(archive, incoming)

    return store_retrieved


def make_store_handler(archive: Archive) -> Handler:
    def handle_store(assoc: Association, message: Message) -> None:
        sop_class, sop_instance = message.sop_class_uid, message.sop_instance_uid
        comment: str | None
        if message.path is None:
            status, comment = CANNOT_UNDERSTAND, "C-STORE-RQ without a dataset"
        else:
            incoming = Incoming(
                path=message.path,
                origin=Origin.dimse,
                calling_ae=assoc.calling_ae,
                expected_sop_class_uid=sop_class,
                expected_sop_instance_uid=sop_instance,
            )
            status, comment = store(archive, incoming)
        assoc.respond(message, C_STORE_RSP, status, comment=comment, sop_instance_uid=sop_instance)

    return handle_store


def make_store_listener(
    settings: StoreScpSettings, archive: Archive, *, shared_socket: SharedSocket | None = None
) -> Listener:
    policy = Policy(
        ae_title=settings.ae_title,
        require_called_ae=settings.require_called_ae,
        allowed_calling_aes=frozenset(settings.allowed_calling_aes),
        sop_classes=frozenset([VERIFICATION, *storage_sop_classes()]),
        transfer_syntaxes=frozenset(STORE_TRANSFER_SYNTAXES),
        acse_timeout=settings.acse_timeout,
        network_timeout=settings.network_timeout,
        max_associations=settings.max_associations,
        admit=admission(
            settings.calling_aes, archive.sessions, Permission.store, service="storescp"
        ),
    )
    return Listener(
        policy,
        {C_STORE_RQ: make_store_handler(archive)},
        settings.host,
        settings.port,
        archive.storage.temp_dir,
        "storescp",
        shared_socket=shared_socket,
    )
