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
import re
import string
import typing
from enum import Enum, StrEnum
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
    "jobs",
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


class CallingAes(StrEnum):
    """Which calling AE titles a listener admits."""

    any = "any"
    registered = "registered"


class ListenerSettings(Section):
    """What every DICOM listener has; each listener's section sets its own defaults."""

    enabled: bool = Field(True, description="Run this listener; false: its port stays closed")
    ae_title: str = Field("OPENPACS", description="AE title peers call")
    host: str = Field("0.0.0.0", description="Address to listen on (0.0.0.0: every interface)")
    port: int = Field(104, ge=1, le=65535, description="TCP port for DICOM associations")
    require_called_ae: bool = Field(
        True, description="Reject associations whose Called AE title is not ae_title"
    )
    allowed_calling_aes: list[str] = Field(
        default_factory=list,
        description="Calling AE titles allowed to associate; empty list: any calling AE",
    )
    calling_aes: CallingAes = Field(
        CallingAes.any,
        description=(
            "any: every calling AE may associate (within allowed_calling_aes when set); "
            "registered: only nodes of the registry with this listener's permission (store "
            "for the Store SCP; find, move or get for the Q/R SCP; print for the Print SCP), "
            "others are rejected"
        ),
    )
    max_associations: int = Field(
        16, ge=1, description="Associations served at once; more are rejected as transient"
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


class StoreScpSettings(ListenerSettings):
    """Store SCP: the listener modalities send images to (C-ECHO, C-STORE)."""

    ae_title: str = Field("STORESCP", description="AE title modalities call")
    port: int = Field(11112, ge=1, le=65535, description="TCP port for DICOM associations")
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
    max_associations: int = Field(
        64, ge=1, description="Associations served at once; more are rejected as transient"
    )

    def receiver_processes(self) -> int:
        return self.workers or os.cpu_count() or 1


class QrScpSettings(ListenerSettings):
    """Query/Retrieve SCP: workstations query (C-FIND) and pull (C-MOVE, C-GET) from here."""

    ae_title: str = Field("QRSCP", description="AE title workstations call")
    port: int = Field(11114, ge=1, le=65535, description="TCP port for DICOM associations")
    dimse_timeout: float = Field(
        60, gt=0, description="Seconds to wait for a C-STORE response during C-MOVE and C-GET"
    )
    find_limit: int = Field(
        0,
        ge=0,
        description=(
            "Most answers one C-FIND returns; past it the search ends with status A700 "
            "(out of resources) naming the limit. 0: no limit"
        ),
    )


class WorklistSettings(ListenerSettings):
    """Modality Worklist SCP: modalities fetch scheduled exams (C-FIND) and report them (MPPS)."""

    ae_title: str = Field("WORKLISTSCP", description="AE title modalities call")
    port: int = Field(11113, ge=1, le=65535, description="TCP port for DICOM associations")
    include_finished: bool = Field(
        False,
        description=(
            "Also answer completed and discontinued items (a query naming "
            "ScheduledProcedureStepStatus gets them either way)"
        ),
    )
    find_limit: int = Field(
        0, ge=0, description="Most items one worklist query returns (0: no limit)"
    )
    complete_on_arrival: bool = Field(
        False,
        description=(
            "Complete an item when its study arrives (matched by Study Instance UID, else "
            "accession number): for modalities that send no MPPS"
        ),
    )


class PrintScpSettings(ListenerSettings):
    """Print SCP: modalities print films here; each film is kept (archive, PNG, attributes)."""

    ae_title: str = Field("PRINTSCP", description="AE title modalities print to")
    port: int = Field(11115, ge=1, le=65535, description="TCP port for DICOM associations")
    dpi: int = Field(
        150, ge=50, le=600, description="Resolution films are composed at, in dots per inch"
    )
    film_size: str = Field(
        "8INX10IN",
        description=(
            "FilmSizeID of film boxes that name none: 8INX10IN, 8_5INX11IN, 10INX12IN, "
            "10INX14IN, 11INX14IN, 11INX17IN, 14INX14IN, 14INX17IN, 24CMX24CM, 24CMX30CM, A4, A3"
        ),
    )
    film_orientation: str = Field(
        "PORTRAIT", description="FilmOrientation of film boxes that name none"
    )
    magnification: str = Field(
        "BILINEAR",
        description="MagnificationType when neither film box nor image box names one: "
        "REPLICATE, BILINEAR, CUBIC or NONE",
    )
    border_density: str = Field(
        "BLACK", description="BorderDensity by default: BLACK, WHITE or hundredths of OD"
    )
    empty_image_density: str = Field(
        "BLACK", description="EmptyImageDensity by default: BLACK, WHITE or hundredths of OD"
    )
    printer_name: str = Field("openpacs", description="PrinterName answered to N-GET Printer")
    max_image_box_bytes: int = Field(
        256 * 1024**2,
        ge=1024**2,
        description=(
            "Largest image box dataset (N-SET) accepted, in bytes; a larger one is read, "
            "dropped and answered 0213 (resource limitation), the session stays usable"
        ),
    )
    max_film_pixels: int = Field(
        40_000_000,
        ge=1_000_000,
        description="Most pixels one composed film may have (film size x dpi); more: 0213",
    )
    annotation_font: str = Field(
        "",
        description=(
            "Font file (.ttf/.ttc/.otf) annotation text is drawn in; empty: a Chinese font "
            "found by fontconfig or in the usual places (e.g. Debian's fonts-noto-cjk)"
        ),
    )

    @field_validator("annotation_font")
    @classmethod
    def _font_exists(cls, value: str) -> str:
        if value and not Path(value).expanduser().is_file():
            raise ValueError(f"no font file {value!r}: give a .ttf/.ttc/.otf path, or empty")
        return value

    @field_validator("film_size")
    @classmethod
    def _check_film_size(cls, value: str) -> str:
        sizes = ("8INX10IN", "8_5INX11IN", "10INX12IN", "10INX14IN", "11INX14IN", "11INX17IN",
                 "14INX14IN", "14INX17IN", "24CMX24CM", "24CMX30CM", "A4", "A3")  # fmt: skip
        if value.upper() not in sizes:
            raise ValueError(f"film_size {value!r}: use one of {', '.join(sizes)}")
        return value.upper()

    @field_validator("film_orientation")
    @classmethod
    def _check_orientation(cls, value: str) -> str:
        if value.upper() not in ("PORTRAIT", "LANDSCAPE"):
            raise ValueError(f"film_orientation {value!r}: use PORTRAIT or LANDSCAPE")
        return value.upper()

    @field_validator("magnification")
    @classmethod
    def _check_magnification(cls, value: str) -> str:
        if value.upper() not in ("REPLICATE", "BILINEAR", "CUBIC", "NONE"):
            raise ValueError(f"magnification {value!r}: use REPLICATE, BILINEAR, CUBIC or NONE")
        return value.upper()

    @field_validator("border_density", "empty_image_density")
    @classmethod
    def _check_density(cls, value: str) -> str:
        if value.upper() not in ("BLACK", "WHITE") and not value.isdigit():
            raise ValueError(f"density {value!r}: use BLACK, WHITE or hundredths of OD")
        return value.upper()


class NamesPolicy(StrEnum):
    auto = "auto"  # romanise only when the query's character set cannot hold the text
    romanise = "romanise"  # always answer in Latin letters
    native = "native"  # never romanise (answer in UTF-8 if the asked charset cannot hold it)


class WorklistStation(Section):
    """How one modality (by its AE title) gets worklist text."""

    ae_title: str = Field(description="The modality's calling AE title", examples=["CT01"])
    charset: str = Field(
        "",
        description=(
            "Answer in this SpecificCharacterSet whatever the query says, e.g. GB18030 or "
            "ISO_IR 192 ('': as the query asks)"
        ),
    )
    names: NamesPolicy = Field(
        NamesPolicy.auto,
        description="Chinese text in pinyin: auto (when the charset cannot hold it), "
        "romanise (always) or native (never)",
    )

    _check_ae = field_validator("ae_title")(_ae_title)


class HttpSettings(Section):
    """HTTP: DICOMweb, REST API, console."""

    host: str = Field("0.0.0.0", description="Address to listen on")
    port: int = Field(5000, ge=1, le=65535, description="TCP port for HTTP")


class DicomWebSettings(Section):
    """DICOMweb (QIDO-RS, WADO-RS, WADO-URI, STOW-RS) at /dicomweb and /dicom-web."""

    bulkdata_threshold: int = Field(
        1024,
        ge=0,
        description=(
            "Binary values (OB, OW, UN ...) longer than this many bytes appear in metadata "
            "as a BulkDataURI, shorter ones inline (base64)"
        ),
    )
    qido_max_results: int = Field(
        1000,
        ge=1,
        description=(
            "Most answers one QIDO-RS search returns (also its limit when the client sets "
            "none); a 'Warning: 299' header says when more exist"
        ),
    )
    stow_max_bytes: int = Field(
        4 * 1024**3, ge=1, description="Largest STOW-RS request body accepted, in bytes (413)"
    )
    metadata_cache_series: int = Field(
        256, ge=0, description="Series whose WADO-RS metadata is kept in memory; 0: no cache"
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call from a browser (CORS), e.g. https://viewer.site; "
        "empty list: CORS off; ['*']: any origin",
    )
    anonymize_key: str = Field(
        "",
        description=(
            "Secret (16+ characters) for WADO-URI anonymize=yes: same key, same pseudonyms "
            "and UIDs. Empty: a random key per run (pseudonyms change at restart)"
        ),
    )

    @field_validator("anonymize_key")
    @classmethod
    def _check_key(cls, key: str) -> str:
        return _check_secret("anonymize_key", key)


class CookieSecure(StrEnum):
    """When the session cookie carries the Secure attribute."""

    auto = "auto"
    true = "true"
    false = "false"


class AuthSettings(Section):
    """Sign-in and access for every HTTP route (`openpacs user passwd admin` resets a password)"""

    # Every route that gives out or takes in data (DICOMweb, WADO-URI, /api/*, OHIF) needs a
    # session, a personal API token or HTTP Basic; see openpacs.web.auth.

    anonymous_read: bool = Field(
        False,
        description=(
            "Let requests without credentials read (GET/HEAD: images, searches, lists); "
            "only for a closed network. Changes (POST, PUT, DELETE) still need a user"
        ),
    )
    session_hours: float = Field(
        12, gt=0, description="A signed-in session ends this many hours after sign-in"
    )
    idle_minutes: float = Field(60, gt=0, description="A session unused for this many minutes ends")
    max_failures: int = Field(
        5,
        ge=1,
        description=(
            "Failed sign-ins (form or HTTP Basic) within failure_window_minutes, per user "
            "name and per client address, before sign-in is locked"
        ),
    )
    failure_window_minutes: float = Field(
        15, gt=0, description="The window in which failed sign-ins are counted"
    )
    lockout_minutes: float = Field(
        15, gt=0, description="How long a user name or client address stays locked out"
    )
    min_password_length: int = Field(
        8, ge=4, le=128, description="Shortest password accepted when one is set or changed"
    )
    cookie_secure: CookieSecure = Field(
        CookieSecure.auto,
        description=(
            "Secure attribute of the session cookies: auto (when the request came over HTTPS, "
            "X-Forwarded-Proto: https included), true (always), false (never)"
        ),
    )

    @field_validator("cookie_secure", mode="before")
    @classmethod
    def _secure_as_bool(cls, value: object) -> object:
        # `cookie_secure = true` in TOML is a boolean, not the text "true".
        return str(value).lower() if isinstance(value, bool) else value


class MetricsSettings(Section):
    """Prometheus metrics at /metrics (DIMSE, HTTP and index latencies, objects, associations)"""

    public: bool = Field(
        False,
        description=(
            "Let /metrics answer without credentials (it holds no patient data; for a "
            "scraper on a closed network). false: a scraper sends a user's API token as "
            "Authorization: Bearer"
        ),
    )


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


class JobsSettings(Section):
    """Jobs: long work (send, retrieve, forward) queued in the index and run by worker threads."""

    workers: int = Field(
        2,
        ge=0,
        le=64,
        description=(
            "Worker threads running jobs; 0: run none in this process (another openpacs "
            "sharing the database does)"
        ),
    )
    max_attempts: int = Field(
        3, ge=1, description="Attempts a job gets when it fails for a reason that may pass"
    )
    backoff_seconds: float = Field(
        30,
        ge=0,
        description="Wait before the first retry; doubled after each failed attempt, at most 1 h",
    )
    lease_seconds: float = Field(
        60,
        gt=0,
        description=(
            "A running job whose server has not been heard of for this long is taken over "
            "by another (servers sharing one database)"
        ),
    )
    poll_seconds: float = Field(
        1, gt=0, description="How often idle workers look for jobs submitted elsewhere"
    )


class StudiesSettings(Section):
    """The Studies page's actions: downloads, de-identified export, Weasis, uploads."""

    deidentify_key: str = Field(
        "",
        description=(
            "Secret (16+ characters) keying the de-identified export's UIDs, pseudonyms and "
            "date shifts: same key, same results across exports. Empty: [dicomweb] "
            "anonymize_key, and when that is empty too a random key per run"
        ),
    )
    weasis_token_minutes: float = Field(
        30,
        gt=0,
        le=24 * 60,
        description=(
            "Lifetime of the read-only token a weasis:// launch link carries (Weasis fetches "
            "the manifest and the images with it, without the browser's cookie)"
        ),
    )
    upload_max_bytes: int = Field(
        2 * 1024**3,
        ge=1,
        description="Largest upload request (POST /api/uploads) accepted, in bytes (413)",
    )
    upload_max_files: int = Field(
        10_000,
        ge=1,
        description="Most files one upload may hold, ZIP members counted one by one (413)",
    )
    upload_max_file_bytes: int = Field(
        1024**3,
        ge=1,
        description=(
            "Largest single file (or ZIP member, unpacked) an upload may hold; a larger one "
            "is rejected with the reason, the others are stored"
        ),
    )

    @field_validator("deidentify_key")
    @classmethod
    def _check_key(cls, key: str) -> str:
        return _check_secret("deidentify_key", key)


def _check_secret(name: str, key: str) -> str:
    """A de-identification key: empty, or long enough to key an HMAC (16 bytes)."""
    if key and len(key.encode("utf-8")) < 16:
        raise ValueError(f"{name} needs at least 16 characters (or empty)")
    return key


class NodeUse(StrEnum):
    """What openpacs uses a remote node for."""

    store_target = "store_target"
    qr_source = "qr_source"
    move_destination = "move_destination"
    printer = "printer"


class Permission(Enum):
    """What a remote node may ask of openpacs. (Not a StrEnum: a member named `find` would
    shadow str.find.)"""

    echo = "echo"
    store = "store"
    find = "find"
    move = "move"
    get = "get"
    print = "print"  # film sessions on the Print SCP


# Names appear in URLs (/api/nodes/{name}): letters (any script), digits, '.', '_', '-'.
_NODE_NAME = re.compile(r"\w[\w.-]{0,63}")


class NodeSettings(Section):
    """A remote DICOM node: where it listens, what we use it for, what it may ask of us."""

    name: str = Field(
        description="Unique name, used in the API (/api/nodes/{name})", examples=["ORTHANC"]
    )
    ae_title: str = Field(description="The node's AE title", examples=["ORTHANC"])
    host: str = Field(description="Host name or IP address of the node", examples=["10.0.0.20"])
    port: int = Field(ge=1, le=65535, description="TCP port of the node", examples=[4242])
    tls: bool = Field(
        False, description="The node speaks DICOM over TLS (recorded; openpacs cannot use TLS yet)"
    )
    description: str = Field("", description="Free text for people (site, room, contact)")
    uses: list[NodeUse] = Field(
        default_factory=lambda: [
            NodeUse.store_target,
            NodeUse.qr_source,
            NodeUse.move_destination,
        ],
        description="What openpacs uses it for: " + ", ".join(NodeUse),
    )
    permissions: list[Permission] = Field(
        default_factory=lambda: list(Permission),
        description="What it may ask of openpacs: " + ", ".join(p.value for p in Permission),
    )

    _check_ae = field_validator("ae_title")(_ae_title)

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not _NODE_NAME.fullmatch(name):
            raise ValueError(
                f"node name {name!r}: use 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return name

    @field_validator("host")
    @classmethod
    def _check_host(cls, host: str) -> str:
        stripped = host.strip()
        if not stripped or len(stripped) > 255 or any(c.isspace() for c in stripped):
            raise ValueError(
                f"host {host!r}: give a host name or IP address (1-255 characters, no spaces)"
            )
        return stripped

    # Canonical order, no repeats: two spellings of one node compare equal.
    @field_validator("uses")
    @classmethod
    def _canonical_uses(cls, values: list[NodeUse]) -> list[NodeUse]:
        return [use for use in NodeUse if use in values]

    @field_validator("permissions")
    @classmethod
    def _canonical_permissions(cls, values: list[Permission]) -> list[Permission]:
        return [permission for permission in Permission if permission in values]


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
    qrscp: QrScpSettings = Field(default_factory=QrScpSettings)
    worklist: WorklistSettings = Field(default_factory=WorklistSettings)
    printscp: PrintScpSettings = Field(default_factory=PrintScpSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    dicomweb: DicomWebSettings = Field(default_factory=DicomWebSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    studies: StudiesSettings = Field(default_factory=StudiesSettings)
    worklist_stations: list[WorklistStation] = Field(
        default_factory=list,
        description=(
            "Per-modality worklist text rules, one [[worklist_stations]] table each (none by "
            "default: every modality gets what its query asks for, Chinese romanised when "
            "that cannot hold it)"
        ),
    )
    # An array of tables ([[nodes]]); rendered after every plain table.
    nodes: list[NodeSettings] = Field(
        default_factory=list,
        description=(
            "Remote DICOM nodes, one [[nodes]] table each (none by default). At start-up each "
            "is added to the node registry, or replaces the registered node of the same name "
            "(this file wins for the nodes it names; nodes added through the API are kept)"
        ),
    )

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
    if isinstance(value, Enum):
        value = value.value
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
        if _array_item(section) is not None:
            continue
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
    for name in Settings.model_fields:
        item = _array_item(name)
        if item is not None:
            lines += _render_array(name, item, getattr(settings, name), documented)
    return "\n".join(lines)


def _array_item(name: str) -> type[BaseModel] | None:
    """The table model of a top-level array of tables ([[name]]); None for a plain table."""
    annotation = Settings.model_fields[name].annotation
    if typing.get_origin(annotation) is not list:
        return None
    (item,) = typing.get_args(annotation)
    return item  # type: ignore[no-any-return]


def _render_array(
    name: str, model: type[BaseModel], items: list[BaseModel], documented: bool
) -> list[str]:
    lines: list[str] = []
    if documented:
        lines.append(f"# {Settings.model_fields[name].description}.")
        lines.append(f"# {(model.__doc__ or '').strip()} Keys:")
        example = [f"# [[{name}]]"]
        for key, info in model.model_fields.items():
            if info.is_required():
                lines.append(f"#   {key}: {info.description} (required)")
                example.append(f"# {key} = {_toml_value((info.examples or [''])[0])}")
            else:
                default = info.get_default(call_default_factory=True)
                lines.append(f"#   {key}: {info.description} (default: {_toml_value(default)})")
        lines += ["# For example:", *example, ""]
    for entry in items:
        lines.append(f"[[{name}]]")
        for key in type(entry).model_fields:
            lines.append(f"{key} = {_toml_value(getattr(entry, key))}")
        lines.append("")
    return lines
