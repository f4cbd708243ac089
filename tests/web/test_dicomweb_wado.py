"""WADO-RS through the app: instances, metadata, frames, bulk data, rendered, thumbnails."""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.uid import generate_uid

from openpacs.archive import outgoing
from openpacs.dicom import frames
from openpacs.web.dicomweb import retrieve as wado
from tests.generators import ct_series
from tests.web.dicomweb_data import Item, Loaded, build, parts, store

EXPLICIT = "1.2.840.10008.1.2.1"
JLS = "1.2.840.10008.1.2.4.80"
J2K = "1.2.840.10008.1.2.4.90"
RLE = "1.2.840.10008.1.2.5"
MULTI_DICOM = 'multipart/related; type="application/dicom"'


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    archive = build(tmp_path_factory.mktemp("wado"))
    yield archive
    archive.close()


def pixels(data: bytes) -> np.ndarray:
    return dcmread(io.BytesIO(data)).pixel_array


def source_pixels(item: Item) -> np.ndarray:
    return dcmread(item.source).pixel_array


# --- instances ------------------------------------------------------------------------------


def test_instance_as_stored_is_the_stored_file(loaded: Loaded) -> None:
    item = loaded.items["mr_jls"]
    response = loaded.client.get(item.path, headers={"Accept": f"{MULTI_DICOM}; transfer-syntax=*"})
    assert response.status_code == 200
    ((headers, data),) = parts(response)
    assert headers["content-type"] == f"application/dicom; transfer-syntax={JLS}"
    assert headers["content-location"] == f"http://openpacs{item.path}"
    assert data == loaded.stored(item).read_bytes()


def test_default_is_explicit_little_endian_with_equal_pixels(loaded: Loaded) -> None:
    item = loaded.items["mr_jls"]
    response = loaded.client.get(item.path, headers={"Accept": MULTI_DICOM})
    ((headers, data),) = parts(response)
    assert headers["content-type"] == f"application/dicom; transfer-syntax={EXPLICIT}"
    ds = dcmread(io.BytesIO(data))
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT
    assert ds.SOPInstanceUID == item.sop
    assert np.array_equal(ds.pixel_array, source_pixels(item))
    # No Accept at all is the same default.
    ((_, again),) = parts(loaded.client.get(item.path, headers={"Accept": "*/*"}))
    assert dcmread(io.BytesIO(again)).file_meta.TransferSyntaxUID == EXPLICIT


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (f"multipart/related; type=application/dicom; transfer-syntax={JLS}", JLS),
        (f'multipart/related;type="application/dicom";transfer-syntax="{J2K}"', J2K),
        (
            f"{MULTI_DICOM}; transfer-syntax={RLE}; q=0.5, {MULTI_DICOM}; transfer-syntax={JLS}",
            JLS,
        ),
        (
            f"{MULTI_DICOM}; transfer-syntax={RLE}; q=0.9, {MULTI_DICOM}; q=0.1",
            RLE,
        ),
        (f"{MULTI_DICOM}; transfer-syntax=1.2.3.4.5, {MULTI_DICOM}; q=0.2", EXPLICIT),
    ],
)
def test_transfer_syntax_from_accept(loaded: Loaded, accept: str, expected: str) -> None:
    item = loaded.ct[1]
    response = loaded.client.get(item.path, headers={"Accept": accept})
    assert response.status_code == 200, response.text
    ((headers, data),) = parts(response)
    assert headers["content-type"] == f"application/dicom; transfer-syntax={expected}"
    ds = dcmread(io.BytesIO(data))
    assert ds.file_meta.TransferSyntaxUID == expected
    assert np.array_equal(ds.pixel_array, source_pixels(item))  # all lossless


def test_accept_query_parameter_wins(loaded: Loaded) -> None:
    item = loaded.ct[0]
    accept = f"multipart/related; type=application/dicom; transfer-syntax={RLE}"
    response = loaded.client.get(item.path, params={"accept": accept})
    ((headers, _),) = parts(response)
    assert headers["content-type"].endswith(RLE)


