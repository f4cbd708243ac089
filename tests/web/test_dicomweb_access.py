"""The one access check, CORS, and what the access log may say."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from openpacs.archive.core import Core, open_core
from openpacs.web import accesslog
from openpacs.web.app import create_app
from tests.web.dicomweb_data import Client, settings_for

REMOTE = ("203.0.113.7", 51000)
PATHS = [
    "/dicomweb/studies",
    "/dicom-web/series",
    "/dicomweb/studies/1.2.3/metadata",
    "/dicomweb/studies/1.2.3/series/1.2.4/instances/1.2.5/frames/1",
    "/wado?requestType=WADO&studyUID=1&seriesUID=2&objectUID=3",
]


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    opened = open_core(
        settings_for(
            tmp_path,
            dicomweb={"username": "viewer", "password": "pässword:1", "token": "t0ken-abc"},
        )
    )
    yield opened
    opened.close()


def basic(user: str, password: str) -> dict[str, str]:
    raw = f"{user}:{password}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.mark.parametrize("path", PATHS)
def test_remote_clients_need_credentials(core: Core, path: str) -> None:
    app = create_app(core)
    remote = Client(app, REMOTE)
    refused = remote.get(path)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")
    assert remote.get(path, headers=basic("viewer", "pässword:1")).status_code != 401
    assert remote.get(path, headers={"Authorization": "Bearer t0ken-abc"}).status_code != 401
    assert Client(app).get(path).status_code != 401  # loopback


@pytest.mark.parametrize(
    "headers",
    [
        basic("viewer", "wrong"),
        basic("other", "pässword:1"),
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Digest x"},
    ],
)
def test_wrong_credentials(core: Core, headers: dict[str, str]) -> None:
    assert Client(create_app(core), REMOTE).get(PATHS[0], headers=headers).status_code == 401


def test_proxy_on_this_machine_does_not_open_the_archive(core: Core) -> None:
    local = Client(create_app(core))
    assert local.get(PATHS[0], headers={"X-Forwarded-For": "198.51.100.4"}).status_code == 401
    assert local.get(PATHS[0], headers={"Forwarded": "for=198.51.100.4"}).status_code == 401
    assert local.get(PATHS[0], headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200


def test_loopback_can_be_made_to_log_in(tmp_path: Path) -> None:
    core = open_core(settings_for(tmp_path, dicomweb={"allow_loopback": False}))
    try:
        assert Client(create_app(core)).get(PATHS[0]).status_code == 401
    finally:
        core.close()


def test_without_configured_credentials_remote_is_refused(tmp_path: Path) -> None:
    core = open_core(settings_for(tmp_path))
    try:
        remote = Client(create_app(core), REMOTE)
        assert remote.get(PATHS[0], headers=basic("", "")).status_code == 401
        assert remote.get(PATHS[0], headers={"Authorization": "Bearer "}).status_code == 401
    finally:
        core.close()


def test_health_stays_public(core: Core) -> None:
    assert Client(create_app(core), REMOTE).get("/health").status_code == 200


def test_cors_is_off_by_default(core: Core) -> None:
    response = Client(create_app(core)).get(PATHS[0], headers={"Origin": "https://viewer.site"})
    assert "access-control-allow-origin" not in response.headers


def test_cors_when_configured(tmp_path: Path) -> None:
    core = open_core(settings_for(tmp_path, dicomweb={"cors_origins": ["https://viewer.site"]}))
    try:
        client = Client(create_app(core))
        preflight = client.request(
            "OPTIONS",
            PATHS[0],
            headers={"Origin": "https://viewer.site", "Access-Control-Request-Method": "GET"},
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://viewer.site"
        answer = client.get(PATHS[0], headers={"Origin": "https://viewer.site"})
        assert answer.headers["access-control-allow-origin"] == "https://viewer.site"
        assert "Warning" in answer.headers["access-control-expose-headers"]
        other = client.get(PATHS[0], headers={"Origin": "https://elsewhere.site"})
        assert "access-control-allow-origin" not in other.headers
    finally:
        core.close()


def test_access_log_shows_paths_only(core: Core) -> None:
    create_app(core)  # installs the filter
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:1", "GET", "/dicomweb/studies?PatientName=Zhang^San", "1.1", 200),
        None,
    )
    logger = logging.getLogger("uvicorn.access")
    assert any(isinstance(f, accesslog.PathOnly) for f in logger.filters)
    assert logger.filter(record)
    assert record.getMessage() == '127.0.0.1:1 - "GET /dicomweb/studies HTTP/1.1" 200'
    accesslog.install()
    assert sum(isinstance(f, accesslog.PathOnly) for f in logger.filters) == 1
