"""Reading back: locating instances, a series' representative image and its thumbnail."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from PIL import Image
from pydicom import dcmread

from openpacs.archive import errors, retrieve
from openpacs.archive.core import Core
from openpacs.archive.ingest import Incoming, Origin
from tests.conftest import sample
from tests.generators import ct_series


def _store(core: Core, source: Path) -> None:
    temp = core.storage.new_temp()
    shutil.copyfile(source, temp)
    core.archive.store(Incoming(temp, Origin.import_))


def test_find_instance_names_its_file(core: Core) -> None:
    source = sample("CT_small.dcm")
    _store(core, source)
    uid = str(dcmread(source).SOPInstanceUID)
    with core.sessions() as session:
        found = retrieve.find_instance(session, core.storage, uid)
        with pytest.raises(errors.NotFound, match=r"1\.2\.3\.999"):
            retrieve.find_instance(session, core.storage, "1.2.3.999")
    assert found.path.read_bytes() == source.read_bytes()
    assert found.transfer_syntax_uid == str(dcmread(source).file_meta.TransferSyntaxUID)
    assert found.number_of_frames == 1


def test_representative_instance_is_the_middle_of_the_stack(core: Core, tmp_path: Path) -> None:
    files = ct_series(tmp_path / "ct", 7, rows=32, columns=32)
    for path in reversed(files):  # arrival order must not matter
        _store(core, path)
    series_uid = str(dcmread(files[0]).SeriesInstanceUID)
    middle = dcmread(files[3])
    assert int(middle.InstanceNumber) == 4
    with core.sessions() as session:
        chosen = retrieve.representative_instance(session, core.storage, series_uid)
        with pytest.raises(errors.NotFound):
            retrieve.representative_instance(session, core.storage, "1.2.3.4")
    assert chosen.sop_instance_uid == middle.SOPInstanceUID


def test_series_thumbnail_is_a_small_jpeg(core: Core, tmp_path: Path) -> None:
    files = ct_series(tmp_path / "ct", 3, rows=64, columns=48)
    for path in files:
        _store(core, path)
    with core.sessions() as session:
        chosen = retrieve.representative_instance(
            session, core.storage, str(dcmread(files[0]).SeriesInstanceUID)
        )
    image = Image.open(io.BytesIO(retrieve.thumbnail(chosen, size=32)))
    assert image.format == "JPEG"
    assert image.size == (24, 32)  # fits 32 px, keeps the 48x64 aspect


def test_multiframe_thumbnail_uses_the_middle_frame(core: Core) -> None:
    _store(core, sample("emri_small.dcm"))
    uid = str(dcmread(sample("emri_small.dcm")).SOPInstanceUID)
    with core.sessions() as session:
        found = retrieve.find_instance(session, core.storage, uid)
    assert found.number_of_frames == 10
    assert Image.open(io.BytesIO(retrieve.thumbnail(found))).size == (64, 64)


def test_object_without_pixels_cannot_be_a_thumbnail(core: Core, tmp_path: Path) -> None:
    ds = dcmread(sample("CT_small.dcm"))
    del ds.PixelData
    path = tmp_path / "nopixels.dcm"
    ds.save_as(path)
    _store(core, path)
    with core.sessions() as session:
        found = retrieve.find_instance(session, core.storage, str(ds.SOPInstanceUID))
    with pytest.raises(errors.CannotConvert, match="no picture"):
        retrieve.thumbnail(found)
