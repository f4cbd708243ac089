"""The HTTP application: health, system information, OpenAPI docs at /docs, the console at /.

Every route answers only to a signed-in user (`auth.require_access`, applied app-wide), except
those marked `openapi_extra=auth.PUBLIC`: /health, /api/auth/login and the console's files."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from openpacs import __version__
from openpacs.accounts import Clock, users, utcnow
from openpacs.archive import db
from openpacs.archive.core import Core
from openpacs.logs import get_logger
from openpacs.web import auth, console, dicomweb, docs, errors, ohif, request_metrics, weasis
from openpacs.web.api import accounts as accounts_api
from openpacs.web.api import downloads as downloads_api
from openpacs.web.api import jobs as jobs_api
from openpacs.web.api import logs as logs_api
from openpacs.web.api import metrics as metrics_api
from openpacs.web.api import nodes as nodes_api
from openpacs.web.api import print as print_api
from openpacs.web.api import settings as settings_api
from openpacs.web.api import status as status_api
from openpacs.web.api import studies as studies_api
from openpacs.web.api import study_actions
from openpacs.web.api import uploads as uploads_api
from openpacs.web.api import worklist as worklist_api
from openpacs.web.api.deps import Services

log = get_logger("api")


class Counts(BaseModel):
    patients: int
    studies: int
    series: int
    instances: int


class Listener(BaseModel):
    service: str
    ae_title: str
    port: int


class SystemInfo(BaseModel):
    name: str
    version: str
    dicom: list[Listener]
    http_port: int
    database: str
    counts: Counts
    storage_used_bytes: int
    storage_free_bytes: int


def _first_admin(core: Core) -> None:
    """On the first start, `admin` / `admin` (to be changed at first sign-in)."""
    try:
        with core.writing() as session:
            made = users.ensure_admin(session)
    except SQLAlchemyError as exc:  # /health says what is wrong; the next start makes it
        log.warning("could not check for the first admin: %s", db.describe(exc))
        return
    if made is not None:
        log.warning(
            "first start: user 'admin' with password 'admin' made; sign in and change it "
            "(or run `openpacs user passwd admin`)"
        )


def create_app(
    core: Core, services: Services | None = None, *, clock: Clock | None = None
) -> FastAPI:
    """The app over `core`; `services` (from server.py) lends it the DIMSE side, e.g. C-ECHO;
    `clock` is the time sessions and lockouts go by (tests move it)."""
    app = FastAPI(
        title="openpacs",
        version=__version__,
        description="A lightweight PACS: DICOM archive, DICOMweb and REST API.",
        dependencies=[Depends(auth.require_access)],
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    docs.install(app)
    app.state.core = core
    app.state.services = services or Services()
    app.state.access = auth.Access(core.settings.auth, clock or utcnow)
    _first_admin(core)
    errors.install(app)
    dicomweb.install(app, core)
    app.include_router(ohif.router())
    app.include_router(nodes_api.router)
    app.include_router(jobs_api.router)
    app.include_router(worklist_api.router)
    app.include_router(print_api.router)
    app.include_router(studies_api.router)
    app.include_router(study_actions.router)
    app.include_router(downloads_api.router)
    app.include_router(weasis.router)
    app.include_router(uploads_api.router)
    app.include_router(accounts_api.router)
    app.include_router(accounts_api.users_router)
    app.include_router(accounts_api.audit_router)
    app.include_router(settings_api.router)
    app.include_router(logs_api.router)
    app.include_router(status_api.router)
    app.include_router(metrics_api.router(core.settings.metrics))
    request_metrics.install(app)

    @app.get("/health", tags=["system"], openapi_extra=auth.PUBLIC)
    def health() -> JSONResponse:
        """200 when the index and the storage are reachable, 503 with the reason otherwise."""
        state = core.check()
        healthy = all(value == "ok" for value in state.values())
        body: dict[str, Any] = {"status": "ok" if healthy else "unavailable", **state}
        return JSONResponse(body, status_code=200 if healthy else 503)

    @app.get("/api/system", tags=["system"], response_model=SystemInfo)
    def system(request: Request) -> SystemInfo:
        """Version, listeners, how much the archive holds and how much storage it uses."""
        settings = core.settings
        counts = core.counts()
        return SystemInfo(
            name="openpacs",
            version=__version__,
            dicom=[
                Listener(
                    service="storescp",
                    ae_title=settings.storescp.ae_title,
                    port=settings.storescp.port,
                ),
                Listener(
                    service="qrscp",
                    ae_title=settings.qrscp.ae_title,
                    port=settings.qrscp.port,
                ),
                Listener(
                    service="worklist",
                    ae_title=settings.worklist.ae_title,
                    port=settings.worklist.port,
                ),
                Listener(
                    service="printscp",
                    ae_title=settings.printscp.ae_title,
                    port=settings.printscp.port,
                ),
            ],
            http_port=settings.http.port,
            database=core.engine.dialect.name,
            counts=Counts(
                patients=counts.patients,
                studies=counts.studies,
                series=counts.series,
                instances=counts.instances,
            ),
            storage_used_bytes=counts.stored_bytes,
            storage_free_bytes=core.storage.free_bytes(),
        )

    # Last: its catch-all answers the paths no route above took.
    app.include_router(console.router())
    return app
