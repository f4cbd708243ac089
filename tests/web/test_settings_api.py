"""/api/settings: the Settings page's API against a server's real listeners: a change is
validated, saved to openpacs.toml and taken live (listeners restart in place), checked with
dcmtk's echoscu; a port in use keeps the old listener."""

from __future__ import annotations

import dataclasses
import logging
import socket
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from openpacs import config_edit
from openpacs.accounts import Role
from openpacs.archive.core import Core
from openpacs.logs import get_logger
from openpacs.server import Listeners
from openpacs.web.api.deps import Services
from openpacs.web.app import create_app
from tests.conftest import free_port, need
from tests.web.client import Client


@pytest.fixture
def running(core: Core, tmp_path: Path) -> Iterator[tuple[Client, Listeners, Path]]:
    """An app whose settings apply to listeners started as `openpacs serve` starts them."""
    listeners = Listeners(core, None, 0)
    listeners.start_all()
    target = tmp_path / "openpacs.toml"
    config_edit.save(core.settings, target)
    services = Services(apply_settings=listeners.apply, settings_file=target)
    try:
        yield Client(create_app(core, services)), listeners, target
    finally:
        listeners.stop_all()


def _echo(port: int, called: str) -> bool:
    result = subprocess.run(
        [need("echoscu"), "-aec", called, "127.0.0.1", str(port)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    return result.returncode == 0


def _closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_a_listener_takes_a_new_ae_title_and_port_in_place(
    running: tuple[Client, Listeners, Path], core: Core
) -> None:
    client, listeners, target = running
    old_port, new_port = core.settings.qrscp.port, free_port()
    store_before = listeners.running["storescp"]
    answer = client.put("/api/settings", json={"qrscp": {"ae_title": "PACS_QR", "port": new_port}})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body["changed"]) == {"qrscp.ae_title", "qrscp.port"}
    assert set(body["applied"]) == {"qrscp.ae_title", "qrscp.port"} and not body["failed"]
    assert _echo(new_port, "PACS_QR") and _closed(old_port)
    assert listeners.running["storescp"] is store_before  # the others kept running
    saved = tomllib.loads(target.read_text())
    assert saved["qrscp"]["port"] == new_port and saved["qrscp"]["ae_title"] == "PACS_QR"
    assert target.with_name("openpacs.toml.bak").is_file()
    shown = client.get("/api/settings").json()
    assert shown["settings"]["qrscp"]["port"] == new_port


def test_a_port_in_use_keeps_the_old_listener(
    running: tuple[Client, Listeners, Path], core: Core
) -> None:
    client, _, _ = running
    old_port = core.settings.worklist.port
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = taken.getsockname()[1]
        answer = client.put("/api/settings", json={"worklist": {"port": busy}})
    assert answer.status_code == 200, answer.text
    (failure,) = answer.json()["failed"]
    assert failure["key"] == "worklist.port" and "kept the old ones" in failure["reason"]
    assert _echo(old_port, core.settings.worklist.ae_title)
    assert core.settings.worklist.port == old_port


def test_a_listener_is_switched_off_and_on(
    running: tuple[Client, Listeners, Path], core: Core
) -> None:
    client, listeners, _ = running
    port, ae = core.settings.printscp.port, core.settings.printscp.ae_title
    assert client.put("/api/settings", json={"printscp": {"enabled": False}}).status_code == 200
    assert _closed(port) and "printscp" not in listeners.running
    assert client.put("/api/settings", json={"printscp": {"enabled": True}}).status_code == 200
    assert _echo(port, ae)


def test_log_levels_apply_at_once_and_the_rest_waits_for_a_restart(
    running: tuple[Client, Listeners, Path],
) -> None:
    client, _, _ = running
    answer = client.put(
        "/api/settings",
        json={"logging": {"levels": {"qrscp": "DEBUG"}}, "http": {"port": free_port()}},
    )
    body = answer.json()
    assert body["applied"] == ["logging.levels"] and body["restart_required"] == ["http.port"]
    assert get_logger("qrscp").level == logging.DEBUG


def test_invalid_values_are_named_and_nothing_is_saved(
    running: tuple[Client, Listeners, Path],
) -> None:
    client, _, target = running
    before = target.read_text()
    answer = client.put(
        "/api/settings", json={"qrscp": {"port": 70000, "ae_title": "TOO_LONG_AE_TITLE_X"}}
    )
    assert answer.status_code == 422
    keys = {error["key"] for error in answer.json()["detail"]}
    assert keys == {"qrscp.port", "qrscp.ae_title"}
    unknown = client.put("/api/settings", json={"nosuch": {"a": 1}})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["key"] == "nosuch"
    assert target.read_text() == before


def test_only_admins_see_or_change_settings_and_secrets_stay_hidden(
    core: Core, tmp_path: Path
) -> None:
    key, other = "k" * 20, "d" * 24
    with_secret = dataclasses.replace(
        Services(), settings_file=tmp_path / "openpacs.toml", apply_settings=None
    )
    core.settings = core.settings.model_copy(
        update={
            "dicomweb": core.settings.dicomweb.model_copy(update={"anonymize_key": key}),
            "studies": core.settings.studies.model_copy(update={"deidentify_key": other}),
        }
    )
    app = create_app(core, with_secret)
    for role in (Role.viewer, Role.operator):
        assert Client(app, role=role).get("/api/settings").status_code == 403
        assert Client(app, role=role).put("/api/settings", json={}).status_code == 403
    shown = Client(app).get("/api/settings").json()
    assert shown["settings"]["dicomweb"]["anonymize_key"] == config_edit.SECRET
    assert shown["settings"]["studies"]["deidentify_key"] == config_edit.SECRET
    assert key not in str(shown) and other not in str(shown)
    # Sent back masked, the key keeps its value; without a server to apply to, all waits.
    config_edit.save(core.settings, tmp_path / "openpacs.toml")
    answer = Client(app).put(
        "/api/settings",
        json={
            "dicomweb": {"anonymize_key": config_edit.SECRET, "stow_max_bytes": 1000},
            "studies": {"deidentify_key": config_edit.SECRET},
        },
    )
    assert answer.json()["restart_required"] == ["dicomweb.stow_max_bytes"]
    saved = tomllib.loads((tmp_path / "openpacs.toml").read_text())
    assert saved["dicomweb"]["anonymize_key"] == key
    assert saved["studies"]["deidentify_key"] == other
