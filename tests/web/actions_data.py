"""What the Studies page's action tests share: small CT studies stored through the ingest path,
and the index rows and files to check them against."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from openpacs.archive.core import Core
from openpacs.archive.models import Instance, Patient, Series, Study
from tests.generators import ct_series
from tests.web.dicomweb_data import Item, renamed, store


@dataclass(frozen=True)
class Stored:
    study: str
    series: str
    items: list[Item]


def stored_ct(
    core: Core,
    folder: Path,
    count: int = 3,
    *,
    name: str = "Zhang^San=张^三",
    patient_id: str = "ZS001",
    seed: int = 11,
    study_uid: str | None = None,
    size: int = 16,
) -> Stored:
    """A CT series of `count` slices stored as `openpacs import` stores it."""
    paths = ct_series(
        folder / f"ct-{seed}",
        count,
        rows=size,
        columns=size,
        patient_id=patient_id,
        seed=seed,
        study_uid=study_uid,
    )
    renamed(paths, name, patient_id)
    items = [store(core, path) for path in paths]
    return Stored(items[0].study, items[0].series, items)


def files_of(core: Core, study: str) -> dict[str, Path]:
    """SOP Instance UID -> stored file, for every instance of a study."""
    with core.sessions() as session:
        rows = session.execute(
            select(Instance.sop_instance_uid, Instance.file_path)
            .join(Series, Series.pk == Instance.series_pk)
            .join(Study, Study.pk == Series.study_pk)
            .where(Study.study_instance_uid == study)
        ).all()
    return {row[0]: core.storage.path(row[1]) for row in rows}


def study_row(core: Core, study: str) -> Study | None:
    with core.sessions() as session:
        return session.scalars(select(Study).where(Study.study_instance_uid == study)).first()


def patient_row(core: Core, patient_id: str) -> Patient | None:
    with core.sessions() as session:
        return session.scalars(select(Patient).where(Patient.patient_id == patient_id)).first()
