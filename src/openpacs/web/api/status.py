"""GET /api/status: is each listener up (checked by connecting to its port), associations open
and recent, objects received lately, storage, index size, CPU, memory, uptime, recent problems.

What the numbers cover: listeners, storage and index are the whole server's; association
totals count every process (receivers report theirs through shared memory) while the lists of
open and recent associations are the main process's (the Q/R, worklist and Print SCPs, and its
share of the Store SCP's); CPU and memory are listed per process; recent problems are the main
process's (a receiver's warnings are in the storescp log files).
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError

from openpacs.archive import db, usage
from openpacs.archive.errors import IndexUnavailable
from openpacs.config import ListenerSettings
from openpacs.logs import RECENT_PROBLEMS
from openpacs.monitoring.associations import LISTENERS
from openpacs.monitoring.ports import probe
from openpacs.monitoring.processes import ProcessWatch
from openpacs.web.api.deps import ServicesDep, core_of

router = APIRouter(prefix="/api/status", tags=["status"])
PROBE_TIMEOUT = 1.0


class ListenerState(BaseModel):
    service: str = Field(description="storescp, qrscp, worklist, printscp or http")
    ae_title: str | None
    host: str
    port: int
    enabled: bool = Field(description="Switched on in the settings (`<listener>.enabled`)")
    up: bool = Field(description="A TCP connection to the port was accepted just now")
    detail: str


class AssociationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    service: str
    calling_ae: str
    called_ae: str
    peer: str
    accepted: bool
    started_at: dt.datetime
    ended_at: dt.datetime | None
    requests: int
    outcome: str | None = Field(description="How it ended, or why it was rejected")


class AssociationCounts(BaseModel):
    service: str
    open: int = Field(description="Open now, every process")
    open_in_receivers: int = Field(description="Of those, in receiver processes (not listed)")
    accepted: int = Field(description="Since start, every process")
    rejected: int = Field(description="Since start, every process")


class Associations(BaseModel):
    counts: list[AssociationCounts]
    open: list[AssociationOut] = Field(description="This process's open associations")
    recent: list[AssociationOut] = Field(
        description="This process's last ended or rejected ones, newest first"
    )


class Received(BaseModel):
    last_minute: int
    last_hour: int


class Storage(BaseModel):
    root: str
    stored_bytes: int = Field(description="Bytes of stored objects (the index's study totals)")
    free_bytes: int
    total_bytes: int = Field(description="Size of the file system holding the storage root")


class IndexState(BaseModel):
    database: str = Field(description="sqlite or postgresql")
    database_bytes: int
    tables_bytes: int | None = Field(description="PostgreSQL: openpacs's tables and indexes")


class ProcessOut(BaseModel):
    pid: int
    role: str = Field(description="main or receiver")
    cpu_percent: float = Field(description="Of one core, since the previous status request")
    memory_bytes: int = Field(description="Resident memory")
    threads: int
    uptime_seconds: float


class Machine(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    cpu_count: int
    cpu_percent: float = Field(description="All cores, since the previous status request")
    memory_total_bytes: int
    memory_available_bytes: int


class Problem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: dt.datetime
    level: str
    service: str
    message: str


class Status(BaseModel):
    checked_at: dt.datetime
    uptime_seconds: float = Field(description="Since the main process started")
    listeners: list[ListenerState]
    associations: Associations
    received: Received = Field(description="Objects indexed (every process, every origin)")
    storage: Storage
    index: IndexState
    processes: list[ProcessOut]
    machine: Machine
    problems: list[Problem] = Field(description="Latest WARNING and ERROR lines, newest first")


def _listeners(request: Request) -> list[ListenerState]:
    settings = core_of(request).settings
    configured: list[tuple[str, ListenerSettings]] = [
        (name, getattr(settings, name)) for name in LISTENERS
    ]
    found = []
    for name, listener in configured:
        reach = probe(listener.host, listener.port, PROBE_TIMEOUT)
        found.append(
            ListenerState(
                service=name,
                ae_title=listener.ae_title,
                host=listener.host,
                port=listener.port,
                enabled=listener.enabled,
                up=reach.up,
                detail=reach.detail,
            )
        )
    http = settings.http
    reach = probe(http.host, http.port, PROBE_TIMEOUT)
    found.append(
        ListenerState(
            service="http",
            ae_title=None,
            host=http.host,
            port=http.port,
            enabled=True,
            up=reach.up,
            detail=reach.detail,
        )
    )
    return found


def _associations(services: ServicesDep) -> Associations:
    if services.associations is None:
        counts = [
            AssociationCounts(service=s, open=0, open_in_receivers=0, accepted=0, rejected=0)
            for s in LISTENERS
        ]
        return Associations(counts=counts, open=[], recent=[])
    snapshot = services.associations.snapshot()
    return Associations(
        counts=[
            AssociationCounts(
                service=service,
                open=totals.open,
                open_in_receivers=snapshot.in_receivers.get(service, 0),
                accepted=totals.accepted,
                rejected=totals.rejected,
            )
            for service, totals in snapshot.totals.items()
        ],
        open=[AssociationOut.model_validate(a) for a in snapshot.open],
        recent=[AssociationOut.model_validate(a) for a in snapshot.recent],
    )


def _watch(request: Request) -> ProcessWatch:
    state = request.app.state
    if getattr(state, "process_watch", None) is None:
        state.process_watch = ProcessWatch()
    return state.process_watch  # type: ignore[no-any-return]


@router.get("", response_model=Status)
def status(
    request: Request,
    services: ServicesDep,
    problems: Annotated[int, Query(ge=0, le=100, description="Problems listed at most")] = 20,
) -> Status:
    """The server's state now. Poll it (every few seconds) for a live page."""
    core = core_of(request)
    now = dt.datetime.now(dt.UTC)
    try:
        with core.sessions() as session:
            received = usage.received(session, now)
            stored = usage.stored_bytes(session)
        size = usage.index_size(core.engine)
    except SQLAlchemyError as exc:
        raise IndexUnavailable(f"index database unreachable: {db.describe(exc)}") from exc
    disk = shutil.disk_usage(core.storage.root)
    watch = _watch(request)
    processes = watch.look(services.receivers())
    main = next(p for p in processes if p.role == "main")
    return Status(
        checked_at=now,
        uptime_seconds=round(time.time() - main.started_at, 1),
        listeners=_listeners(request),
        associations=_associations(services),
        received=Received(last_minute=received.last_minute, last_hour=received.last_hour),
        storage=Storage(
            root=str(core.storage.root),
            stored_bytes=stored,
            free_bytes=disk.free,
            total_bytes=disk.total,
        ),
        index=IndexState(
            database=core.engine.dialect.name,
            database_bytes=size.database_bytes,
            tables_bytes=size.tables_bytes,
        ),
        processes=[
            ProcessOut(
                pid=p.pid,
                role=p.role,
                cpu_percent=p.cpu_percent,
                memory_bytes=p.memory_bytes,
                threads=p.threads,
                uptime_seconds=round(time.time() - p.started_at, 1),
            )
            for p in processes
        ],
        machine=Machine.model_validate(watch.machine()),
        problems=[Problem.model_validate(p) for p in RECENT_PROBLEMS.latest(problems)],
    )