def test_series_and_study_stream_every_instance(loaded: Loaded) -> None:
    ct = loaded.ct[0]
    accept = {"Accept": f"{MULTI_DICOM}; transfer-syntax=*"}
    series = parts(loaded.client.get(ct.series_path, headers=accept))
    assert [dcmread(io.BytesIO(d)).SOPInstanceUID for _, d in series] == [i.sop for i in loaded.ct]
    for (_, data), item in zip(series, loaded.ct, strict=True):
        assert data == loaded.stored(item).read_bytes()
    study = parts(loaded.client.get(f"/dicomweb/studies/{ct.study}", headers=accept))
    assert len(study) == 4


def test_as_stored_answer_has_its_length(loaded: Loaded) -> None:
    ct = loaded.ct[0]
    accept = {"Accept": f"{MULTI_DICOM}; transfer-syntax=*"}
    response = loaded.client.get(ct.series_path, headers=accept)
    assert response.headers["content-length"] == str(len(response.content))


def test_as_stored_files_larger_than_a_batch_stream_whole(
    loaded: Loaded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wado, "_BATCH", 1000)  # every file is "large": read in chunks
    monkeypatch.setattr(outgoing, "CHUNK", 999)
    ct = loaded.ct[0]
    response = loaded.client.get(
        ct.series_path, headers={"Accept": f"{MULTI_DICOM}; transfer-syntax=*"}
    )
    assert response.headers["content-length"] == str(len(response.content))
    found = parts(response)
    for (_, data), item in zip(found, loaded.ct, strict=True):
        assert data == loaded.stored(item).read_bytes()


def test_as_stored_with_a_file_gone_is_503_before_anything_is_sent(
    loaded: Loaded, tmp_path: Path
) -> None:
    paths = ct_series(tmp_path, 2, rows=16, columns=16, seed=31)
    items = [store(loaded.core, path) for path in paths]
    loaded.stored(items[1]).unlink()
    response = loaded.client.get(
        items[0].series_path, headers={"Accept": f"{MULTI_DICOM}; transfer-syntax=*"}
    )
    assert response.status_code == 503
    assert "missing" in response.text


def test_single_part_for_one_instance(loaded: Loaded) -> None:
    item = loaded.items["ct_small"]
    response = loaded.client.get(item.path, headers={"Accept": "application/dicom"})
    assert response.status_code == 200
    assert response.headers["content-type"] == f"application/dicom; transfer-syntax={EXPLICIT}"
    assert response.content == loaded.stored(item).read_bytes()
    # Not for a series: that is always multipart.
    series = loaded.client.get(item.series_path, headers={"Accept": "application/dicom"})
    assert series.status_code == 406


@pytest.mark.parametrize(
    "accept",
    ["image/png", "application/dicom+json", "multipart/related; type=image/jpeg"],
)
def test_nothing_acceptable_is_406(loaded: Loaded, accept: str) -> None:
    response = loaded.client.get(loaded.ct[0].series_path, headers={"Accept": accept})
    assert response.status_code == 406
    assert "application/dicom" in response.json()["detail"]


def test_unproducible_syntax_is_406(loaded: Loaded) -> None:
    accept = f"{MULTI_DICOM}; transfer-syntax=1.2.3.4.5"
    response = loaded.client.get(loaded.ct[0].path, headers={"Accept": accept})
    assert response.status_code == 406
    # A signed 16-bit CT does not fit JPEG Baseline; the image pipeline says why.
    lossy = f"{MULTI_DICOM}; transfer-syntax=1.2.840.10008.1.2.4.50"
    response = loaded.client.get(loaded.ct[0].path, headers={"Accept": lossy})
    assert response.status_code == 406
    assert "JPEG Baseline" in response.json()["detail"]


@pytest.mark.parametrize(
    "accept",
    ['multipart/related; type="application/dicom', "application", "text/html; q=2", "*/*; q=x"],
)
def test_malformed_accept_is_400(loaded: Loaded, accept: str) -> None:
    response = loaded.client.get(loaded.ct[0].path, headers={"Accept": accept})
    assert response.status_code == 400
    assert response.json()["detail"]


