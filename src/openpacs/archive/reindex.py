"""Rebuild the index from the files in storage (after losing or corrupting the database)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from openpacs.archive import index
from openpacs.archive.db import write_session
from openpacs.archive.errors import ArchiveError
from openpacs.archive.ingest import Incoming, Origin, inspect
from openpacs.archive.storage import FileSystemStorage

BATCH = 200


@dataclass
class ReindexReport:
    indexed: int = 0
    duplicates: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # relative path -> reason


def reindex(
    storage: FileSystemStorage,
    sessions: sessionmaker[Session],
    *,
    progress: Callable[[str], None] = lambda _path: None,
) -> ReindexReport:
    """Empty the index and index every stored file again, in batches of one transaction each."""
    report = ReindexReport()
    with write_session(sessions) as session:
        index.clear(session)
    seen: set[str] = set()
    batch: list[tuple[str, index.IndexValues, index.InstanceKeys, index.FileInfo]] = []
    for relpath in storage.walk():
        progress(relpath)
        path = storage.path(relpath)
        try:
            header = inspect(path, Incoming(path, Origin.import_), repair_charset=False)
        except ArchiveError as exc:
            report.skipped[relpath] = str(exc)
            continue
        if header.keys.sop_instance_uid in seen:
            report.duplicates += 1
            report.skipped[relpath] = f"second copy of {header.keys.sop_instance_uid}"
            continue
        seen.add(header.keys.sop_instance_uid)
        size = path.stat().st_size
        file = index.FileInfo(relpath, size, header.transfer_syntax_uid)
        batch.append((relpath, header.values, header.keys, file))
        if len(batch) >= BATCH:
            _flush(sessions, batch, report)
    _flush(sessions, batch, report)
    return report


def _flush(
    sessions: sessionmaker[Session],
    batch: list[tuple[str, index.IndexValues, index.InstanceKeys, index.FileInfo]],
    report: ReindexReport,
) -> None:
    if not batch:
        return
    with write_session(sessions) as session:
        for _relpath, values, keys, file in batch:
            index.record_instance(session, values, keys, file, origin="reindex", calling_ae=None)
    report.indexed += len(batch)
    batch.clear()
