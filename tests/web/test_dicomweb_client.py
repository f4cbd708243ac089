"""DICOMweb as a user sees it: dicomweb-client against openpacs on a real uvicorn server.

Search at every level with every parameter, retrieve as stored and transcoded, metadata,
frames, bulk data, rendered images and store; everything compared with what was stored
(pixels equal, since every conversion here is lossless).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import uvicorn
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom import Dataset, dcmread

from openpacs.accounts import Role
from openpacs.dicom import frames
from openpacs.dicom import json as dj
from tests.conftest import free_port
from tests.generators import ct_series
from tests.web.client import TEST_PASSWORD, make_user, token_for
from tests.web.dicomweb_data import ZHANG, Loaded, build

EXPLICIT = "1.2.840.10008.1.2.1"
JLS = "1.2.840.10008.1.2.4.80"
RLE = "1.2.840.10008.1.2.5"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Loaded, DICOMwebClient]]:
    loaded = build(tmp_path_factory.mktemp("client"))
    port = free_port()
    config = uvicorn.Config(
        loaded.app, host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    # As a DICOMweb client signs in: HTTP Basic on a requests session (an operator may store).
    session = requests.Session()
    session.auth = (make_user(loaded.core, Role.operator), TEST_PASSWORD)
    client = DICOMwebClient(url=f"http://127.0.0.1:{port}/dicomweb", session=session)
    try:
        yield loaded, client
    finally:
        client._session.close()
        server.should_exit = True
        thread.join(10)
        loaded.close()


def value(answer: dict[str, dict[str, list[object]]], tag: str) -> object:
    return answer[tag]["Value"][0]


# --- search -----------------------------------------------------------------------------------


def test_search_every_level_with_every_parameter(served: tuple[Loaded, DICOMwebClient]) -> None:
    loaded, client = served
    ct = loaded.ct[0]
    studies = client.search_for_studies()
    assert len(studies) == 7
    fuzzy = client.search_for_studies(
        fuzzymatching=True, search_filters={"PatientName": "zha"}, fields=["StudyDescription"]
    )
    assert [value(s, "0020000D") for s in fuzzy] == [ct.study]
    assert value(fuzzy[0], "00081030") == "openpacs synthetic data"
    ideographic = client.search_for_studies(
        fuzzymatching=True, search_filters={"PatientName": "张"}
    )
    assert value(ideographic[0], "00100010") == {"Alphabetic": "Zhang^San", "Ideographic": "张^三"}
    page = client.search_for_studies(limit=2, offset=1)
    assert page == studies[1:3]
    every = client.search_for_studies(limit=2, get_remaining=True)
    assert every == studies
    ranged = client.search_for_studies(search_filters={"StudyDate": "20230101-20241231"})
    assert len(ranged) == 2
    listed = client.search_for_studies(search_filters={"ModalitiesInStudy": "MR,OT"})
    assert len(listed) == 4

    series = client.search_for_series(ct.study, fields=["00080021", "BodyPartExamined"])
    assert [value(s, "0020000E") for s in series] == [ct.series]
    assert "00180015" in series[0]
    all_series = client.search_for_series(search_filters={"Modality": "CT"}, limit=10)
    assert len(all_series) == 3

    instances = client.search_for_instances(ct.study, ct.series, fields=["all"])
    assert [value(i, "00080018") for i in instances] == [i.sop for i in loaded.ct]
    by_number = client.search_for_instances(
        search_filters={"SeriesInstanceUID": ct.series, "InstanceNumber": "3"}
    )
    assert [value(i, "00080018") for i in by_number] == [loaded.ct[2].sop]
    assert client.search_for_instances(search_filters={"PatientID": "NOBODY"}) == []


# --- retrieve ---------------------------------------------------------------------------------


def assert_same_object(got: Dataset, source: Path) -> None:
    stored = dcmread(source)
    assert got.SOPInstanceUID == stored.SOPInstanceUID
    assert np.array_equal(got.pixel_array, stored.pixel_array)
    assert str(got.PatientName) == str(stored.PatientName)


def test_retrieve_study_series_instance_transcoded(served: tuple[Loaded, DICOMwebClient]) -> None:
    loaded, client = served
    ct = loaded.ct[0]
    study = client.retrieve_study(ct.study)
    assert sorted(ds.SOPInstanceUID for ds in study) == sorted(i.sop for i in loaded.ct)
    mr = loaded.items["mr_jls"]
    (series_ds,) = client.retrieve_series(mr.study, mr.series)
    assert series_ds.file_meta.TransferSyntaxUID == EXPLICIT  # the default
    assert_same_object(series_ds, mr.source)
    rgb = loaded.items["rgb_rle"]
    instance = client.retrieve_instance(
        rgb.study, rgb.series, rgb.sop, media_types=(("application/dicom", JLS),)
    )
    assert instance.file_meta.TransferSyntaxUID == JLS
    assert_same_object(instance, rgb.source)


def test_retrieve_as_stored(served: tuple[Loaded, DICOMwebClient]) -> None:
    loaded, client = served
    for item in (loaded.items["mr_jls"], loaded.items["rgb_rle"], loaded.ct[1]):
        got = client.retrieve_instance(
            item.study, item.series, item.sop, media_types=(("application/dicom", "*"),)
        )
        assert got.file_meta.TransferSyntaxUID == item.syntax
        assert_same_object(got, item.source)
    streamed = list(client.iter_series(loaded.ct[0].study, loaded.ct[0].series))
    assert len(streamed) == 4


def test_metadata_matches_the_stored_objects(served: tuple[Loaded, DICOMwebClient]) -> None:
    loaded, client = served
    ct = loaded.ct[0]
    metadata = client.retrieve_series_metadata(ct.study, ct.series)
    assert len(metadata) == 4
    for obj, item in zip(metadata, loaded.ct, strict=True):
        rebuilt = dj.from_json(obj)
        stored = dcmread(item.source, stop_before_pixels=True)
        for keyword in ("SOPInstanceUID", "PatientName", "SliceThickness", "ImagePositionPatient"):
            assert str(rebuilt[keyword].value) == str(stored[keyword].value), keyword
    study = client.retrieve_study_metadata(ct.study)
    assert study == metadata
    one = client.retrieve_instance_metadata(ct.study, ct.series, ct.sop)
    assert one == metadata[0]
    chinese = loaded.items["chinese"]
    meta = client.retrieve_instance_metadata(chinese.study, chinese.series, chinese.sop)
    assert value(meta, "00100010") == {"Alphabetic": "Wang^XiaoDong", "Ideographic": "王^小东"}


def test_frames(served: tuple[Loaded, DICOMwebClient]) -> None:
    loaded, client = served
    emri = loaded.items["emri_jls"]
    stored = dcmread(emri.source)
    native = client.retrieve_instance_frames(
        emri.study,
        emri.series,
        emri.sop,
        frame_numbers=[1, 3],
        media_types=("application/octet-stream",),
    )
    for data, index in zip(native, (0, 2), strict=True):
        frame = stored.pixel_array[index]
        assert np.array_equal(np.frombuffer(data, frame.dtype).reshape(frame.shape), frame)
    compressed = client.retrieve_instance_frames(
        emri.study, emri.series, emri.sop, frame_numbers=[2], media_types=(("image/jls", JLS),)
    )
    assert compressed[0] == frames.read_frame(str(loaded.stored(emri)), 1)
    ct = loaded.ct[0]
    (rle,) = client.retrieve_instance_frames(
        ct.study, ct.series, ct.sop, frame_numbers=[1], media_types=(("image/dicom-rle", RLE),)
    )
    described = frames.PixelDescription.from_dataset(dcmread(ct.source), RLE)
    assert np.array_equal(frames.decode_bytes(described, rle), dcmread(ct.source).pixel_array)


def test_bulkdata(served: tuple[Loaded, DICOMwebClient]) -> None:
    loaded, client = served
    item = loaded.items["ct_small"]
    meta = client.retrieve_instance_metadata(item.study, item.series, item.sop)
    uri = meta["00431029"]["BulkDataURI"]
    (data,) = client.retrieve_bulkdata(uri)
    assert data == dcmread(item.source)[0x00431029].value
    (head,) = client.retrieve_bulkdata(uri, byte_range=(0, 9))
    assert head == data[:10]


def test_rendered(served: tuple[Loaded, DICOMwebClient]) -> None:
    loaded, client = served
    ct = loaded.ct[0]
    jpeg = client.retrieve_instance_rendered(ct.study, ct.series, ct.sop)
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    png = client.retrieve_series_rendered(
        ct.study, ct.series, media_types=("image/png",), params={"viewport": "64,64"}
    )
    assert Image.open(io.BytesIO(png)).size == (64, 64)
    frame = client.retrieve_instance_frames_rendered(
        ct.study, ct.series, ct.sop, frame_numbers=[1], params={"window": "40,400"}
    )
    assert Image.open(io.BytesIO(frame)).size == (32, 32)


def test_store_then_find_and_retrieve(
    served: tuple[Loaded, DICOMwebClient], tmp_path: Path
) -> None:
    _, client = served
    paths = ct_series(tmp_path, 2, rows=16, columns=16, patient_id="STOW01", seed=77)
    datasets = [dcmread(path) for path in paths]
    answer = client.store_instances(datasets)
    referenced = answer.ReferencedSOPSequence
    assert [str(r.ReferencedSOPInstanceUID) for r in referenced] == [
        str(ds.SOPInstanceUID) for ds in datasets
    ]
    (found,) = client.search_for_studies(search_filters={"PatientID": "STOW01"})
    study = str(value(found, "0020000D"))
    back = client.retrieve_study(study, media_types=(("application/dicom", "*"),))
    by_uid = {ds.SOPInstanceUID: ds for ds in back}
    for path in paths:
        assert_same_object(by_uid[dcmread(path).SOPInstanceUID], path)
    assert ZHANG not in str(found)


# --- credentials ------------------------------------------------------------------------------


def status_of(error: requests.HTTPError) -> int:
    assert error.response is not None
    return error.response.status_code


def _client(base_url: str, **headers: str) -> DICOMwebClient:
    session = requests.Session()
    session.headers.update(headers)
    return DICOMwebClient(url=base_url, session=session)


def test_bearer_token_reads_and_nothing_without_credentials(
    served: tuple[Loaded, DICOMwebClient],
) -> None:
    loaded, basic = served
    ct = loaded.ct[0]
    token = token_for(loaded.core, Role.viewer)
    viewer = _client(basic.base_url, Authorization=f"Bearer {token}")
    (found,) = viewer.search_for_studies(search_filters={"PatientID": "ZS001"})
    assert value(found, "0020000D") == ct.study
    assert len(viewer.retrieve_series(ct.study, ct.series)) == 4
    for anonymous in (
        _client(basic.base_url),
        _client(basic.base_url, Authorization="Bearer opt_not-a-token"),
    ):
        with pytest.raises(requests.HTTPError) as refused:
            anonymous.search_for_studies()
        assert status_of(refused.value) == 401
    wrong = requests.Session()
    wrong.auth = (make_user(loaded.core, Role.operator), "not the password")
    with pytest.raises(requests.HTTPError) as refused:
        DICOMwebClient(url=basic.base_url, session=wrong).search_for_studies()
    assert status_of(refused.value) == 401
    assert refused.value.response is not None
    assert refused.value.response.headers["WWW-Authenticate"] == 'Basic realm="openpacs"'
