"""Lossless compression on ingest (`storage.compression`): stored compressed, pixels unchanged."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from sqlalchemy import select

from openpacs.archive import ingest
from openpacs.archive.core import Core, open_core
from openpacs.archive.ingest import Incoming, Origin
from openpacs.archive.models import Instance
from openpacs.dicom import codecs
from tests.conftest import make_settings, sample
from tests.generators import ct_series


def _core(tmp_path: Path, database_url: str, compression: str) -> Iterator[Core]:
    core = open_core(make_settings(tmp_path, database_url, storage={"compression": compression}))
    try:
        yield core
    finally:
        core.close()


@pytest.fixture(params=["jpeg-ls-lossless", "j2k-lossless", "rle", "jpeg-lossless"])
def compressing(
    request: pytest.FixtureRequest, tmp_path: Path, database_url: str
) -> Iterator[Core]:
    yield from _core(tmp_path, database_url, request.param)


def _store(core: Core, source: Path) -> Path:
    temp = core.storage.new_temp()
    shutil.copyfile(source, temp)
    result = core.archive.store(Incoming(temp, Origin.import_))
    return core.storage.path(result.relpath)


def _indexed_syntax(core: Core, sop_instance_uid: str) -> str:
    with core.sessions() as session:
        return session.scalars(
            select(Instance.transfer_syntax_uid).where(
                Instance.sop_instance_uid == sop_instance_uid
            )
        ).one()


def test_native_images_are_stored_compressed_with_the_same_pixels(
    compressing: Core, tmp_path: Path
) -> None:
    target = ingest.COMPRESSION_SYNTAX[compressing.settings.storage.compression]
    sources = [*ct_series(tmp_path / "ct", 2, rows=64, columns=64), sample("SC_rgb.dcm")]
    for source in sources:
        stored = _store(compressing, source)
        original, kept = dcmread(source), dcmread(stored)
        assert kept.file_meta.TransferSyntaxUID == target
        assert _indexed_syntax(compressing, original.SOPInstanceUID) == target
        np.testing.assert_array_equal(kept.pixel_array, original.pixel_array)
        assert kept.PatientName == original.PatientName
        assert "LossyImageCompression" not in kept or kept.LossyImageCompression == "00"
    assert list(compressing.storage.temp_dir.iterdir()) == []


def test_compressed_and_pixel_less_objects_are_kept_as_received(
    tmp_path: Path, database_url: str
) -> None:
    for core in _core(tmp_path, database_url, "rle"):
        no_pixels = dcmread(sample("CT_small.dcm"))
        del no_pixels.PixelData
        no_pixels_path = tmp_path / "nopixels.dcm"
        no_pixels.save_as(no_pixels_path)
        for source in (sample("JPEG2000.dcm"), no_pixels_path):
            assert _store(core, source).read_bytes() == source.read_bytes()


def test_objects_over_the_cap_are_kept_as_received(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "COMPRESS_MAX_BYTES", 1000)
    for core in _core(tmp_path, database_url, "rle"):
        source = sample("CT_small.dcm")
        assert _store(core, source).read_bytes() == source.read_bytes()


def test_an_object_the_codec_refuses_is_stored_uncompressed(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise codecs.TranscodeError(codecs.EXPLICIT_VR_LE, codecs.RLE_LOSSLESS, "test refusal")

    monkeypatch.setattr(codecs, "transcode", refuse)
    for core in _core(tmp_path, database_url, "rle"):
        source = sample("CT_small.dcm")
        stored = _store(core, source)
        assert stored.read_bytes() == source.read_bytes()
        assert _indexed_syntax(core, dcmread(source).SOPInstanceUID) == str(
            dcmread(source).file_meta.TransferSyntaxUID
        )
        assert list(core.storage.temp_dir.iterdir()) == []
