"""What the DICOMweb tests share: an archive holding a known mix of objects, and clients.

The mix: a synthetic CT series (4 slices, native) of Zhang^San=张^三, a second synthetic study of
Müller^Jürgen on another date, and pydicom-data files in other syntaxes: CT_small (native, a
large private OB), MR_small_jpeg_ls_lossless (JPEG-LS, signed), emri_small_jpeg_ls_lossless
(JPEG-LS, 10 frames), SC_rgb_rle_2frame (RLE, RGB, 2 frames) and chrX2 (GB18030 names).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from fastapi import FastAPI
from pydicom import dcmread
from pydicom.data import get_charset_files

from openpacs.archive.core import Core, open_core
from openpacs.archive.ingest import Incoming, Origin
from openpacs.archive.retrieve import find_instance
from openpacs.config import Settings
from openpacs.web.app import create_app
from tests.conftest import make_settings, sample
from tests.generators import ct_series
from tests.web.client import Client

ZHANG = "Zhang^San=张^三"
MULLER = "Müller^Jürgen"
SAMPLES = {
    "ct_small": "CT_small.dcm",
    "mr_jls": "MR_small_jpeg_ls_lossless.dcm",
    "emri_jls": "emri_small_jpeg_ls_lossless.dcm",
    "rgb_rle": "SC_rgb_rle_2frame.dcm",
}


@dataclass(frozen=True)
class Item:
    """One stored object: the file it came from and its UIDs."""

    source: Path
    study: str
    series: str
    sop: str
    sop_class: str
    syntax: str

    @property
    def series_path(self) -> str:
        return f"/dicomweb/studies/{self.study}/series/{self.series}"

    @property
    def path(self) -> str:
        return f"{self.series_path}/instances/{self.sop}"


@dataclass
class Loaded:
    core: Core
    app: FastAPI
    client: Client
    items: dict[str, Item] = field(default_factory=dict)
    ct: list[Item] = field(default_factory=list)
    muller: list[Item] = field(default_factory=list)

    def close(self) -> None:
        self.core.close()

    def stored(self, item: Item) -> Path:
        """The archive's own file of an item."""
        with self.core.sessions() as session:
            return find_instance(session, self.core.storage, item.sop).path


def renamed(paths: list[Path], name: str, patient_id: str, study_date: str | None = None) -> None:
    """Give generated files a patient name outside Latin-1 (hence ISO_IR 192)."""
    for path in paths:
        ds = dcmread(path)
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientName = name
        ds.PatientID = patient_id
        if study_date:
            ds.StudyDate = study_date
            ds.SeriesDate = study_date
        ds.save_as(path)


def store(core: Core, source: Path) -> Item:
    temp = core.storage.new_temp()
    shutil.copyfile(source, temp)
    keys = core.archive.store(Incoming(temp, Origin.import_)).keys
    meta = dcmread(source, stop_before_pixels=True).file_meta
    return Item(
        source=source,
        study=keys.study_instance_uid,
        series=keys.series_instance_uid,
        sop=keys.sop_instance_uid,
        sop_class=keys.sop_class_uid,
        syntax=str(meta.TransferSyntaxUID),
    )


def settings_for(tmp: Path, **sections: dict[str, object]) -> Settings:
    return make_settings(tmp, f"sqlite:///{tmp / 'index.db'}", **sections)


def build(tmp: Path, **sections: dict[str, object]) -> Loaded:
    core = open_core(settings_for(tmp, **sections))
    app = create_app(core)
    loaded = Loaded(core, app, Client(app))
    ct = ct_series(tmp / "ct", 4, rows=32, columns=32, patient_id="ZS001", seed=11)
    renamed(ct, ZHANG, "ZS001")
    loaded.ct = [store(core, path) for path in ct]
    muller = ct_series(tmp / "muller", 2, rows=16, columns=16, seed=12)
    renamed(muller, MULLER, "MU001", study_date="20230615")
    loaded.muller = [store(core, path) for path in muller]
    for name, file_name in SAMPLES.items():
        loaded.items[name] = store(core, sample(file_name))
    loaded.items["chinese"] = store(core, Path(get_charset_files("chrX2.dcm")[0]))
    return loaded


def parts(response: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/related response: (headers, body) each."""
    content_type = response.headers["content-type"]
    assert content_type.startswith("multipart/related"), content_type
    boundary = next(
        p.split("=", 1)[1].strip('"')
        for p in content_type.split(";")
        if p.strip().startswith("boundary=")
    )
    found = []
    body = response.content
    delimiter = b"--" + boundary.encode()
    assert body.rstrip().endswith(delimiter + b"--"), "no closing delimiter"
    for chunk in body.split(delimiter)[1:-1]:
        assert chunk.startswith(b"\r\n") and chunk.endswith(b"\r\n")
        head, _, data = chunk[2:-2].partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        found.append((headers, data))
    return found
