"""Moving the index to another database (`openpacs db migrate-from-sqlite`): every row of
every table copied as it is, primary keys kept, the stored files untouched (rows name them
by their path relative to the storage root, which does not change).

The source is read through a copy brought to the newest schema, so an index left by an older
openpacs moves too and the original file stays as it was (the way back). The target must be
empty: rows are copied in dependency order inside one transaction, then PostgreSQL's key
sequences are moved past the copied keys, then the counts of both sides are compared.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, Engine, Integer, Table, func, insert, select, text

from openpacs.archive import db
from openpacs.archive.errors import ArchiveError
from openpacs.archive.models import Base
from openpacs.config import DatabaseSettings

BATCH = 2_000

Progress = Callable[[str, int, int], None]  # table, rows copied so far, rows in the table


class TransferError(ArchiveError):
    """The index cannot be copied; the message says why and what to do."""


@dataclass(frozen=True)
class Copied:
    table: str
    source_rows: int
    target_rows: int


@contextmanager
def upgraded_copy(sqlite_file: Path) -> Iterator[Engine]:
    """An engine on a temporary copy of `sqlite_file`, migrated to the newest schema."""
    if not sqlite_file.is_file():
        raise TransferError(f"no SQLite index at {sqlite_file}")
    folder = Path(tempfile.mkdtemp(prefix="openpacs-index-"))
    copy = folder / "index.db"
    try:
        # SQLite's online backup: consistent even if a server still writes (WAL included).
        with (
            closing(sqlite3.connect(f"file:{sqlite_file}?mode=ro", uri=True)) as original,
            closing(sqlite3.connect(copy)) as target,
        ):
            original.backup(target)
        engine = db.make_engine(_sqlite_settings(copy))
        try:
            db.migrate(engine)
            yield engine
        finally:
            engine.dispose()
    except sqlite3.DatabaseError as exc:
        raise TransferError(f"{sqlite_file} is not a readable SQLite database: {exc}") from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _sqlite_settings(path: Path) -> DatabaseSettings:
    return DatabaseSettings(url=f"sqlite:///{path}")


def tables() -> list[Table]:
    """Every index table, parents before children."""
    return list(Base.metadata.sorted_tables)


def copy_index(source: Engine, target: Engine, progress: Progress | None = None) -> list[Copied]:
    """Copy every row from `source` into the empty `target` (migrated here to the newest
    schema); returns the row counts of both sides per table."""
    db.migrate(target)
    filled = [t.name for t in tables() if _count(target, t)]
    if filled:
        raise TransferError(
            "the target database already holds rows (" + ", ".join(filled) + "); copy into an "
            "empty database, or drop and recreate it first"
        )
    with source.connect() as reading, target.begin() as writing:
        for table in tables():
            total = reading.scalar(select(func.count()).select_from(table)) or 0
            done = 0
            rows = reading.execution_options(yield_per=BATCH).execute(
                select(table).order_by(*table.primary_key.columns)
            )
            for part in rows.partitions(BATCH):
                writing.execute(insert(table), [dict(row._mapping) for row in part])
                done += len(part)
                if progress is not None:
                    progress(table.name, done, total)
            if progress is not None and not total:
                progress(table.name, 0, 0)
        if target.dialect.name == "postgresql":
            for table in tables():
                _move_sequence(writing, table)
    copied = [Copied(t.name, _count(source, t), _count(target, t)) for t in tables()]
    wrong = [c for c in copied if c.source_rows != c.target_rows]
    if wrong:
        details = ", ".join(f"{c.table} {c.source_rows} -> {c.target_rows}" for c in wrong)
        raise TransferError(f"row counts differ after the copy: {details}")
    return copied


def _count(engine: Engine, table: Table) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def _move_sequence(conn: Connection, table: Table) -> None:
    """Next generated key past the copied ones (rows were inserted with their own keys)."""
    keys = list(table.primary_key.columns)
    if len(keys) != 1 or not isinstance(keys[0].type, Integer):
        return
    where = {"table": table.name, "column": keys[0].name}
    sequence = conn.execute(text("SELECT pg_get_serial_sequence(:table, :column)"), where).scalar()
    if sequence is None:
        return
    highest = conn.scalar(select(func.max(keys[0])))
    conn.execute(
        text("SELECT setval(:sequence, :next, false)"),
        {"sequence": sequence, "next": int(highest or 0) + 1},
    )
