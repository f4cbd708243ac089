"""The one table from core errors to HTTP answers; every route gets it through one handler."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from openpacs import accounts, nodes
from openpacs.archive import errors
from openpacs.logs import get_logger

log = get_logger("api")

# Most specific first: the first matching class wins.
HTTP_STATUS: tuple[tuple[type[errors.ArchiveError], int], ...] = (
    (accounts.WeakPassword, 422),
    (errors.NotFound, 404),
    (errors.CannotConvert, 406),
    (errors.DuplicateRefused, 409),
    (errors.Conflict, 409),
    (nodes.ServiceUnavailable, 501),
    (nodes.PeerRefused, 502),
    (nodes.PeerSilent, 504),
    (errors.InvalidInstance, 400),
    (errors.InvalidQuery, 400),
    (errors.StorageFull, 507),
    (errors.StorageUnavailable, 503),
    (errors.IndexUnavailable, 503),
)


def status_for(exc: errors.ArchiveError) -> int:
    for kind, code in HTTP_STATUS:
        if isinstance(exc, kind):
            return code
    return 500


def loggable(exc: errors.ArchiveError) -> str:
    """What the log may say: a rejected query key's value can be a patient's name, so only the
    key is logged (the client still gets the whole reason)."""
    if isinstance(exc, errors.InvalidQuery):
        return f"{exc.keyword}: unusable query value (not logged)"
    return str(exc)


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.ArchiveError)
    async def archive_error(request: Request, exc: errors.ArchiveError) -> JSONResponse:
        code = status_for(exc)
        log.warning("%s %s -> %d: %s", request.method, request.url.path, code, loggable(exc))
        return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=code)
