"""Worklist matching (PS3.4 K.6) on SQLite and PostgreSQL: the same keys, the same answers."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom import Dataset

from openpacs.archive.core import Core
from openpacs.archive.errors import InvalidQuery
from openpacs.worklist import items
from openpacs.worklist import query as mwl
from openpacs.worklist.spec import ItemSpec

STEP = {"modality": "CT", "start_date": "20261126", "start_time": "0930"}


def schedule(core: Core, **fields: Any) -> None:
    body = {"patient_id": "P", **fields, "step": {**STEP, **fields.get("step", {})}}
    with core.writing() as session:
        items.create(session, ItemSpec.model_validate(body))


def ask(core: Core, step: dict[str, str] | None = None, **keys: str) -> list[str]:
    """PatientIDs of the answers to a query with `keys` and scheduled-step `step` keys."""
    identifier = Dataset()
    identifier.PatientID = keys.pop("PatientID", "")
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    item = Dataset()
    item.Modality = ""
    for keyword, value in (step or {}).items():
        setattr(item, keyword, value)
    identifier.ScheduledProcedureStepSequence = [item]
    with core.sessions() as session:
        answers, _ = mwl.find(session, identifier)
        return [str(answer.PatientID) for answer in answers]


@pytest.fixture
def scheduled(core: Core) -> Core:
    schedule(
        core,
        patient_id="A",
        patient_name="Zhang^San=张^三",
        accession_number="X1",
        step={"station_ae_titles": ["CT01", "CT02"], "start_time": "0800"},
    )
    schedule(
        core,
        patient_id="B",
        patient_name="Müller^Jürgen",
        accession_number="X2",
        step={"modality": "MR", "station_ae_titles": ["MR1"], "start_date": "20261127"},
    )
    schedule(core, patient_id="C", patient_name="ZHANG^WEI", status="COMPLETED")
    schedule(
        core,
        patient_id="D",
        patient_name="Doe^Jane",
        status="IN PROGRESS",
        step={"start_time": "1400", "station_name": "ROOM2"},
    )
    return core


def test_keys_match_as_in_c_find(scheduled: Core) -> None:
    core = scheduled
    assert ask(core) == ["A", "D", "B"]  # soonest first; completed left out
    assert ask(core, PatientName="zhang*") == ["A"]  # PN wildcards ignore case
    assert ask(core, PatientName="张*") == ["A"]
    assert ask(core, PatientName="=张^三") == ["A"]
    assert ask(core, AccessionNumber="X2") == ["B"]
    assert ask(core, {"Modality": "MR"}) == ["B"]
    assert ask(core, {"ScheduledStationAETitle": "CT02"}) == ["A"]
    assert ask(core, {"ScheduledStationAETitle": "CT0*"}) == ["A"]
    assert ask(core, {"ScheduledStationName": "ROOM2"}) == ["D"]
    assert ask(core, {"ScheduledProcedureStepStartDate": "20261127-"}) == ["B"]
    assert ask(core, {"ScheduledProcedureStepStartDate": "-20261126"}) == ["A", "D"]
    assert ask(core, {"ScheduledProcedureStepStartTime": "1200-"}) == ["D"]
    assert ask(core, {"Modality": "CT\\MR"}) == ["A", "D", "B"]


def test_a_status_key_reaches_finished_items(scheduled: Core) -> None:
    assert ask(scheduled, {"ScheduledProcedureStepStatus": "COMPLETED"}) == ["C"]
    assert ask(scheduled, {"ScheduledProcedureStepStatus": "IN PROGRESS"}) == ["D"]


def test_answers_hold_exactly_the_keys_asked_for(scheduled: Core) -> None:
    identifier = Dataset()
    identifier.PatientID = "A"
    identifier.PatientName = ""
    identifier.AdmissionID = ""  # unknown here: returned empty
    item = Dataset()
    item.ScheduledStationAETitle = ""
    identifier.ScheduledProcedureStepSequence = [item]
    with scheduled.sessions() as session:
        answers, ignored = mwl.find(session, identifier)
        [answer] = list(answers)
    assert ignored == []
    assert [e.keyword for e in answer] == [
        "PatientName",
        "PatientID",
        "AdmissionID",
        "ScheduledProcedureStepSequence",
    ]
    assert str(answer.PatientName) == "Zhang^San=张^三" and answer.AdmissionID in (None, "")
    [step] = answer.ScheduledProcedureStepSequence
    assert [e.keyword for e in step] == ["ScheduledStationAETitle"]
    assert list(step.ScheduledStationAETitle) == ["CT01", "CT02"]


def test_unmatched_keys_are_named_and_bad_values_refused(scheduled: Core) -> None:
    identifier = Dataset()
    identifier.PatientID = ""
    identifier.MedicalAlerts = "X*"
    with scheduled.sessions() as session:
        _, ignored = mwl.find(session, identifier)
    assert ignored == ["MedicalAlerts"]
    bad = Dataset()
    item = Dataset()
    item.ScheduledProcedureStepStartDate = "2026-13-45"
    bad.ScheduledProcedureStepSequence = [item]
    with scheduled.sessions() as session, pytest.raises(InvalidQuery) as raised:
        mwl.find(session, bad)
    assert raised.value.keyword == "ScheduledProcedureStepStartDate"
