"""QIDO-RS through the app (httpx ASGI transport): every path, key spelling and parameter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.dicomweb_data import MULLER, ZHANG, Loaded, build

Json = list[dict[str, Any]]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    archive = build(tmp_path_factory.mktemp("qido"))
    yield archive
    archive.close()


def search(loaded: Loaded, path: str, **headers: str) -> Json:
    response = loaded.client.get(path, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom+json"
    body: Json = response.json()
    return body


def values(answers: Json, tag: str) -> list[Any]:
    return [answer.get(tag, {}).get("Value", [None])[0] for answer in answers]


def names(answers: Json) -> list[str | None]:
    found = values(answers, "00100010")
    return [None if v is None else v.get("Alphabetic") for v in found]


# --- levels, paths and parents ----------------------------------------------------------------


def test_study_search_defaults_newest_first(loaded: Loaded) -> None:
    answers = search(loaded, "/dicomweb/studies")
    assert len(answers) == 7
    dates = [d for d in values(answers, "00080020") if d is not None]
    assert dates == sorted(dates, reverse=True)
    first = answers[0]
    assert list(first) == sorted(first)
    assert first["00100010"]["Value"] == [{"Alphabetic": "Zhang^San", "Ideographic": "张^三"}]
    assert first["00080005"] == {"vr": "CS", "Value": ["ISO_IR 192"]}
    assert first["00080056"]["Value"] == ["ONLINE"]
    assert first["00080061"]["Value"] == ["CT"]
    assert first["00201206"]["Value"] == ["1"]  # NumberOfStudyRelatedSeries, IS as text
    assert first["00201208"]["Value"] == ["4"]
    study = loaded.ct[0].study
    assert first["00081190"]["Value"] == [f"http://openpacs/dicomweb/studies/{study}"]


def test_every_search_path(loaded: Loaded) -> None:
    ct = loaded.ct[0]
    assert len(search(loaded, "/dicomweb/series")) == 7
    assert len(search(loaded, "/dicomweb/instances")) == 4 + 2 + 5
    series = search(loaded, f"/dicomweb/studies/{ct.study}/series")
    assert values(series, "0020000E") == [ct.series]
    assert len(search(loaded, f"/dicomweb/studies/{ct.study}/instances")) == 4
    instances = search(loaded, f"/dicomweb/studies/{ct.study}/series/{ct.series}/instances")
    assert values(instances, "00080018") == [item.sop for item in loaded.ct]  # by number
    assert values(instances, "00200013") == ["1", "2", "3", "4"]


def test_series_and_instances_carry_their_parents(loaded: Loaded) -> None:
    ct = loaded.ct[0]
    (series,) = search(loaded, f"/dicomweb/series?SeriesInstanceUID={ct.series}")
    assert series["0020000D"]["Value"] == [ct.study]
    assert series["00100020"]["Value"] == ["ZS001"]
    assert series["00081190"]["Value"] == [f"http://openpacs{ct.series_path}"]
    (instance,) = search(loaded, f"/dicomweb/instances?SOPInstanceUID={ct.sop}")
    assert instance["0020000D"]["Value"] == [ct.study]
    assert instance["0020000E"]["Value"] == [ct.series]
    assert instance["00080060"]["Value"] == ["CT"]
    assert instance["00280010"]["Value"] == [32]
    assert instance["00081190"]["Value"] == [f"http://openpacs{ct.path}"]


def test_the_dicom_web_alias_and_its_urls(loaded: Loaded) -> None:
    answers = search(loaded, f"/dicom-web/studies?StudyInstanceUID={loaded.ct[0].study}")
    assert answers[0]["00081190"]["Value"][0].startswith("http://openpacs/dicom-web/studies/")


def test_urls_behind_a_proxy(loaded: Loaded) -> None:
    answers = search(
        loaded,
        f"/dicomweb/studies?StudyInstanceUID={loaded.ct[0].study}",
        **{
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "pacs.example.org:8443",
            "X-Forwarded-Prefix": "/imaging/",
        },
    )
    url = answers[0]["00081190"]["Value"][0]
    assert url == f"https://pacs.example.org:8443/imaging/dicomweb/studies/{loaded.ct[0].study}"


# --- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["PatientID", "00100020", "00100020".lower()])
def test_keys_as_keyword_or_tag(loaded: Loaded, key: str) -> None:
    assert names(search(loaded, f"/dicomweb/studies?{key}=MU001")) == [MULLER]


def test_friendly_names_and_modality_at_study_level(loaded: Loaded) -> None:
    mr = search(loaded, "/dicomweb/studies?Modality=MR")
    assert {a["00080061"]["Value"][0] for a in mr} == {"MR"}
    assert len(mr) == 2
    both = search(loaded, "/dicomweb/studies?ModalitiesInStudy=MR\\OT")
    assert len(both) == 4
    comma = search(loaded, "/dicomweb/studies?Modality=MR,OT")
    assert len(comma) == 4
    repeated = search(loaded, "/dicomweb/studies?Modality=MR&Modality=OT")
    assert len(repeated) == 4
    acc = search(loaded, "/dicomweb/studies?AccessionNumber=ACC000011")
    assert names(acc) == ["Zhang^San"]


def test_uid_lists(loaded: Loaded) -> None:
    ct, mu = loaded.ct[0], loaded.muller[0]
    answers = search(loaded, f"/dicomweb/studies?StudyInstanceUID={ct.study},{mu.study}")
    assert sorted(values(answers, "0020000D")) == sorted([ct.study, mu.study])
    answers = search(loaded, f"/dicomweb/studies?StudyInstanceUID={ct.study}\\{mu.study}")
    assert len(answers) == 2


def test_wildcards_and_ranges(loaded: Loaded) -> None:
    assert names(search(loaded, "/dicomweb/studies?PatientName=M*")) == [MULLER]
    assert names(search(loaded, "/dicomweb/studies?PatientID=ZS00?")) == ["Zhang^San"]
    in_2023 = search(loaded, "/dicomweb/studies?StudyDate=20230101-20231231")
    assert names(in_2023) == [MULLER]
    since = search(loaded, "/dicomweb/studies?StudyDate=20170101-")
    assert len(since) == 3
    timed = search(loaded, "/dicomweb/studies?StudyDate=20240102&StudyTime=0300-0310")
    assert names(timed) == ["Zhang^San"]


def test_sequence_path_keys(loaded: Loaded) -> None:
    answers = search(
        loaded,
        "/dicomweb/series?RequestAttributesSequence.RequestedProcedureID=nothing-like-it",
    )
    assert answers == []
    answers = search(loaded, "/dicomweb/series?includefield=00400275.00401001")
    assert "00400275" in answers[0]


def test_ideographic_name_query(loaded: Loaded) -> None:
    assert names(search(loaded, "/dicomweb/studies?PatientName=王*")) == ["Wang^XiaoDong"]
    assert names(search(loaded, "/dicomweb/studies?PatientName==张^三")) == ["Zhang^San"]


# --- fuzzy matching -----------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["zha", "ZHANG", "san", "张", "三", "zha 张"])
def test_fuzzy_name_matching(loaded: Loaded, query: str) -> None:
    found = names(search(loaded, f"/dicomweb/studies?PatientName={query}&fuzzymatching=true"))
    assert found == ["Zhang^San"]


def test_without_fuzzy_a_prefix_is_not_enough(loaded: Loaded) -> None:
    assert search(loaded, "/dicomweb/studies?PatientName=zha") == []
    assert search(loaded, "/dicomweb/studies?PatientName=zha&fuzzymatching=false") == []


@pytest.mark.parametrize("query", ["muller", "MÜLLER", "jurgen", "Mül", "JÜR muLL"])
def test_fuzzy_matching_ignores_accents_and_case(loaded: Loaded, query: str) -> None:
    found = names(search(loaded, f"/dicomweb/studies?PatientName={query}&fuzzymatching=true"))
    assert found == [MULLER]


# --- return keys ------------------------------------------------------------------------------


def test_includefield_repeated_comma_and_all(loaded: Loaded) -> None:
    ct = loaded.ct[0]
    base = f"/dicomweb/studies/{ct.study}/series"
    plain = search(loaded, base)[0]
    assert "00080021" in plain and "0008103E" in plain  # defaults
    assert "00180015" not in plain
    comma = search(loaded, f"{base}?includefield=BodyPartExamined,00081090")[0]
    assert comma["00180015"] == {"vr": "CS"} and comma["00081090"]["Value"] == ["generators"]
    repeated = search(loaded, f"{base}?includefield=BodyPartExamined&includefield=00081090")[0]
    assert repeated == comma
    everything = search(loaded, f"{base}?includefield=all")[0]
    assert {"00180015", "00081090", "00100010", "00200052"} <= set(everything)


def test_ohif_study_list_request(loaded: Loaded) -> None:
    answers = search(
        loaded,
        "/dicomweb/studies?limit=101&offset=0&fuzzymatching=true&includefield=00081030,00080060",
    )
    assert len(answers) == 7
    assert all("00081030" in a for a in answers)


# --- paging -----------------------------------------------------------------------------------


def test_limit_offset_and_the_warning(loaded: Loaded) -> None:
    everything = search(loaded, "/dicomweb/studies")
    response = loaded.client.get("/dicomweb/studies?limit=3&offset=2")
    assert response.status_code == 200
    assert response.json() == everything[2:5]
    assert response.headers["warning"].startswith('299 openpacs: "')
    assert "offset=5" in response.headers["warning"]
    last = loaded.client.get("/dicomweb/studies?limit=3&offset=5")
    assert last.json() == everything[5:]
    assert "warning" not in last.headers


def test_server_maximum_caps_the_limit(tmp_path: Path) -> None:
    archive = build(tmp_path, dicomweb={"qido_max_results": 2})
    try:
        response = archive.client.get("/dicomweb/studies?limit=50")
        assert len(response.json()) == 2
        assert "more results" in response.headers["warning"]
    finally:
        archive.close()


def test_zero_matches_is_200_with_an_empty_array(loaded: Loaded) -> None:
    response = loaded.client.get("/dicomweb/studies?PatientID=NOBODY")
    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["content-type"] == "application/dicom+json"


def test_unindexed_matching_key_is_ignored_with_a_warning(loaded: Loaded) -> None:
    response = loaded.client.get("/dicomweb/studies?PatientAddress=Somewhere")
    assert response.status_code == 200
    assert len(response.json()) == 7
    assert "PatientAddress" in response.headers["warning"]


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("/dicomweb/studies?NoSuchKeyword=1", "NoSuchKeyword"),
        ("/dicomweb/studies?limit=many", "limit"),
        ("/dicomweb/studies?limit=-1", "limit"),
        ("/dicomweb/studies?offset=-3", "offset"),
        ("/dicomweb/studies?fuzzymatching=perhaps", "fuzzymatching"),
        ("/dicomweb/studies?includefield=NotAKeyword", "NotAKeyword"),
        ("/dicomweb/studies?StudyDate=2024-13-01", "StudyDate"),
        ("/dicomweb/studies?StudyDate=20240230", "StudyDate"),
        ("/dicomweb/studies?StudyInstanceUID=1.2.abc", "StudyInstanceUID"),
        ("/dicomweb/studies?PatientID.PatientName=x", "PatientID"),
        ("/dicomweb/studies?RequestAttributesSequence=x", "RequestAttributesSequence"),
        ("/dicomweb/studies/1.2.x/series", "StudyInstanceUID"),
        ("/dicomweb/studies/1.2.3/series/1..2/instances", "SeriesInstanceUID"),
        ("/dicomweb/series?SeriesNumber=one", "SeriesNumber"),
    ],
)
def test_bad_parameters_are_400_with_a_reason(loaded: Loaded, url: str, reason: str) -> None:
    response = loaded.client.get(url)
    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]


def test_xml_only_is_not_acceptable(loaded: Loaded) -> None:
    response = loaded.client.get(
        "/dicomweb/studies", headers={"Accept": "multipart/related; type=application/dicom+xml"}
    )
    assert response.status_code == 406
    assert "application/dicom+json" in response.json()["detail"]
    assert loaded.client.get("/dicomweb/studies", headers={"Accept": "application/json"}).is_success


def test_answers_keep_chinese_as_utf8(loaded: Loaded) -> None:
    response = loaded.client.get("/dicomweb/studies?PatientID=X2EXAMPLE")
    assert "王^小东".encode() in response.content
    assert response.json()[0]["00100010"]["Value"][0]["Ideographic"] == "王^小东"
    assert ZHANG.split("=")[1] not in response.text


def test_a_rejected_name_is_not_logged(loaded: Loaded, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        response = loaded.client.get("/dicomweb/studies?PatientName=SECRET^NAME=a=b=c")
    assert response.status_code == 400
    assert "SECRET" in response.text
    assert "SECRET" not in caplog.text
