"""DICOMweb: QIDO-RS, WADO-RS and STOW-RS at /dicomweb (also answered at /dicom-web), and
WADO-URI at /wado. `install(app, core)` adds them to the application.

Every route goes through the app's one access check (`openpacs.web.auth`); opening a study's,
series' or instance's data is written to the audit log. Configuration: the `[dicomweb]`
section of openpacs.toml.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from openpacs.archive.core import Core
from openpacs.archive.metadata import MetadataCache, MetadataSource
from openpacs.logs import get_logger
from openpacs.web import accesslog
from openpacs.web.dicomweb import media, retrieve, search, store, uri, urls
from openpacs.web.dicomweb.common import DicomWeb

log = get_logger("wado")

router = APIRouter(tags=["dicomweb"])
router.include_router(search.router)
router.include_router(retrieve.router)
router.include_router(store.router)


def install(app: FastAPI, core: Core) -> None:
    settings = core.settings.dicomweb
    key = settings.anonymize_key.encode("utf-8") if settings.anonymize_key else None
    if key is None:
        log.info("[dicomweb] anonymize_key is empty: de-identified UIDs change at restart")
        key = secrets.token_bytes(32)
    metadata = MetadataSource(
        core.sessions,
        core.storage,
        MetadataCache(settings.metadata_cache_series),
        settings.bulkdata_threshold,
    )
    app.state.dicomweb = DicomWeb(core, settings, metadata, key)
    for root in urls.ROOTS:
        app.include_router(router, prefix=root, include_in_schema=root == urls.ROOTS[0])
    app.include_router(uri.router, tags=["dicomweb"])
    app.add_exception_handler(media.MediaError, _media_error)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["*"],
            allow_credentials="*" not in settings.cors_origins,
            expose_headers=["Warning", "ETag", "Content-Range", "Content-Location"],
        )
    accesslog.install()


async def _media_error(request: Request, exc: Exception) -> JSONResponse:
    code = 413 if isinstance(exc, media.TooLarge) else 400
    log.warning("%s %s -> %d: %s", request.method, request.url.path, code, exc)
    return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=code)
