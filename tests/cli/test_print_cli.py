"""`openpacs print`: images from disk printed on dcmtk's reference Print SCP (dcmprscp)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from typer.testing import CliRunner, Result

from openpacs.cli import app
from openpacs.dicom import render
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


@pytest.mark.peer
def test_boxes_go_as_image_boxes_the_printer_lays_out(tmp_path: Path) -> None:
    """--boxes: dcmprscp gets a STANDARD\\2,2 film box and one image box per image, each the
    image as a viewer shows it (8 bits), which it keeps as Hardcopy Grayscale objects."""
    images = ct_series(tmp_path / "ct", 3, rows=64, columns=48)
    with DcmPrScp(tmp_path / "printer") as printer:
        peer = f"{printer.ae_title}@127.0.0.1:{printer.port}"
        result = invoke(
            tmp_path, "print", peer, *map(str, images), "--layout", "STANDARD\\2,2", "--boxes"
        )
        hardcopies, stored = printer.hardcopies(), printer.stored_prints()
    assert result.exit_code == 0, result.output
    (stored_print,) = stored
    box = dcmread(stored_print).FilmBoxContentSequence[0]
    assert box.ImageDisplayFormat == "STANDARD\\2,2"
    assert len(hardcopies) == 3
    for path, hardcopy in zip(images, hardcopies, strict=True):
        printed = dcmread(hardcopy)
        source = dcmread(path)
        assert (printed.Rows, printed.Columns) == (64, 48)
        expected = render.to_display(source, source.pixel_array)
        assert np.array_equal(printed.pixel_array, expected)


@pytest.mark.peer
def test_a_stored_study_is_printed_by_its_uid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    """Images from the archive, in series order, whatever order they were stored in."""
    monkeypatch.setenv("OPENPACS_STORAGE__ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("OPENPACS_DATABASE__URL", database_url)
    images = ct_series(tmp_path / "ct", 2, rows=32, columns=32)
    imported = invoke(tmp_path, "import", *map(str, reversed(images)))
    assert imported.exit_code == 0, imported.output
    study = str(dcmread(images[0]).StudyInstanceUID)
    with DcmPrScp(tmp_path / "printer") as printer:
        peer = f"{printer.ae_title}@127.0.0.1:{printer.port}"
        result = invoke(tmp_path, "print", peer, study, "--layout", "STANDARD\\2,1", "--boxes")
        hardcopies = printer.hardcopies()
        missing = invoke(tmp_path, "print", peer, "1.2.3.4.5")
    assert result.exit_code == 0, result.output
    assert "printed 1 film(s) of 2 image(s)" in result.output
    first = dcmread(images[0])
    assert np.array_equal(
        dcmread(hardcopies[0]).pixel_array, render.to_display(first, first.pixel_array)
    )
    assert missing.exit_code == 2 and "not stored here: 1.2.3.4.5" in missing.output
