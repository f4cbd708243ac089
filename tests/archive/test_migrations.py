"""Schema migrations on a database that already holds data (SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect, text

from openpacs.archive import db


def test_folded_names_are_filled_in_for_existing_patients(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        config = db._alembic_config(engine)
        command.upgrade(config, "0002")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO patient (patient_id, issuer_of_patient_id, patient_name, "
                    "number_of_studies, number_of_series, number_of_instances, created_at, "
                    "updated_at) VALUES ('P1', '', 'Müller^Jürgen', 0, 0, 0, "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        db.migrate(engine)
        with engine.connect() as conn:
            folded = conn.execute(text("SELECT patient_name_folded FROM patient")).scalar_one()
        assert folded == " muller jurgen "
        command.downgrade(config, "0002")
    finally:
        engine.dispose()


def test_nodes_that_could_print_by_store_keep_printing(database_url: str) -> None:
    """Before 0008 the Print SCP admitted registered nodes by `store`; after it, by `print`,
    which existing nodes get where they had `store`."""
    engine = create_engine(database_url)
    try:
        config = db._alembic_config(engine)
        command.upgrade(config, "0007")
        with engine.begin() as conn:
            for name, may_store in (("ct", True), ("viewer", False)):
                conn.execute(
                    text(
                        "INSERT INTO node (name, ae_title, host, port, tls, description, "
                        "store_target, qr_source, move_destination, printer, may_echo, "
                        "may_store, may_find, may_move, may_get, created_at, updated_at) "
                        "VALUES (:name, :ae, 'h', 104, false, '', false, false, false, false, "
                        "true, :store, true, false, false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"name": name, "ae": name.upper(), "store": may_store},
                )
        db.migrate(engine)
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT name, may_print FROM node ORDER BY name")).all()
        assert [(name, bool(may)) for name, may in rows] == [("ct", True), ("viewer", False)]
        command.downgrade(config, "0007")
    finally:
        engine.dispose()


def test_accounts_tables_come_and_go_with_0009(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        config = db._alembic_config(engine)
        db.migrate(engine)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO app_user (username, password_hash, role, disabled, "
                    "must_change_password, created_at, updated_at, password_changed_at) VALUES "
                    "('张三', 'x', 'viewer', false, true, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, "
                    "CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO audit_event (at, action, study_instance_uid) "
                    "VALUES (CURRENT_TIMESTAMP, 'opened', '1.2.3')"
                )
            )
        command.downgrade(config, "0008")
        tables = set(inspect(engine).get_table_names())
        assert not tables & {"app_user", "user_session", "api_token", "login_throttle"}
        assert "audit_event" not in tables and "print_job" in tables
        db.migrate(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM app_user")).scalar_one() == 0
    finally:
        engine.dispose()


def test_east_asian_names_fold_into_one_word_more_with_0010(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        config = db._alembic_config(engine)
        command.upgrade(config, "0009")
        with engine.begin() as conn:
            for patient_id, name in (("P1", "Zhang^San=张^三"), ("P2", "Müller^Jürgen")):
                conn.execute(
                    text(
                        "INSERT INTO patient (patient_id, issuer_of_patient_id, patient_name, "
                        "patient_name_folded, number_of_studies, number_of_series, "
                        "number_of_instances, created_at, updated_at) VALUES (:id, '', :name, "
                        "'unchanged', 0, 0, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"id": patient_id, "name": name},
                )
        db.migrate(engine)
        query = text("SELECT patient_name_folded FROM patient ORDER BY patient_id")
        with engine.connect() as conn:
            assert conn.execute(query).scalars().all() == [" zhang san 张 三 张三 ", "unchanged"]
        command.downgrade(config, "0009")
        with engine.connect() as conn:
            assert conn.execute(query).scalars().all() == [" zhang san 张 三 ", "unchanged"]
    finally:
        engine.dispose()


def test_received_at_index_comes_and_goes_with_0011(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        config = db._alembic_config(engine)
        db.migrate(engine)

        def indexes() -> set[str]:
            return {str(index["name"]) for index in inspect(engine).get_indexes("instance")}

        assert "ix_instance_received_at" in indexes()
        command.downgrade(config, "0010")
        assert "ix_instance_received_at" not in indexes()
        db.migrate(engine)
        assert "ix_instance_received_at" in indexes()
    finally:
        engine.dispose()
