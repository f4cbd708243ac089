"""`openpacs print`: images from disk printed on dcmtk's reference Print SCP (dcmprscp)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from typer.testing import CliRunner, Result

from openpacs.cli import app
from tests.conftest import free_port
from tests.generators import ct_series
from tests.integration.print_peers import DcmPrScp

runner = CliRunner()


def invoke(tmp_path: Path, *args: str) -> Result:
    env = {"COLUMNS": "250", "OPENPACS_LOGGING__DIR": str(tmp_path / "logs")}
    return runner.invoke(app, list(args), env=env)


@pytest.mark.peer
def test_three_images_on_a_2x2_film(tmp_path: Path) -> None:
    images = ct_series(tmp_path / "ct", 3, rows=64, columns=64)
    with DcmPrScp(tmp_path / "printer") as printer:
        peer = f"{printer.ae_title}@127.0.0.1:{printer.port}"
        result = invoke(tmp_path, "print", peer, *map(str, images), "--layout", "STANDARD\\2,2")
        hardcopies = printer.hardcopies()
    assert result.exit_code == 0, result.output
    assert "printed 1 film(s) of 3 image(s)" in result.output
    (hardcopy,) = hardcopies
    film = dcmread(hardcopy)
    assert (film.Columns, film.Rows) == (1200, 1500)  # 8INX10IN at 150 dpi
    pixels = film.pixel_array
    assert pixels[1100, 900] == 0  # the fourth box is empty: black
    assert pixels[375, 300] > 0  # the first image's phantom


def test_a_malformed_layout_exits_2_naming_it(tmp_path: Path) -> None:
    (image,) = ct_series(tmp_path / "ct", 1, rows=16, columns=16)
    result = invoke(tmp_path, "print", "P@127.0.0.1:104", str(image), "--layout", "SLIDE")
    assert result.exit_code == 2 and "ImageDisplayFormat" in result.output


def test_a_closed_port_exits_1(tmp_path: Path) -> None:
    (image,) = ct_series(tmp_path / "ct", 1, rows=16, columns=16)
    result = invoke(tmp_path, "print", f"P@127.0.0.1:{free_port()}", str(image), "--timeout", "5")
    assert result.exit_code == 1 and "nothing printed" in result.output
