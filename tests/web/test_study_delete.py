"""DELETE /api/studies/{study} and /api/studies/{study}/series/{series}: rows and files go
together, aggregates stay right, empty parents go, an audit record names who; on SQLite and
PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from openpacs.accounts import Role
from openpacs.archive.core import Core
from openpacs.archive.models import AuditEvent
from tests.web.actions_data import files_of, patient_row, stored_ct, study_row
from tests.web.client import Client, bearer, token_for


def test_delete_series_keeps_the_rest_and_recounts(
    core: Core, client: Client, tmp_path: Path
) -> None:
    first = stored_ct(core, tmp_path, 3, seed=1)
    second = stored_ct(core, tmp_path, 2, seed=2, study_uid=first.study)
    other = stored_ct(core, tmp_path, 1, seed=3)  # same patient, another study
    gone = files_of(core, first.study)
    kept_before = study_row(core, first.study)
    assert kept_before is not None and kept_before.number_of_series == 2

    response = client.delete(f"/api/studies/{first.study}/series/{second.series}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["instances"] == 2 and body["series"] == [second.series]
    assert not body["study_deleted"] and not body["patient_deleted"] and not body["files_left"]
    study = study_row(core, first.study)
    assert study is not None
    assert (study.number_of_series, study.number_of_instances) == (1, 3)
    assert study.size_bytes == sum(p.stat().st_size for p in files_of(core, first.study).values())
    for item in second.items:
        assert not gone[item.sop].exists()
    for item in first.items:
        assert gone[item.sop].exists()
    patient = patient_row(core, "ZS001")
    assert patient is not None
    assert (patient.number_of_studies, patient.number_of_series, patient.number_of_instances) == (
        2,
        2,
        4,
    )
    assert other.study


def test_delete_study_drops_empty_parents_and_is_audited(
    core: Core, client: Client, tmp_path: Path
) -> None:
    stored = stored_ct(core, tmp_path, 3, patient_id="ONLY1")
    files = files_of(core, stored.study)

    response = client.delete(f"/api/studies/{stored.study}")

    assert response.status_code == 200, response.text
    assert response.json()["study_deleted"] and response.json()["patient_deleted"]
    assert study_row(core, stored.study) is None
    assert patient_row(core, "ONLY1") is None
    assert not any(path.exists() for path in files.values())
    # No empty folders left behind under the storage root.
    assert not [p for p in core.storage.root.rglob("*") if p.is_dir() and p.name != ".incoming"]
    with core.sessions() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "deleted")).all()
    assert [(e.username, e.study_instance_uid) for e in events] == [("test-admin", stored.study)]
    assert client.delete(f"/api/studies/{stored.study}").status_code == 404


def test_unknown_and_forbidden(core: Core, client: Client, tmp_path: Path) -> None:
    stored = stored_ct(core, tmp_path, 1)
    assert client.delete("/api/studies/1.2.3.4").status_code == 404
    assert client.delete(f"/api/studies/{stored.study}/series/1.2.3").status_code == 404
    assert client.delete("/api/studies/not..a/uid").status_code in (400, 404)
    viewer = bearer(token_for(core, Role.viewer))
    assert client.delete(f"/api/studies/{stored.study}", headers=viewer).status_code == 403
    operator = bearer(token_for(core, Role.operator))
    assert client.delete(f"/api/studies/{stored.study}", headers=operator).status_code == 200


def test_a_missing_file_does_not_stop_the_delete(
    core: Core, client: Client, tmp_path: Path
) -> None:
    stored = stored_ct(core, tmp_path, 2)
    files = files_of(core, stored.study)
    files[stored.items[0].sop].unlink()
    assert client.delete(f"/api/studies/{stored.study}").status_code == 200
    assert study_row(core, stored.study) is None


def test_index_failure_deletes_no_file(
    core: Core, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit comes first: when the index refuses, every file is still there."""
    from openpacs.archive import removal

    stored = stored_ct(core, tmp_path, 2)
    files = files_of(core, stored.study)

    def refuse(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("index went away")

    monkeypatch.setattr(removal, "recount_patient", refuse)
    with pytest.raises(RuntimeError):
        client.delete(f"/api/studies/{stored.study}")
    assert all(path.exists() for path in files.values())
    assert study_row(core, stored.study) is not None
