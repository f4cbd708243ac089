"""/docs and /openapi.json: Swagger UI from the console's build (no CDN needed), and the proxy's
prefix named for the schema and for the API calls "Try it out" makes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from openpacs.web import docs

PROXIED = {"X-Forwarded-Prefix": "/pacs"}


class _Client:
    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                return await client.get(path, headers=headers)

        return asyncio.run(call())


def _client(built: Path) -> _Client:
    app = FastAPI(title="openpacs", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/api/ping")
    def ping() -> dict[str, str]:
        return {"ping": "pong"}

    docs.install(app, built)
    return _Client(app)


@pytest.fixture
def built(tmp_path: Path) -> Path:
    swagger = tmp_path / "console" / docs.SWAGGER_UI
    swagger.mkdir(parents=True)
    (swagger / "swagger-ui-bundle.js").write_text("/* swagger */")
    return tmp_path / "console"


def test_swagger_ui_comes_from_the_console_build(built: Path) -> None:
    page = _client(built).get("/docs").text
    assert "'/openapi.json'" in page
    assert '"/swagger/swagger-ui-bundle.js"' in page and '"/swagger/swagger-ui.css"' in page
    assert "cdn." not in page


def test_without_the_console_build_the_cdn_serves_swagger_ui(tmp_path: Path) -> None:
    page = _client(tmp_path / "not-built").get("/docs").text
    assert "cdn.jsdelivr.net" in page


def test_a_proxys_prefix_is_named_in_the_page_and_the_schema(built: Path) -> None:
    client = _client(built)
    page = client.get("/docs", headers=PROXIED).text
    assert "'/pacs/openapi.json'" in page and '"/pacs/swagger/swagger-ui-bundle.js"' in page
    assert "/pacs/docs/oauth2-redirect" in page
    schema = client.get("/openapi.json", headers=PROXIED).json()
    assert schema["servers"] == [{"url": "/pacs"}]
    assert "/api/ping" in schema["paths"]
    assert "servers" not in client.get("/openapi.json").json()
    assert client.get("/docs/oauth2-redirect").status_code == 200
