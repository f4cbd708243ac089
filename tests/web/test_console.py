"""The console at `/`: files of a build, index.html for the app's own paths, the server's
prefixes left alone, and a page saying what to install when the console is not built."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from openpacs.archive.core import Core
from openpacs.web import console
from openpacs.web.app import create_app
from tests.web.client import Client

INDEX = '<!doctype html><div id="app"></div><script src="/assets/index-abc123.js"></script>'


@pytest.fixture
def built(tmp_path: Path) -> Path:
    folder = tmp_path / "console"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text(INDEX)
    (folder / "assets" / "index-abc123.js").write_text("console.log('openpacs')")
    (folder / "favicon.ico").write_bytes(b"\0\0\1\0")
    (tmp_path / "secret.txt").write_text("outside the build")
    return folder


def _app(folder: Path) -> Client:
    app = FastAPI()

    @app.get("/api/known")
    def known() -> dict[str, str]:
        return {"route": "known"}

    app.include_router(console.router(folder))
    return Client(app, role=None)


@pytest.mark.parametrize("path", ["/", "/studies", "/sign-in", "/studies/deep/link?x=1"])
def test_app_paths_get_the_index(built: Path, path: str) -> None:
    response = _app(built).get(path)
    assert response.status_code == 200
    assert response.text == INDEX
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"


def test_built_files_are_served_and_assets_cached_for_good(built: Path) -> None:
    client = _app(built)
    script = client.get("/assets/index-abc123.js")
    assert script.status_code == 200
    assert script.text == "console.log('openpacs')"
    assert "javascript" in script.headers["content-type"]
    assert "immutable" in script.headers["cache-control"]
    assert client.get("/favicon.ico").headers["cache-control"] == "no-cache"


def test_a_missing_asset_is_not_answered_with_the_index(built: Path) -> None:
    assert _app(built).get("/assets/index-old999.js").status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/api/unknown", "/api", "/dicomweb/nothing", "/wado/x", "/ohif2/../api/x", "/health/x"],
)
def test_server_prefixes_stay_404(built: Path, path: str) -> None:
    response = _app(built).get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"


def test_routes_of_the_server_win(built: Path) -> None:
    assert _app(built).get("/api/known").json() == {"route": "known"}


@pytest.mark.parametrize("path", ["/..%2Fsecret.txt", "/assets/..%2F..%2Fsecret.txt"])
def test_nothing_outside_the_build(built: Path, path: str) -> None:
    response = _app(built).get(path)
    assert "outside the build" not in response.text


def test_not_built_says_what_to_install(tmp_path: Path) -> None:
    response = _app(tmp_path / "missing").get("/studies")
    assert response.status_code == 503
    assert "Node.js" in response.text and "make run" in response.text


def test_the_app_mounts_the_console_last(client: Client, core: Core) -> None:
    """In the real app: /health and the API answer as before, unknown API paths are 404 JSON,
    and / is the console (built or not)."""
    assert client.get("/health").json()["status"] == "ok"
    assert client.get("/api/system").status_code == 200
    unknown = client.get("/api/no-such-route")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == "application/json"
    assert "/" not in client.get("/openapi.json").json()["paths"]
    # The console's pages and files need no sign-in (the sign-in page is one of them).
    anonymous = Client(create_app(core), role=None)
    for path in ("/", "/sign-in", "/studies"):
        page = anonymous.get(path)
        assert page.status_code in (200, 503)  # 503: not built, says what to install
        assert page.headers["content-type"].startswith("text/html")
    assert anonymous.get("/api/no-such-route").status_code in (401, 404)
