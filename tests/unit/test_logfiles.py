"""Reading log files backwards and forwards: edges the API tests do not reach."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from openpacs.monitoring import logfiles

DAY = dt.date(2026, 3, 4)


def _file(tmp_path: Path, content: bytes) -> logfiles.LogFile:
    folder = tmp_path / "jobs"
    folder.mkdir(exist_ok=True)
    (folder / "jobs-20260304.log").write_bytes(content)
    return logfiles.find(tmp_path, "jobs", "jobs-20260304.log")


@pytest.mark.parametrize(
    ("content", "lines", "end"),
    [
        (b"", [], 0),
        (b"only a partial", [], 0),  # still being written: left for the follow
        (b"one\n", ["one"], 4),
        (b"one\n\ntwo\n", ["one", "", "two"], 9),
        (b"one\ntwo\nthr", ["one", "two"], 8),
        (b"crlf\r\n\xff\xfe bad utf-8\n", ["crlf", "\ufffd\ufffd bad utf-8"], 19),
    ],
)
def test_tail_edges(tmp_path: Path, content: bytes, lines: list[str], end: int) -> None:
    page = logfiles.tail(_file(tmp_path, content), 10)
    assert (page.lines, page.end, page.start, page.more) == (lines, end, 0, False)


def test_a_page_back_from_any_line_start_continues_exactly(tmp_path: Path) -> None:
    content = b"".join(f"{i:04d} {'x' * (i % 300)}\n".encode() for i in range(3000))
    found = _file(tmp_path, content)
    collected: list[str] = []
    before = None
    for _ in range(100):
        page = logfiles.tail(found, 123, before=before)
        collected = page.lines + collected
        if not page.more:
            break
        before = page.start
    assert collected == content.decode().splitlines()


def test_long_lines_are_cut(tmp_path: Path) -> None:
    page = logfiles.tail(_file(tmp_path, b"y" * 20000 + b"\n"), 1)
    assert page.lines == ["y" * logfiles.MAX_LINE + "…"]


def test_a_search_stops_after_max_scan_and_says_where(tmp_path: Path) -> None:
    line = b"z" * 1023 + b"\n"
    count = logfiles.MAX_SCAN // len(line) + 100
    found = _file(tmp_path, b"needle\n" + line * count)
    page = logfiles.tail(found, 5, search=logfiles.pattern("needle", regex=False))
    assert page.lines == [] and page.more and page.start > 0
    rest = logfiles.tail(
        found, 5, before=page.start, search=logfiles.pattern("NEEDLE", regex=False)
    )
    assert rest.lines == ["needle"] and not rest.more


def test_read_new_waits_for_whole_lines(tmp_path: Path) -> None:
    found = _file(tmp_path, b"a\nb")
    fd = logfiles.open_file(found)
    try:
        assert logfiles.end_of_lines(fd) == 2
        assert logfiles.read_new(fd, 2) == ([], 2)
        with found.path.open("ab") as out:
            out.write(b"c\nd\n")
        assert logfiles.read_new(fd, 2) == (["bc", "d"], 7)
    finally:
        os.close(fd)


def test_links_and_foreign_names_are_not_log_files(tmp_path: Path) -> None:
    _file(tmp_path, b"x\n")
    outside = tmp_path / "outside.log"
    outside.write_text("secret\n")
    (tmp_path / "jobs" / "jobs-20260305.log").symlink_to(outside)
    (tmp_path / "jobs" / "jobs-2026030.log").write_text("short date\n")
    (tmp_path / "jobs" / "jobs-20261399.log").write_text("no such day\n")
    (tmp_path / "jobs" / "api-20260304.log").write_text("another service's\n")
    assert [f.name for f in logfiles.files(tmp_path, "jobs")] == ["jobs-20260304.log"]
    with pytest.raises(logfiles.LogNotFound):
        logfiles.find(tmp_path, "jobs", "jobs-20260305.log")
    with pytest.raises(logfiles.LogNotFound):
        logfiles.files(tmp_path, "../jobs")
    assert logfiles.files(tmp_path, "db") == []  # a service that never logged


def test_todays_file_is_not_deleted(tmp_path: Path) -> None:
    found = _file(tmp_path, b"x\n")
    with pytest.raises(logfiles.InUse):
        logfiles.delete(found, today=DAY)
    logfiles.delete(found, today=DAY + dt.timedelta(days=1))
    assert not found.path.exists()
