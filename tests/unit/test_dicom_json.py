"""The DICOM JSON model (PS3.18 Annex F) as `openpacs.dicom.json` writes and reads it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_charset_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from openpacs.dicom import json as dj
from tests.conftest import sample


def _save(ds: Dataset, path: Path, syntax: str = ExplicitVRLittleEndian) -> Path:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
    ds.save_as(path, enforce_file_format=True)
    return path


def _example() -> Dataset:
    ds = Dataset()
    # Inserted out of tag order on purpose.
    ds.PatientName = "Doe^John"
    ds.AccessionNumber = ""
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PixelSpacing = ["0.50", "0.500"]
    ds.InstanceNumber = "007"
    ds.ImageType = ["ORIGINAL", "", "AXIAL"]
    ds.Rows = 2
    ds.DimensionIndexPointer = 0x00200032
    ds.add_new(0x00091010, "OB", bytes(range(8)))
    ds.add_new(0x00091011, "OB", bytes(2000))
    item = Dataset()
    item.CodeValue = "T-A0100"
    item.add_new(0x00091012, "OB", bytes(3000))
    ds.AnatomicRegionSequence = Sequence([item])
    return ds


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_model_from_a_stored_file(tmp_path: Path, syntax: str) -> None:
    path = _save(_example(), tmp_path / "x.dcm", syntax)
    asked: list[str] = []

    def uri(p: str) -> str:
        asked.append(p)
        return f"http://pacs/bulk/{p}"

    out = dj.to_json(dj.read_dataset(path), bulk_uri=uri, threshold=1024)
    assert list(out) == sorted(out)
    assert all("vr" in attr for attr in out.values())
    assert out["00080050"] == {"vr": "SH"}  # empty: no Value
    assert out["00080005"] == {"vr": "CS", "Value": ["ISO_IR 192"]}
    assert out["00080008"] == {"vr": "CS", "Value": ["ORIGINAL", None, "AXIAL"]}
    assert out["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^John"}]}
    assert out["00280030"] == {"vr": "DS", "Value": ["0.50", "0.500"]}
    assert out["00200013"] == {"vr": "IS", "Value": ["007"]}
    assert out["00280010"] == {"vr": "US", "Value": [2]}
    assert out["00209165"] == {"vr": "AT", "Value": ["00200032"]}
    assert out["00091010"]["InlineBinary"] == base64.b64encode(bytes(range(8))).decode()
    assert out["00091011"]["BulkDataURI"] == "http://pacs/bulk/00091011"
    nested = out["00082218"]["Value"][0]
    assert nested["00080100"] == {"vr": "SH", "Value": ["T-A0100"]}
    assert nested["00091012"]["BulkDataURI"] == "http://pacs/bulk/00082218.0.00091012"
    assert sorted(asked) == ["00082218.0.00091012", "00091011"]
    # Every path the model hands out reads back the element's bytes.
    stored = dcmread(path)
    assert dj.bulk_value(stored, "00091011") == bytes(2000)
    assert dj.bulk_value(stored, "00082218.0.00091012") == bytes(3000)


def test_without_a_bulk_uri_everything_is_inline() -> None:
    out = dj.to_json(_example())
    assert base64.b64decode(out["00091011"]["InlineBinary"]) == bytes(2000)
    assert "BulkDataURI" not in json.dumps(out)


def test_round_trip_keeps_text_of_numbers_and_names(tmp_path: Path) -> None:
    path = _save(_example(), tmp_path / "x.dcm")
    out = dj.to_json(dj.read_dataset(path))
    back = dj.from_json(json.loads(dj.dumps(out)))
    assert [str(v) for v in back.PixelSpacing] == ["0.50", "0.500"]
    assert str(back.InstanceNumber) == "007"
    assert str(back.PatientName) == "Doe^John"
    assert back.DimensionIndexPointer == 0x00200032
    assert back[0x00091011].value == bytes(2000)
    assert back.AnatomicRegionSequence[0].CodeValue == "T-A0100"
    assert back.AccessionNumber == ""
    # And the second trip gives the same JSON.
    assert dj.to_json(back) == out


def test_pydicom_loses_the_text_we_keep() -> None:
    ds = _example()
    assert ds.to_json_dict()["00280030"]["Value"] == [0.5, 0.5]
    assert dj.to_json(ds)["00280030"]["Value"] == ["0.50", "0.500"]


def test_chinese_name_as_utf8_with_groups() -> None:
    path = get_charset_files("chrX2.dcm")[0]
    out = dj.to_json(dj.read_dataset(path))
    assert out["00100010"]["Value"] == [{"Alphabetic": "Wang^XiaoDong", "Ideographic": "王^小东"}]
    assert "王^小东" in dj.dumps(out).decode("utf-8")


def test_japanese_iso_2022_name_is_decoded() -> None:
    path = get_charset_files("chrH31.dcm")[0]
    groups = dj.to_json(dj.read_dataset(path))["00100010"]["Value"][0]
    assert groups == {
        "Alphabetic": "Yamada^Tarou",
        "Ideographic": "山田^太郎",
        "Phonetic": "やまだ^たろう",
    }


def test_undeclared_gb18030_is_detected(tmp_path: Path) -> None:
    data = Path(get_charset_files("chrX2.dcm")[0]).read_bytes()
    assert data.count(b"GB18030 ") == 1
    path = tmp_path / "nocharset.dcm"
    # Blank the declaration in place: the name's GB18030 bytes stay as the modality wrote them.
    path.write_bytes(data.replace(b"GB18030 ", b" " * 8))
    out = dj.to_json(dj.read_dataset(path))
    assert out["00100010"]["Value"][0]["Ideographic"] == "王^小东"


def test_large_pixel_data_is_never_read(tmp_path: Path) -> None:
    path = sample("CT_small.dcm")
    ds = dj.read_dataset(path)
    out = dj.to_json(ds, bulk_uri=lambda p: f"/bulk/{p}")
    assert out["7FE00010"] == {"vr": "OW", "BulkDataURI": "/bulk/7FE00010"}
    assert ds.get_item(0x7FE00010, keep_deferred=True).value is None  # still on disk


def test_encapsulated_pixel_data_gets_a_bulk_uri() -> None:
    out = dj.to_json(dj.read_dataset(sample("JPEG2000.dcm")), bulk_uri=lambda p: p)
    assert out["7FE00010"] == {"vr": "OB", "BulkDataURI": "7FE00010"}


def test_include_chooses_top_level_elements() -> None:
    out = dj.to_json(_example(), include=lambda tag: tag == 0x00100010)
    assert list(out) == ["00100010"]


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"0010": {"vr": "PN"}},
        {"0010001G": {"vr": "PN"}},
        {"00100010": "Doe"},
        {"00100010": {"vr": "PN", "Value": "Doe"}},
        {"00100010": {"vr": "PN", "Value": ["Doe"]}},
        {"00091010": {"vr": "OB", "InlineBinary": "***"}},
    ],
)
def test_malformed_json_is_refused(bad: object) -> None:
    with pytest.raises(dj.JsonModelError):
        dj.from_json(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["", "7FE0", "00082218.0", "00082218.x.00091012", "zzzzzzzz"])
def test_malformed_bulk_paths(path: str) -> None:
    with pytest.raises(dj.JsonModelError):
        dj.bulk_value(_example(), path)


def test_bulk_path_to_something_absent_or_not_binary() -> None:
    with pytest.raises(KeyError):
        dj.bulk_value(_example(), "00091099")
    with pytest.raises(KeyError):
        dj.bulk_value(_example(), "00082218.3.00091012")
    with pytest.raises(dj.JsonModelError):
        dj.bulk_value(_example(), "00100010")
