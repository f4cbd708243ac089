"""The log files as the console reads them: list, tail, search, follow, delete.

A file is only ever opened by a name taken from listing its service's folder (regular files
named as `logs.DailyFileHandler` names them; symbolic links are left out), never by a path
built from what a client sent, and it is opened with O_NOFOLLOW, so a name cannot lead out of
the log folder.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from openpacs.config import SERVICES
from openpacs.logs import day_of

BLOCK = 1 << 16
MAX_SCAN = 8 << 20  # bytes one tail or search reads at most; the answer says where it stopped
MAX_LINE = 8192  # characters of a line returned (longer ones are cut, marked with …)
MAX_FOLLOW_READ = 1 << 20
MAX_PATTERN = 200
# A repeated group that itself repeats, e.g. (a+)+ or (\w*)*: Python's matcher may take
# exponential time on such patterns, and there is no timeout to stop it.
_NESTED_REPETITION = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)\s*[+*{]")


class LogNotFound(LookupError):
    """No such service or no such file in its folder."""


class InUse(Exception):
    """The file is still being written (today's)."""


@dataclass(frozen=True)
class LogFile:
    service: str
    name: str
    day: dt.date
    size: int
    path: Path  # the folder joined with a name from its own listing

    def current(self, today: dt.date | None = None) -> bool:
        return self.day >= (today or dt.date.today())


@dataclass(frozen=True)
class Page:
    """Lines of a file, oldest first; `start`/`end`: byte offsets of the part read (the next
    page back is `before=start`, a follow goes on from `end`)."""

    lines: list[str]
    start: int
    end: int
    size: int
    more: bool


def files(directory: Path, service: str) -> list[LogFile]:
    """The service's log files, newest first; an unknown service is LogNotFound."""
    if service not in SERVICES:
        raise LogNotFound(f"no service {service!r}; known: {', '.join(SERVICES)}")
    found = []
    try:
        entries = list(os.scandir(directory / service))
    except FileNotFoundError:
        return []
    for entry in entries:
        day = day_of(service, entry.name)
        if day is None or not entry.is_file(follow_symlinks=False):
            continue
        size = entry.stat(follow_symlinks=False).st_size
        found.append(LogFile(service, entry.name, day, size, directory / service / entry.name))
    return sorted(found, key=lambda f: f.day, reverse=True)


def find(directory: Path, service: str, name: str) -> LogFile:
    """The file of that name in the service's folder, matched against the folder's listing."""
    for candidate in files(directory, service):
        if candidate.name == name:
            return candidate
    raise LogNotFound(f"no log file {name[:80]!r} for {service}")


def open_file(log_file: LogFile) -> int:
    """A read-only descriptor; O_NOFOLLOW: a file swapped for a link since the listing fails."""
    return os.open(log_file.path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))


def pattern(text: str, *, regex: bool) -> re.Pattern[str]:
    """What `q` searches for, case-insensitive: the text itself, or a regular expression."""
    if len(text) > MAX_PATTERN:
        raise ValueError(f"search text longer than {MAX_PATTERN} characters")
    if not regex:
        return re.compile(re.escape(text), re.IGNORECASE)
    if _NESTED_REPETITION.search(text):
        raise ValueError(
            "a repeated group that repeats again (like (a+)+) can take exponential time; "
            "rewrite it without the nesting"
        )
    try:
        return re.compile(text, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from exc


def _line(raw: bytes) -> str:
    text = raw.rstrip(b"\r").decode("utf-8", errors="replace")
    return text if len(text) <= MAX_LINE else text[:MAX_LINE] + "…"


def tail(
    log_file: LogFile,
    lines: int,
    *,
    before: int | None = None,
    search: re.Pattern[str] | None = None,
) -> Page:
    """The last `lines` lines that end before byte `before` (a line start from an earlier
    page; default: the end of the file, where a last line still being written is left for
    the follow), only those matching `search` when given."""
    fd = open_file(log_file)
    try:
        size = os.fstat(fd).st_size
        end = end_of_lines(fd, size) if before is None else max(0, min(before, size))
        found, start = _backwards(fd, end, lines, search)
    finally:
        os.close(fd)
    found.reverse()
    return Page(found, start, end, size, more=start > 0)


def end_of_lines(fd: int, size: int | None = None) -> int:
    """The offset just after the file's last newline (0 when it has none)."""
    size = os.fstat(fd).st_size if size is None else size
    pos = size
    while pos > 0 and size - pos < MAX_SCAN:
        step = min(BLOCK, pos)
        pos -= step
        cut = os.pread(fd, step, pos).rfind(b"\n")
        if cut >= 0:
            return pos + cut + 1
    return 0


def _backwards(
    fd: int, end: int, lines: int, search: re.Pattern[str] | None
) -> tuple[list[str], int]:
    """Lines before `end`, newest first, and where the oldest one examined starts."""
    found: list[str] = []
    if end == 0:
        return found, 0
    # The region holds lines separated by newlines; the newline ending the last is not in it.
    limit = end - 1 if os.pread(fd, 1, end - 1) == b"\n" else end
    pos = limit
    buffer = b""
    while pos > 0 and end - pos < MAX_SCAN:
        step = min(BLOCK, pos)
        pos -= step
        buffer = os.pread(fd, step, pos) + buffer
        cut = buffer.rfind(b"\n")
        while cut >= 0:
            start = pos + cut + 1
            if _take(buffer[cut + 1 :], search, found) and len(found) == lines:
                return found, start
            buffer = buffer[:cut]
            cut = buffer.rfind(b"\n")
    if pos == 0:
        _take(buffer, search, found)
        return found, 0
    # Stopped at MAX_SCAN: the next page goes on from the line being read.
    return found, min(pos + len(buffer) + 1, end)


def _take(raw: bytes, search: re.Pattern[str] | None, found: list[str]) -> bool:
    text = _line(raw)
    if search is not None and not search.search(text):
        return False
    found.append(text)
    return True


def read_new(fd: int, offset: int) -> tuple[list[str], int]:
    """Whole lines written from `offset` on (at most ~1 MiB at a time), and the offset after
    them; a line still being written waits for its newline."""
    data = os.pread(fd, MAX_FOLLOW_READ, offset)
    cut = data.rfind(b"\n")
    if cut < 0:
        if len(data) == MAX_FOLLOW_READ:  # a giant line: send what there is
            return [_line(data)], offset + len(data)
        return [], offset
    return [_line(raw) for raw in data[:cut].split(b"\n")], offset + cut + 1


def chunks(log_file: LogFile, size: int, block: int = BLOCK * 4) -> Iterator[bytes]:
    """The file's first `size` bytes (its size when the download began), block by block."""
    fd = open_file(log_file)
    try:
        offset = 0
        while offset < size:
            data = os.pread(fd, min(block, size - offset), offset)
            if not data:
                return
            offset += len(data)
            yield data
    finally:
        os.close(fd)


def delete(log_file: LogFile, today: dt.date | None = None) -> None:
    """Remove a past day's file; today's is still being written (InUse)."""
    if log_file.current(today):
        raise InUse(
            f"{log_file.name} is today's log and still being written; "
            "files of past days can be deleted"
        )
    log_file.path.unlink()
