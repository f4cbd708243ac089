"""The wheel a site installs: `python -m build` makes the sdist and, from it, a wheel with the
web console built in; installed into a fresh virtual environment and started with no Node.js on
PATH, it takes a study from dcmtk `storescu` and serves the console, which shows that study in
headless Chromium. OHIF is not in the wheel (`openpacs ohif install` fetches it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom import dcmread

from tests.conftest import need
from tests.e2e.serve import require_built, screenshot, serve, signed_in_page, store_files
from tests.generators import ct_series

pytestmark = [pytest.mark.peer, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "wheel-operator", "wheel-operator-password"


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with only the built wheel (and what it depends on)."""
    require_built(shutil.which("npm") is not None, "building the wheel needs npm (Node.js 20.19+)")
    work = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(ROOT)], work)
    wheels = list((work / "dist").glob("openpacs-*.whl"))
    assert len(wheels) == 1 and list((work / "dist").glob("openpacs-*.tar.gz"))
    _run([sys.executable, "-m", "venv", str(work / "venv")], work)
    _run([str(work / "venv" / "bin" / "pip"), "install", "--quiet", str(wheels[0])], work)
    return work / "venv"


def test_the_wheel_serves_the_console_without_node(
    installed: Path, tmp_path: Path, browser: object
) -> None:
    from playwright.sync_api import Page, expect

    packaged = list(installed.glob("lib/python3*/site-packages/openpacs/web/static"))
    assert [p.name for p in packaged[0].iterdir()] == ["console"]  # built in; OHIF is not
    files = ct_series(tmp_path / "ct", 2, rows=32, columns=32, patient_id="WHEEL1", seed=3)
    only_the_venv = str(installed / "bin")  # no node, no npm
    openpacs = installed / "bin" / "openpacs"
    users = [(USER, "operator", PASSWORD)]
    with serve(tmp_path, users, openpacs=openpacs, path=only_the_venv) as server:
        store_files(need("storescu"), server, files)
        page = signed_in_page(browser, server.base, USER, PASSWORD)
        assert isinstance(page, Page)
        page.goto(server.base + "/studies", timeout=60_000)
        patient = str(dcmread(files[0], stop_before_pixels=True).PatientName).split("^")[0]
        expect(page.get_by_text("WHEEL1")).to_be_visible(timeout=30_000)
        expect(page.get_by_text(patient, exact=False).first).to_be_visible()
        screenshot(page, "wheel-console")
