"""Logging: one logger per service, each with its own level and its own daily file.

Files are `logs/<service>/<service>-YYYYMMDD.log`, named by the day they cover (so an operator can
find a day without knowing rotation rules), and files older than the retention are removed when a
new day starts. Patient names never appear at INFO or above: log UIDs and IDs instead.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from openpacs.config import SERVICES, LoggingSettings

FORMAT = "%(asctime)s %(levelname)-7s [%(name)s] %(message)s"
ROOT = "openpacs"
# Libraries' loggers and the service whose file their lines belong in (with a floor level:
# pynetdicom logs every PDU at INFO).
LIBRARIES = {"uvicorn": ("api", "INFO"), "pynetdicom": ("storescp", "WARNING")}


def get_logger(service: str) -> logging.Logger:
    """The logger of one service (`storescp`, `db`, ...); configured by `setup`."""
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}")
    return logging.getLogger(f"{ROOT}.{service}")


class DailyFileHandler(logging.Handler):
    """Writes to `<dir>/<service>-YYYYMMDD.log`, switching files at midnight (local time)."""

    def __init__(self, directory: Path, service: str, retention_days: int) -> None:
        super().__init__()
        self.directory = directory
        self.service = service
        self.retention_days = retention_days
        self._day: dt.date | None = None
        self._stream: TextIO | None = None
        self._lock = threading.Lock()

    def path_for(self, day: dt.date) -> Path:
        return self.directory / f"{self.service}-{day:%Y%m%d}.log"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            day = dt.date.fromtimestamp(record.created)
            with self._lock:
                if day != self._day or self._stream is None:
                    self._open(day)
                assert self._stream is not None
                self._stream.write(line)
                self._stream.flush()
        except Exception:
            self.handleError(record)

    def _open(self, day: dt.date) -> None:
        if self._stream is not None:
            self._stream.close()
        # Created on first use, so a service that never logs leaves no empty folder.
        self.directory.mkdir(parents=True, exist_ok=True)
        self._stream = self.path_for(day).open("a", encoding="utf-8")
        self._day = day
        self._remove_expired(day)

    def _remove_expired(self, today: dt.date) -> None:
        oldest = today - dt.timedelta(days=self.retention_days - 1)
        for path in self.directory.glob(f"{self.service}-*.log"):
            day = day_of(self.service, path.name)
            if day is not None and day < oldest:
                path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            if self._stream is not None:
                self._stream.close()
                self._stream = None
        super().close()


def day_of(service: str, name: str) -> dt.date | None:
    """The day a file named as `DailyFileHandler` names them covers; None for another name."""
    prefix, stamp, suffix = name[: len(service) + 1], name[len(service) + 1 : -4], name[-4:]
    if (
        prefix != f"{service}-"
        or suffix != ".log"
        or len(stamp) != 8
        or not (stamp.isascii() and stamp.isdigit())
    ):
        return None
    try:
        return dt.datetime.strptime(stamp, "%Y%m%d").date()
    except ValueError:
        return None


@dataclass(frozen=True)
class Problem:
    """A WARNING or worse, as the status page lists it."""

    at: dt.datetime
    level: str
    service: str
    message: str


class RecentProblems(logging.Handler):
    """The last `size` WARNING and ERROR records of this process, in memory, for the status
    page (the files keep everything; this saves reading them on every refresh)."""

    MESSAGE_LIMIT = 2000

    def __init__(self, size: int = 100) -> None:
        super().__init__(logging.WARNING)
        self._records: deque[Problem] = deque(maxlen=size)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                message += f" ({type(record.exc_info[1]).__name__}: {record.exc_info[1]})"
            service = record.name.removeprefix(f"{ROOT}.")
            at = dt.datetime.fromtimestamp(record.created, dt.UTC)
            # deque.append is atomic: no lock needed beside the handler's own.
            self._records.append(
                Problem(at, record.levelname, service, message[: self.MESSAGE_LIMIT])
            )
        except Exception:
            self.handleError(record)

    def latest(self, limit: int | None = None) -> list[Problem]:
        """Newest first."""
        found = list(reversed(self._records))
        return found if limit is None else found[:limit]


# One per process, like the logging tree it hangs in; `setup` attaches it.
RECENT_PROBLEMS = RecentProblems()


def setup(settings: LoggingSettings, *, console_stream: TextIO | None = None) -> None:
    """Attach a daily file per service and, if enabled, the terminal; replaces earlier setup.
    WARNING and worse are also kept in `RECENT_PROBLEMS`."""
    formatter = logging.Formatter(FORMAT)
    root = logging.getLogger(ROOT)
    _reset(root, keep=RECENT_PROBLEMS)
    root.setLevel(logging.DEBUG)
    root.propagate = False
    root.addHandler(RECENT_PROBLEMS)
    if settings.console:
        console = logging.StreamHandler(console_stream or sys.stderr)
        console.setFormatter(formatter)
        console.setLevel(settings.console_level)
        root.addHandler(console)
    files: dict[str, logging.Handler] = {}
    for service in SERVICES:
        logger = get_logger(service)
        _reset(logger)
        level = settings.levels[service]
        logger.setLevel(level)
        daily = DailyFileHandler(settings.dir / service, service, settings.retention_days)
        daily.setFormatter(formatter)
        daily.setLevel(level)
        logger.addHandler(daily)
        files[service] = daily
    for name, (service, floor) in LIBRARIES.items():
        library = logging.getLogger(name)
        _reset(library, close=False)
        library.setLevel(
            max(logging.getLevelName(floor), logging.getLevelName(settings.levels[service]))
        )
        library.propagate = False
        library.addHandler(files[service])
        for handler in root.handlers:
            library.addHandler(handler)


def apply_levels(settings: LoggingSettings) -> None:
    """New levels per service and for the terminal, on the handlers `setup` made (this
    process only: Store SCP receiver processes keep theirs until the next start)."""
    for service in SERVICES:
        level = settings.levels[service]
        logger = get_logger(service)
        logger.setLevel(level)
        for handler in logger.handlers:
            handler.setLevel(level)
    for handler in logging.getLogger(ROOT).handlers:
        handler.setLevel(settings.console_level)
    for name, (service, floor) in LIBRARIES.items():
        logging.getLogger(name).setLevel(
            max(logging.getLevelName(floor), logging.getLevelName(settings.levels[service]))
        )


def _reset(
    logger: logging.Logger, *, close: bool = True, keep: logging.Handler | None = None
) -> None:
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        if close and handler is not keep:
            handler.close()
