"""GET /api/logs/{service}/{file}/follow over a real HTTP server: lines written after the
request started arrive as Server-Sent Events; the stream ends when the client goes away."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from openpacs.accounts import Role
from openpacs.archive.core import Core
from openpacs.monitoring import metrics
from openpacs.web.app import create_app
from tests.web.client import bearer, token_for
from tests.web.live import serving


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    return sqlite_url  # the follow reads a file, never the index


def _events(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """SSE events as field → value (comments skipped)."""
    event: dict[str, str] = {}
    for line in lines:
        if not line:
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            event[name] = value


def _follows() -> float:
    value = metrics.REGISTRY.get_sample_value("openpacs_log_follows")
    return value or 0.0


def test_follow_sends_lines_written_after_the_request_started(core: Core) -> None:
    folder = core.settings.logging.dir / "storescp"
    folder.mkdir(parents=True)
    path = folder / f"storescp-{dt.date.today():%Y%m%d}.log"
    path.write_text("before 1\nbefore 2\nhalf a li")
    app = create_app(core)
    headers = bearer(token_for(core, Role.viewer))
    before = _follows()
    with serving(app) as base, httpx.Client(base_url=base, headers=headers, timeout=10) as http:
        url = f"/api/logs/storescp/{path.name}/follow"
        with http.stream("GET", url) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            events = _events(answer.iter_lines())
            opened = next(events)
            assert opened["event"] == "open"
            # The half-written line is not yet a line: the follow starts before it.
            start = json.loads(opened["data"])["offset"]
            assert start == len(b"before 1\nbefore 2\n")
            assert _follows() == before + 1
            with path.open("a") as log:
                log.write("ne\nafter 1\n")
            first, second = next(events), next(events)
            assert first == {"data": "half a line"}
            assert second["data"] == "after 1"
            assert int(second["id"]) == path.stat().st_size
            with path.open("a") as log:
                log.write("after 2 \u4e2d\u6587\n")
            assert next(events)["data"] == "after 2 中文"
        # Resuming from the last event id misses nothing and repeats nothing.
        with path.open("a") as log:
            log.write("while away\n")
        resumed = {"Last-Event-ID": second["id"]}
        with http.stream("GET", url, headers=resumed) as answer:
            events = _events(answer.iter_lines())
            assert json.loads(next(events)["data"])["offset"] == int(second["id"])
            assert [next(events)["data"], next(events)["data"]] == ["after 2 中文", "while away"]
        # The client went away: the server's stream ends (and closes the file).
        deadline = time.monotonic() + 10
        while _follows() != before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _follows() == before


def test_follow_needs_credentials_and_a_real_file(core: Core) -> None:
    app = create_app(core)
    with serving(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        assert http.get("/api/logs/api/api-20260101.log/follow").status_code == 401
        token = bearer(token_for(core, Role.viewer))
        missing = http.get("/api/logs/api/api-20260101.log/follow", headers=token)
        assert missing.status_code == 404
