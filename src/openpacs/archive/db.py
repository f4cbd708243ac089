"""The index database: engine, sessions, migrations.

Engines are made by the composition root (server, CLI, tests), never at import. SQLite runs in WAL
mode with a busy timeout; write transactions start with BEGIN IMMEDIATE so that two writers (two
threads or two receiver processes) queue for the lock instead of failing on upgrade.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from openpacs.config import DatabaseSettings
from openpacs.logs import get_logger

MIGRATIONS = Path(__file__).with_name("migrations")
# SQLite's own checkpoint runs inside the commit that takes the WAL past this many pages; a
# safety net (~40 MB) for processes without a Checkpointer, whose smaller, frequent
# checkpoints keep the WAL far below it.
WAL_AUTOCHECKPOINT_PAGES = 10_000
log = get_logger("db")
WRITE = {"sqlite_begin": "IMMEDIATE"}


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(settings: DatabaseSettings) -> Engine:
    url = make_url(settings.url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url.render_as_string(hide_password=False), settings.echo)
    return create_engine(
        url,
        echo=settings.echo,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_pre_ping=True,
    )


def _sqlite_engine(url: str, echo: bool) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event own transactions (pysqlite's own BEGIN is deferred).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


class WriteLock:
    """Turns for SQLite writers: threads of this process, and other receiver processes.

    SQLite allows one writer; a second one waits in SQLite's busy handler, which sleeps in steps
    of 1, 2, 5, 10... ms and so turns brief contention into long stalls. A kernel file lock wakes
    the next writer the moment the lock is free. PostgreSQL needs none of this (no-op).
    """

    def __init__(self, path: Path | None) -> None:
        self._thread_lock = threading.Lock()
        self._file: IO[bytes] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = path.open("ab")

    def __enter__(self) -> None:
        self._thread_lock.acquire()
        if self._file is not None:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX)
            except BaseException:
                self._thread_lock.release()
                raise

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        self._thread_lock.release()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Checkpointer:
    """Copies SQLite's write-ahead log into the database file from a thread of its own, every
    `interval` seconds. Left to SQLite, the commit that takes the log past 1,000 pages (about
    a hundred CT slices' rows) does it, fsync of the database file included: a 10-60 ms commit
    on a VM's disk, with every writer of every receiver process queued behind its lock. A
    passive checkpoint takes no writer's lock: writers go on meanwhile."""

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        self._engine = engine
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="db-checkpoint", daemon=True)

    def start(self) -> Checkpointer:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.checkpoint()

    def checkpoint(self) -> None:
        try:
            # The DB-API connection: outside any transaction (SQLAlchemy's would BEGIN first).
            raw = self._engine.raw_connection()
            try:
                raw.cursor().execute("PRAGMA wal_checkpoint(PASSIVE)").close()
            finally:
                raw.close()
        except Exception as exc:  # the next turn tries again; SQLite's own is the fallback
            log.warning("WAL checkpoint failed: %s", describe(exc))

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()


class NoLock:
    """For databases that take concurrent writers themselves."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None

    def close(self) -> None:
        return None


def write_lock(engine: Engine) -> WriteLock | NoLock:
    if not is_sqlite(engine):
        return NoLock()
    database = engine.url.database
    if not database or database == ":memory:":
        return WriteLock(None)
    return WriteLock(Path(database + ".writelock"))


def make_sessions(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextlib.contextmanager
def write_session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One write transaction: committed on success, rolled back on any error."""
    with sessions() as session, session.begin():
        session.connection(execution_options=WRITE)
        yield session


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (creates it on an empty database)."""
    command.upgrade(_alembic_config(engine), "head")


def describe(exc: Exception) -> str:
    """The driver's own message, without SQLAlchemy's statement dump and connection URL."""
    original = getattr(exc, "orig", None)
    lines = str(original if original is not None else exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def ping(engine: Engine) -> None:
    """Raises when the database cannot answer a trivial query."""
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
