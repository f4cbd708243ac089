"""/api/worklist: the scheduled exams modalities fetch (MWL), with what MPPS reported."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, Field

from openpacs import logs
from openpacs.accounts import Action
from openpacs.web import auth
from openpacs.web.api.deps import ReadSession, WriteSession
from openpacs.worklist import items, mpps
from openpacs.worklist.spec import ItemSpec, Status

log = logs.get_logger("api")
router = APIRouter(prefix="/api/worklist", tags=["worklist"])


class PerformedOut(BaseModel):
    sop_instance_uid: str
    status: str
    calling_ae: str | None
    series: list[dict[str, Any]]
    created_at: dt.datetime
    updated_at: dt.datetime


class ItemOut(ItemSpec):
    id: int
    study_instance_uid: str  # always set once stored
    created_at: dt.datetime
    updated_at: dt.datetime
    performed: list[PerformedOut] = Field(default_factory=list)


class ItemPage(BaseModel):
    total: int
    items: list[ItemOut]


def _out(item: Any, performed: list[Any] | None = None) -> ItemOut:
    steps = [
        PerformedOut(
            sop_instance_uid=step.sop_instance_uid,
            status=step.status,
            calling_ae=step.calling_ae,
            series=step.series,
            created_at=step.created_at,
            updated_at=step.updated_at,
        )
        for step in performed or []
    ]
    return ItemOut.model_validate({**items.describe(item), "performed": steps})


@router.get("", response_model=ItemPage)
def list_items(
    session: ReadSession,
    patient_id: str | None = None,
    patient_name: Annotated[
        str | None, Query(description="word prefixes, case- and accent-insensitive")
    ] = None,
    accession_number: str | None = None,
    modality: str | None = None,
    station_ae_title: str | None = None,
    date_from: Annotated[str | None, Query(pattern=r"^\d{8}$", description="YYYYMMDD")] = None,
    date_to: Annotated[str | None, Query(pattern=r"^\d{8}$", description="YYYYMMDD")] = None,
    status_: Annotated[list[Status] | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ItemPage:
    """Items soonest scheduled first; every filter optional, `status` repeatable."""
    filters = items.Filters(
        patient_id=patient_id,
        patient_name=patient_name,
        accession_number=accession_number,
        modality=modality,
        station_ae_title=station_ae_title,
        date_from=date_from,
        date_to=date_to,
        statuses=status_ or (),
    )
    found, total = items.list_items(session, filters, limit=limit, offset=offset)
    return ItemPage(total=total, items=[_out(item) for item in found])


@router.post("", response_model=ItemOut, status_code=status.HTTP_201_CREATED)
def add_item(spec: ItemSpec, session: WriteSession, response: Response) -> ItemOut:
    """Schedule an exam; 422 names each field that is missing or malformed."""
    item = items.create(session, spec)
    log.info("worklist item %d added: %s %s", item.id, item.modality, item.start_date)
    response.headers["Location"] = f"/api/worklist/{item.id}"
    return _out(item)


@router.get("/{item_id}", response_model=ItemOut)
def get_item(item_id: int, session: ReadSession) -> ItemOut:
    """The item, with the performed procedure steps modalities reported for it."""
    item = items.get(session, item_id)
    return _out(item, mpps.steps_of(session, item.id))


@router.put("/{item_id}", response_model=ItemOut)
def replace_item(item_id: int, spec: ItemSpec, session: WriteSession) -> ItemOut:
    """Replace every field (the Study Instance UID stays unless given)."""
    item = items.update(session, item_id, spec)
    log.info("worklist item %d changed (%s)", item.id, item.status)
    return _out(item, mpps.steps_of(session, item.id))


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_item(item_id: int, session: WriteSession, request: Request) -> Response:
    study = items.get(session, item_id).study_instance_uid
    items.delete(session, item_id)
    auth.record_in(session, request, Action.deleted, study=study, obj=f"worklist_item:{item_id}")
    log.info("worklist item %d removed", item_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
