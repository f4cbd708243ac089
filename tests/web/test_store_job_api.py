"""POST /api/jobs/store as a client sees it: queued with its selection, or refused saying why."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from openpacs import jobs, nodes
from openpacs.archive.core import Core
from openpacs.archive.importer import import_paths
from openpacs.config import NodeSettings
from tests.generators import ct_series
from tests.web.client import Client
from tests.web.conftest import Wakes


@pytest.fixture
def study(core: Core, tmp_path: Path) -> str:
    """A stored two-slice study and a node named `pacs`; the study's UID."""
    paths = ct_series(tmp_path / "ct", 2, rows=16, columns=16)
    assert import_paths(core.archive, paths).stored == 2
    with core.writing() as session:
        nodes.create(session, NodeSettings(name="pacs", ae_title="PACS", host="pacs", port=104))
    return str(dcmread(paths[0], stop_before_pixels=True).StudyInstanceUID)


def test_queues_a_store_job_and_wakes_a_worker(
    client: Client, core: Core, study: str, wakes: Wakes
) -> None:
    response = client.post("/api/jobs/store", json={"node": "pacs", "studies": [study, study]})
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["kind"], job["state"], job["attempts"]) == ("store", "queued", 0)
    assert job["parameters"] == {"node": "pacs", "studies": [study], "series": [], "instances": []}
    assert wakes.count == 1
    with core.sessions() as session:
        assert jobs.get(session, job["id"]).kind == "store"
    assert client.get(f"/api/jobs/{job['id']}").json()["state"] == "queued"


def test_an_unknown_node_is_404(client: Client, study: str) -> None:
    response = client.post("/api/jobs/store", json={"node": "nowhere", "studies": [study]})
    assert response.status_code == 404
    assert response.json()["error"] == "NodeNotFound"
    assert "GET /api/nodes" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"node": "pacs"}, "no UIDs given"),
        ({"node": "pacs", "series": ["1.2.3.4"]}, "none of the UIDs given is stored"),
    ],
)
def test_nothing_selected_is_422(
    client: Client, core: Core, study: str, body: dict[str, object], said: str
) -> None:
    response = client.post("/api/jobs/store", json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "NothingSelected"
    assert said in response.json()["detail"]
    with core.sessions() as session:
        assert jobs.list_jobs(session) == []


def test_a_malformed_uid_is_422(client: Client, study: str) -> None:
    response = client.post("/api/jobs/store", json={"node": "pacs", "studies": ["1.2.x"]})
    assert response.status_code == 422
    assert "not a UID" in response.text


def test_openapi_documents_the_store_route(client: Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/api/jobs/store"]) == {"post"}
