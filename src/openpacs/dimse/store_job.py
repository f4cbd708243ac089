"""The `store` job: send stored studies, series or instances to a registered node (C-STORE).

Parameters (as POST /api/jobs/store queues them):
    {"node": "ORTHANC", "studies": [uid, ...], "series": [...], "instances": [...]}

The selection is resolved when the job runs, so a retry sends what is stored then. An
unreachable or refusing node is `Transient` (the runner retries with backoff, then fails the job
with the reason); an instance the node refuses is that instance's failure and the job goes on.
The checkpoint lists the instances already stored by the node, so a retry, a restart or
POST /api/jobs/{id}/retry sends only the rest (and counts the others as done).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openpacs import nodes
from openpacs.archive.core import Core
from openpacs.archive.retrieve import select_named
from openpacs.dimse import sender
from openpacs.jobs import JobContext, Transient

KIND = "store"
SENT = "sent"  # the checkpoint's key: SOP Instance UIDs the node has stored
CHECKPOINT_EVERY = 100  # instances between checkpoint saves (and at the end of each attempt)


def describe(outcome: sender.StoreOutcome) -> str:
    """Why an instance was not stored, in the words a job failure shows."""
    if outcome.status is None:
        return outcome.comment or "not sent"
    text = f"the node answered status 0x{outcome.status:04X}"
    return f"{text}: {outcome.comment}" if outcome.comment else text


def make_store_handler(core: Core) -> Callable[[dict[str, Any], JobContext], None]:
    """The handler for `store` jobs, sending with our Store SCP's AE title (the one peers know
    us by)."""
    calling_ae = core.settings.storescp.ae_title
    timeout = core.settings.qrscp.dimse_timeout

    def run(parameters: dict[str, Any], context: JobContext) -> None:
        name = str(parameters["node"])
        # A short read, closed before sending: a long send must not hold a session open.
        with core.sessions() as session:
            address = nodes.Address.of(nodes.get(session, name))
            instances = select_named(
                session,
                core.storage,
                studies=parameters.get("studies", []),
                series=parameters.get("series", []),
                instances=parameters.get("instances", []),
            )
        if address.tls:
            raise ValueError(f"node {name!r} has tls = true; openpacs cannot send over TLS yet")
        if not instances:
            raise ValueError("nothing to send: none of the selected UIDs is stored (any more)")
        context.set_total(len(instances))
        earlier = set((context.checkpoint or {}).get(SENT, []))
        sent = [one.sop_instance_uid for one in instances if one.sop_instance_uid in earlier]
        instances = [one for one in instances if one.sop_instance_uid not in earlier]
        context.add_done(len(sent))

        def progress(outcome: sender.StoreOutcome, _report: sender.SendReport) -> None:
            if outcome.ok:
                context.add_done()
                sent.append(outcome.sop_instance_uid)
                if len(sent) % CHECKPOINT_EVERY == 0:
                    context.save_checkpoint({SENT: sent})
            else:
                context.add_failure(outcome.sop_instance_uid, describe(outcome))

        def cancelled() -> bool:
            # Raises Cancelled or Interrupted out of the sender, which releases the association.
            context.check_cancelled()
            return False

        if not instances:
            return  # everything went in an earlier attempt
        peer = sender.Peer(address.ae_title, address.host, address.port)
        try:
            report = sender.send(
                peer,
                instances,
                calling_ae=calling_ae,
                timeout=timeout,
                cancelled=cancelled,
                progress=progress,
                temp_dir=core.storage.temp_dir,
            )
        except sender.AssociationFailed as exc:
            raise Transient(f"node {name!r} ({peer}): {exc}") from exc
        finally:
            context.save_checkpoint({SENT: sent})
        if report.error is not None:
            # The association broke mid-way: the node may be back at the next attempt.
            raise Transient(report.error)

    return run
