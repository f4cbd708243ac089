from __future__ import annotations

import datetime as dt
import logging
import os
import time
from pathlib import Path

from openpacs import logs
from openpacs.config import LoggingSettings


def test_each_service_writes_its_own_daily_file(tmp_path: Path) -> None:
    settings = LoggingSettings(dir=tmp_path, console=False, levels={"db": "WARNING"})
    logs.setup(settings)
    try:
        logs.get_logger("storescp").info("stored one")
        logs.get_logger("db").info("hidden at WARNING")
        logs.get_logger("db").warning("shown")
        today = dt.date.today().strftime("%Y%m%d")
        store_log = tmp_path / "storescp" / f"storescp-{today}.log"
        assert "stored one" in store_log.read_text(encoding="utf-8")
        db_log = (tmp_path / "db" / f"db-{today}.log").read_text(encoding="utf-8")
        assert "shown" in db_log and "hidden" not in db_log
    finally:
        logs.setup(LoggingSettings(dir=tmp_path, console=False))
        logging.getLogger("openpacs").handlers.clear()


def test_files_past_retention_are_removed(tmp_path: Path) -> None:
    folder = tmp_path / "api"
    folder.mkdir()
    old = folder / "api-20000101.log"
    old.write_text("old", encoding="utf-8")
    recent_day = dt.date.today() - dt.timedelta(days=1)
    recent = folder / f"api-{recent_day:%Y%m%d}.log"
    recent.write_text("recent", encoding="utf-8")
    handler = logs.DailyFileHandler(folder, "api", retention_days=7)
    record = logging.LogRecord("openpacs.api", logging.INFO, __file__, 1, "hello", None, None)
    record.created = time.time()
    handler.emit(record)
    handler.close()
    assert not old.exists()
    assert recent.exists()
    assert os.listdir(folder) and any("hello" in p.read_text() for p in folder.iterdir())


def test_warnings_and_errors_are_kept_for_the_status_page(tmp_path: Path) -> None:
    logs.setup(LoggingSettings(dir=tmp_path, console=False))
    logs.get_logger("db").info("not a problem")
    logs.get_logger("db").warning("index slow: %d ms", 900)
    try:
        raise OSError("disk full")
    except OSError:
        logs.get_logger("storescp").exception("could not store 1.2.3")
    logging.getLogger("uvicorn.error").error("bind failed")
    latest = logs.RECENT_PROBLEMS.latest(3)
    assert [(p.level, p.service, p.message) for p in latest] == [
        ("ERROR", "uvicorn.error", "bind failed"),
        ("ERROR", "storescp", "could not store 1.2.3 (OSError: disk full)"),
        ("WARNING", "db", "index slow: 900 ms"),
    ]
    assert all(p.at.tzinfo is not None for p in latest)


def test_day_of_a_file_name() -> None:
    assert logs.day_of("api", "api-20260228.log") == dt.date(2026, 2, 28)
    for name in (
        "api-20260230.log",
        "api-2026022.log",
        "jobs-20260228.log",
        "api-20260228.txt",
        "api-２０２６０２２８.log",
        "api-20260228.log.1",
    ):
        assert logs.day_of("api", name) is None, name
