"""Shared fixtures: settings on temporary folders, the index on SQLite and PostgreSQL, peers.

Peers (dcmtk, dicom3tools) are real programs. Without one, its tests skip and say what to install;
with OPENPACS_REQUIRE_PEERS=1 (set by .ci/run) a missing peer fails the test instead.
PostgreSQL runs when OPENPACS_TEST_DATABASE_URL names a server; each test gets its own schema.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from openpacs.archive.core import Core, open_core
from openpacs.config import Settings

PG_ENV = "OPENPACS_TEST_DATABASE_URL"
REQUIRE_PEERS = os.environ.get("OPENPACS_REQUIRE_PEERS") == "1"

PEER_PACKAGES = {
    "echoscu": "dcmtk",
    "storescp": "dcmtk",
    "findscu": "dcmtk",
    "movescu": "dcmtk",
    "getscu": "dcmtk",
    "Orthanc": "orthanc",
    "storescu": "dcmtk",
    "dcmsend": "dcmtk",
    "dcmodify": "dcmtk",
    "dcmcjpeg": "dcmtk",
    "dump2dcm": "dcmtk",
    "dcmj2pnm": "dcmtk",
    "dcmdjpeg": "dcmtk",
    "dcmdjpls": "dcmtk",
    "dcmdrle": "dcmtk",
    "dcmdump": "dcmtk",
    "dciodvfy": "dicom3tools",
    "gdcmconv": "libgdcm-tools",
    "chromium": "chromium",
    "dcmpsprt": "dcmtk",
    "dcmprscu": "dcmtk",
    "dcmprscp": "dcmtk",
    "nginx": "nginx",
}


def need(tool: str) -> str:
    """The path of a peer program, or skip (fail when peers are required) naming the package."""
    found = shutil.which(tool)
    if found:
        return found
    package = PEER_PACKAGES.get(tool, tool)
    message = f"{tool} not found: install it with `apt-get install {package}`"
    if REQUIRE_PEERS:
        pytest.fail(message + " (OPENPACS_REQUIRE_PEERS=1)")
    pytest.skip(message)


def need_chinese_font() -> Path:
    """A font with Chinese glyphs (what film annotations are drawn in), or skip / fail."""
    from openpacs.printing import fonts

    found = fonts.chinese_font()
    if found is not None:
        return found
    message = "no Chinese font: install one with `apt-get install fonts-wqy-microhei`"
    if REQUIRE_PEERS:
        pytest.fail(message + " (OPENPACS_REQUIRE_PEERS=1)")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@contextlib.contextmanager
def index_database(kind: str, folder: Path) -> Iterator[str]:
    """An index database URL: a SQLite file in `folder`, or a fresh PostgreSQL schema (dropped
    afterwards) when OPENPACS_TEST_DATABASE_URL names a server; skips PostgreSQL otherwise."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'index.db'}"
        return
    base = _postgres_url()
    if base is None:
        pytest.skip(f"PostgreSQL index tests need {PG_ENV}=postgresql+psycopg://...")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The index database: a SQLite file, and a fresh PostgreSQL schema when one is configured."""
    with index_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'index.db'}"


def make_settings(tmp_path: Path, database_url: str, **sections: dict[str, object]) -> Settings:
    data: dict[str, dict[str, object]] = {
        "storescp": {"port": free_port(), "host": "127.0.0.1"},
        "qrscp": {"port": free_port(), "host": "127.0.0.1"},
        "worklist": {"port": free_port(), "host": "127.0.0.1"},
        "printscp": {"port": free_port(), "host": "127.0.0.1"},
        "http": {"port": free_port(), "host": "127.0.0.1"},
        "database": {"url": database_url},
        "storage": {"root": str(tmp_path / "storage")},
        "logging": {"dir": str(tmp_path / "logs"), "console": False},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return Settings.model_validate(data)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def core(settings: Settings) -> Iterator[Core]:
    opened = open_core(settings)
    try:
        yield opened
    finally:
        opened.close()


def sample(name: str) -> Path:
    """A pydicom-data file by name (never a glob: a missing name makes pydicom go online)."""
    from pydicom.data import get_testdata_file

    found = get_testdata_file(name)
    if not isinstance(found, str):
        raise FileNotFoundError(f"pydicom-data has no {name}; install pydicom-data")
    return Path(found)
