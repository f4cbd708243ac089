"""/api/studies (the console's study list) and /api/studies/{uid}/series, on both databases:
filters, Chinese names, sorting, paging, refusals, thumbnails, and the access check."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from openpacs.accounts import Role
from openpacs.archive.core import Core
from openpacs.web.app import create_app
from tests.generators import ct_series
from tests.web.client import Client
from tests.web.dicomweb_data import store

ZHANG = "Zhang^San=张^三"
MULLER = "Müller^Jürgen"
WANG = "王小明"  # ideographs in the first group, as many Chinese modalities write them


def _study(
    core: Core,
    folder: Path,
    *,
    name: str,
    patient_id: str,
    date: str,
    description: str,
    modality: str,
    slices: int,
    seed: int,
) -> str:
    files = ct_series(folder, slices, rows=16, columns=16, patient_id=patient_id, seed=seed)
    for path in files:
        ds = dcmread(path)
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = name
        ds.StudyDate = ds.SeriesDate = date
        ds.StudyDescription = description
        ds.Modality = modality
        ds.save_as(path)
    stored = [store(core, path) for path in files]
    return stored[0].study


@pytest.fixture
def studies(core: Core, tmp_path: Path) -> dict[str, str]:
    """Three stored studies by patient ID: their Study Instance UIDs."""
    return {
        "ZS001": _study(
            core, tmp_path / "a", name=ZHANG, patient_id="ZS001", date="20240102",
            description="CT CHEST", modality="CT", slices=3, seed=1,
        ),
        "MU001": _study(
            core, tmp_path / "b", name=MULLER, patient_id="MU001", date="20230615",
            description="Knee", modality="MR", slices=1, seed=2,
        ),
        "WX001": _study(
            core, tmp_path / "c", name=WANG, patient_id="WX001", date="20250301",
            description="chest follow-up", modality="CT", slices=2, seed=3,
        ),
    }  # fmt: skip


def _ids(client: Client, **params: str | int) -> list[str]:
    response = client.get("/api/studies", params=params)
    assert response.status_code == 200, response.text
    return [item["patient_id"] for item in response.json()["items"]]


def test_lists_newest_first_with_names_as_stored(client: Client, studies: dict[str, str]) -> None:
    response = client.get("/api/studies")
    assert response.status_code == 200
    body = response.json()
    assert body["total"] == 3
    assert [item["patient_id"] for item in body["items"]] == ["WX001", "ZS001", "MU001"]
    zhang = body["items"][1]
    assert zhang["patient_name"] == ZHANG
    assert zhang["study_instance_uid"] == studies["ZS001"]
    assert zhang["study_date"] == "20240102"
    assert zhang["accession_number"] == "ACC000001"
    assert zhang["study_id"] == "S1"
    assert zhang["modalities"] == ["CT"]
    assert (zhang["number_of_series"], zhang["number_of_instances"]) == (1, 3)
    assert body["items"][0]["patient_name"] == WANG


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"patient_id": "ZS001"}, ["ZS001"]),
        ({"patient_id": "ZS"}, []),  # IDs match exactly...
        ({"patient_id": "*S001"}, ["ZS001"]),  # ...or by wildcard
        ({"patient_name": "张"}, ["ZS001"]),
        ({"patient_name": "张 三"}, ["ZS001"]),
        ({"patient_name": "张三"}, ["ZS001"]),  # as people type it, without the separator
        ({"patient_name": "zhang"}, ["ZS001"]),
        ({"patient_name": "san zh"}, ["ZS001"]),
        ({"patient_name": "muller"}, ["MU001"]),
        ({"patient_name": "JÜR"}, ["MU001"]),
        ({"patient_name": "王小明"}, ["WX001"]),
        ({"patient_name": "王"}, ["WX001"]),
        ({"patient_name": "李"}, []),
        ({"accession_number": "ACC000002"}, ["MU001"]),
        ({"modality": "mr"}, ["MU001"]),
        ({"modality": "CT"}, ["WX001", "ZS001"]),
        ({"date_from": "20240101"}, ["WX001", "ZS001"]),
        ({"date_to": "20240102"}, ["ZS001", "MU001"]),
        ({"date_from": "20230101", "date_to": "20231231"}, ["MU001"]),
        ({"keyword": "chest"}, ["WX001", "ZS001"]),  # any case, any part
        ({"keyword": "follow"}, ["WX001"]),
        ({"keyword": "chest", "modality": "CT", "patient_name": "zhang"}, ["ZS001"]),
    ],
)
def test_filters(
    client: Client, studies: dict[str, str], params: dict[str, str], expected: list[str]
) -> None:
    assert _ids(client, **params) == expected


def test_keyword_finds_the_remark_too(client: Client, studies: dict[str, str]) -> None:
    path = f"/api/studies/{studies['MU001']}/remark"
    assert client.put(path, json={"remark": "复查 Follow 50%_done"}).status_code == 200
    assert _ids(client, keyword="复查") == ["MU001"]
    assert _ids(client, keyword="follow") == ["WX001", "MU001"]  # description or remark
    assert _ids(client, keyword="50%_d") == ["MU001"]  # LIKE's wildcards taken literally
    assert _ids(client, keyword="5%d") == []
    items = client.get("/api/studies").json()["items"]
    assert {item["patient_id"]: item["remark"] for item in items} == {
        "WX001": None,
        "ZS001": None,
        "MU001": "复查 Follow 50%_done",
    }


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("date", ["MU001", "ZS001", "WX001"]),
        ("-date", ["WX001", "ZS001", "MU001"]),
        ("patient_id", ["MU001", "WX001", "ZS001"]),
        ("-patient_id", ["ZS001", "WX001", "MU001"]),
        ("name", ["MU001", "ZS001", "WX001"]),
        ("-instances", ["ZS001", "WX001", "MU001"]),
        ("accession", ["ZS001", "MU001", "WX001"]),
        ("modality", ["ZS001", "WX001", "MU001"]),  # CT before MR, ties in stored order
    ],
)
def test_sorting(client: Client, studies: dict[str, str], sort: str, expected: list[str]) -> None:
    assert _ids(client, sort=sort) == expected


def test_pages_share_one_total_and_never_overlap(client: Client, studies: dict[str, str]) -> None:
    seen = []
    for offset in range(4):
        response = client.get("/api/studies", params={"limit": 1, "offset": offset, "sort": "name"})
        assert response.status_code == 200
        assert response.json()["total"] == 3
        seen += [item["patient_id"] for item in response.json()["items"]]
    assert seen == ["MU001", "ZS001", "WX001"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": 501}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"sort": "size"}, "sort"),
        ({"date_from": "2024-01-01"}, "date_from"),
    ],
)
def test_bad_parameters_are_refused_by_name(
    client: Client, studies: dict[str, str], params: dict[str, object], named: str
) -> None:
    response = client.get("/api/studies", params=params)
    assert response.status_code == 422
    assert named in response.text


def test_series_with_thumbnails(client: Client, studies: dict[str, str]) -> None:
    study = studies["ZS001"]
    response = client.get(f"/api/studies/{study}/series")
    assert response.status_code == 200
    (series,) = response.json()
    assert series["modality"] == "CT"
    assert series["series_number"] == 1
    assert series["number_of_instances"] == 3
    assert series["series_description"] == "Synthetic phantom"
    url = series["thumbnail_url"]
    assert url == f"/dicomweb/studies/{study}/series/{series['series_instance_uid']}/thumbnail"
    picture = client.get(url, headers={"Accept": "image/jpeg"})
    assert picture.status_code == 200
    assert picture.content[:2] == b"\xff\xd8"


def test_series_of_unknown_or_malformed_study(client: Client, studies: dict[str, str]) -> None:
    assert client.get("/api/studies/1.2.3.4/series").status_code == 404
    # A wildcard must not list every series of the archive.
    refused = client.get("/api/studies/*/series")
    assert refused.status_code == 400
    assert "StudyInstanceUID" in refused.text


def test_patient_data_needs_credentials(core: Core, studies: dict[str, str]) -> None:
    app = create_app(core)
    paths = ("/api/studies", f"/api/studies/{studies['ZS001']}/series")
    anonymous = Client(app, role=None)
    for path in paths:
        refused = anonymous.get(path, headers={"X-Requested-With": "openpacs-console"})
        assert refused.status_code == 401
        assert "www-authenticate" not in refused.headers  # no Basic dialog over the console
    viewer = Client(app, role=Role.viewer)
    for path in paths:
        assert viewer.get(path).status_code == 200
