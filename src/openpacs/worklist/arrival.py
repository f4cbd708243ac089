"""A study arriving completes its worklist item (`worklist.complete_on_arrival`): for modalities
that send images but no MPPS. The item is found by Study Instance UID, else by the accession
number the study carries; an item found by accession number takes the study's UID (its link).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from openpacs.archive.ingest import Outcome, StoreResult
from openpacs.archive.models import Study, WorklistItem
from openpacs.logs import get_logger
from openpacs.worklist import items
from openpacs.worklist.spec import FINISHED, ItemSpec, Status

log = get_logger("worklist")

SEEN_STUDIES = 4096  # studies remembered, so only a study's first instance costs a query


class CompleteOnArrival:
    """An Archive listener (`Archive.subscribe`): the first instance stored of a study
    completes the worklist item scheduled for it."""

    def __init__(self, writing: Callable[[], AbstractContextManager[Session]]) -> None:
        self.writing = writing
        self.seen: OrderedDict[str, None] = OrderedDict()

    def __call__(self, result: StoreResult) -> None:
        if result.outcome is Outcome.duplicate:
            return
        study_uid = result.keys.study_instance_uid
        if study_uid in self.seen:
            self.seen.move_to_end(study_uid)
            return
        self.seen[study_uid] = None
        if len(self.seen) > SEEN_STUDIES:
            self.seen.popitem(last=False)
        with self.writing() as session:
            done = complete(session, study_uid)
        for item_id in done:
            log.info("worklist item %d completed: study %s arrived", item_id, study_uid)


def complete(session: Session, study_uid: str) -> list[int]:
    """Complete the unfinished items of the study (by UID, else by its accession number)."""
    accession = session.scalar(
        select(Study.accession_number).where(Study.study_instance_uid == study_uid)
    )
    match = WorklistItem.study_instance_uid == study_uid
    if accession:
        match = or_(match, WorklistItem.accession_number == accession)
    unfinished = WorklistItem.status.not_in([status.value for status in FINISHED])
    found = list(session.scalars(select(WorklistItem).where(match, unfinished)))
    for item in found:
        if item.study_instance_uid == study_uid:
            items.set_status(session, item, Status.completed)
            continue
        # Found by accession number: the study's UID links it, in the same rewrite.
        linked = {**item.spec, "study_instance_uid": study_uid, "status": Status.completed}
        items.update(session, item.id, ItemSpec.model_validate(linked))
    return [item.id for item in found]
