"""Deleting a stored study or series: index rows first, files after the commit.

Order, and why: the rows go in one transaction (instances, then series and study and patient
rows left empty, aggregates recounted from what remains); only once that transaction has
committed are the files removed. A failure before the commit changes nothing; a crash or a
storage error after it leaves files no row names (found by the log, harmless to every reader,
and brought back by `openpacs reindex`). The other order could leave rows naming files that are
gone, which every retrieve would then fail on. A file already missing is not an error.

Aggregates are recounted, not decremented, so a delete also repairs a count that had drifted.
On PostgreSQL the study row is locked first (`FOR UPDATE`), which queues a concurrent ingest
into the same study behind the delete; on SQLite the write transaction already holds the lock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from openpacs.archive.errors import NotFound, StorageUnavailable
from openpacs.archive.index import recompute_study_sets
from openpacs.archive.models import Instance, Patient, Series, Study
from openpacs.archive.storage import FileSystemStorage
from openpacs.logs import get_logger

log = get_logger("db")


@dataclass
class Removed:
    """What a delete took out of the index, and the files it still has to remove."""

    study_instance_uid: str
    series_instance_uids: list[str]
    instances: int
    size_bytes: int
    files: list[str]
    study_gone: bool
    patient_gone: bool
    files_left: list[str] = field(default_factory=list)  # files that could not be removed


def _study_row(session: Session, study: str) -> Study:
    row = session.scalars(
        select(Study).where(Study.study_instance_uid == study).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound(f"study {study} is not stored")
    return row


def remove(session: Session, study: str, series: str | None = None) -> Removed:
    """Delete a study (or one series of it) from the index, in the caller's transaction.

    NotFound names the level that is not stored. The files are not touched here: call
    `delete_files` after the transaction committed."""
    study_row = _study_row(session, study)
    series_query = select(Series.pk, Series.series_instance_uid).where(
        Series.study_pk == study_row.pk
    )
    if series is not None:
        series_query = series_query.where(Series.series_instance_uid == series)
    chosen = session.execute(series_query).all()
    if not chosen:
        raise NotFound(f"series {series} of study {study} is not stored")
    series_pks = [row.pk for row in chosen]
    files = session.execute(
        select(Instance.file_path, Instance.file_size).where(Instance.series_pk.in_(series_pks))
    ).all()
    session.execute(delete(Instance).where(Instance.series_pk.in_(series_pks)))
    session.execute(delete(Series).where(Series.pk.in_(series_pks)))
    patient_pk = study_row.patient_pk
    study_gone = not _recount_study(session, study_row)
    patient_gone = not recount_patient(session, patient_pk)
    session.flush()
    return Removed(
        study_instance_uid=study,
        series_instance_uids=[row.series_instance_uid for row in chosen],
        instances=len(files),
        size_bytes=sum(row.file_size for row in files),
        files=[row.file_path for row in files],
        study_gone=study_gone,
        patient_gone=patient_gone,
    )


def _recount_study(session: Session, study: Study) -> bool:
    """Recount the study's aggregates from its remaining rows; delete it when it is empty.
    True when the study still exists."""
    per_series = (
        select(
            func.count(Instance.pk).label("instances"),
            func.coalesce(func.sum(Instance.file_size), 0).label("size"),
        )
        .join(Series, Series.pk == Instance.series_pk)
        .where(Series.study_pk == study.pk)
    )
    instances, size = session.execute(per_series).one()
    if not instances:
        # Series rows without instances cannot exist past a delete; drop any stray one.
        session.execute(delete(Series).where(Series.study_pk == study.pk))
        session.delete(study)
        session.flush()
        return False
    study.number_of_instances = int(instances)
    study.size_bytes = int(size)
    study.number_of_series = (
        session.scalar(select(func.count(Series.pk)).where(Series.study_pk == study.pk)) or 0
    )
    recompute_study_sets(session, study)
    study.updated_at = dt.datetime.now(dt.UTC)
    return True


def recount_patient(session: Session, patient_pk: int) -> bool:
    """Recount a patient's studies, series and instances; delete the row when it has no
    study left. True when the patient still exists."""
    studies = session.scalar(select(func.count(Study.pk)).where(Study.patient_pk == patient_pk))
    if not studies:
        session.execute(delete(Patient).where(Patient.pk == patient_pk))
        return False
    series, instances = session.execute(
        select(func.count(func.distinct(Series.pk)), func.count(Instance.pk))
        .select_from(Series)
        .join(Study, Study.pk == Series.study_pk)
        .join(Instance, Instance.series_pk == Series.pk)
        .where(Study.patient_pk == patient_pk)
    ).one()
    session.execute(
        update(Patient)
        .where(Patient.pk == patient_pk)
        .values(
            number_of_studies=int(studies),
            number_of_series=int(series),
            number_of_instances=int(instances),
            updated_at=dt.datetime.now(dt.UTC),
        )
    )
    return True


def delete_files(storage: FileSystemStorage, removed: Removed) -> Removed:
    """Remove the files of a committed delete; those that could not go are listed in
    `files_left` (and logged), never raised: the delete itself has happened."""
    for relpath in removed.files:
        try:
            storage.delete(relpath)
        except (OSError, StorageUnavailable) as exc:
            removed.files_left.append(relpath)
            log.warning("deleted %s from the index but its file stays: %s", relpath, exc)
    return removed
