"""Store SCP against real dcmtk peers: echoscu, storescu, dcmsend; dciodvfy on what we wrote."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_charset_files
from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import AE
from sqlalchemy import select

from openpacs.archive.core import Core
from openpacs.archive.models import Instance, Patient, Series, Study
from openpacs.dimse.engine import Listener
from openpacs.dimse.store_scp import make_store_listener
from tests.conftest import need, sample
from tests.generators import ct_series
from tests.integration.conftest import run

pytestmark = pytest.mark.peer

AET = "STORESCP"
UNCOMPRESSED = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
}
REFUSED = "Error: DataSetDoesNotMatchSOPClass"  # how storescu names status 0xA900

# pydicom-data files covering every transfer syntax the set holds (JPEG .57 is made by dcmcjpeg).
SYNTAX_FILES = {
    "CT_small.dcm": "1.2.840.10008.1.2.1",
    "MR_small_implicit.dcm": "1.2.840.10008.1.2",
    "MR_small_bigendian.dcm": "1.2.840.10008.1.2.2",
    "image_dfl.dcm": "1.2.840.10008.1.2.1.99",
    "SC_rgb_jpeg_dcmtk.dcm": "1.2.840.10008.1.2.4.50",
    "JPGExtended.dcm": "1.2.840.10008.1.2.4.51",
    "JPEG-LL.dcm": "1.2.840.10008.1.2.4.70",
    "MR_small_jpeg_ls_lossless.dcm": "1.2.840.10008.1.2.4.80",
    "JPEGLSNearLossless_16.dcm": "1.2.840.10008.1.2.4.81",
    "MR_small_jp2klossless.dcm": "1.2.840.10008.1.2.4.90",
    "JPEG2000.dcm": "1.2.840.10008.1.2.4.91",
    "emri_small_RLE.dcm": "1.2.840.10008.1.2.5",
}

CHARSET_FILES = [
    "chrX1.dcm",
    "chrX2.dcm",
    "chrH31.dcm",
    "chrH32.dcm",
    "chrI2.dcm",
    "chrArab.dcm",
    "chrGreek.dcm",
    "chrRuss.dcm",
    "chrFren.dcm",
    "chrHbrw.dcm",
]


def instances(core: Core) -> list[Instance]:
    with core.sessions() as session:
        return list(session.scalars(select(Instance)).all())


def test_echoscu(store_scp: Listener) -> None:
    result = run(need("echoscu"), "-aec", AET, "127.0.0.1", str(store_scp.port))
    assert result.returncode == 0


def test_unknown_called_ae_is_rejected(store_scp: Listener) -> None:
    result = run(need("echoscu"), "-aec", "WRONGAE", "127.0.0.1", str(store_scp.port), check=False)
    assert result.returncode != 0
    assert "Rejected" in result.stdout + result.stderr


def test_storescu_ct_series(store_scp: Listener, core: Core, tmp_path: Path) -> None:
    files = ct_series(tmp_path / "ct", 20)
    run(need("storescu"), "-aec", AET, "127.0.0.1", str(store_scp.port), *files)
    stored = instances(core)
    assert len(stored) == 20
    counts = core.counts()
    assert (counts.patients, counts.studies, counts.series) == (1, 1, 1)
    by_uid = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in files}
    for instance in stored:
        original = dcmread(by_uid[instance.sop_instance_uid])
        received = dcmread(core.storage.path(instance.file_path))
        assert received == original
        assert received.PixelData == original.PixelData
        assert instance.calling_ae == "STORESCU"
        assert instance.origin == "dimse"
    assert list(core.storage.temp_dir.iterdir()) == []


def _syntax_folder(tmp_path: Path) -> Path:
    """One file per transfer syntax, each with its own identity (pydicom-data's MR_small
    variants share one SOP Instance UID, and one sample lacks the patient and study keys)."""
    folder = tmp_path / "syntaxes"
    folder.mkdir()
    for number, name in enumerate(SYNTAX_FILES, start=1):
        source = sample(name)
        assert source is not None, f"pydicom-data lacks {name}"
        ds = dcmread(source)
        uid = f"1.2.826.0.1.3680043.10.1.{number}"
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID(uid)
        ds.PatientID = ds.get("PatientID", "SYNTAX")
        ds.StudyInstanceUID = ds.get("StudyInstanceUID", "1.2.826.0.1.3680043.10.2")
        ds.SeriesInstanceUID = ds.get("SeriesInstanceUID", "1.2.826.0.1.3680043.10.3")
        ds.save_as(folder / name, enforce_file_format=True)
    ct = dcmread(folder / "CT_small.dcm")
    ct.SOPInstanceUID = ct.file_meta.MediaStorageSOPInstanceUID = UID("1.2.826.0.1.3680043.10.1.57")
    ct.save_as(tmp_path / "ct_for_57.dcm", enforce_file_format=True)
    run(need("dcmcjpeg"), "+el", tmp_path / "ct_for_57.dcm", folder / "jpeg_lossless_57.dcm")
    return folder


def test_dcmsend_every_transfer_syntax(store_scp: Listener, core: Core, tmp_path: Path) -> None:
    folder = _syntax_folder(tmp_path)
    expected = {**SYNTAX_FILES, "jpeg_lossless_57.dcm": "1.2.840.10008.1.2.4.57"}
    # --decompress-never: dcmsend would otherwise decompress a lossless file to fit a context
    # it opened for another file; this test is about what arrives compressed.
    dcmsend = need("dcmsend")
    port = str(store_scp.port)
    run(dcmsend, "-aec", AET, "-dn", "--scan-directories", "127.0.0.1", port, folder)
    stored = {i.sop_instance_uid: i for i in instances(core)}
    assert len(stored) == len(expected)
    for name, syntax in expected.items():
        original = dcmread(folder / name)
        assert original.file_meta.TransferSyntaxUID == syntax, name
        instance = stored[str(original.SOPInstanceUID)]
        received = dcmread(core.storage.path(instance.file_path))
        assert received.file_meta.TransferSyntaxUID == instance.transfer_syntax_uid
        if syntax in UNCOMPRESSED:
            # dcmsend converts between uncompressed syntaxes to its own preference;
            # single-syntax proposals are checked in test_each_syntax_alone.
            assert instance.transfer_syntax_uid in UNCOMPRESSED, name
            assert (received.pixel_array == original.pixel_array).all(), name
        else:
            assert instance.transfer_syntax_uid == syntax, name
            assert received.PixelData == original.PixelData, name
        # dcmtk drops DataSetTrailingPadding when it sends; everything else arrives intact.
        differing = [
            e.keyword or str(e.tag)
            for e in original
            if received.get(e.tag) != e and e.keyword not in ("DataSetTrailingPadding", "PixelData")
        ]
        assert differing == [], name


def test_dcmsend_charset_files(store_scp: Listener, core: Core, tmp_path: Path) -> None:
    folder = tmp_path / "charsets"
    folder.mkdir()
    expected: dict[str, str | None] = {}
    for name in CHARSET_FILES:
        (source,) = get_charset_files(name)
        shutil.copyfile(source, folder / name)
        ds = dcmread(source)
        name_value = ds.get("PatientName")
        expected[str(ds.SOPInstanceUID)] = str(name_value) if name_value else None
    run(
        need("dcmsend"), "-aec", AET, "--scan-directories", "127.0.0.1", str(store_scp.port), folder
    )
    with core.sessions() as session:
        rows = session.execute(
            select(Instance.sop_instance_uid, Patient.patient_name, Instance.file_path)
            .join(Series, Series.pk == Instance.series_pk)
            .join(Study, Study.pk == Series.study_pk)
            .join(Patient, Patient.pk == Study.patient_pk)
        ).all()
    assert {row[0] for row in rows} == set(expected)
    for sop_uid, patient_name, relpath in rows:
        assert patient_name == expected[sop_uid], sop_uid
        stored_name = dcmread(core.storage.path(relpath)).get("PatientName")
        assert (str(stored_name) if stored_name else None) == expected[sop_uid]


def test_gb18030_without_charset_over_dimse(
    store_scp: Listener, core: Core, tmp_path: Path
) -> None:
    (source,) = get_charset_files("chrX2.dcm")
    ds = dcmread(source)
    name = str(ds.PatientName)
    del ds.SpecificCharacterSet
    ds["PatientName"].value = name.encode("gb18030")
    path = tmp_path / "no_charset.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert b"GB18030" not in path.read_bytes()
    run(need("storescu"), "-aec", AET, "127.0.0.1", str(store_scp.port), path)
    (instance,) = instances(core)
    with core.sessions() as session:
        patient = session.scalars(select(Patient)).one()
    assert patient.patient_name == name
    stored = dcmread(core.storage.path(instance.file_path))
    assert stored.SpecificCharacterSet == "GB18030"
    assert str(stored.PatientName) == name


def _storescu_statuses(path: Path, port: int) -> list[str]:
    """The status storescu reports for each file it sent (it names them, e.g. 'Success')."""
    result = run(need("storescu"), "-v", "-aec", AET, "127.0.0.1", str(port), path, check=False)
    return re.findall(r"Received Store Response \(([^)]*)\)", result.stdout + result.stderr)


@pytest.mark.parametrize("uid", ["../../x", "/etc/x", "1." * 32 + "12"])
def test_hostile_sop_instance_uid_is_refused(
    store_scp: Listener, core: Core, tmp_path: Path, uid: str
) -> None:
    ds = dcmread(sample("CT_small.dcm"))
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = UID(uid)
    path = tmp_path / "hostile.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert _storescu_statuses(path, store_scp.port) == [REFUSED]
    assert core.counts().instances == 0
    assert list(core.storage.walk()) == []
    root = core.storage.root
    assert not (root.parent / "x").exists() and not (root.parent.parent / "x").exists()


def test_missing_attributes_are_refused_with_a_status(
    store_scp: Listener, core: Core, tmp_path: Path
) -> None:
    ds = dcmread(sample("CT_small.dcm"))
    del ds.PatientID
    path = tmp_path / "no_patient_id.dcm"
    ds.save_as(path, enforce_file_format=True)
    assert _storescu_statuses(path, store_scp.port) == [REFUSED]
    assert core.counts().instances == 0


def test_dciodvfy_finds_nothing_new(store_scp: Listener, core: Core, tmp_path: Path) -> None:
    dciodvfy = need("dciodvfy")
    files = ct_series(tmp_path / "ct", 2, rows=64, columns=64)
    for name in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm"):
        shutil.copyfile(sample(name), tmp_path / name)
        files.append(tmp_path / name)
    (charset,) = get_charset_files("chrX2.dcm")
    files.append(Path(charset))
    run(need("dcmsend"), "-aec", AET, "127.0.0.1", str(store_scp.port), *files)
    stored = {i.sop_instance_uid: i for i in instances(core)}
    for path in files:
        uid = str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)
        before = _errors(run(dciodvfy, path, check=False))
        after = _errors(run(dciodvfy, core.storage.path(stored[uid].file_path), check=False))
        assert after <= before, f"{path.name}: new findings {after - before}"


def _errors(result: object) -> set[str]:
    text = getattr(result, "stdout", "") + getattr(result, "stderr", "")
    return {line.strip() for line in text.splitlines() if line.startswith("Error")}


class SendResult:
    def __init__(self, status: int, comment: str) -> None:
        self.status = status
        self.comment = comment

    def __repr__(self) -> str:
        return f"SendResult(0x{self.status:04X}, {self.comment!r})"


def _send_one(path: Path, port: int, syntax: str | None = None) -> SendResult:
    """Send with pynetdicom where dcmtk refuses to (invalid UIDs, syntaxes dcmtk 3.6.7 lacks)."""
    ds = dcmread(path)
    ae = AE(ae_title="TESTSCU")
    ae.add_requested_context(ds.SOPClassUID, syntax or ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", port, ae_title=AET)
    assert assoc.is_established
    try:
        status: Dataset = assoc.send_c_store(ds)
    finally:
        assoc.release()
    return SendResult(int(status.Status), str(status.get("ErrorComment", "")))


@pytest.mark.parametrize(
    ("source", "syntax"),
    [
        ("MR_small_implicit.dcm", "1.2.840.10008.1.2"),
        ("MR_small_bigendian.dcm", "1.2.840.10008.1.2.2"),
        ("CT_small.dcm", "1.2.840.10008.1.2.1.99"),
        ("JPEG2000.dcm", "1.2.840.10008.1.2.4.201"),  # HTJ2K lossless
        ("JPEG2000.dcm", "1.2.840.10008.1.2.4.203"),  # HTJ2K
        ("JPEG2000.dcm", "1.2.840.10008.1.2.4.100"),  # MPEG-2
        ("JPEG2000.dcm", "1.2.840.10008.1.2.4.102"),  # MPEG-4 AVC
        ("JPEG2000.dcm", "1.2.840.10008.1.2.4.107"),  # HEVC
    ],
)
def test_each_syntax_alone(
    store_scp: Listener, core: Core, tmp_path: Path, source: str, syntax: str
) -> None:
    # A peer that proposes one syntax only gets it. dcmtk 3.6.7 knows neither HTJ2K nor these
    # video syntaxes and no sample is on this machine: a J2K object relabelled carries the
    # syntax through negotiation and storage, which is all the SCP does with it.
    ds = dcmread(sample(source))
    if syntax not in UNCOMPRESSED:
        ds.file_meta.TransferSyntaxUID = UID(syntax)
    path = tmp_path / "one_syntax.dcm"
    ds.save_as(path)
    assert _send_one(path, store_scp.port, syntax).status == 0
    (instance,) = instances(core)
    assert instance.transfer_syntax_uid == syntax
    received = dcmread(core.storage.path(instance.file_path))
    assert received.file_meta.TransferSyntaxUID == syntax
    assert received.PixelData == ds.PixelData


def test_calling_ae_allow_list(core: Core, tmp_path: Path) -> None:
    settings = core.settings.storescp.model_copy(update={"allowed_calling_aes": ["MODALITY1"]})
    listener = make_store_listener(settings, core.archive)
    listener.start()
    try:
        port = str(listener.port)
        echoscu = need("echoscu")
        allowed = run(echoscu, "-aet", "MODALITY1", "-aec", AET, "127.0.0.1", port, check=False)
        assert allowed.returncode == 0, allowed.stderr
        refused = run(echoscu, "-aet", "INTRUDER", "-aec", AET, "127.0.0.1", port, check=False)
        assert refused.returncode != 0
        assert "Rejected" in refused.stdout + refused.stderr
    finally:
        listener.stop(grace=1)


def test_associations_past_the_limit_are_rejected_as_transient(core: Core) -> None:
    settings = core.settings.storescp.model_copy(update={"max_associations": 1})
    listener = make_store_listener(settings, core.archive)
    listener.start()
    try:
        ae = AE(ae_title="FIRST")
        ae.add_requested_context("1.2.840.10008.1.1")
        first = ae.associate("127.0.0.1", listener.port, ae_title=AET)
        assert first.is_established
        second = run(need("echoscu"), "-aec", AET, "127.0.0.1", str(listener.port), check=False)
        assert second.returncode != 0
        assert "Rejected" in second.stdout + second.stderr
        first.release()
        time.sleep(0.2)
        assert run("echoscu", "-aec", AET, "127.0.0.1", str(listener.port)).returncode == 0
    finally:
        listener.stop(grace=1)


def test_a_repeated_request_is_answered_from_memory_and_admitted_each_time(
    core: Core, tmp_path: Path
) -> None:
    settings = core.settings.storescp.model_copy(update={"max_associations": 1})
    listener = make_store_listener(settings, core.archive)
    listener.start()
    try:
        storescu = [need("storescu"), "-aec", AET, "127.0.0.1", str(listener.port)]
        first, second = ct_series(tmp_path / "ct", 2, rows=16, columns=16)
        assert run(*storescu, str(first)).returncode == 0
        assert len(listener.proposals) == 1
        assert run(*storescu, str(second)).returncode == 0  # the same request, from memory
        assert len(listener.proposals) == 1
        assert len(instances(core)) == 2
        # The association limit still applies to a request answered from memory.
        ae = AE(ae_title="HOLDER")
        ae.add_requested_context("1.2.840.10008.1.1")
        holder = ae.associate("127.0.0.1", listener.port, ae_title=AET)
        assert holder.is_established
        refused = run(*storescu, str(first), check=False)
        assert refused.returncode != 0
        assert "Rejected" in refused.stdout + refused.stderr
        holder.release()
        time.sleep(0.2)
        assert run(*storescu, str(first)).returncode == 0
    finally:
        listener.stop(grace=1)
