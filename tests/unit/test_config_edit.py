"""config_edit: a change validated, saved from the file's own values, the environment apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from openpacs import config, config_edit


def test_the_file_keeps_its_values_not_the_environments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "openpacs.toml"
    target.write_text('[qrscp]\nae_title = "FROM_FILE"\n')
    monkeypatch.setenv("OPENPACS_STORESCP__PORT", "2104")
    base = config_edit.file_settings(target)
    assert base.qrscp.ae_title == "FROM_FILE" and base.storescp.port == 11112
    changed = config_edit.apply_change(base, {"qrscp": {"port": 2000}})
    assert config_edit.changed_keys(base, changed) == ["qrscp.port"]
    config_edit.save(changed, target)
    assert (tmp_path / "openpacs.toml.bak").read_text() == '[qrscp]\nae_title = "FROM_FILE"\n'
    effective = config.load(target)
    assert (effective.qrscp.port, effective.qrscp.ae_title) == (2000, "FROM_FILE")
    assert effective.storescp.port == 2104  # the environment still wins, and is not saved
    assert "port = 11112" in target.read_text().split("[storescp]")[1].split("[")[0]
    assert config_edit.environment_overrides(["storescp.port", "qrscp.port"]) == ["storescp.port"]


def test_bad_values_are_named_by_key() -> None:
    base = config.Settings.model_validate({})
    with pytest.raises(config_edit.InvalidChange) as caught:
        config_edit.apply_change(
            base, {"storage": {"duplicates": "sometimes"}, "logging": {"levels": {"x": "INFO"}}}
        )
    keys = [key for key, _ in caught.value.errors]
    assert keys == ["storage.duplicates", "logging.levels"]


def test_secrets_are_masked_and_kept_when_sent_back_masked() -> None:
    base = config_edit.apply_change(
        config.Settings.model_validate({}),
        {
            "dicomweb": {"anonymize_key": "s" * 20},
            "database": {"url": "postgresql+psycopg://pacs:hunter2@db/pacs"},
        },
    )
    shown = config_edit.masked(base)
    assert shown["dicomweb"]["anonymize_key"] == config_edit.SECRET
    assert "hunter2" not in shown["database"]["url"]
    again = config_edit.apply_change(base, {"dicomweb": {"anonymize_key": config_edit.SECRET}})
    assert again.dicomweb.anonymize_key == "s" * 20


def test_the_shipped_postgresql_example_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "deploy" / "openpacs.postgresql.toml"
    settings = config.load(example)
    assert settings.database.url.startswith("postgresql+psycopg://")
