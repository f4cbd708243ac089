"""Finding stored objects by their UIDs, the way a retrieve names them: a study, a series of
that study, an instance of that series. A UID that exists under another parent is not found,
so a request cannot reach an object through a path that does not hold it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from openpacs.archive import db
from openpacs.archive.errors import IndexUnavailable, NotFound
from openpacs.archive.models import Instance, Patient, Series, Study
from openpacs.archive.retrieve import StoredInstance, stored_instance
from openpacs.archive.storage import FileSystemStorage


@dataclass(frozen=True)
class Located:
    """A stored instance with its parents' UIDs and what the index knows of its pixels."""

    study_instance_uid: str
    series_instance_uid: str
    instance: StoredInstance
    rows: int | None
    instance_number: int | None

    @property
    def has_pixels(self) -> bool:
        return self.rows is not None


@dataclass(frozen=True)
class SeriesState:
    """What changes whenever a series gains, loses or replaces an instance."""

    series_instance_uid: str
    study_instance_uid: str
    instances: int
    updated_at: str
    last_pk: int


_COLUMNS = (
    Study.study_instance_uid,
    Series.series_instance_uid,
    Instance.sop_instance_uid,
    Instance.sop_class_uid,
    Instance.transfer_syntax_uid,
    Instance.number_of_frames,
    Instance.file_path,
    Instance.rows,
    Instance.instance_number,
)


def _located(storage: FileSystemStorage, row: Any) -> Located:
    return Located(
        study_instance_uid=row.study_instance_uid,
        series_instance_uid=row.series_instance_uid,
        instance=stored_instance(storage, row),
        rows=row.rows,
        instance_number=row.instance_number,
    )


def _execute(session: Session, stmt: Any) -> Sequence[Any]:
    try:
        return session.execute(stmt).all()
    except SQLAlchemyError as exc:
        raise IndexUnavailable(f"index database unreachable: {db.describe(exc)}") from exc


def instances(
    session: Session,
    storage: FileSystemStorage,
    study: str,
    series: str | None = None,
    sop_instance: str | None = None,
) -> list[Located]:
    """The instances a retrieve names, in series then instance number order.

    NotFound (saying which level) when the study, the series in that study, or the instance in
    that series is not stored."""
    stmt = study_select(study, series, *_COLUMNS)
    if sop_instance is not None:
        stmt = stmt.where(Instance.sop_instance_uid == sop_instance)
    rows = _execute(session, stmt)
    if not rows:
        raise NotFound(_missing(study, series, sop_instance))
    return [_located(storage, row) for row in rows]


def study_select(study: str, series: str | None, *columns: Any) -> Select[Any]:
    """SELECT `columns` (of instance, series, study, patient) over the instances of a study,
    or of one series of it, in series then instance number order."""
    stmt = (
        select(*columns)
        .select_from(Instance)
        .join(Series, Series.pk == Instance.series_pk)
        .join(Study, Study.pk == Series.study_pk)
        .join(Patient, Patient.pk == Study.patient_pk)
        .where(Study.study_instance_uid == study)
        .order_by(
            Series.series_number.asc().nulls_last(),
            Series.pk,
            Instance.instance_number.asc().nulls_last(),
            Instance.pk,
        )
    )
    if series is not None:
        stmt = stmt.where(Series.series_instance_uid == series)
    return stmt


def _missing(study: str, series: str | None, sop_instance: str | None) -> str:
    if sop_instance is not None:
        return f"instance {sop_instance} of series {series} of study {study} is not stored"
    if series is not None:
        return f"series {series} of study {study} is not stored"
    return f"study {study} is not stored"


def series_states(session: Session, study: str, series: str | None = None) -> list[SeriesState]:
    """The state of each series of a study (or of one series), in series number order;
    NotFound when there is none."""
    stmt = (
        select(
            Series.series_instance_uid,
            Study.study_instance_uid,
            Series.number_of_instances,
            Series.updated_at,
            func.max(Instance.pk),
        )
        .join(Study, Study.pk == Series.study_pk)
        .join(Instance, Instance.series_pk == Series.pk)
        .where(Study.study_instance_uid == study)
        .group_by(Series.pk, Study.study_instance_uid)
        .order_by(Series.series_number.asc().nulls_last(), Series.pk)
    )
    if series is not None:
        stmt = stmt.where(Series.series_instance_uid == series)
    rows = _execute(session, stmt)
    if not rows:
        raise NotFound(_missing(study, series, None))
    return [
        SeriesState(
            series_instance_uid=row[0],
            study_instance_uid=row[1],
            instances=int(row[2]),
            updated_at=str(row[3]),
            last_pk=int(row[4]),
        )
        for row in rows
    ]


def representative_series(session: Session, study: str) -> str:
    """The series a study is recognised by: the one with the most images (a scout or a dose
    report is a poor picture of a CT study), the lowest series number among equals."""
    stmt = (
        select(Series.series_instance_uid)
        .join(Study, Study.pk == Series.study_pk)
        .join(Instance, Instance.series_pk == Series.pk)
        .where(Study.study_instance_uid == study)
        .group_by(Series.pk)
        .order_by(
            func.count(Instance.rows).desc(),
            Series.series_number.asc().nulls_last(),
            Series.pk,
        )
        .limit(1)
    )
    rows = _execute(session, stmt)
    if not rows:
        raise NotFound(_missing(study, None, None))
    return str(rows[0][0])
