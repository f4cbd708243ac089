"""SQLite's write-ahead log is copied into the database file by a background thread, not by the
commit that happens to take it past SQLite's threshold."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from sqlalchemy import Engine

from openpacs.archive import db
from openpacs.config import DatabaseSettings


def _engine(path: Path) -> Engine:
    engine = db.make_engine(DatabaseSettings(url=f"sqlite:///{path}"))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
        for number in range(50):
            conn.exec_driver_sql(f"INSERT INTO item (name) VALUES ('item {number}')")
    return engine


def _rows_in_the_file_alone(path: Path, copy: Path) -> int:
    """What the database file holds without its WAL (what a checkpoint put there)."""
    shutil.copyfile(path, copy)
    with sqlite3.connect(copy) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM item").fetchone()[0])
        except sqlite3.OperationalError:  # the table is still only in the WAL
            return 0


def test_commits_leave_checkpoints_to_the_checkpointer(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "index.db")
    with engine.connect() as conn:
        limit = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
    assert limit == db.WAL_AUTOCHECKPOINT_PAGES
    assert _rows_in_the_file_alone(tmp_path / "index.db", tmp_path / "copy.db") == 0
    engine.dispose()


def test_the_checkpointer_copies_the_log_into_the_database_file(tmp_path: Path) -> None:
    engine = _engine(tmp_path / "index.db")
    checkpointer = db.Checkpointer(engine, interval=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while _rows_in_the_file_alone(tmp_path / "index.db", tmp_path / "copy.db") < 50:
            assert time.monotonic() < deadline, "no checkpoint in 10 s"
            time.sleep(0.05)
    finally:
        checkpointer.stop()
        engine.dispose()
