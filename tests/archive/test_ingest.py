"""The one ingest path against a real index (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID
from sqlalchemy import select

from openpacs.archive import errors
from openpacs.archive.core import Core, open_core
from openpacs.archive.ingest import Incoming, Origin, Outcome, StoreResult
from openpacs.archive.models import Instance, Patient, Series, Study
from openpacs.archive.reindex import reindex
from openpacs.config import Settings
from tests.conftest import make_settings, sample
from tests.generators import ct_series


def store(core: Core, source: Path, expected_sop_instance_uid: str | None = None) -> Outcome:
    """Store a copy of `source` the way every protocol does: from a temp file in storage."""
    temp = core.storage.new_temp()
    shutil.copyfile(source, temp)
    incoming = Incoming(temp, Origin.import_, expected_sop_instance_uid=expected_sop_instance_uid)
    return core.archive.store(incoming).outcome


def test_series_is_indexed_with_aggregates(core: Core, tmp_path: Path) -> None:
    files = ct_series(tmp_path / "ct", 5, rows=32, columns=32)
    for path in files:
        assert store(core, path) is Outcome.stored
    with core.sessions() as session:
        study = session.scalars(select(Study)).one()
        series = session.scalars(select(Series)).one()
        patient = session.scalars(select(Patient)).one()
        instances = session.scalars(select(Instance)).all()
    assert study.number_of_instances == 5 and study.number_of_series == 1
    assert study.modalities_in_study == "CT"
    assert study.sop_classes_in_study == "1.2.840.10008.5.1.4.1.1.2"
    assert series.number_of_instances == 5
    assert patient.number_of_studies == 1 and patient.number_of_instances == 5
    assert study.size_bytes == sum(i.file_size for i in instances)
    sources = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in files}
    for instance in instances:
        stored = core.storage.path(instance.file_path)
        assert stored.read_bytes() == sources[instance.sop_instance_uid].read_bytes()
    assert list(core.storage.temp_dir.iterdir()) == []


def test_file_is_stored_byte_for_byte(core: Core, tmp_path: Path) -> None:
    source = sample("CT_small.dcm")
    store(core, source)
    with core.sessions() as session:
        instance = session.scalars(select(Instance)).one()
    assert core.storage.path(instance.file_path).read_bytes() == source.read_bytes()
    assert instance.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert instance.file_path.startswith("2004/01/19/")


@pytest.mark.parametrize("policy", ["keep", "overwrite", "refuse"])
def test_duplicate_policies(tmp_path: Path, database_url: str, policy: str) -> None:
    settings = make_settings(tmp_path, database_url, storage={"duplicates": policy})
    core = open_core(settings)
    try:
        source = sample("CT_small.dcm")
        assert store(core, source) is Outcome.stored
        if policy == "refuse":
            with pytest.raises(errors.DuplicateRefused):
                store(core, source)
        else:
            expected = Outcome.duplicate if policy == "keep" else Outcome.overwritten
            assert store(core, source) is expected
        counts = core.counts()
        assert (counts.instances, counts.series, counts.studies, counts.patients) == (1, 1, 1, 1)
        assert len(list(core.storage.walk())) == 1
        assert list(core.storage.temp_dir.iterdir()) == []
    finally:
        core.close()


def _write(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _ct_small() -> Dataset:
    return dcmread(sample("CT_small.dcm"))


@pytest.mark.parametrize(
    ("keyword", "value", "error"),
    [
        ("SOPInstanceUID", "../../x", errors.InvalidAttribute),
        ("SOPInstanceUID", "/etc/x", errors.InvalidAttribute),
        ("SOPInstanceUID", "1." * 40 + "1", errors.InvalidAttribute),
        ("StudyInstanceUID", "../../../tmp", errors.InvalidAttribute),
        ("SeriesInstanceUID", "", errors.MissingAttribute),
        ("PatientID", None, errors.MissingAttribute),
        ("SOPClassUID", None, errors.MissingAttribute),
    ],
)
def test_bad_objects_are_refused_and_nothing_is_written(
    core: Core, tmp_path: Path, keyword: str, value: str | None, error: type[Exception]
) -> None:
    ds = _ct_small()
    if value is None:
        delattr(ds, keyword)
    else:
        setattr(ds, keyword, value)
        if keyword == "SOPInstanceUID":
            ds.file_meta.MediaStorageSOPInstanceUID = UID(value)
    source = _write(ds, tmp_path / "bad.dcm")
    with pytest.raises(error):
        store(core, source)
    assert core.counts().instances == 0
    assert list(core.storage.walk()) == []
    assert list(core.storage.temp_dir.iterdir()) == []
    assert not (tmp_path / "x").exists() and not Path("/etc/x").exists()


def test_not_dicom_is_refused(core: Core, tmp_path: Path) -> None:
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"\0" * 128 + b"DICM" + b"\xff" * 10)
    with pytest.raises(errors.InvalidInstance):
        store(core, junk)
    (tmp_path / "text.txt").write_text("hello")
    with pytest.raises(errors.InvalidInstance, match="not a DICOM file"):
        store(core, tmp_path / "text.txt")


def test_command_and_dataset_must_agree(core: Core) -> None:
    source = sample("CT_small.dcm")
    with pytest.raises(errors.InvalidAttribute, match="AffectedSOPInstanceUID"):
        store(core, source, expected_sop_instance_uid="1.2.3")


def test_gb18030_without_charset_is_indexed_and_repaired(core: Core, tmp_path: Path) -> None:
    ds = _ct_small()
    del ds.SpecificCharacterSet
    ds.PatientName = "王^小明"
    ds.StudyDescription = "胸部CT"
    # Encode by hand: pydicom would write with the default repertoire.
    ds["PatientName"].value = "王^小明".encode("gb18030")
    ds["StudyDescription"].value = "胸部CT".encode("gb18030")
    source = _write(ds, tmp_path / "gb.dcm")
    assert store(core, source) is Outcome.stored
    with core.sessions() as session:
        patient = session.scalars(select(Patient)).one()
        study = session.scalars(select(Study)).one()
        instance = session.scalars(select(Instance)).one()
    assert patient.patient_name == "王^小明"
    assert patient.patient_name_alphabetic == "王^小明"
    assert study.study_description == "胸部CT"
    stored = dcmread(core.storage.path(instance.file_path))
    assert stored.SpecificCharacterSet == "GB18030"
    assert str(stored.PatientName) == "王^小明"
    assert stored.PixelData == ds.PixelData


def test_charset_repair_can_be_turned_off(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url, storage={"add_missing_charset": False})
    core = open_core(settings)
    try:
        ds = _ct_small()
        del ds.SpecificCharacterSet
        ds.PatientName = "x"
        ds["PatientName"].value = "张^三".encode()
        source = _write(ds, tmp_path / "utf8.dcm")
        store(core, source)
        with core.sessions() as session:
            patient = session.scalars(select(Patient)).one()
            instance = session.scalars(select(Instance)).one()
        assert patient.patient_name == "张^三"
        assert core.storage.path(instance.file_path).read_bytes() == source.read_bytes()
    finally:
        core.close()


def test_index_failure_removes_the_file(core: Core, monkeypatch: pytest.MonkeyPatch) -> None:
    from openpacs.archive import index

    def broken(*_args: object, **_kwargs: object) -> None:
        from sqlalchemy.exc import OperationalError

        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(index, "record_instance", broken)
    source = sample("CT_small.dcm")
    with pytest.raises(errors.IndexUnavailable):
        store(core, source)
    assert list(core.storage.walk()) == []
    assert list(core.storage.temp_dir.iterdir()) == []


def test_concurrent_stores_of_one_study(core: Core, tmp_path: Path) -> None:
    files = ct_series(tmp_path / "ct", 24, rows=16, columns=16)
    failures: list[BaseException] = []

    def worker(chunk: list[Path]) -> None:
        try:
            for path in chunk:
                store(core, path)
                store(core, path)  # a duplicate on the way
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(files[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    counts = core.counts()
    assert (counts.instances, counts.series, counts.studies, counts.patients) == (24, 1, 1, 1)
    with core.sessions() as session:
        study = session.scalars(select(Study)).one()
    assert study.number_of_instances == 24


def test_reindex_rebuilds_the_same_index(core: Core, tmp_path: Path) -> None:
    for path in ct_series(tmp_path / "ct", 3, rows=16, columns=16):
        store(core, path)
    store(core, sample("MR_small.dcm"))
    before = core.counts()
    (core.storage.root / "stray.txt").write_text("not dicom")
    report = reindex(core.storage, core.sessions)
    assert report.indexed == 4
    assert list(report.skipped) == ["stray.txt"]
    assert core.counts() == before


def test_settings_fixture_is_isolated(settings: Settings, tmp_path: Path) -> None:
    assert settings.storage.root.is_relative_to(tmp_path)


def test_one_failure_in_a_group_commit_spares_the_others(tmp_path: Path, database_url: str) -> None:
    from openpacs.archive.ingest import _Job, inspect

    settings = make_settings(tmp_path, database_url, storage={"duplicates": "refuse"})
    core = open_core(settings)
    try:
        first, second, third = ct_series(tmp_path / "ct", 3, rows=16, columns=16)
        assert store(core, first) is Outcome.stored
        jobs = []
        for source in (first, second, third):  # the first is a duplicate, refused
            temp = core.storage.new_temp()
            shutil.copyfile(source, temp)
            incoming = Incoming(temp, Origin.import_)
            jobs.append(_Job(temp, inspect(temp, incoming, repair_charset=True), incoming))
        core.archive._write_batch(jobs)
        assert isinstance(jobs[0].error, errors.DuplicateRefused)
        assert [job.result.outcome for job in jobs[1:] if job.result] == [Outcome.stored] * 2
        assert core.counts().instances == 3
        assert len(list(core.storage.walk())) == 3
    finally:
        core.close()


def _jobs(core: Core, sources: list[Path]) -> list[Any]:
    from openpacs.archive.ingest import _Job, inspect

    jobs = []
    for source in sources:
        temp = core.storage.new_temp()
        shutil.copyfile(source, temp)
        incoming = Incoming(temp, Origin.import_)
        jobs.append(_Job(temp, inspect(temp, incoming, repair_charset=True), incoming))
    return jobs


def test_a_failure_after_writes_in_a_group_commit_undoes_only_that_object(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from openpacs.archive import index

    real = index.record_instance
    first, second, third = ct_series(tmp_path / "ct", 3, rows=16, columns=16)
    doomed = str(dcmread(second, stop_before_pixels=True).SOPInstanceUID)

    def fails_after_writing(db: Any, values: Any, keys: Any, *args: Any, **kwargs: Any) -> None:
        real(db, values, keys, *args, **kwargs)  # rows and aggregates written, then a failure
        if keys.sop_instance_uid == doomed:
            raise OperationalError("UPDATE", {}, Exception("disk I/O error"))

    core = open_core(make_settings(tmp_path, database_url))
    try:
        monkeypatch.setattr(index, "record_instance", fails_after_writing)
        jobs = _jobs(core, [first, second, third])
        core.archive._write_batch(jobs)
        assert isinstance(jobs[1].error, errors.IndexUnavailable)
        assert [job.result.outcome for job in (jobs[0], jobs[2]) if job.result] == [
            Outcome.stored
        ] * 2
        counts = core.counts()
        assert (counts.instances, counts.series, counts.studies, counts.patients) == (2, 1, 1, 1)
        with core.sessions() as session:
            study = session.scalars(select(Study)).one()
            series = session.scalars(select(Series)).one()
            patient = session.scalars(select(Patient)).one()
        assert study.number_of_instances == series.number_of_instances == 2
        assert patient.number_of_instances == 2
        assert len(list(core.storage.walk())) == 2
    finally:
        core.close()


def test_overwrite_inside_a_group_commit(tmp_path: Path, database_url: str) -> None:
    core = open_core(make_settings(tmp_path, database_url, storage={"duplicates": "overwrite"}))
    try:
        first, second = ct_series(tmp_path / "ct", 2, rows=16, columns=16)
        assert store(core, first) is Outcome.stored
        jobs = _jobs(core, [second, first, second])
        core.archive._write_batch(jobs)
        assert [job.result.outcome for job in jobs if job.result] == [
            Outcome.stored,
            Outcome.overwritten,
            Outcome.overwritten,
        ]
        counts = core.counts()
        assert (counts.instances, counts.series, counts.studies, counts.patients) == (2, 1, 1, 1)
        with core.sessions() as session:
            study = session.scalars(select(Study)).one()
            instances = session.scalars(select(Instance)).all()
        assert study.number_of_instances == 2
        assert study.size_bytes == sum(i.file_size for i in instances)
        assert len(list(core.storage.walk())) == 2
        assert list(core.storage.temp_dir.iterdir()) == []
    finally:
        core.close()


def test_listeners_hear_after_commit_and_cannot_fail_a_store(core: Core) -> None:
    heard: list[tuple[str, int]] = []

    def counting(result: StoreResult) -> None:
        heard.append((result.outcome.value, core.counts().instances))

    def broken(_result: StoreResult) -> None:
        raise RuntimeError("a listener's bug")

    core.archive.subscribe(broken)
    core.archive.subscribe(counting)
    assert store(core, sample("CT_small.dcm")) is Outcome.stored
    assert heard == [("stored", 1)]  # the row was committed before listeners ran
