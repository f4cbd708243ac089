"""Typed settings: one `openpacs.toml`, overridden by `OPENPACS_...` environment variables.

Every setting carries its default and a description; `openpacs config default` renders them as the
documented `openpacs.toml`, and a test checks that the shipped file says the same, so the
documentation cannot drift from the code.

Precedence, highest first: environment (`OPENPACS_STORESCP__PORT=11112`, sections joined by a
double underscore), the TOML file, the defaults below. The file is `openpacs.toml` in the working
directory unless `--config` or `OPENPACS_CONFIG` names another one.
"""

from __future__ import annotations

import os
import string
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_ENV = "OPENPACS_CONFIG"
DEFAULT_CONFIG_FILE = Path("openpacs.toml")

SERVICES = (
    "storescp",
    "worklist",
    "qrscp",
    "printscp",
    "storescu",
    "qrscu",
    "printscu",
    "wado",
    "api",
    "db",
)


LAYOUT_FIELDS = (
    "StudyDate",
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
)


class Section(BaseModel):
    """A table of openpacs.toml; a misspelt key is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class DuplicatePolicy(StrEnum):
    keep = "keep"
    overwrite = "overwrite"
    refuse = "refuse"


class Compression(StrEnum):
    """Lossless compression applied to uncompressed objects as they are stored."""

    none = "none"
    jpeg_ls_lossless = "jpeg-ls-lossless"
    j2k_lossless = "j2k-lossless"
    rle = "rle"
    jpeg_lossless = "jpeg-lossless"


def _ae_title(value: str) -> str:
    # PS3.5 AE VR: up to 16 characters of the default repertoire, no backslash or control codes.
    stripped = value.strip()
    if not 0 < len(stripped) <= 16 or not stripped.isascii() or "\\" in stripped:
        raise ValueError(f"AE title {value!r}: use 1-16 ASCII characters without a backslash")
    if any(ord(c) < 0x20 for c in stripped):
        raise ValueError(f"AE title {value!r} contains control characters")
    return stripped


class StoreScpSettings(Section):
    """Store SCP: the listener modalities send images to (C-ECHO, C-STORE)."""

    ae_title: str = Field("STORESCP", description="AE title modalities call")
    host: str = Field("0.0.0.0", description="Address to listen on (0.0.0.0: every interface)")
    port: int = Field(11112, ge=1, le=65535, description="TCP port for DICOM associations")
    require_called_ae: bool = Field(
        True, description="Reject associations whose Called AE title is not ae_title"
    )
    allowed_calling_aes: list[str] = Field(
        default_factory=list,
        description="Calling AE titles allowed to associate; empty list: any calling AE",
    )
    max_pdu: int = Field(
        0, ge=0, description="Maximum PDU length we receive, in bytes; 0: unlimited (fastest)"
    )
    workers: int = Field(
        0,
        ge=0,
        le=64,
        description=(
            "Receiver processes sharing the listening socket, so parallel associations use "
            "every core; 0: one per CPU core"
        ),
    )

    def receiver_processes(self) -> int:
        return self.workers or os.cpu_count() or 1

    max_associations: int = Field(
        64, ge=1, description="Associations served at once; more are rejected as transient"
    )
    acse_timeout: float = Field(30, gt=0, description="Seconds to wait for association messages")
    dimse_timeout: float = Field(60, gt=0, description="Seconds to wait for DIMSE messages")
    network_timeout: float = Field(60, gt=0, description="Seconds of silence before dropping")
    shutdown_grace: float = Field(
        10,
        ge=0,
        description="On stop, seconds associations in flight get to finish before being aborted",
    )

    _check_ae = field_validator("ae_title")(_ae_title)

    @field_validator("allowed_calling_aes")
    @classmethod
    def _check_calling(cls, values: list[str]) -> list[str]:
        return [_ae_title(v) for v in values]


class HttpSettings(Section):
    """HTTP: DICOMweb, REST API, console."""

    host: str = Field("0.0.0.0", description="Address to listen on")
    port: int = Field(5000, ge=1, le=65535, description="TCP port for HTTP")


class DatabaseSettings(Section):
    """The index database."""

    url: str = Field(
        "sqlite:///data/index.db",
        description=(
            "SQLAlchemy URL; a relative SQLite path is relative to the working directory. "
            "PostgreSQL: postgresql+psycopg://user:password@host/dbname"
        ),
    )
    pool_size: int = Field(10, ge=1, description="Connections kept open (PostgreSQL)")
    echo: bool = Field(False, description="Log every SQL statement (debugging only)")


class StorageSettings(Section):
    """Where and how DICOM files are kept."""

    root: Path = Field(Path("data/storage"), description="Folder that holds every stored file")
    layout: str = Field(
        "{StudyDate}/{StudyInstanceUID}/{SeriesInstanceUID}/{SOPInstanceUID}.dcm",
        description=(
            "Path of a file under root. Fields: StudyDate (YYYY/MM/DD, 'undated' when missing), "
            "PatientID (hashed), StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, SOPClassUID"
        ),
    )
    duplicates: DuplicatePolicy = Field(
        DuplicatePolicy.keep,
        description=(
            "A SOP Instance UID already stored: keep (keep the stored copy, answer success), "
            "overwrite (replace it), refuse (answer 0x0111)"
        ),
    )
    add_missing_charset: bool = Field(
        True,
        description=(
            "When an object carries non-ASCII text but no (or a non-standard) "
            "SpecificCharacterSet, write the detected one into the stored file"
        ),
    )
    fsync: bool = Field(
        False,
        description=(
            "fsync each file before answering success; survives power loss, costs speed "
            "(a killed process never loses acknowledged files either way)"
        ),
    )
    compression: Compression = Field(
        Compression.none,
        description=(
            "Compress uncompressed images as they arrive: none, jpeg-ls-lossless, "
            "j2k-lossless, rle, jpeg-lossless (JPEG Lossless SV1). Never lossy; objects "
            "already compressed, without pixels, over 256 MiB, or that the codec cannot take "
            "are stored as received. Costs CPU on every store"
        ),
    )

    @field_validator("layout")
    @classmethod
    def _check_layout(cls, layout: str) -> str:
        fields = {name for _, name, _, _ in string.Formatter().parse(layout) if name is not None}
        unknown = fields - set(LAYOUT_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown field(s) {sorted(unknown)}; known: {', '.join(LAYOUT_FIELDS)}"
            )
        if "SOPInstanceUID" not in fields:
            raise ValueError("layout must contain {SOPInstanceUID} so every file has its own path")
        if layout.startswith("/") or ".." in layout.split("/"):
            raise ValueError("layout is relative to storage.root and may not climb out of it")
        return layout


class LoggingSettings(Section):
    """Logs: one logger per service, each with its own level and daily file."""

    dir: Path = Field(Path("logs"), description="Folder for logs/<service>/<service>-YYYYMMDD.log")
    retention_days: int = Field(30, ge=1, description="Days of log files kept per service")
    console: bool = Field(True, description="Also print log lines to the terminal")
    console_level: str = Field("INFO", description="Lowest level printed to the terminal")
    levels: dict[str, str] = Field(
        default_factory=lambda: dict.fromkeys(SERVICES, "INFO"),
        description="Level per service: " + ", ".join(SERVICES),
    )

    @field_validator("levels")
    @classmethod
    def _check_levels(cls, levels: dict[str, str]) -> dict[str, str]:
        merged = dict.fromkeys(SERVICES, "INFO")
        for service, level in levels.items():
            if service not in SERVICES:
                raise ValueError(f"unknown service {service!r}; known: {', '.join(SERVICES)}")
            merged[service] = _check_level(level)
        return merged

    @field_validator("console_level")
    @classmethod
    def _check_console_level(cls, level: str) -> str:
        return _check_level(level)


def _check_level(level: str) -> str:
    upper = level.upper()
    if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError(f"log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return upper


class Settings(BaseSettings):
    """The whole configuration of one openpacs node."""

    model_config = SettingsConfigDict(
        env_prefix="OPENPACS_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    storescp: StoreScpSettings = Field(default_factory=StoreScpSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file is named in model_config by load(); without one, defaults and environment only.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


class ConfigError(Exception):
    """The configuration file or environment holds something unusable."""


def config_path(explicit: Path | None = None) -> Path | None:
    """The configuration file to read: --config, else $OPENPACS_CONFIG, else ./openpacs.toml."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigError(f"configuration file {explicit} does not exist")
        return explicit
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV}={from_env} names no file")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def load(explicit: Path | None = None, **overrides: Any) -> Settings:
    """Build the effective settings; errors name the key and the fix."""
    from pydantic import ValidationError

    path = config_path(explicit)
    # A subclass per load keeps the file choice out of process-global state.
    bound = type(
        "Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": path}}
    )
    try:
        return bound(**overrides)  # type: ignore[no-any-return]
    except ValidationError as exc:
        where = f" (file {path})" if path else ""
        lines = [f"invalid configuration{where}:"]
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {key}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read configuration {path}: {exc}") from exc


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_toml(settings: Settings, *, documented: bool = True) -> str:
    """The settings as an `openpacs.toml`; documented: each key with its meaning and default."""
    lines: list[str] = []
    if documented:
        lines += [
            "# openpacs configuration. Every key is shown with its default value.",
            "# Environment variables override this file: OPENPACS_<SECTION>__<KEY>,",
            "# e.g. OPENPACS_STORESCP__PORT=104 or OPENPACS_DATABASE__URL=postgresql+psycopg://...",
            "",
        ]
    for section in Settings.model_fields:
        model: BaseModel = getattr(settings, section)
        if documented:
            lines.append(f"# {(type(model).__doc__ or '').strip()}")
        lines.append(f"[{section}]")
        for key, info in type(model).model_fields.items():
            value = getattr(model, key)
            if documented:
                default = info.get_default(call_default_factory=True)
                lines.append(f"# {info.description} (default: {_toml_value(default)})")
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)
