"""Changing the configuration from the console: validate a change, write `openpacs.toml`, and
say which keys changed and which the environment overrides.

The file is rewritten from the file's own values (never from the effective settings, which
carry the environment's overrides: a port set by OPENPACS_STORESCP__PORT must not end up in
the file) with the change on top, documented like `openpacs config default`, atomically (a
temp file renamed over it) with the previous file kept as `openpacs.toml.bak`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import PydanticBaseSettingsSource, TomlConfigSettingsSource
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from openpacs.config import (
    DEFAULT_CONFIG_FILE,
    Settings,
    render_toml,
)

SECRET = "********"
# Keys whose values the API never shows; sending SECRET back for them keeps the old value.
SECRET_KEYS = frozenset({"dicomweb.anonymize_key", "studies.deidentify_key"})


@dataclass
class SettingsReport:
    """What became of a change: keys in effect now, keys that wait for a restart, keys that
    could not be applied (with the reason; their old values stay in effect)."""

    applied: list[str] = field(default_factory=list)
    restart_required: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


class InvalidChange(ValueError):
    """The change does not validate; `errors` holds (dotted key, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{key}: {message}" for key, message in errors))
        self.errors = errors


def target_file(loaded_from: Path | None) -> Path:
    """Where changes are saved: the file the server read, else ./openpacs.toml."""
    return loaded_from if loaded_from is not None else DEFAULT_CONFIG_FILE


def file_settings(path: Path | None) -> Settings:
    """The settings as the file (and defaults) give them, without the environment."""
    if path is None or not path.is_file():
        return Settings.model_validate({})
    # As config.load binds its file: a subclass per call, here reading the file alone.
    bound = type(
        "FileSettings",
        (Settings,),
        {
            "model_config": {**Settings.model_config, "toml_file": path},
            "settings_customise_sources": classmethod(_file_only),
        },
    )
    return Settings.model_validate(bound().model_dump(mode="json"))


def _file_only(
    cls: type[Any],
    settings_cls: type[Any],
    init_settings: PydanticBaseSettingsSource,
    env_settings: PydanticBaseSettingsSource,
    dotenv_settings: PydanticBaseSettingsSource,
    file_secret_settings: PydanticBaseSettingsSource,
) -> tuple[PydanticBaseSettingsSource, ...]:
    return (init_settings, TomlConfigSettingsSource(settings_cls))


def apply_change(base: Settings, change: dict[str, Any]) -> Settings:
    """`base` with `change` ({section: {key: value}} or {array: [tables]}) on top, validated;
    InvalidChange names each bad key."""
    merged = base.model_dump(mode="json")
    errors: list[tuple[str, str]] = []
    for section, values in change.items():
        if section not in Settings.model_fields:
            errors.append((section, "no such section"))
        elif isinstance(values, dict) and isinstance(merged.get(section), dict):
            for key, value in values.items():
                if f"{section}.{key}" in SECRET_KEYS and value == SECRET:
                    continue  # the masked value sent back: unchanged
                merged[section][key] = value
        else:
            merged[section] = values
    if errors:
        raise InvalidChange(errors)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        raise InvalidChange(
            [(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]
        ) from exc


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """Dotted keys whose values differ (a whole array of tables counts as one key)."""
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    keys = []
    for section, value in after.items():
        if isinstance(value, dict):
            keys += [
                f"{section}.{key}"
                for key in value
                if value[key] != before.get(section, {}).get(key)
            ]
        elif value != before.get(section):
            keys.append(section)
    return keys


def environment_overrides(keys: list[str]) -> list[str]:
    """Which of `keys` an OPENPACS_<SECTION>__<KEY> variable sets (the file's value is then
    not the one that counts)."""
    prefix = "OPENPACS_"
    names = {name.upper() for name in os.environ if name.upper().startswith(prefix)}
    found = []
    for key in keys:
        section, _, field = key.partition(".")
        variable = f"{prefix}{section}__{field}".upper() if field else f"{prefix}{section}".upper()
        if variable in names:
            found.append(key)
    return found


def save(settings: Settings, path: Path) -> None:
    """Write `settings` to `path` documented, atomically, the old file kept as .bak."""
    text = render_toml(settings)
    temp = path.with_name(f".{path.name}.part")
    temp.write_text(text, encoding="utf-8")
    if path.exists():
        os.replace(path, path.with_name(path.name + ".bak"))
    os.replace(temp, path)


def masked(settings: Settings) -> dict[str, Any]:
    """The settings as JSON with secrets hidden (the database password, the anonymize key)."""
    data = settings.model_dump(mode="json")
    for key in SECRET_KEYS:
        section, _, field = key.partition(".")
        if data[section].get(field):
            data[section][field] = SECRET
    try:
        url = make_url(data["database"]["url"])
        data["database"]["url"] = url.render_as_string(hide_password=True)
    except ArgumentError:
        pass
    return data
