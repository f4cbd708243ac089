from __future__ import annotations

from pathlib import Path

import pytest

from openpacs import config

REPO = Path(__file__).resolve().parents[2]


def test_shipped_openpacs_toml_documents_every_key_at_its_default() -> None:
    # The file users read is generated from the settings model; regenerate it with
    # `openpacs config default > openpacs.toml` when a setting changes.
    expected = config.render_toml(config.Settings.model_construct())
    assert (REPO / "openpacs.toml").read_text(encoding="utf-8").strip() == expected.strip()


def test_every_setting_has_a_description() -> None:
    for section in config.Settings.model_fields:
        model = getattr(config.Settings.model_construct(), section)
        for key, info in type(model).model_fields.items():
            assert info.description, f"{section}.{key} has no description"


def test_file_then_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "site.toml"
    path.write_text('[storescp]\nae_title = "SITEAE"\nport = 104\n', encoding="utf-8")
    monkeypatch.setenv("OPENPACS_STORESCP__PORT", "2104")
    settings = config.load(path)
    assert settings.storescp.ae_title == "SITEAE"
    assert settings.storescp.port == 2104


def test_config_env_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "other.toml"
    path.write_text("[http]\nport = 8042\n", encoding="utf-8")
    monkeypatch.setenv(config.CONFIG_ENV, str(path))
    assert config.load().http.port == 8042


def test_invalid_value_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[storescp]\nae_title = "A_TITLE_THAT_IS_TOO_LONG"\n', encoding="utf-8")
    with pytest.raises(config.ConfigError, match=r"storescp\.ae_title"):
        config.load(path)


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('[storage]\nroot_dir = "x"\n', encoding="utf-8")
    with pytest.raises(config.ConfigError, match="root_dir"):
        config.load(path)


def test_missing_named_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(config.ConfigError, match="does not exist"):
        config.load(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "layout",
    ["{StudyDate}/{Nope}/{SOPInstanceUID}", "{StudyInstanceUID}.dcm", "../{SOPInstanceUID}.dcm"],
)
def test_bad_layouts_are_refused(layout: str) -> None:
    with pytest.raises(ValueError):
        config.StorageSettings(layout=layout)


def test_log_levels_per_service() -> None:
    settings = config.LoggingSettings(levels={"storescp": "debug"})
    assert settings.levels["storescp"] == "DEBUG"
    assert settings.levels["api"] == "INFO"
    with pytest.raises(ValueError, match="unknown service"):
        config.LoggingSettings(levels={"nosuch": "INFO"})
