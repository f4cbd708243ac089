"""/api/logs: listing, tail and search, paging, download, delete (admin, never today's), roles,
and names that try to leave the log folder. Deletions are audited (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from openpacs.accounts import Role
from openpacs.archive.core import Core
from openpacs.web.app import create_app
from tests.web.client import Client

SECRET = "the secret outside the log folder"
PAST = "api-20260101.log"


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def api_log() -> Iterator[Captured]:
    captured = Captured()
    logger = logging.getLogger("openpacs.api")
    logger.addHandler(captured)
    try:
        yield captured
    finally:
        logger.removeHandler(captured)


def today_name() -> str:
    return f"api-{dt.date.today():%Y%m%d}.log"


@pytest.fixture
def folder(core: Core) -> Path:
    """logs/api with a past and today's file, a stray file and a link out of the folder."""
    logs = core.settings.logging.dir
    api = logs / "api"
    api.mkdir(parents=True, exist_ok=True)
    (api / PAST).write_text("".join(f"past line {i}\n" for i in range(1, 1001)))
    (api / today_name()).write_text("today 1\ntoday 2\n")
    (api / "notes.txt").write_text(SECRET)
    secret = logs.parent / "secret.log"
    secret.write_text(SECRET + "\n")
    (api / "api-20260102.log").symlink_to(secret)
    (logs / "storescp").mkdir(exist_ok=True)
    (logs / "storescp" / "storescp-20251231.log").write_text("stored 1.2.3\n")
    return logs


@pytest.fixture
def admin(core: Core, folder: Path) -> Client:
    return Client(create_app(core))


def test_list_shows_every_service_and_only_real_log_files(admin: Client) -> None:
    answer = admin.get("/api/logs")
    assert answer.status_code == 200
    by_service = {entry["service"]: entry["files"] for entry in answer.json()}
    assert "storescp" in by_service and "jobs" in by_service
    # Newest first; the link out of the folder and the stray file are not log files.
    assert [f["name"] for f in by_service["api"]] == [today_name(), PAST]
    past = next(f for f in by_service["api"] if f["name"] == PAST)
    assert past == {"name": PAST, "date": "2026-01-01", "size": past["size"], "current": False}
    assert past["size"] == sum(len(f"past line {i}\n") for i in range(1, 1001))
    assert next(f for f in by_service["api"] if f["name"] == today_name())["current"] is True
    assert by_service["storescp"] == [
        {"name": "storescp-20251231.log", "date": "2025-12-31", "size": 13, "current": False}
    ]


def test_tail_pages_back_to_the_first_line(admin: Client) -> None:
    first = admin.get(f"/api/logs/api/{PAST}", params={"lines": 300}).json()
    assert first["lines"] == [f"past line {i}" for i in range(701, 1001)]
    assert first["more"] is True and first["end"] == first["size"]
    seen = first["lines"]
    before = first["start"]
    while True:
        page = admin.get(f"/api/logs/api/{PAST}", params={"lines": 300, "before": before}).json()
        seen = page["lines"] + seen
        if not page["more"]:
            break
        before = page["start"]
    assert seen == [f"past line {i}" for i in range(1, 1001)]
    assert page["start"] == 0


def test_search_by_text_and_by_regular_expression(admin: Client) -> None:
    path = f"/api/logs/api/{PAST}"
    text = admin.get(path, params={"q": "LINE 99", "lines": 5}).json()
    assert text["lines"] == [f"past line {i}" for i in range(995, 1000)]
    assert text["more"] is True
    pattern = admin.get(path, params={"q": r"line 1\d$", "regex": "true", "lines": 100}).json()
    assert pattern["lines"] == [f"past line {i}" for i in range(10, 20)]
    # A regex metacharacter in a plain search is just a character.
    assert admin.get(path, params={"q": r"1\d$"}).json()["lines"] == []


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"q": "(unclosed", "regex": "true"}, "not a regular expression"),
        ({"q": "(a+)+$", "regex": "true"}, "exponential"),
        ({"q": "x" * 201}, "200"),
        ({"lines": 5001}, "5000"),
        ({"before": -1}, "0"),
    ],
)
def test_bad_parameters_are_422_with_the_reason(
    admin: Client, params: dict[str, str], reason: str
) -> None:
    answer = admin.get(f"/api/logs/api/{PAST}", params=params)
    assert answer.status_code == 422, answer.text
    assert reason in answer.text


