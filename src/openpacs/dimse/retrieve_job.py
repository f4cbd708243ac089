"""The `move` and `get` jobs: have a registered node send studies to us, or to another AE.

Parameters (as POST /api/jobs/move|get queue them; see `openpacs.dicom.qr.Selection`):
    {"node": "ORTHANC", "studies": [uid, ...]}                     one request per study
    {"node": "ORTHANC", "studies": [uid], "series": [uid, ...]}    a series list
    {"node": "ORTHANC", "studies": [uid], "series": [uid], "instances": [uid, ...]}
    {"node": "ORTHANC", "patient_id": "12345"}                     patient root, PATIENT level
    move only: "destination": "AE" (default: our Store SCP's AE title, i.e. retrieve to us)

A C-MOVE to us arrives on our Store SCP, a C-GET on its own association; both end in
`Archive.store`, the path every C-STORE takes. Progress is the node's own count of
sub-operations; the instances it lists as failed, and those we could not store, are the job's
failures. An unreachable node, or one out of resources, is `Transient` (retried with backoff).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openpacs import nodes
from openpacs.archive.core import Core
from openpacs.dicom.qr import Selection
from openpacs.dimse import qr_scu
from openpacs.dimse.engine import AssociationFailed, Message
from openpacs.dimse.scu import Peer
from openpacs.dimse.status import (
    CANCEL,
    MOVE_DESTINATION_UNKNOWN,
    SUBOPERATIONS_WARNING,
    SUCCESS,
)
from openpacs.dimse.store_scp import retrieved_into
from openpacs.jobs import Cancelled, Interrupted, JobContext, Transient
from openpacs.logs import get_logger

MOVE, GET = "move", "get"
log = get_logger("qrscu")

Handler = Callable[[dict[str, Any], JobContext], None]


class _Tally:
    """Turns the node's running counts, request after request, into the job's progress."""

    def __init__(self, context: JobContext) -> None:
        self.context = context
        self.total_before = 0  # sub-operations of the requests already finished
        self.done_before = 0
        self.done = 0  # what the context has been told
        self.failed_items: set[str] = set()

    def progress(self, counts: qr_scu.Counts) -> None:
        if counts.total is not None:
            self.context.set_total(self.total_before + counts.total)
        done = self.done_before + counts.completed + counts.warning
        if done > self.done:
            self.context.add_done(done - self.done)
            self.done = done

    def finish(self, result: qr_scu.Result) -> None:
        self.progress(result.counts)
        counts = result.counts
        self.total_before += counts.completed + counts.warning + counts.failed
        self.done_before = self.done
        self.context.set_total(max(self.total_before, self.done))

    def fail(self, item: str, reason: str) -> None:
        if item not in self.failed_items:
            self.failed_items.add(item)
            self.context.add_failure(item, reason)


def make_move_handler(core: Core) -> Handler:
    return _make_handler(core, MOVE)


def make_get_handler(core: Core) -> Handler:
    return _make_handler(core, GET)


def _make_handler(core: Core, kind: str) -> Handler:
    calling_ae = core.settings.storescp.ae_title
    timeout = core.settings.qrscp.dimse_timeout

    def run(parameters: dict[str, Any], context: JobContext) -> None:
        name = str(parameters["node"])
        selection = Selection.of(parameters)
        with core.sessions() as session:
            address = nodes.Address.of(nodes.get(session, name))
        if address.tls:
            raise ValueError(f"node {name!r} has tls = true; openpacs cannot retrieve over TLS yet")
        node = Peer(address.ae_title, address.host, address.port)
        destination = str(parameters.get("destination") or calling_ae)
        tally = _Tally(context)
        stop: list[Cancelled | Interrupted] = []

        def cancelled() -> bool:
            try:
                context.check_cancelled()
            except (Cancelled, Interrupted) as exc:
                stop.append(exc)
                return True
            return False

        into_archive = retrieved_into(core.archive)

        def store_here(message: Message, sender_ae: str) -> tuple[int, str | None]:
            status, comment = into_archive(message, sender_ae)
            if status != SUCCESS:
                tally.fail(message.sop_instance_uid, f"not stored here: {comment}")
            return status, comment

        for model, identifier in selection.identifiers():
            context.check_cancelled()
            try:
                result = qr_scu.retrieve(
                    node,
                    identifier,
                    model=model,
                    calling_ae=calling_ae,
                    timeout=timeout,
                    destination=destination if kind == MOVE else None,
                    store=store_here if kind == GET else None,
                    temp_dir=core.storage.temp_dir,
                    cancelled=cancelled,
                    progress=tally.progress,
                )
            except AssociationFailed as exc:
                raise Transient(f"node {name!r} ({node}): {exc}") from exc
            tally.finish(result)
            if result.cancelled or stop:
                raise stop[0] if stop else Cancelled(f"node {name!r} cancelled the retrieve")
            _settle(result, tally, name, destination if kind == MOVE else None)
        log.info(
            "%s of %s from %s: %d instance(s) done, %d failed",
            "C-MOVE" if kind == MOVE else "C-GET",
            selection.describe(),
            node,
            tally.done,
            len(tally.failed_items),
        )

    return run


def _settle(result: qr_scu.Result, tally: _Tally, name: str, destination: str | None) -> None:
    """Turn one request's final status into job failures, a retry or the end of the job."""
    status, comment = result.status, result.comment
    said = f"status 0x{status:04X}" + (f": {comment}" if comment else "")
    if status == SUCCESS:
        return
    if status == MOVE_DESTINATION_UNKNOWN:
        raise ValueError(
            f"node {name!r} does not know the move destination {destination!r} ({said}); add "
            f"{destination} with our host and Store SCP port to the node's configuration"
        )
    done_any = result.counts.completed + result.counts.warning > 0
    if status == SUBOPERATIONS_WARNING or (status >> 12 in (0xA, 0xC) and done_any):
        for uid in result.failed_uids:
            tally.fail(uid, f"the node reported the sub-operation failed ({said})")
        missing = result.counts.failed - len(tally.failed_items)
        if missing > 0:
            tally.fail(f"{missing} sub-operation(s)", f"the node reported them failed ({said})")
        return
    if status == CANCEL:
        raise Cancelled(f"node {name!r} cancelled the retrieve")
    if status >> 8 == 0xA7:  # out of resources: worth another try later
        raise Transient(f"node {name!r} could not retrieve ({said})")
    raise ValueError(f"node {name!r} refused the retrieve ({said})")
