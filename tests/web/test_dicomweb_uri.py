"""WADO-URI (/wado) through the app: content types, transfer syntax, rendering, anonymize."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.uid import UID

from tests.web.dicomweb_data import Item, Loaded, build, store

JLS = "1.2.840.10008.1.2.4.80"
EXPLICIT = "1.2.840.10008.1.2.1"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    archive = build(
        tmp_path_factory.mktemp("uri"), dicomweb={"anonymize_key": "a-site-secret-of-some-length"}
    )
    yield archive
    archive.close()


def wado(item: Item, **params: str) -> dict[str, str]:
    return {
        "requestType": "WADO",
        "studyUID": item.study,
        "seriesUID": item.series,
        "objectUID": item.sop,
        **params,
    }


def test_default_is_jpeg(loaded: Loaded) -> None:
    response = loaded.client.get("/wado", params=wado(loaded.ct[0]))
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(response.content)).size == (32, 32)


def test_png_with_size_window_and_frame(loaded: Loaded) -> None:
    item = loaded.items["emri_jls"]
    response = loaded.client.get(
        "/wado",
        params=wado(
            item,
            contentType="image/png",
            rows="32",
            columns="20",
            windowCenter="100",
            windowWidth="200",
            frameNumber="4",
        ),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (20, 20)
    other = loaded.client.get("/wado", params=wado(item, contentType="image/png", frameNumber="1"))
    assert other.content != response.content


def test_dicom_as_stored_and_transcoded(loaded: Loaded) -> None:
    item = loaded.items["mr_jls"]
    default = loaded.client.get("/wado", params=wado(item, contentType="application/dicom"))
    assert default.headers["content-type"] == "application/dicom"
    ds = dcmread(io.BytesIO(default.content))
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT
    assert np.array_equal(ds.pixel_array, dcmread(item.source).pixel_array)
    as_stored = loaded.client.get(
        "/wado", params=wado(item, contentType="application/dicom", transferSyntax=JLS)
    )
    assert as_stored.content == loaded.stored(item).read_bytes()


def test_anonymize_really_deidentifies(loaded: Loaded) -> None:
    item = loaded.ct[0]
    response = loaded.client.get(
        "/wado", params=wado(item, contentType="application/dicom", anonymize="yes")
    )
    assert response.status_code == 200
    clean = dcmread(io.BytesIO(response.content))
    original = dcmread(item.source)
    assert clean.PatientIdentityRemoved == "YES"
    assert str(clean.PatientName) != str(original.PatientName)
    assert "张" not in str(clean.PatientName) and "Zhang" not in str(clean.PatientName)
    assert clean.PatientID != original.PatientID
    assert clean.SOPInstanceUID != original.SOPInstanceUID
    assert clean.StudyInstanceUID != original.StudyInstanceUID
    assert "AccessionNumber" not in clean or not clean.AccessionNumber
    assert np.array_equal(clean.pixel_array, original.pixel_array)
    # The key is the site's: the same request gives the same pseudonyms.
    again = dcmread(
        io.BytesIO(
            loaded.client.get(
                "/wado", params=wado(item, contentType="application/dicom", anonymize="yes")
            ).content
        )
    )
    assert again.SOPInstanceUID == clean.SOPInstanceUID


def test_anonymize_refuses_burned_in_text(loaded: Loaded, tmp_path: Path) -> None:
    ds = dcmread(loaded.muller[0].source)
    ds.BurnedInAnnotation = "YES"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.826.0.1.3680043.2.1.99")
    path = tmp_path / "burned.dcm"
    ds.save_as(path)
    item = store(loaded.core, path)
    for content_type in ("application/dicom", "image/jpeg"):
        response = loaded.client.get(
            "/wado", params=wado(item, contentType=content_type, anonymize="yes")
        )
        assert response.status_code == 406
        assert "burned-in" in response.json()["detail"]
    plain = loaded.client.get("/wado", params=wado(item))
    assert plain.status_code == 200


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"requestType": "RENDER"}, "requestType"),
        ({"studyUID": ""}, "studyUID"),
        ({"objectUID": "x.1"}, "objectUID"),
        ({"contentType": "application/dicom", "rows": "10"}, "rows"),
        ({"transferSyntax": JLS}, "transferSyntax"),
        ({"windowCenter": "40"}, "windowWidth"),
        ({"rows": "-1"}, "rows"),
        ({"anonymize": "no"}, "anonymize"),
        ({"region": "0,0,1,1"}, "region"),
        ({"unknownThing": "1"}, "unknownThing"),
    ],
)
def test_bad_requests_are_400(loaded: Loaded, change: dict[str, str], reason: str) -> None:
    params = wado(loaded.ct[0], **change)
    response = loaded.client.get("/wado", params=params)
    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]


def test_missing_parameters_are_400(loaded: Loaded) -> None:
    params = wado(loaded.ct[0])
    del params["seriesUID"]
    response = loaded.client.get("/wado", params=params)
    assert response.status_code == 400
    assert "seriesUID" in response.json()["detail"]


def test_object_elsewhere_is_404(loaded: Loaded) -> None:
    params = wado(loaded.ct[0], seriesUID=loaded.muller[0].series)
    assert loaded.client.get("/wado", params=params).status_code == 404


def test_unsupported_content_type_is_406(loaded: Loaded) -> None:
    response = loaded.client.get("/wado", params=wado(loaded.ct[0], contentType="video/mpeg"))
    assert response.status_code == 406
