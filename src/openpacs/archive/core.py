"""The archive core as one value: settings, database, storage and the ingest path over them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from openpacs.archive import db, index
from openpacs.archive.errors import IndexUnavailable
from openpacs.archive.ingest import Archive
from openpacs.archive.storage import FileSystemStorage
from openpacs.config import Settings


@dataclass
class Core:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    storage: FileSystemStorage
    archive: Archive
    # Turns for SQLite writers, shared with the ingest path (a no-op on PostgreSQL).
    write_lock: db.WriteLock | db.NoLock = field(default_factory=db.NoLock)

    @contextlib.contextmanager
    def writing(self) -> Iterator[Session]:
        """One write transaction (committed on success), taking turns with other writers."""
        with self.write_lock, db.write_session(self.sessions) as session:
            yield session

    def counts(self) -> index.Counts:
        try:
            with self.sessions() as session:
                return index.counts(session)
        except SQLAlchemyError as exc:
            raise IndexUnavailable(f"index database unreachable: {db.describe(exc)}") from exc

    def check(self) -> dict[str, str]:
        """Reachability of index and storage: 'ok' or the reason each is not."""
        state = {}
        try:
            db.ping(self.engine)
            state["index"] = "ok"
        except Exception as exc:
            state["index"] = f"unreachable: {db.describe(exc)}"
        try:
            self.storage.check()
            state["storage"] = "ok"
        except Exception as exc:
            state["storage"] = f"unusable: {exc}"
        return state

    def close(self) -> None:
        self.archive.close()
        self.engine.dispose()


def open_core(settings: Settings, *, migrate: bool = True) -> Core:
    """Connect the index (bringing its schema up to date) and the storage."""
    engine = db.make_engine(settings.database)
    if migrate:
        db.migrate(engine)
    sessions = db.make_sessions(engine)
    storage = FileSystemStorage(
        settings.storage.root, settings.storage.layout, fsync=settings.storage.fsync
    )
    write_lock = db.write_lock(engine)
    archive = Archive(
        storage,
        sessions,
        duplicates=settings.storage.duplicates,
        repair_charset=settings.storage.add_missing_charset,
        compression=settings.storage.compression,
        write_lock=write_lock,
    )
    return Core(settings, engine, sessions, storage, archive, write_lock)