@pytest.mark.parametrize(
    "name",
    [
        "..%2F..%2Fsecret.log",
        "%2E%2E%2Fsecret.log",
        "%2E%2E",
        "%2Fetc%2Fpasswd",
        "api-20260102.log",  # a link in the folder to a file outside it
        "notes.txt",
        "API-20260101.log",
        "api-20260101.log%00.txt",
        "api-20260101.log ",
    ],
)
def test_a_malicious_name_cannot_read_outside_the_log_folder(
    admin: Client, name: str, api_log: Captured
) -> None:
    for suffix in ("", "/download", "/follow"):
        answer = admin.get(f"/api/logs/api/{name}{suffix}")
        assert answer.status_code == 404, (name, suffix, answer.text)
        assert SECRET not in answer.text
    if "%2F" not in name:  # with a slash no route matches: nothing reaches the folder at all
        assert any("log file refused" in message for message in api_log.messages)
    assert admin.delete(f"/api/logs/api/{name}").status_code == 404


def test_over_long_names_and_unknown_services(admin: Client) -> None:
    assert admin.get("/api/logs/api/" + "a" * 65).status_code == 422
    assert admin.get(f"/api/logs/{'s' * 33}/{PAST}").status_code == 422
    unknown = admin.get(f"/api/logs/nosuch/{PAST}")
    assert unknown.status_code == 404 and "known:" in unknown.json()["detail"]
    # A service's file is not another service's.
    assert admin.get(f"/api/logs/storescp/{PAST}").status_code == 404
    # Paths with slashes match no route at all.
    assert admin.get("/api/logs/api/../../secret.log").status_code == 404


def test_download_streams_the_file(admin: Client, folder: Path) -> None:
    answer = admin.get(f"/api/logs/api/{PAST}/download")
    assert answer.status_code == 200
    assert answer.content == (folder / "api" / PAST).read_bytes()
    assert answer.headers["content-disposition"] == f'attachment; filename="{PAST}"'
    assert answer.headers["content-type"].startswith("text/plain")


def test_viewers_read_only_admins_delete_never_todays_file(
    core: Core, admin: Client, folder: Path
) -> None:
    app = admin.app
    viewer, operator = Client(app, role=Role.viewer), Client(app, role=Role.operator)
    assert viewer.get("/api/logs").status_code == 200
    assert viewer.get(f"/api/logs/api/{PAST}").status_code == 200
    assert viewer.get(f"/api/logs/api/{PAST}/download").status_code == 200
    assert viewer.delete(f"/api/logs/api/{PAST}").status_code == 403
    assert operator.delete(f"/api/logs/api/{PAST}").status_code == 403
    today = admin.delete(f"/api/logs/api/{today_name()}")
    assert today.status_code == 409
    assert "today's log" in today.json()["detail"]
    assert (folder / "api" / today_name()).exists()
    assert admin.delete(f"/api/logs/api/{PAST}").status_code == 204
    assert not (folder / "api" / PAST).exists()
    assert admin.delete(f"/api/logs/api/{PAST}").status_code == 404
    audit = admin.get("/api/audit", params={"action": "deleted"}).json()["items"]
    assert [item["object"] for item in audit] == [f"log:api/{PAST}"]
    assert audit[0]["username"] == "test-admin"
    # The refused deletion of today's file left no audit row.
    assert all(today_name() not in (item["object"] or "") for item in audit)
