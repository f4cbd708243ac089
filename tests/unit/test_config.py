from __future__ import annotations

import tomllib
import typing
from pathlib import Path

import pytest

from openpacs import config

REPO = Path(__file__).resolve().parents[2]


def test_shipped_openpacs_toml_documents_every_key_at_its_default() -> None:
    # The file users read is generated from the settings model; regenerate it with
    # `openpacs config default > openpacs.toml` when a setting changes.
    expected = config.render_toml(config.Settings.model_construct())
    assert (REPO / "openpacs.toml").read_text(encoding="utf-8").strip() == expected.strip()
    # And it is TOML: a section's docstring spilling onto a second line once made it unreadable
    # for every command that loads the configuration.
    assert set(tomllib.loads(expected)) >= {"storescp", "printscp", "worklist"}


def test_every_setting_has_a_description() -> None:
    for section, field in config.Settings.model_fields.items():
        if typing.get_origin(field.annotation) is list:  # an array of tables: [[nodes]]
            assert field.description, f"[[{section}]] has no description"
            (model,) = typing.get_args(field.annotation)
        else:
            model = type(getattr(config.Settings.model_construct(), section))
        for key, info in model.model_fields.items():
            assert info.description, f"{section}.{key} has no description"


def test_nodes_are_an_array_of_tables_that_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "nodes.toml"
    path.write_text(
        '[[nodes]]\nname = "orthanc"\nae_title = "ORTHANC"\nhost = "10.0.0.2"\nport = 4242\n'
        '[[nodes]]\nname = "影像科"\nae_title = "CT1"\nhost = "ct1"\nport = 104\n'
        'permissions = ["echo", "echo"]\n',
        encoding="utf-8",
    )
    settings = config.load(path)
    assert [n.name for n in settings.nodes] == ["orthanc", "影像科"]
    assert settings.nodes[0].uses == ["store_target", "qr_source", "move_destination"]
    assert settings.nodes[1].permissions == [config.Permission.echo]
    again = tmp_path / "again.toml"
    again.write_text(config.render_toml(settings, documented=False), encoding="utf-8")
    assert config.load(again).model_dump() == settings.model_dump()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ae_title", '"A_TITLE_THAT_IS_TOO_LONG"'),
        ("ae_title", '"BACK\\\\SLASH"'),
        ("port", "0"),
        ("port", "70000"),
        ("host", '" "'),
        ("name", '"a/b"'),
        ("uses", '["archive"]'),
    ],
)
def test_invalid_node_names_the_key(tmp_path: Path, key: str, value: str) -> None:
    fields = {"name": '"pacs"', "ae_title": '"PACS"', "host": '"h"', "port": "104", key: value}
    path = tmp_path / "bad.toml"
    body = "".join(f"{k} = {v}\n" for k, v in fields.items())
    path.write_text("[[nodes]]\n" + body, encoding="utf-8")
    with pytest.raises(config.ConfigError, match=rf"nodes\.0\.{key}"):
        config.load(path)


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
