"""The archive core as one value: settings, database, storage and the ingest path over them."""

from __future__ import annotations

from dataclasses import dataclass

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
    archive = Archive(
        storage,
        sessions,
        duplicates=settings.storage.duplicates,
        repair_charset=settings.storage.add_missing_charset,
        compression=settings.storage.compression,
        write_lock=db.write_lock(engine),
    )
    return Core(settings, engine, sessions, storage, archive)
