"""/api/worklist as a RIS sees it, over a real index (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from openpacs.archive.core import Core
from tests.web.client import Client

ITEM: dict[str, Any] = {
    "patient_id": "P001",
    "patient_name": "Zhang^San=张^三",
    "patient_sex": "M",
    "patient_age": "045Y",
    "accession_number": "ACC001",
    "referring_physician": "李^医生",
    "requested_procedure_id": "RP1",
    "requested_procedure_description": "胸部CT平扫",
    "requested_procedure_codes": [{"value": "CT-CHEST", "scheme": "LOCAL", "meaning": "CT chest"}],
    "priority": "ROUTINE",
    "step": {
        "id": "SPS1",
        "modality": "ct",
        "station_ae_titles": ["CT01", "CT02"],
        "station_name": "CT room 1",
        "start_date": "2026-11-26",
        "start_time": "09:30",
        "description": "Chest",
        "performing_physician": "王^技师",
        "location": "B1",
    },
}


def add(client: Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/worklist", json={**ITEM, **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def test_add_read_replace_delete(client: Client) -> None:
    created = add(client)
    assert created["status"] == "SCHEDULED"
    assert created["study_instance_uid"].startswith("2.25.")
    assert created["step"]["modality"] == "CT"
    assert created["step"]["start_date"] == "20261126" and created["step"]["start_time"] == "0930"
    assert created["patient_birth_date"] is None  # never invented from the age
    item_id = created["id"]
    shown = client.get(f"/api/worklist/{item_id}").json()
    assert shown["patient_name"] == "Zhang^San=张^三" and shown["performed"] == []

    changed = client.put(
        f"/api/worklist/{item_id}", json={**ITEM, "step": {**ITEM["step"], "modality": "MR"}}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["step"]["modality"] == "MR"
    assert changed.json()["study_instance_uid"] == created["study_instance_uid"]

    assert client.delete(f"/api/worklist/{item_id}").status_code == 204
    missing = client.get(f"/api/worklist/{item_id}")
    assert missing.status_code == 404 and "GET /api/worklist" in missing.json()["detail"]


def test_a_given_study_uid_is_kept(client: Client) -> None:
    assert add(client, study_instance_uid="1.2.3.4")["study_instance_uid"] == "1.2.3.4"


def test_invalid_fields_are_named(client: Client) -> None:
    bad = {
        **ITEM,
        "patient_id": "",
        "patient_birth_date": "19801332",
        "patient_sex": "X",
        "study_instance_uid": "../etc/passwd",
        "step": {**ITEM["step"], "modality": "C T!", "start_time": "25:00"},
    }
    response = client.post("/api/worklist", json=bad)
    assert response.status_code == 422
    fields = {".".join(str(p) for p in error["loc"][1:]) for error in response.json()["detail"]}
    assert fields == {
        "patient_id",
        "patient_birth_date",
        "patient_sex",
        "study_instance_uid",
        "step.modality",
        "step.start_time",
    }
    missing = client.post("/api/worklist", json={"patient_id": "P1"})
    assert missing.status_code == 422
    assert [e["loc"] for e in missing.json()["detail"]] == [["body", "step"]]
    unknown = client.post("/api/worklist", json={**ITEM, "patient_nom": "x"})
    assert unknown.status_code == 422


def test_list_filters_and_pages(client: Client, core: Core) -> None:
    add(client)
    add(client, patient_id="P002", patient_name="Müller^Jürgen", accession_number="ACC002")
    mr = {**ITEM["step"], "modality": "MR", "start_date": "20261127", "station_ae_titles": ["MR1"]}
    add(client, patient_id="P003", patient_name="Li^Si", step=mr, status="COMPLETED")

    def ids(**params: Any) -> list[str]:
        page = client.get("/api/worklist", params=params).json()
        return [item["patient_id"] for item in page["items"]]

    assert ids() == ["P001", "P002", "P003"]
    assert ids(patient_name="zha") == ["P001"]
    assert ids(patient_name="张") == ["P001"]
    assert ids(patient_name="mull") == ["P002"]
    assert ids(accession_number="ACC002") == ["P002"]
    assert ids(modality="mr") == ["P003"]
    assert ids(station_ae_title="CT02") == ["P001", "P002"]
    assert ids(date_from="20261127") == ["P003"]
    assert ids(date_to="20261126") == ["P001", "P002"]
    assert ids(status="COMPLETED") == ["P003"]
    assert ids(status=["SCHEDULED", "COMPLETED"], limit=1, offset=2) == ["P003"]
    page = client.get("/api/worklist", params={"limit": 1}).json()
    assert page["total"] == 3 and len(page["items"]) == 1
    assert client.get("/api/worklist", params={"date_from": "2026-11-27"}).status_code == 422