def test_paths_that_do_not_hold_the_object_are_404(loaded: Loaded) -> None:
    ct, mu = loaded.ct[0], loaded.muller[0]
    wrong_series = f"/dicomweb/studies/{ct.study}/series/{mu.series}/instances/{mu.sop}"
    assert loaded.client.get(wrong_series).status_code == 404
    wrong_study = f"/dicomweb/studies/{mu.study}/series/{ct.series}"
    response = loaded.client.get(wrong_study)
    assert response.status_code == 404
    assert ct.series in response.json()["detail"]
    assert loaded.client.get("/dicomweb/studies/1.2.3.4").status_code == 404


@pytest.mark.parametrize("sop", ["abc", "1.2.3.", "1" * 65, "1.2%0A3"])
def test_bad_uids_in_paths_are_400(loaded: Loaded, sop: str) -> None:
    ct = loaded.ct[0]
    response = loaded.client.get(f"{ct.series_path}/instances/{sop}")
    assert response.status_code == 400
    assert "SOPInstanceUID" in response.json()["detail"]


def test_unknown_parameters_are_400(loaded: Loaded) -> None:
    response = loaded.client.get(f"{loaded.ct[0].path}?transfersyntax=1.2.840.10008.1.2.1")
    assert response.status_code == 400
    assert "transfersyntax" in response.json()["detail"]


# --- metadata -------------------------------------------------------------------------------


def test_series_metadata(loaded: Loaded) -> None:
    ct = loaded.ct[0]
    response = loaded.client.get(f"{ct.series_path}/metadata", headers={"Accept-Encoding": ""})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom+json"
    assert "content-encoding" not in response.headers
    items = response.json()
    assert [i["00080018"]["Value"][0] for i in items] == [i.sop for i in loaded.ct]
    first = items[0]
    assert list(first) == sorted(first)
    assert "00020010" not in first  # no file meta
    assert first["00100010"]["Value"] == [{"Alphabetic": "Zhang^San", "Ideographic": "张^三"}]
    assert first["00180050"] == {"vr": "DS", "Value": ["1.25"]}  # as written
    assert first["7FE00010"] == {
        "vr": "OW",
        "BulkDataURI": f"http://openpacs{ct.path}/bulk/7FE00010",
    }


