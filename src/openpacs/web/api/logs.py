"""/api/logs: each service's daily log files: list, tail and search, live follow (Server-Sent
Events), download, delete (admin; never today's file).

Any signed-in role may read the logs, viewers included: the issue's viewer reads and views
everything and changes nothing, and the logs hold UIDs and IDs, never patient names at INFO or
above. Only an admin deletes. A file is found by matching the name against its service's
folder listing (`monitoring.logfiles`), so a hostile name is a 404 (or a 422 when over-long)
and a warning in the api log, and nothing outside the log folder is ever opened.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from openpacs.accounts import Action
from openpacs.config import SERVICES
from openpacs.logs import get_logger
from openpacs.monitoring import logfiles, metrics
from openpacs.monitoring.logfiles import InUse, LogFile, LogNotFound
from openpacs.web import auth
from openpacs.web.api.deps import WriteSession, core_of

log = get_logger("api")
router = APIRouter(prefix="/api/logs", tags=["logs"])

MAX_LINES = 5000
FOLLOW_POLL = 0.5  # seconds between looks for new lines
KEEPALIVE = 15.0  # seconds of quiet before a comment keeps proxies from closing the stream
ROTATION_CHECK = 5.0  # seconds between looks for a newer file (midnight)

Service = Annotated[str, PathParam(max_length=32, description="A service, e.g. storescp")]
FileName = Annotated[str, PathParam(max_length=64, description="A file name from GET /api/logs")]


class LogFileOut(BaseModel):
    name: str
    date: str = Field(description="The day it covers, YYYY-MM-DD")
    size: int
    current: bool = Field(description="Today's file, still being written (cannot be deleted)")

    @classmethod
    def of(cls, found: LogFile) -> LogFileOut:
        return cls(
            name=found.name, date=found.day.isoformat(), size=found.size, current=found.current()
        )


class ServiceLogs(BaseModel):
    service: str
    files: list[LogFileOut] = Field(description="Newest first")


class LogPage(BaseModel):
    service: str
    file: str
    lines: list[str] = Field(description="Oldest first")
    start: int = Field(description="Byte offset of the first line read: `before` of the page back")
    end: int = Field(description="Byte offset after the last whole line: where a follow starts")
    size: int
    more: bool = Field(description="Earlier lines exist (ask with before=start)")


def _found(request: Request, service: str, name: str) -> LogFile:
    try:
        return logfiles.find(core_of(request).settings.logging.dir, service, name)
    except LogNotFound as exc:
        log.warning(
            "log file refused to %s: %s", auth.principal_of(request).username or "anonymous", exc
        )
        raise HTTPException(404, detail=str(exc)) from None


@router.get("", response_model=list[ServiceLogs])
def list_logs(request: Request) -> list[ServiceLogs]:
    """Every service and its log files (name, day, size), newest first."""
    directory = core_of(request).settings.logging.dir
    return [
        ServiceLogs(
            service=service, files=[LogFileOut.of(f) for f in logfiles.files(directory, service)]
        )
        for service in SERVICES
    ]


@router.get(
    "/{service}/{file}",
    response_model=LogPage,
    responses={404: {"description": "no such service or file"}},
)
def read_log(
    request: Request,
    service: Service,
    file: FileName,
    lines: Annotated[int, Query(ge=1, le=MAX_LINES, description="Lines wanted")] = 200,
    q: Annotated[
        str | None,
        Query(
            max_length=logfiles.MAX_PATTERN,
            description="Only lines containing this text (case-insensitive)",
        ),
    ] = None,
    regex: Annotated[bool, Query(description="q is a regular expression")] = False,
    before: Annotated[
        int | None, Query(ge=0, description="Lines before this byte offset (a page's start)")
    ] = None,
) -> LogPage:
    """The file's last lines (or those before `before`); with `q`, only the matching ones. A
    search reads at most 8 MiB per request: keep asking with before=start while `more`."""
    found = _found(request, service, file)
    search = None
    if q:
        try:
            search = logfiles.pattern(q, regex=regex)
        except ValueError as exc:
            raise HTTPException(422, detail=f"q: {exc}") from None
    page = logfiles.tail(found, lines, before=before, search=search)
    return LogPage(
        service=service,
        file=found.name,
        lines=page.lines,
        start=page.start,
        end=page.end,
        size=page.size,
        more=page.more,
    )


@router.get(
    "/{service}/{file}/follow",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 404: {"description": "no such file"}},
)
async def follow_log(
    request: Request,
    service: Service,
    file: FileName,
    offset: Annotated[
        int | None,
        Query(ge=0, description="Start here (a page's `end`); default: the end of the file"),
    ] = None,
) -> StreamingResponse:
    """New lines as they are written, as Server-Sent Events: first `event: open` (data: the
    starting offset), then one `data:` event per line, the offset after it as the `id` (so
    an EventSource reconnecting with Last-Event-ID misses nothing), a comment every 15 s of
    quiet, and `event: rotated` (data: the new file's name) when a newer day's file begins.
    Ends when the client goes away."""
    found = await run_in_threadpool(_found, request, service, file)
    resume = request.headers.get("last-event-id", "")
    if offset is None and resume.isdigit():
        offset = int(resume)
    directory = core_of(request).settings.logging.dir
    return StreamingResponse(
        _events(request, found, offset, directory),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(
    request: Request, found: LogFile, offset: int | None, directory: Path
) -> AsyncIterator[str]:
    # No index session is held: the access check's ended before the route ran, and this
    # reads only the file. Opened here, so a stream never started leaves no descriptor open.
    fd = logfiles.open_file(found)
    position = offset if offset is not None else logfiles.end_of_lines(fd)
    metrics.LOG_FOLLOWS.inc()
    try:
        yield f"event: open\ndata: {json.dumps({'file': found.name, 'offset': position})}\n\n"
        quiet = since_rotation_check = 0.0
        while not await request.is_disconnected():
            lines, position = await run_in_threadpool(logfiles.read_new, fd, position)
            if lines:
                events = [f"data: {_one_line(line)}\n\n" for line in lines]
                events[-1] = f"id: {position}\n" + events[-1]
                yield "".join(events)
                quiet = 0.0
                continue
            await anyio.sleep(FOLLOW_POLL)
            quiet += FOLLOW_POLL
            since_rotation_check += FOLLOW_POLL
            if quiet >= KEEPALIVE:
                yield ": keep-alive\n\n"
                quiet = 0.0
            if since_rotation_check >= ROTATION_CHECK:
                since_rotation_check = 0.0
                newest = await run_in_threadpool(logfiles.files, directory, found.service)
                if newest and newest[0].day > found.day:
                    yield f"event: rotated\ndata: {newest[0].name}\n\n"
                    return
    finally:
        metrics.LOG_FOLLOWS.dec()
        os.close(fd)


def _one_line(line: str) -> str:
    # A carriage return would end the SSE field early.
    return line.replace("\r", " ")


@router.get(
    "/{service}/{file}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/plain": {}}}, 404: {"description": "no such file"}},
)
def download_log(request: Request, service: Service, file: FileName) -> StreamingResponse:
    """The whole file as it is now (streamed; what is written meanwhile is left out)."""
    found = _found(request, service, file)
    size = found.size
    return StreamingResponse(
        logfiles.chunks(found, size),
        media_type="text/plain; charset=utf-8",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{found.name}"',
        },
    )


@router.delete(
    "/{service}/{file}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[auth.AdminOnly],
    responses={404: {"description": "no such file"}, 409: {"description": "today's file"}},
)
def delete_log(
    request: Request, service: Service, file: FileName, session: WriteSession
) -> Response:
    """Delete a past day's file (admin). Today's is still being written: 409."""
    found = _found(request, service, file)
    auth.record_in(session, request, Action.deleted, obj=f"log:{service}/{found.name}")
    session.flush()  # the audit row is written before the file goes
    try:
        logfiles.delete(found)
    except InUse as exc:  # the audit row goes with the rolled back transaction
        raise HTTPException(409, detail=str(exc)) from None
    except FileNotFoundError:
        raise HTTPException(404, detail=f"{found.name} was removed meanwhile") from None
    log.info(
        "log file %s/%s deleted by %s", service, found.name, auth.principal_of(request).username
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)
