"""Store SCP: C-ECHO and C-STORE, translated into `Archive.store` calls."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pydicom import Dataset
from pynetdicom import _config, evt

from openpacs.archive.errors import ArchiveError
from openpacs.archive.ingest import Archive, Incoming, Origin
from openpacs.config import StoreScpSettings
from openpacs.dimse.ae import (
    Listener,
    association_handlers,
    handle_echo,
    make_ae,
    storage_sop_classes,
)
from openpacs.dimse.status import SUCCESS, status_dataset, status_for
from openpacs.logs import get_logger

log = get_logger("storescp")


def enable_streamed_receive(temp_dir: Path) -> None:
    """Make pynetdicom write each received dataset straight to a file in `temp_dir`.

    Both knobs are process-global in pynetdicom and the standard library; the composition root
    calls this once. The file then lies on the storage filesystem, so ingest moves it into place
    with a rename instead of a copy, and a 1 GB object never sits in memory.
    """
    _config.STORE_RECV_CHUNKED_DATASET = True
    tempfile.tempdir = str(temp_dir)


def make_store_handler(archive: Archive) -> Any:
    def handle_store(event: Any) -> Dataset:
        request = event.request
        incoming = Incoming(
            path=Path(event.dataset_path),
            origin=Origin.dimse,
            calling_ae=event.assoc.requestor.ae_title,
            expected_sop_class_uid=str(request.AffectedSOPClassUID),
            expected_sop_instance_uid=str(request.AffectedSOPInstanceUID),
        )
        try:
            result = archive.store(incoming)
        except ArchiveError as exc:
            code = status_for(exc)
            log.warning(
                "refused %s from %s with 0x%04X: %s",
                request.AffectedSOPInstanceUID,
                incoming.calling_ae,
                code,
                exc,
            )
            return status_dataset(code, str(exc))
        except Exception as exc:
            log.exception("failed to store %s", request.AffectedSOPInstanceUID)
            return status_dataset(status_for(exc), "internal error; see the storescp log")
        log.info(
            "%s %s from %s%s",
            result.outcome.value,
            result.keys.sop_instance_uid,
            incoming.calling_ae,
            f" ({'; '.join(result.notes)})" if result.notes else "",
        )
        return status_dataset(SUCCESS)

    return handle_store


def discard_partial_receive(event: Any) -> None:
    """Remove the temp file of a C-STORE cut off mid-dataset (abort or dropped connection).

    pynetdicom leaves it behind; start-up cleaning would catch it, but a busy server may run
    for months, so it goes now.
    """
    message = getattr(event.assoc.dimse, "message", None)
    stream = getattr(message, "_data_set_file", None)
    path = getattr(message, "_data_set_path", None)
    if stream is not None:
        stream.close()
    if isinstance(path, Path):
        path.unlink(missing_ok=True)
        log.warning("discarded a partly received object from %s", event.assoc.requestor.ae_title)


def make_store_listener(
    settings: StoreScpSettings, archive: Archive, *, reuse_port: bool = False
) -> Listener:
    ae = make_ae(settings, storage_sop_classes())
    handlers = [
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, make_store_handler(archive)),
        (evt.EVT_ABORTED, discard_partial_receive),
        (evt.EVT_CONN_CLOSE, discard_partial_receive),
        *association_handlers("storescp"),
    ]
    return Listener(ae, settings.host, settings.port, handlers, "storescp", reuse_port=reuse_port)
