"""Weasis: the weasis:// launch URL and the manifest it names work with only the short-lived,
read-only token the URL carries (manifest, then one referenced instance through WADO-URI)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote
from xml.etree import ElementTree as ET

import pytest
from fastapi import FastAPI

from openpacs.archive.core import Core, open_core
from openpacs.web.app import create_app
from tests.conftest import make_settings
from tests.web.actions_data import files_of, stored_ct
from tests.web.client import Client

NS = {"w": "http://www.weasis.org/xsd/2.5"}


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(tmp_path: Path, database_url: str, clock: Clock) -> Iterator[FastAPI]:
    core = open_core(make_settings(tmp_path, database_url, studies={"weasis_token_minutes": 5}))
    try:
        yield create_app(core, clock=clock)
    finally:
        core.close()


def _core(app: FastAPI) -> Core:
    return app.state.core  # type: ignore[no-any-return]


def _launch(client: Client, study: str, **headers: str) -> tuple[str, str, str]:
    response = client.get(f"/api/studies/{study}/weasis", headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    command = unquote(body["url"].removeprefix("weasis://?"))
    assert body["url"].startswith("weasis://?")
    found = re.fullmatch(r'\$dicom:get -w "([^"]+)" \$weasis:config auth="Bearer (\S+)"', command)
    assert found is not None, command
    assert found.group(1) == body["manifest"]
    return body["manifest"], found.group(2), body["expires_at"]


def test_manifest_and_an_instance_with_only_the_token(
    app: FastAPI, tmp_path: Path, clock: Clock
) -> None:
    core = _core(app)
    stored = stored_ct(core, tmp_path, 3, name="Zhang^San=张^三")
    manifest_url, token, _ = _launch(Client(app), stored.study)
    assert manifest_url == f"http://openpacs/api/studies/{stored.study}/weasis.xml"
    weasis = Client(app, role=None)
    only_token = {"Authorization": f"Bearer {token}"}

    response = weasis.get(manifest_url.removeprefix("http://openpacs"), headers=only_token)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "{http://www.weasis.org/xsd/2.5}manifest"
    query = root.find("w:arcQuery", NS)
    assert query is not None and query.get("baseUrl") == "http://openpacs/wado"
    tag = query.find("w:httpTag", NS)
    assert tag is not None and tag.get("key") == "Authorization"
    assert tag.get("value") == f"Bearer {token}"
    patient = query.find("w:Patient", NS)
    assert patient is not None and patient.get("PatientName") == "Zhang^San=张^三"
    instances = root.findall(".//w:Instance", NS)
    assert len(instances) == 3
    series = root.find(".//w:Series", NS)
    assert series is not None and series.get("SeriesInstanceUID") == stored.series
    # The image request Weasis makes from the manifest: baseUrl + WADO-URI parameters.
    sop = instances[0].get("SOPInstanceUID")
    params = (
        f"?requestType=WADO&studyUID={stored.study}&seriesUID={stored.series}&objectUID={sop}"
        f"&contentType=application%2Fdicom{query.get('additionnalParameters')}"
    )
    image = weasis.get("/wado" + params, headers={tag.get("key", ""): tag.get("value", "")})
    assert image.status_code == 200, image.text
    assert image.content == files_of(core, stored.study)[str(sop)].read_bytes()
    # Read-only, and no more than that.
    assert weasis.delete(f"/api/studies/{stored.study}", headers=only_token).status_code == 403
    # Short-lived.
    clock.now += dt.timedelta(minutes=6)
    expired = weasis.get(manifest_url.removeprefix("http://openpacs"), headers=only_token)
    assert expired.status_code == 401


def test_urls_follow_the_proxy(app: FastAPI, tmp_path: Path) -> None:
    stored = stored_ct(_core(app), tmp_path, 1)
    proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pacs.example:8443"}
    manifest_url, token, _ = _launch(Client(app), stored.study, **proxy)
    assert manifest_url.startswith("https://pacs.example:8443/api/studies/")
    response = Client(app, role=None).get(
        f"/api/studies/{stored.study}/weasis.xml",
        headers={"Authorization": f"Bearer {token}", **proxy},
    )
    query = ET.fromstring(response.content).find("w:arcQuery", NS)
    assert query is not None and query.get("baseUrl") == "https://pacs.example:8443/wado"


def test_without_credentials_and_unknown(app: FastAPI, tmp_path: Path) -> None:
    stored = stored_ct(_core(app), tmp_path, 1)
    anonymous = Client(app, role=None)
    assert anonymous.get(f"/api/studies/{stored.study}/weasis.xml").status_code == 401
    assert anonymous.get(f"/api/studies/{stored.study}/weasis").status_code == 401
    assert Client(app).get("/api/studies/1.2.3/weasis").status_code == 404
    assert Client(app).get("/api/studies/1.2.3/weasis.xml").status_code == 404
