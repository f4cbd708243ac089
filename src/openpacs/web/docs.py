"""The API's documentation: Swagger UI at /docs, the schema at /openapi.json.

FastAPI's own page loads Swagger UI from a CDN, which a hospital network often cannot reach,
and names /openapi.json from the site root, which a proxy publishing openpacs under a prefix
(X-Forwarded-Prefix, e.g. /pacs) does not pass on. This page takes Swagger UI from the console's
build (console/vite.config.ts copies npm's swagger-ui-dist there; the CDN only when the console
is not built) and names the prefix the request came through, for the schema and for "Try it
out"'s calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse

from openpacs.web import console
from openpacs.web.dicomweb.urls import prefix

SCHEMA = "/openapi.json"
SWAGGER_UI = "swagger"  # the folder of the console's build holding Swagger UI's files


def install(app: FastAPI, built: Path = console.DEFAULT_DIR) -> None:
    """Add the documentation routes; `app` must be made with docs_url, redoc_url and
    openapi_url None. Plain routes: anyone may read the documentation (it holds no data)."""

    def schema(request: Request) -> JSONResponse:
        document = app.openapi()
        published = prefix(request)
        if published:
            document = {**document, "servers": [{"url": published}]}
        return JSONResponse(document)

    def swagger(request: Request) -> HTMLResponse:
        published = prefix(request)
        return get_swagger_ui_html(
            openapi_url=published + SCHEMA,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=published + "/docs/oauth2-redirect",
            **_swagger_files(built, published),
        )

    def swagger_redirect(_request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_route(SCHEMA, schema, include_in_schema=False)
    app.add_route("/docs", swagger, include_in_schema=False)
    app.add_route("/docs/oauth2-redirect", swagger_redirect, include_in_schema=False)


def _swagger_files(built: Path, published: str) -> dict[str, Any]:
    """Swagger UI's files from the console's build; none (FastAPI's CDN) when it is not built."""
    if not (built / SWAGGER_UI / "swagger-ui-bundle.js").is_file():
        return {}
    local = f"{published}/{SWAGGER_UI}"
    return {
        "swagger_js_url": f"{local}/swagger-ui-bundle.js",
        "swagger_css_url": f"{local}/swagger-ui.css",
        "swagger_favicon_url": f"{local}/favicon-32x32.png",
    }
