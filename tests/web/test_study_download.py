"""GET /api/studies/{study}/archive.zip and deidentified.zip: streamed ZIPs of the files as
stored (byte for byte) or de-identified (checked by dicom3tools dciodvfy); names safe; audited."""

from __future__ import annotations

import io
import re
import subprocess
import tracemalloc
import zipfile
from pathlib import Path
from urllib.parse import unquote

import pytest
from pydicom import dcmread
from sqlalchemy import select

from openpacs.accounts import Role
from openpacs.archive import export, zipstream
from openpacs.archive.core import Core
from openpacs.archive.models import AuditEvent
from tests.conftest import need
from tests.web.actions_data import files_of, stored_ct
from tests.web.client import Client, bearer, token_for


def _zip(response_content: bytes) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(io.BytesIO(response_content))
    assert archive.testzip() is None
    return archive


def test_a_200_instance_study_unzips_byte_identical(
    core: Core, client: Client, tmp_path: Path
) -> None:
    stored = stored_ct(core, tmp_path, 200, size=32)
    files = files_of(core, stored.study)

    response = client.get(f"/api/studies/{stored.study}/archive.zip")

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    encoded = re.search(r"filename\*=UTF-8''(\S+)", disposition)
    assert encoded is not None and "张 三" in unquote(encoded.group(1))
    archive = _zip(response.content)
    names = archive.namelist()
    assert len(names) == 200 and len(set(names)) == 200
    assert all(name.startswith("Zhang San 张 三_ZS001/") for name in names)
    by_uid = {}
    for name in names:
        data = archive.read(name)
        by_uid[dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID] = data
    assert by_uid.keys() == files.keys()
    for sop, path in files.items():
        assert by_uid[sop] == path.read_bytes()
    with core.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "downloaded")).one()
    assert (event.username, event.study_instance_uid) == ("test-admin", stored.study)


def test_memory_stays_flat_while_streaming(core: Core, tmp_path: Path) -> None:
    stored = stored_ct(core, tmp_path, 40, size=256)  # 40 x 128 KiB pixels
    with core.sessions() as session:
        selection = export.select_study(session, core.storage, stored.study)
    tracemalloc.start()
    try:
        total = sum(len(chunk) for chunk in zipstream.stream(export.as_stored(selection)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > selection.size > 5 * 1024 * 1024
    # One read chunk of one file at a time: far below the archive's size.
    assert peak < 2 * 1024 * 1024 + 512 * 1024, peak


def test_series_zip_holds_only_that_series(core: Core, client: Client, tmp_path: Path) -> None:
    first = stored_ct(core, tmp_path, 2, seed=1)
    second = stored_ct(core, tmp_path, 3, seed=2, study_uid=first.study)
    response = client.get(f"/api/studies/{first.study}/series/{second.series}/archive.zip")
    assert response.status_code == 200
    assert len(_zip(response.content).namelist()) == 3


def test_names_are_safe() -> None:
    assert export.safe_name("../../etc/passwd", "x") == "_.._etc_passwd"
    assert export.safe_name("..", "fallback") == "fallback"
    assert export.safe_name("/abs/path", "x") == "_abs_path"
    assert export.safe_name('a:b*c?"d<e>f|g\\h\x00i', "x") == "a_b_c_d_e_f_g_h_i"
    assert export.safe_name("王小明^先生", "x") == "王小明^先生"
    assert export.safe_name("   ", "empty") == "empty"
    assert len(export.safe_name("长" * 100, "x")) == export.NAME_LIMIT


def test_hostile_descriptions_stay_inside_the_archive(
    core: Core, client: Client, tmp_path: Path
) -> None:
    stored = stored_ct(core, tmp_path, 1, name="../../evil", patient_id="/etc")
    response = client.get(f"/api/studies/{stored.study}/archive.zip")
    (name,) = _zip(response.content).namelist()
    parts = name.split("/")
    assert not name.startswith("/") and ".." not in parts and len(parts) == 4


def test_not_found_missing_file_and_roles(core: Core, client: Client, tmp_path: Path) -> None:
    assert client.get("/api/studies/1.2.3/archive.zip").status_code == 404
    stored = stored_ct(core, tmp_path, 2)
    viewer = bearer(token_for(core, Role.viewer))
    assert client.get(f"/api/studies/{stored.study}/archive.zip", headers=viewer).status_code == 200
    next(iter(files_of(core, stored.study).values())).unlink()
    response = client.get(f"/api/studies/{stored.study}/archive.zip")
    assert response.status_code == 503 and "reindex" in response.json()["detail"]


def _errors(tool: str, path: Path) -> set[str]:
    run = subprocess.run([tool, str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    return {line for line in lines if line.startswith("Error")}


def test_deidentified_export_passes_dciodvfy_and_hides_identity(
    core: Core, client: Client, tmp_path: Path
) -> None:
    dciodvfy = need("dciodvfy")
    stored = stored_ct(core, tmp_path, 3, name="Wang^Wei=王^伟", patient_id="SECRET42")
    originals = files_of(core, stored.study)

    response = client.get(
        f"/api/studies/{stored.study}/deidentified.zip",
        params={"options": "retain-device-identity+clean-descriptors"},
    )

    assert response.status_code == 200, response.text
    archive = _zip(response.content)
    names = archive.namelist()
    assert len(names) == 3
    assert not any("SECRET42" in name or "Wang" in name or "王" in name for name in names)
    original_errors = set()
    for path in originals.values():
        original_errors |= _errors(dciodvfy, path)
    studies, series = set(), set()
    for number, name in enumerate(names):
        data = archive.read(name)
        assert b"SECRET42" not in data and "王".encode() not in data and b"Wang" not in data
        out = tmp_path / f"deid{number}.dcm"
        out.write_bytes(data)
        ds = dcmread(out)
        assert ds.PatientID != "SECRET42" and "Wang" not in str(ds.PatientName)
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.StudyInstanceUID != stored.study and ds.SOPInstanceUID not in originals
        studies.add(ds.StudyInstanceUID)
        series.add(ds.SeriesInstanceUID)
        assert _errors(dciodvfy, out) <= original_errors
    # One key, one mapping: the export's objects still form one study and one series.
    assert len(studies) == 1 and len(series) == 1
    again = _zip(client.get(f"/api/studies/{stored.study}/deidentified.zip").content)
    assert again.namelist()[0].split("/")[1] == names[0].split("/")[1]


def test_deidentified_bad_option_names_the_parameter(
    core: Core, client: Client, tmp_path: Path
) -> None:
    stored = stored_ct(core, tmp_path, 1)
    response = client.get(
        f"/api/studies/{stored.study}/deidentified.zip", params={"options": "retain-everything"}
    )
    assert response.status_code == 400
    assert "options" in response.json()["detail"] and "retain-uids" in response.json()["detail"]


@pytest.mark.parametrize("burned", ["YES"])
def test_burned_in_annotation_is_refused_before_streaming(
    core: Core, client: Client, tmp_path: Path, burned: str
) -> None:
    from pydicom import dcmread as read

    from tests.generators import ct_series
    from tests.web.dicomweb_data import store

    (path,) = ct_series(tmp_path / "burned", 1, rows=8, columns=8, seed=5)
    ds = read(path)
    ds.BurnedInAnnotation = burned
    ds.save_as(path)
    item = store(core, path)
    response = client.get(f"/api/studies/{item.study}/deidentified.zip")
    assert response.status_code == 406 and "burned-in" in response.json()["detail"]
