"""Reading stored objects back: locate an instance's file, pick a series' representative image,
render thumbnails. Every way out (C-MOVE, C-GET, WADO, downloads, the console) starts here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from openpacs.archive import db, query
from openpacs.archive.errors import CannotConvert, IndexUnavailable, InvalidQuery, NotFound
from openpacs.archive.models import Instance, Series
from openpacs.archive.storage import FileSystemStorage
from openpacs.dicom import frames, matching, render
from openpacs.monitoring import metrics


@dataclass(frozen=True)
class StoredInstance:
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    number_of_frames: int
    path: Path


_COLUMNS = (
    Instance.sop_instance_uid,
    Instance.sop_class_uid,
    Instance.transfer_syntax_uid,
    Instance.number_of_frames,
    Instance.file_path,
)


def stored_instance(storage: FileSystemStorage, row: Any) -> StoredInstance:
    """A stored instance from an index row holding the instance columns and file path."""
    return StoredInstance(
        sop_instance_uid=row.sop_instance_uid,
        sop_class_uid=row.sop_class_uid,
        transfer_syntax_uid=row.transfer_syntax_uid,
        number_of_frames=row.number_of_frames or 1,
        path=storage.path(row.file_path),
    )


def find_instance(
    session: Session, storage: FileSystemStorage, sop_instance_uid: str
) -> StoredInstance:
    row = session.execute(
        select(*_COLUMNS).where(Instance.sop_instance_uid == sop_instance_uid)
    ).first()
    if row is None:
        raise NotFound(f"instance {sop_instance_uid} is not in the archive")
    return stored_instance(storage, row)


def select_instances(
    session: Session,
    storage: FileSystemStorage,
    identifier: Dataset,
    level: query.Level,
    model: query.Model,
    *,
    relational: bool = False,
) -> list[StoredInstance]:
    """The instances a retrieve (C-MOVE, C-GET) identifier names, series by series in their
    numbering, through the one query engine.

    PS3.4 C.4.2.2.1: the identifier holds the unique key of its level (a single value or a list
    of UIDs, never a wildcard) and, unless relational retrieval was negotiated, those of the
    levels above; every other key is ignored. InvalidQuery says what is missing or unusable.
    """
    levels = query.MODEL_LEVELS[model]
    if level not in levels:
        raise InvalidQuery("QueryRetrieveLevel", f"{model} has no {level} level")
    named = (level,) if relational else levels[: levels.index(level) + 1]
    keys = Dataset()
    for one in named:
        keys.add(_unique_key(identifier, query.UNIQUE_KEYS[one], level))
    # The engine's SELECT with the file columns in place of answer columns: one statement.
    plan = query.prepare(keys, query.Level.IMAGE, model, query.QueryOptions(relational=True))
    statement = plan.statement(session.get_bind().dialect.name).with_only_columns(*_COLUMNS)
    try:
        with metrics.timed_index("retrieve_select"):
            rows = session.execute(statement).all()
    except SQLAlchemyError as exc:
        raise IndexUnavailable(f"index database unreachable: {db.describe(exc)}") from exc
    return [stored_instance(storage, row) for row in rows]


def _unique_key(identifier: Dataset, keyword: str, level: query.Level) -> Any:
    element = identifier.data_element(keyword) if keyword in identifier else None
    if element is None:
        raise InvalidQuery(keyword, f"missing; a {level} retrieve needs it")
    try:
        matcher = matching.parse_element(element)
    except matching.InvalidQuery as exc:
        raise InvalidQuery(keyword, exc.reason) from exc
    if isinstance(matcher, matching.Universal):
        raise InvalidQuery(keyword, f"a {level} retrieve needs a value")
    singles = matcher.matchers if isinstance(matcher, matching.AnyOf) else (matcher,)
    if not all(isinstance(one, matching.Single) for one in singles):
        raise InvalidQuery(keyword, "one value or a list of UIDs, no wildcards, in a retrieve")
    return element


def representative_instance(
    session: Session, storage: FileSystemStorage, series_instance_uid: str
) -> StoredInstance:
    """The image in the middle of the stack: what a radiologist recognises a series by (the
    first slice of a CT is often just the table or air). Images come first; a series of only
    non-images (SR, KO, PR) gives its middle object anyway, and the caller decides."""
    rows = session.execute(
        select(*_COLUMNS, Instance.rows)
        .join(Series, Series.pk == Instance.series_pk)
        .where(Series.series_instance_uid == series_instance_uid)
        .order_by(
            Instance.rows.is_(None),
            Instance.instance_number.is_(None),
            Instance.instance_number,
            Instance.sop_instance_uid,
        )
    ).all()
    if not rows:
        raise NotFound(f"series {series_instance_uid} is not in the archive")
    images = [row for row in rows if row.rows is not None] or rows
    middle = images[(len(images) - 1) // 2]
    return stored_instance(storage, middle)


def thumbnail(instance: StoredInstance, size: int = 128) -> bytes:
    """A JPEG of the instance's middle frame, fitting `size` pixels, with its own window."""
    middle = (instance.number_of_frames - 1) // 2
    try:
        ds = dcmread(instance.path, stop_before_pixels=True)
        pixels = frames.decode_frame(instance.path, middle)
        return render.thumbnail(ds, pixels, size, frame=middle)
    except (frames.FrameError, render.RenderError) as exc:
        raise CannotConvert(f"instance {instance.sop_instance_uid} has no picture: {exc}") from exc


# A send selection's UID lists, by the level whose unique key they are.
_SELECTION_LEVELS = (
    (query.Level.STUDY, "StudyInstanceUID"),
    (query.Level.SERIES, "SeriesInstanceUID"),
    (query.Level.IMAGE, "SOPInstanceUID"),
)


def select_named(
    session: Session,
    storage: FileSystemStorage,
    *,
    studies: Sequence[str] = (),
    series: Sequence[str] = (),
    instances: Sequence[str] = (),
) -> list[StoredInstance]:
    """The stored instances that studies, series and instances named by UID hold (a send job,
    `openpacs send`): one query per level named, each instance once, studies first. UIDs not
    stored select nothing; the caller decides whether an empty selection is an error."""
    chosen: dict[str, StoredInstance] = {}
    for (level, keyword), uids in zip(_SELECTION_LEVELS, (studies, series, instances), strict=True):
        if not uids:
            continue
        identifier = Dataset()
        # Relational: each level's own key alone names its instances (no parent keys needed).
        setattr(identifier, keyword, list(uids) if len(uids) > 1 else uids[0])
        found = select_instances(
            session, storage, identifier, level, query.Model.STUDY_ROOT, relational=True
        )
        for instance in found:
            chosen.setdefault(instance.sop_instance_uid, instance)
    return list(chosen.values())