def test_metadata_etag_gzip_and_change(loaded: Loaded, tmp_path: Path) -> None:
    mu = loaded.muller[0]
    url = f"{mu.series_path}/metadata"
    plain = loaded.client.get(url, headers={"Accept-Encoding": "identity"})
    zipped = loaded.client.get(url, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["etag"] == plain.headers["etag"]
    assert zipped.json() == plain.json()  # httpx inflates
    assert gzip.decompress(gzip.compress(plain.content)) == plain.content
    etag = plain.headers["etag"]
    unchanged = loaded.client.get(url, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    # A third slice joins the series: a new ETag, and the answer lists it.
    ds = dcmread(mu.source)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    extra = tmp_path / "extra.dcm"
    ds.save_as(extra)
    store(loaded.core, extra)
    changed = loaded.client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["etag"] != etag
    assert len(changed.json()) == 3


def test_study_and_instance_metadata(loaded: Loaded) -> None:
    ct = loaded.ct[0]
    study = loaded.client.get(f"/dicomweb/studies/{ct.study}/metadata").json()
    assert len(study) == 4
    (one,) = loaded.client.get(f"{ct.path}/metadata").json()
    assert one == study[0]


def test_metadata_needs_json(loaded: Loaded) -> None:
    response = loaded.client.get(
        f"{loaded.ct[0].series_path}/metadata", headers={"Accept": "application/dicom+xml"}
    )
    assert response.status_code == 406


def test_metadata_of_gb18030_object_is_utf8(loaded: Loaded) -> None:
    item = loaded.items["chinese"]
    (meta,) = loaded.client.get(f"{item.path}/metadata").json()
    assert meta["00100010"]["Value"][0]["Ideographic"] == "王^小东"
    assert meta["00080005"]["Value"] == ["ISO_IR 192"]


# --- bulk data -------------------------------------------------------------------------------


def test_bulk_data_uri_resolves_with_ranges(loaded: Loaded) -> None:
    item = loaded.items["ct_small"]
    (meta,) = loaded.client.get(f"{item.path}/metadata").json()
    uris = {tag: attr["BulkDataURI"] for tag, attr in meta.items() if "BulkDataURI" in attr}
    assert set(uris) == {"00431029", "7FE00010"}
    expected = dcmread(item.source)[0x00431029].value
    url = uris["00431029"].removeprefix("http://openpacs")
    whole = loaded.client.get(url)
    assert whole.status_code == 200
    ((headers, data),) = parts(whole)
    assert headers["content-type"] == "application/octet-stream"
    assert data == expected
    part = loaded.client.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 10-19/{len(expected)}"
    assert parts(part)[0][1] == expected[10:20]
    single = loaded.client.get(
        url, headers={"Range": "bytes=-5", "Accept": "application/octet-stream"}
    )
    assert single.status_code == 206 and single.content == expected[-5:]
    outside = loaded.client.get(url, headers={"Range": f"bytes={len(expected) + 5}-"})
    assert outside.status_code == 416


def test_pixel_data_bulk_is_every_frame(loaded: Loaded) -> None:
    item = loaded.items["rgb_rle"]
    response = loaded.client.get(f"{item.path}/bulk/7FE00010")
    assert len(parts(response)) == 2


def test_bad_bulk_paths(loaded: Loaded) -> None:
    item = loaded.items["ct_small"]
    assert loaded.client.get(f"{item.path}/bulk/00439999").status_code == 404
    assert loaded.client.get(f"{item.path}/bulk/zz").status_code == 400
    not_binary = loaded.client.get(f"{item.path}/bulk/00100010")
    assert not_binary.status_code == 400


# --- frames ---------------------------------------------------------------------------------


def test_native_frame_as_octet_stream(loaded: Loaded) -> None:
    item = loaded.ct[2]
    accept = "multipart/related; type=application/octet-stream"
    ((headers, data),) = parts(
        loaded.client.get(f"{item.path}/frames/1", headers={"Accept": accept})
    )
    assert headers["content-type"] == f"application/octet-stream; transfer-syntax={EXPLICIT}"
    assert data == dcmread(item.source).PixelData


def test_ohif_frames_come_as_stored(loaded: Loaded) -> None:
    item = loaded.items["emri_jls"]
    accept = "multipart/related; type=application/octet-stream; transfer-syntax=*"
    response = loaded.client.get(f"{item.path}/frames/1,3,5", headers={"Accept": accept})
    found = parts(response)
    assert len(found) == 3
    path = str(loaded.stored(item))
    for (headers, data), number in zip(found, (1, 3, 5), strict=True):
        assert headers["content-type"] == f"application/octet-stream; transfer-syntax={JLS}"
        assert data == frames.read_frame(path, number - 1)
        assert data.startswith(b"\xff\xd8\xff\xf7")  # bare JPEG-LS, no item tags


def test_compressed_frame_decompressed_by_default(loaded: Loaded) -> None:
    item = loaded.items["emri_jls"]
    response = loaded.client.get(f"{item.path}/frames/2")
    ((headers, data),) = parts(response)
    assert headers["content-type"] == f"application/octet-stream; transfer-syntax={EXPLICIT}"
    expected = dcmread(item.source).pixel_array[1]
    assert np.array_equal(np.frombuffer(data, expected.dtype).reshape(expected.shape), expected)


@pytest.mark.parametrize(
    ("media", "syntax"),
    [("image/jls", JLS), ("image/jp2", J2K), ("image/jpeg", "1.2.840.10008.1.2.4.70")],
)
def test_frames_as_image_types(loaded: Loaded, media: str, syntax: str) -> None:
    item = loaded.ct[1]
    accept = f'multipart/related; type="{media}"'
    ((headers, data),) = parts(
        loaded.client.get(f"{item.path}/frames/1", headers={"Accept": accept})
    )
    assert headers["content-type"] == f"{media}; transfer-syntax={syntax}"
    ds = dcmread(item.source, stop_before_pixels=True)
    described = frames.PixelDescription.from_dataset(ds, syntax)
    assert np.array_equal(frames.decode_bytes(described, data), source_pixels(item))


def test_single_part_frame(loaded: Loaded) -> None:
    item = loaded.items["rgb_rle"]
    response = loaded.client.get(
        f"{item.path}/frames/2", headers={"Accept": "application/octet-stream"}
    )
    assert response.status_code == 200
    assert (
        response.headers["content-type"] == f"application/octet-stream; transfer-syntax={EXPLICIT}"
    )
    assert len(response.content) == 100 * 100 * 3


@pytest.mark.parametrize(("frames_", "code"), [("11", 404), ("0", 400), ("1,x", 400), ("", 404)])
def test_bad_frame_numbers(loaded: Loaded, frames_: str, code: int) -> None:
    item = loaded.items["emri_jls"]
    response = loaded.client.get(f"{item.path}/frames/{frames_}")
    assert response.status_code == code


def test_frames_of_an_image_type_the_object_cannot_take(loaded: Loaded) -> None:
    item = loaded.ct[0]  # signed 16-bit: no lossy JPEG baseline
    accept = 'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50'
    response = loaded.client.get(f"{item.path}/frames/1", headers={"Accept": accept})
    assert response.status_code == 406


# --- rendered and thumbnails ----------------------------------------------------------------


def image(response: object) -> Image.Image:
    assert getattr(response, "status_code", None) == 200, getattr(response, "text", "")
    return Image.open(io.BytesIO(response.content))  # type: ignore[attr-defined]


def test_rendered_at_every_level(loaded: Loaded) -> None:
    ct = loaded.ct[0]
    for url in (
        f"/dicomweb/studies/{ct.study}/rendered",
        f"{ct.series_path}/rendered",
        f"{ct.path}/rendered",
        f"{ct.path}/frames/1/rendered",
    ):
        response = loaded.client.get(url)
        assert response.headers["content-type"] == "image/jpeg"
        assert image(response).size == (32, 32)


def test_rendered_parameters(loaded: Loaded) -> None:
    ct = loaded.ct[0]
    png = loaded.client.get(
        f"{ct.path}/rendered?viewport=64,48&window=40,400", headers={"Accept": "image/png"}
    )
    assert png.headers["content-type"] == "image/png"
    assert image(png).size == (48, 48)
    narrow = image(loaded.client.get(f"{ct.path}/rendered?window=40,1,LINEAR_EXACT"))
    wide = image(loaded.client.get(f"{ct.path}/rendered?window=40,4000"))
    assert np.asarray(narrow).std() > np.asarray(wide).std()
    low = loaded.client.get(f"{ct.path}/rendered?quality=5").content
    high = loaded.client.get(f"{ct.path}/rendered?quality=100").content
    assert len(low) < len(high)


def test_rendered_multiframe_gif_is_animated(loaded: Loaded) -> None:
    item = loaded.items["emri_jls"]
    gif = image(loaded.client.get(f"{item.path}/rendered", headers={"Accept": "image/gif"}))
    assert getattr(gif, "n_frames", 1) > 1


@pytest.mark.parametrize(
    "query",
    ["window=40", "window=a,b", "viewport=0,10", "viewport=1,2,3,4,5,6", "quality=0", "size=3"],
)
def test_bad_rendering_parameters(loaded: Loaded, query: str) -> None:
    response = loaded.client.get(f"{loaded.ct[0].path}/rendered?{query}")
    assert response.status_code == 400
    assert response.json()["detail"]


def test_rendered_needs_an_image_type(loaded: Loaded) -> None:
    response = loaded.client.get(
        f"{loaded.ct[0].path}/rendered", headers={"Accept": "application/dicom"}
    )
    assert response.status_code == 406


def test_thumbnails(loaded: Loaded) -> None:
    item = loaded.items["emri_jls"]
    series = image(loaded.client.get(f"{item.series_path}/thumbnail?size=32"))
    assert max(series.size) == 32
    study = image(loaded.client.get(f"/dicomweb/studies/{item.study}/thumbnail?viewport=100"))
    assert max(study.size) == 100  # a viewport scales up as well as down
    wide = image(loaded.client.get(f"{item.series_path}/thumbnail?viewport=80,40"))
    assert wide.size == (40, 40)
    png = loaded.client.get(f"{item.series_path}/thumbnail", headers={"Accept": "image/png"})
    assert png.headers["content-type"] == "image/png"
    assert loaded.client.get(f"{item.series_path}/thumbnail?size=0").status_code == 400
    assert loaded.client.get(f"{item.series_path}/thumbnail?colour=red").status_code == 400
