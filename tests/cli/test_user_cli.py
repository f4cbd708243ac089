"""`openpacs user`: list, add, passwd, delete on the server's index (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from openpacs import config
from openpacs.accounts import passwords, users
from openpacs.archive.core import open_core
from openpacs.config import Settings

WIDE = {"COLUMNS": "250"}
runner = CliRunner()


def invoke(*args: str, input: str | None = None) -> Result:
    from openpacs.cli import app

    return runner.invoke(app, list(args), input=input, env=WIDE)


@pytest.fixture
def cli_settings(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(config.CONFIG_ENV, raising=False)
    monkeypatch.setenv("OPENPACS_STORAGE__ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("OPENPACS_DATABASE__URL", database_url)
    monkeypatch.setenv("OPENPACS_LOGGING__DIR", str(tmp_path / "logs"))
    return config.load()


def password_of(settings: Settings, username: str) -> str:
    core = open_core(settings)
    try:
        with core.sessions() as session:
            return users.get(session, username).password_hash
    finally:
        core.close()


def test_first_use_shows_the_first_admin(cli_settings: Settings) -> None:
    result = invoke("user", "list")
    assert result.exit_code == 0, result.output
    assert "admin" in result.stdout and "must change password" in result.stdout
    assert passwords.verify(password_of(cli_settings, "admin"), "admin")


def test_add_passwd_delete(cli_settings: Settings) -> None:
    added = invoke("user", "add", "王医生", "--role", "operator", "--password", "long-enough-1")
    assert added.exit_code == 0, added.output
    assert "user '王医生' added as operator" in added.stdout
    again = invoke("user", "add", "王医生", "--password", "long-enough-1")
    assert again.exit_code == 1 and "exists already" in again.stderr
    weak = invoke("user", "add", "nurse", "--password", "short")
    assert weak.exit_code == 1 and "at least 8 characters" in weak.stderr
    role = invoke("user", "add", "nurse", "--role", "chief", "--password", "long-enough-1")
    assert role.exit_code == 2 and "admin, operator or viewer" in role.stderr

    # A forgotten admin password, reset on the server (typed twice, hidden).
    reset = invoke("user", "passwd", "admin", input="new-admin-password\nnew-admin-password\n")
    assert reset.exit_code == 0, reset.output
    assert passwords.verify(password_of(cli_settings, "admin"), "new-admin-password")
    listed = invoke("user", "list").stdout
    assert "王医生" in listed and "operator" in listed
    same = invoke("user", "passwd", "admin", "--password", "new-admin-password")
    assert same.exit_code == 1 and "must differ" in same.stderr
    missing = invoke("user", "passwd", "ghost", "--password", "whatever-123")
    assert missing.exit_code == 1 and "no user 'ghost'" in missing.stderr

    last = invoke("user", "delete", "admin", "--yes")
    assert last.exit_code == 1 and "last enabled admin" in last.stderr
    asked = invoke("user", "delete", "王医生", input="n\n")
    assert asked.exit_code == 1 and "王医生" in invoke("user", "list").stdout
    assert invoke("user", "delete", "王医生", "--yes").exit_code == 0
    assert "王医生" not in invoke("user", "list").stdout
