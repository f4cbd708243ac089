"""PATCH /api/studies/{study} (patient and study attributes: files rewritten, pixels untouched,
rows changed together, audit with old and new values, 422 naming the field) and
PUT /api/studies/{study}/remark; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import select

from openpacs.accounts import Role
from openpacs.archive import edit as archive_edit
from openpacs.archive.core import Core
from openpacs.archive.models import AuditEvent, Instance
from openpacs.web.dicomweb.urls import ROOTS
from tests.conftest import need, sample
from tests.web.actions_data import files_of, patient_row, stored_ct, study_row
from tests.web.client import Client, bearer, token_for
from tests.web.dicomweb_data import store

ROOT = ROOTS[0]


def _pixels(paths: dict[str, Path]) -> dict[str, bytes]:
    return {sop: dcmread(path).PixelData for sop, path in paths.items()}


def test_edit_rewrites_every_file_and_the_rows(core: Core, client: Client, tmp_path: Path) -> None:
    stored = stored_ct(core, tmp_path, 3, name="Zhang^San=张^三", patient_id="ZS001")
    before = files_of(core, stored.study)
    pixels = _pixels(before)
    change = {
        "PatientName": "Li^Si=李^四",
        "PatientBirthDate": "1980-02-29",
        "PatientSex": "f",
        "AccessionNumber": "ACC-77",
        "StudyDescription": "胸部 CT",
        "ReferringPhysicianName": "Wang^Wu=王^五",
        "StudyTime": "08:30:00",
    }

    response = client.request("PATCH", f"/api/studies/{stored.study}", json=change)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["old"]["PatientName"] == "Zhang^San=张^三"
    assert body["new"]["PatientBirthDate"] == "19800229" and body["new"]["PatientSex"] == "F"
    after = files_of(core, stored.study)
    assert after.keys() == before.keys()
    for sop, path in after.items():
        ds = dcmread(path)
        assert str(ds.PatientName) == "Li^Si=李^四"
        assert ds.StudyDescription == "胸部 CT" and ds.AccessionNumber == "ACC-77"
        assert ds.PatientBirthDate == "19800229" and ds.StudyTime == "083000"
        assert ds.PixelData == pixels[sop]
    assert not list(core.storage.temp_dir.iterdir())
    study = study_row(core, stored.study)
    patient = patient_row(core, "ZS001")
    assert study is not None and patient is not None
    assert (study.accession_number, study.study_description) == ("ACC-77", "胸部 CT")
    assert study.referring_physician_ideographic == "王^五"
    assert study.size_bytes == sum(p.stat().st_size for p in after.values())
    assert patient.patient_name == "Li^Si=李^四" and patient.patient_name_ideographic == "李^四"
    assert (patient.patient_birth_date, patient.patient_sex) == ("19800229", "F")
    # The one query engine finds the study by its new values.
    found = client.get(f"{ROOT}/studies", params={"AccessionNumber": "ACC-77"}).json()
    assert [s["0020000D"]["Value"][0] for s in found] == [stored.study]
    with core.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "changed")).one()
    detail = json.loads(event.detail or "{}")
    assert detail["old"]["AccessionNumber"] == "ACC000011"
    assert detail["new"]["AccessionNumber"] == "ACC-77"
    assert (event.username, event.study_instance_uid) == ("test-admin", stored.study)


def test_a_new_charset_is_written_when_the_old_cannot_hold_the_value(
    core: Core, client: Client, tmp_path: Path
) -> None:
    """CT_small is ISO_IR 100; a Chinese name needs ISO_IR 192, and its Latin-1 text must
    survive the switch."""
    source = tmp_path / "ct_small.dcm"
    shutil.copyfile(sample("CT_small.dcm"), source)
    ds = dcmread(source)
    ds.StudyDescription = "Schädel"
    ds.save_as(source)
    item = store(core, source)
    (path,) = files_of(core, item.study).values()
    pixels = dcmread(path).PixelData

    response = client.request(
        "PATCH", f"/api/studies/{item.study}", json={"PatientName": "Chen^Mei=陈^美"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["charset_changed"]
    (path,) = files_of(core, item.study).values()
    ds = dcmread(path)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "Chen^Mei=陈^美" and ds.StudyDescription == "Schädel"
    assert ds.PixelData == pixels
    assert "Schädel".encode() in path.read_bytes()


def test_dciodvfy_finds_no_new_error(core: Core, client: Client, tmp_path: Path) -> None:
    import subprocess

    tool = need("dciodvfy")
    stored = stored_ct(core, tmp_path, 1)
    (path,) = files_of(core, stored.study).values()

    def errors(file: Path) -> set[str]:
        run = subprocess.run([tool, str(file)], capture_output=True, text=True, timeout=60)
        return {line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")}

    before = errors(path)
    body = {"PatientName": "赵^六", "StudyDate": "20240101", "ReferringPhysicianName": ""}
    assert client.request("PATCH", f"/api/studies/{stored.study}", json=body).status_code == 200
    (path,) = files_of(core, stored.study).values()
    assert errors(path) <= before


def test_patient_id_change_moves_the_study(core: Core, client: Client, tmp_path: Path) -> None:
    first = stored_ct(core, tmp_path, 2, patient_id="P-OLD", seed=1)
    stored_ct(core, tmp_path, 1, patient_id="P-OLD", seed=2)  # stays with P-OLD
    stored_ct(core, tmp_path, 1, patient_id="P-NEW", seed=3)
    before = files_of(core, first.study)

    response = client.request(
        "PATCH", f"/api/studies/{first.study}", json={"PatientID": "P-NEW", "StudyDate": "20200102"}
    )

    assert response.status_code == 200, response.text
    assert response.json()["moved_to_patient"] == "P-NEW"
    old, new = patient_row(core, "P-OLD"), patient_row(core, "P-NEW")
    assert old is not None and new is not None
    assert (old.number_of_studies, old.number_of_series, old.number_of_instances) == (1, 1, 1)
    assert (new.number_of_studies, new.number_of_series, new.number_of_instances) == (2, 2, 3)
    after = files_of(core, first.study)
    # The layout names the StudyDate: the files moved, the old ones are gone.
    for sop, path in after.items():
        assert "2020/01/02" in str(path) and path.exists() and not before[sop].exists()
        assert dcmread(path, stop_before_pixels=True).PatientID == "P-NEW"
    response = client.request("PATCH", f"/api/studies/{first.study}", json={"PatientID": "P-X"})
    assert response.status_code == 200
    assert patient_row(core, "P-X") is not None
    x = patient_row(core, "P-X")
    assert x is not None and x.number_of_instances == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"PatientBirthDate": "19801332"}, "PatientBirthDate"),
        ({"StudyTime": "25:00"}, "StudyTime"),
        ({"PatientSex": "X"}, "PatientSex"),
        ({"AccessionNumber": "A" * 17}, "AccessionNumber"),
        ({"PatientName": "a^b^c^d^e^f"}, "PatientName"),
        ({"PatientName": "a=b=c=d"}, "PatientName"),
        ({"StudyDescription": "two\\values"}, "StudyDescription"),
        ({"PatientID": ""}, "PatientID"),
        ({"SOPInstanceUID": "1.2.3"}, "SOPInstanceUID"),
        ({"StudyDescription": 5}, "StudyDescription"),
        ({}, "body"),
    ],
)
def test_invalid_values_are_422_naming_the_field(
    core: Core, client: Client, tmp_path: Path, body: dict[str, object], field: str
) -> None:
    stored = stored_ct(core, tmp_path, 1)
    before = {sop: path.read_bytes() for sop, path in files_of(core, stored.study).items()}
    response = client.request("PATCH", f"/api/studies/{stored.study}", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"{field}:")
    assert {s: p.read_bytes() for s, p in files_of(core, stored.study).items()} == before


def test_a_failed_index_write_leaves_files_as_they_were(
    core: Core, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = stored_ct(core, tmp_path, 3, patient_id="KEEP1")
    before = {sop: path.read_bytes() for sop, path in files_of(core, stored.study).items()}

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("index refused")

    monkeypatch.setattr(archive_edit, "_update_rows", refuse)
    with pytest.raises(RuntimeError):
        client.request("PATCH", f"/api/studies/{stored.study}", json={"PatientName": "X^Y"})
    assert {s: p.read_bytes() for s, p in files_of(core, stored.study).items()} == before
    assert not list(core.storage.temp_dir.iterdir())
    patient = patient_row(core, "KEEP1")
    assert patient is not None and patient.patient_name == "Zhang^San=张^三"


def test_unknown_study_and_viewer(core: Core, client: Client, tmp_path: Path) -> None:
    body = {"StudyDescription": "x"}
    assert client.request("PATCH", "/api/studies/1.2.3", json=body).status_code == 404
    stored = stored_ct(core, tmp_path, 1)
    viewer = bearer(token_for(core, Role.viewer))
    path = f"/api/studies/{stored.study}"
    assert client.request("PATCH", path, json=body, headers=viewer).status_code == 403
    assert client.put(f"{path}/remark", json={"remark": "x"}, headers=viewer).status_code == 403


def test_remark_is_kept_in_the_index(core: Core, client: Client, tmp_path: Path) -> None:
    stored = stored_ct(core, tmp_path, 1)
    path = f"/api/studies/{stored.study}/remark"
    response = client.put(path, json={"remark": "  复查: 对比 2023 年片子  "})
    assert response.status_code == 200, response.text
    assert response.json() == {"study": stored.study, "remark": "复查: 对比 2023 年片子"}
    study = study_row(core, stored.study)
    assert study is not None and study.remark == "复查: 对比 2023 年片子"
    assert client.put(path, json={"remark": "x" * 5000}).status_code == 422
    assert client.put(path, json={"remark": ""}).json()["remark"] is None
    study = study_row(core, stored.study)
    assert study is not None and study.remark is None
    assert client.put("/api/studies/1.2.3/remark", json={"remark": "x"}).status_code == 404
    with core.sessions() as session:
        actions = session.scalars(
            select(AuditEvent.detail).where(AuditEvent.action == "changed")
        ).all()
    assert len(actions) == 2 and all(a and a.startswith("remark") for a in actions)
    with core.sessions() as session:
        assert session.scalar(select(Instance.pk)) is not None
