"""`openpacs db upgrade` and `openpacs db migrate-from-sqlite`: a SQLite index (from this
version or an older one) copied into PostgreSQL with every row, the files untouched."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from pydicom import dcmread
from sqlalchemy import Engine, create_engine, func, select, text
from typer.testing import CliRunner, Result

from openpacs import nodes
from openpacs.archive import db, index, transfer
from openpacs.archive.core import open_core
from openpacs.archive.importer import import_paths
from openpacs.archive.models import Patient
from openpacs.cli import app
from openpacs.config import NodeSettings
from tests.conftest import index_database, make_settings
from tests.generators import ct_series

runner = CliRunner()


def invoke(*args: str, database: str, tmp_path: Path) -> Result:
    env = {
        "COLUMNS": "250",
        "OPENPACS_DATABASE__URL": database,
        "OPENPACS_STORAGE__ROOT": str(tmp_path / "storage"),
        "OPENPACS_LOGGING__DIR": str(tmp_path / "logs"),
    }
    return runner.invoke(app, list(args), env=env)


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[str]:
    with index_database("postgresql", tmp_path) as url:
        yield url


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: int(conn.scalar(select(func.count()).select_from(table)) or 0)
            for table in transfer.tables()
        }


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_sqlite_index_moves_into_postgresql_whole(tmp_path: Path, postgres: str) -> None:
    sqlite_file = tmp_path / "index.db"
    settings = make_settings(tmp_path, f"sqlite:///{sqlite_file}")
    core = open_core(settings)
    images = ct_series(tmp_path / "ct", 3, rows=16, columns=16, patient_name="Müller^Jürgen")
    import_paths(core.archive, images)
    with core.writing() as session:
        nodes.create(session, NodeSettings(name="pacs2", ae_title="PACS2", host="h", port=104))
    core.close()
    source = create_engine(f"sqlite:///{sqlite_file}")
    source_counts = _counts(source)
    source.dispose()
    before = _digest(sqlite_file)

    moved = invoke(
        "db", "migrate-from-sqlite", str(sqlite_file), database=postgres, tmp_path=tmp_path
    )
    assert moved.exit_code == 0, moved.output
    assert "Files are where they were" in moved.output
    target = create_engine(postgres)
    assert _counts(target) == source_counts and source_counts["instance"] == 3
    assert _digest(sqlite_file) == before
    with target.connect() as conn:
        name = conn.scalar(select(Patient.patient_name))
    assert name == "Müller^Jürgen"
    target.dispose()
    # The moved index works: one more object indexed (its keys come after the copied ones),
    # and the copied rows still name their files.
    pg = open_core(make_settings(tmp_path, postgres))
    more = ct_series(tmp_path / "more", 1, rows=16, columns=16, patient_id="OTHER", seed=7)
    import_paths(pg.archive, more)
    counts = pg.counts()
    assert (counts.patients, counts.instances) == (2, 4)
    with pg.sessions() as session:
        relpath = index.stored_path(session, str(dcmread(images[0]).SOPInstanceUID))
    assert relpath is not None and pg.storage.path(relpath).is_file()
    pg.close()
    again = invoke(
        "db", "migrate-from-sqlite", str(sqlite_file), database=postgres, tmp_path=tmp_path
    )
    assert again.exit_code == 1 and "already holds rows" in again.output


def test_an_index_of_an_older_version_moves_and_stays_old(tmp_path: Path, postgres: str) -> None:
    sqlite_file = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{sqlite_file}")
    command.upgrade(db._alembic_config(engine), "0002")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO patient (patient_id, issuer_of_patient_id, patient_name, "
                "number_of_studies, number_of_series, number_of_instances, created_at, "
                "updated_at) VALUES ('P1', '', 'Müller^Jürgen', 0, 0, 0, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    engine.dispose()
    moved = invoke(
        "db", "migrate-from-sqlite", str(sqlite_file), database=postgres, tmp_path=tmp_path
    )
    assert moved.exit_code == 0, moved.output
    target, old = create_engine(postgres), create_engine(f"sqlite:///{sqlite_file}")
    with target.connect() as conn:
        folded = conn.scalar(select(Patient.patient_name_folded))
    assert folded == " muller jurgen "  # 0003 filled it in on the copy
    with old.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "0002"
    target.dispose()
    old.dispose()


def test_wrong_targets_and_sources_are_refused(tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'a.db'}"
    to_sqlite = invoke("db", "migrate-from-sqlite", "x.db", database=sqlite_url, tmp_path=tmp_path)
    assert to_sqlite.exit_code == 2 and "set it to the target first" in to_sqlite.output
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    with (
        pytest.raises(transfer.TransferError, match="not a readable SQLite database"),
        transfer.upgraded_copy(junk),
    ):
        pass
    with (
        pytest.raises(transfer.TransferError, match="no SQLite index"),
        transfer.upgraded_copy(tmp_path / "missing.db"),
    ):
        pass


def test_upgrade_says_what_it_did(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'index.db'}"
    first = invoke("db", "upgrade", database=url, tmp_path=tmp_path)
    assert first.exit_code == 0 and "upgraded from empty to" in first.output, first.output
    second = invoke("db", "upgrade", database=url, tmp_path=tmp_path)
    assert second.exit_code == 0 and "already at revision" in second.output
