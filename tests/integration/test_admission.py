"""`calling_aes = "registered"`: only registered nodes with the listener's permission associate;
checked with dcmtk's echoscu (Store SCP, Print SCP) and findscu (Q/R SCP)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from openpacs.archive.core import Core, open_core
from openpacs.config import NodeSettings, Permission
from openpacs.dimse.engine import Listener
from openpacs.dimse.print_scp import make_print_listener
from openpacs.dimse.qr_scp import make_qr_listener
from openpacs.nodes import registry
from openpacs.printing.films import FilmKeeper
from openpacs.server import start_store
from tests.conftest import make_settings, need
from tests.integration.conftest import run

pytestmark = pytest.mark.peer


@pytest.fixture
def guarded(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[Core, Listener, Listener]]:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        storescp={"calling_aes": "registered"},
        qrscp={"calling_aes": "registered"},
    )
    core = open_core(settings)
    store = start_store(core)
    nowhere: dict[str, tuple[str, int]] = {}
    qr = make_qr_listener(settings.qrscp, core.sessions, core.storage, nowhere.get)
    qr.start()
    try:
        yield core, store, qr
    finally:
        qr.stop(grace=2)
        store.stop(grace=2)
        core.close()


def _register(core: Core, ae_title: str, *permissions: Permission) -> None:
    spec = NodeSettings(
        name=ae_title.lower(),
        ae_title=ae_title,
        host="127.0.0.1",
        port=104,
        permissions=list(permissions),
    )
    with core.writing() as session:
        registry.create(session, spec)


def _echo(
    listener: Listener, calling: str, called: str = "STORESCP"
) -> subprocess.CompletedProcess[str]:
    return run(
        need("echoscu"), "-aet", calling, "-aec", called, "127.0.0.1", str(listener.port),
        check=False,
    )  # fmt: skip


def _find(listener: Listener, calling: str) -> subprocess.CompletedProcess[str]:
    return run(
        need("findscu"), "-S", "-aet", calling, "-aec", "QRSCP", "-k", "QueryRetrieveLevel=STUDY",
        "-k", "StudyInstanceUID", "127.0.0.1", str(listener.port), check=False,
    )  # fmt: skip


def _rejected(result: subprocess.CompletedProcess[str]) -> bool:
    return "Calling AE Title Not Recognized" in result.stdout + result.stderr


def _accepted(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 0 and not _rejected(result)


def test_unregistered_callers_are_rejected(guarded: tuple[Core, Listener, Listener]) -> None:
    _, store, qr = guarded
    assert _rejected(_echo(store, "STRANGER"))
    assert _rejected(_find(qr, "STRANGER"))


def test_registered_nodes_need_the_listeners_permission(
    guarded: tuple[Core, Listener, Listener],
) -> None:
    core, store, qr = guarded
    _register(core, "MODALITY", Permission.store)
    _register(core, "VIEWER", Permission.find)
    assert _accepted(_echo(store, "MODALITY"))
    assert _rejected(_echo(store, "VIEWER"))
    assert _accepted(_find(qr, "VIEWER"))
    assert _rejected(_find(qr, "MODALITY"))


def test_each_request_needs_its_own_permission(guarded: tuple[Core, Listener, Listener]) -> None:
    """A node admitted for C-FIND only may query, but its C-MOVE and C-GET are refused with
    0x0124 (not authorized) and a reason."""
    core, _, qr = guarded
    _register(core, "VIEWER", Permission.find)
    address = ("127.0.0.1", str(qr.port))
    common = ("-S", "-aet", "VIEWER", "-aec", "QRSCP", "-k", "StudyInstanceUID=1.2.3")
    moved = run(need("movescu"), *common, "-aem", "VIEWER", *address, check=False)
    got = run(need("getscu"), *common, *address, check=False)
    for result in (moved, got):
        output = result.stdout + result.stderr
        assert "0x124" in output and not _rejected(result), output
    assert _accepted(_find(qr, "VIEWER"))


def test_print_scp_admits_nodes_with_the_print_permission(tmp_path: Path, sqlite_url: str) -> None:
    """A modality registered to store may not print: printing is its own permission."""
    settings = make_settings(tmp_path, sqlite_url, printscp={"calling_aes": "registered"})
    core = open_core(settings)
    printer = make_print_listener(
        settings.printscp, FilmKeeper(core, settings.printscp), core.sessions
    )
    printer.start()
    try:
        _register(core, "CT1", Permission.store)
        _register(core, "CR1", Permission.print)
        assert _rejected(_echo(printer, "STRANGER", "PRINTSCP"))
        assert _rejected(_echo(printer, "CT1", "PRINTSCP"))
        assert _accepted(_echo(printer, "CR1", "PRINTSCP"))
    finally:
        printer.stop(grace=2)
        core.close()
