"""The HTTP application: health, system information, OpenAPI docs at /docs."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from openpacs import __version__
from openpacs.archive.core import Core
from openpacs.web import errors, ohif


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


def create_app(core: Core) -> FastAPI:
    app = FastAPI(
        title="openpacs",
        version=__version__,
        description="A lightweight PACS: DICOM archive, DICOMweb and REST API.",
    )
    app.state.core = core
    errors.install(app)
    app.include_router(ohif.router())

    @app.get("/health", tags=["system"])
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
                )
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

    return app
