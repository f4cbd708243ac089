"""How busy and how big the archive is, for the status page: objects received lately, bytes
stored, the index's size on disk. Each is one cheap statement (the received counts read the
`instance.received_at` index, migration 0011)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import case, func, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from openpacs.archive import db
from openpacs.archive.models import Instance, Study


@dataclass(frozen=True)
class Received:
    last_minute: int
    last_hour: int


def received(session: Session, now: dt.datetime) -> Received:
    """Objects indexed in the last minute and the last hour (one range read of the index)."""
    minute, hour = now - dt.timedelta(minutes=1), now - dt.timedelta(hours=1)
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((Instance.received_at >= minute, 1), else_=0)), 0),
        ).where(Instance.received_at >= hour)
    ).one()
    return Received(last_minute=int(row[1]), last_hour=int(row[0]))


def stored_bytes(session: Session) -> int:
    """Bytes of stored files, from the studies' aggregates (far fewer rows than instances)."""
    return int(session.scalar(select(func.coalesce(func.sum(Study.size_bytes), 0))) or 0)


@dataclass(frozen=True)
class IndexSize:
    # SQLite: the database file and its write-ahead log; PostgreSQL: pg_database_size.
    database_bytes: int
    # PostgreSQL: openpacs's tables with their indexes in the current schema; None on SQLite
    # (its one file is the database).
    tables_bytes: int | None


def index_size(engine: Engine) -> IndexSize:
    if db.is_sqlite(engine):
        database = make_url(str(engine.url)).database
        if not database or database == ":memory:":
            return IndexSize(0, None)
        path = Path(database)
        total = sum(
            candidate.stat().st_size
            for candidate in (path, Path(f"{path}-wal"))
            if candidate.exists()
        )
        return IndexSize(total, None)
    with engine.connect() as conn:
        database_bytes = conn.scalar(text("SELECT pg_database_size(current_database())"))
        tables_bytes = conn.scalar(
            text(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            )
        )
    return IndexSize(int(database_bytes or 0), int(tables_bytes or 0))
