"""C-FIND SCP against dcmtk's findscu (-P and -S at every level) and our own SCU for C-CANCEL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import Dataset, dcmread
from pydicom.data import get_charset_files

from openpacs.archive import query as archive_query
from openpacs.archive.core import Core, open_core
from openpacs.config import Settings
from openpacs.dicom.charset import apply_charset, decide_charset
from openpacs.dimse import engine, sop
from openpacs.dimse import qr_scp as qr
from openpacs.dimse.engine import Listener
from openpacs.dimse.identifier import IDENTIFIER_SYNTAXES, encode_identifier
from tests.conftest import make_settings, sample
from tests.generators import ct_series
from tests.integration.qr_client import exchange, findscu, load

pytestmark = pytest.mark.peer

STUDY_ROOT, PATIENT_ROOT = "-S", "-P"
STUDY_ROOT_MODEL = archive_query.Model.STUDY_ROOT
GB_NAME = "王^小东"  # chrX2.dcm (GB18030): Wang^XiaoDong=王^小东
UTF8_NAME = "王^小東"  # chrX1.dcm (ISO_IR 192): Wang^XiaoDong=王^小東
SERIES_KEYS = ["Modality", "NumberOfSeriesRelatedInstances"]


@pytest.fixture
def archive(core: Core, tmp_path: Path) -> dict[str, str]:
    """Two generated CT patients, two pydicom-data studies with other dates, the two Chinese
    charset samples; returns a few UIDs by name."""
    john = ct_series(tmp_path / "john", 3, patient_name="DOE^JOHN", patient_id="PID1", seed=1)
    jane = ct_series(tmp_path / "jane", 2, patient_name="DOE^JANE", patient_id="PID2", seed=2)
    chinese = [Path(get_charset_files(name)[0]) for name in ("chrX1.dcm", "chrX2.dcm")]
    load(core, [*john, *jane, sample("CT_small.dcm"), sample("MR_small.dcm"), *chinese])
    first = dcmread(john[0], stop_before_pixels=True)
    return {
        "john_study": str(first.StudyInstanceUID),
        "john_series": str(first.SeriesInstanceUID),
        "john_image": str(first.SOPInstanceUID),
        "jane_study": str(dcmread(jane[0], stop_before_pixels=True).StudyInstanceUID),
        "ct_small_study": str(dcmread(sample("CT_small.dcm")).StudyInstanceUID),
    }


def names(found: list[Dataset]) -> list[str]:
    return [str(ds.PatientName) for ds in found]


def test_study_level_wildcard_and_returned_keys(
    qr_scp: Listener, archive: dict[str, str], tmp_path: Path
) -> None:
    keys = [
        "QueryRetrieveLevel=STUDY",
        "PatientName=doe*",  # PN wildcards match case-insensitively
        "StudyInstanceUID",
        "NumberOfStudyRelatedInstances",
        "ModalitiesInStudy",
        "RetrieveAETitle",
        "StudyDate",
    ]
    found = findscu(qr_scp.port, STUDY_ROOT, keys, tmp_path / "rsp")
    assert found.final == "Success"
    by_name = {str(ds.PatientName): ds for ds in found.answers}
    assert set(by_name) == {"DOE^JOHN", "DOE^JANE"}
    john = by_name["DOE^JOHN"]
    assert john.StudyInstanceUID == archive["john_study"]
    assert john.NumberOfStudyRelatedInstances == 3
    assert john.ModalitiesInStudy == "CT"
    assert john.RetrieveAETitle == "QRSCP"
    assert john.QueryRetrieveLevel == "STUDY"
    assert john.StudyDate == "20240102"


@pytest.mark.parametrize("model", [STUDY_ROOT, PATIENT_ROOT])
def test_every_level_below_the_patient(
    qr_scp: Listener, archive: dict[str, str], tmp_path: Path, model: str
) -> None:
    above = ["PatientID=PID1"] if model == PATIENT_ROOT else []
    study = f"StudyInstanceUID={archive['john_study']}"
    series = f"SeriesInstanceUID={archive['john_series']}"
    found = findscu(
        qr_scp.port,
        model,
        ["QueryRetrieveLevel=STUDY", *above, "StudyInstanceUID", "StudyDate=20240102"],
        tmp_path / "study",
    )
    assert sorted(str(ds.StudyInstanceUID) for ds in found.answers) == sorted(
        [archive["john_study"], archive["jane_study"]][: 1 if above else 2]
    )
    found = findscu(
        qr_scp.port,
        model,
        ["QueryRetrieveLevel=SERIES", *above, study, "SeriesInstanceUID", *SERIES_KEYS],
        tmp_path / "series",
    )
    assert found.final == "Success"
    assert [(ds.SeriesInstanceUID, ds.Modality) for ds in found.answers] == [
        (archive["john_series"], "CT")
    ]
    assert found.answers[0].NumberOfSeriesRelatedInstances == 3
    found = findscu(
        qr_scp.port,
        model,
        ["QueryRetrieveLevel=IMAGE", *above, study, series, "SOPInstanceUID", "InstanceNumber"],
        tmp_path / "image",
    )
    assert found.final == "Success"
    assert [int(ds.InstanceNumber) for ds in found.answers] == [1, 2, 3]
    assert found.answers[0].SOPInstanceUID == archive["john_image"]


def test_patient_level_with_counts(
    qr_scp: Listener, archive: dict[str, str], tmp_path: Path
) -> None:
    keys = [
        "QueryRetrieveLevel=PATIENT",
        "PatientID=PID*",
        "PatientName",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedInstances",
    ]
    found = findscu(qr_scp.port, PATIENT_ROOT, keys, tmp_path / "rsp")
    assert found.final == "Success"
    counts = {
        str(ds.PatientID): (ds.NumberOfPatientRelatedStudies, ds.NumberOfPatientRelatedInstances)
        for ds in found.answers
    }
    assert counts == {"PID1": (1, 3), "PID2": (1, 2)}


def test_study_root_has_no_patient_level(
    qr_scp: Listener, archive: dict[str, str], tmp_path: Path
) -> None:
    found = findscu(
        qr_scp.port, STUDY_ROOT, ["QueryRetrieveLevel=PATIENT", "PatientID"], tmp_path / "rsp"
    )
    assert "DataSetDoesNotMatchSOPClass" in found.final
    assert found.answers == []


def test_date_ranges_and_uid_lists(
    qr_scp: Listener, archive: dict[str, str], tmp_path: Path
) -> None:
    def studies(*keys: str) -> list[str]:
        found = findscu(
            qr_scp.port,
            STUDY_ROOT,
            ["QueryRetrieveLevel=STUDY", "PatientID", *keys],
            tmp_path / "rsp",
        )
        assert found.final == "Success", found.output
        return sorted(str(ds.PatientID) for ds in found.answers)

    assert studies("StudyDate=20040101-20041231") == ["1CT1", "4MR1"]
    assert studies("StudyDate=-20040201") == ["1CT1"]
    assert studies("StudyDate=20240101-") == ["PID1", "PID2"]
    uid_list = f"StudyInstanceUID={archive['john_study']}\\{archive['ct_small_study']}"
    assert studies(uid_list) == ["1CT1", "PID1"]


def test_gb18030_query_gets_gb18030_answers(
    qr_scp: Listener, archive: dict[str, str], tmp_path: Path
) -> None:
    keys: list[str | bytes] = [
        "QueryRetrieveLevel=STUDY",
        "(0008,0005)=GB18030",
        b"PatientName=" + GB_NAME.encode("gb18030"),
        "StudyInstanceUID",
    ]
    found = findscu(qr_scp.port, STUDY_ROOT, keys, tmp_path / "one")
    assert found.final == "Success"
    assert [(ds.SpecificCharacterSet, str(ds.PatientName)) for ds in found.answers] == [
        ("GB18030", f"Wang^XiaoDong={GB_NAME}")
    ]
    # 王* finds both; the UTF-8 one's 東 fits GB18030 too, so both answers are GB18030.
    keys[2] = b"PatientName=" + "王*".encode("gb18030")
    found = findscu(qr_scp.port, STUDY_ROOT, keys, tmp_path / "both")
    expected = [f"Wang^XiaoDong={UTF8_NAME}", f"Wang^XiaoDong={GB_NAME}"]
    assert sorted(names(found.answers)) == sorted(expected)
    assert {ds.SpecificCharacterSet for ds in found.answers} == {"GB18030"}


def test_utf8_query_and_answers_that_do_not_fit_the_query_charset(
    qr_scp: Listener, archive: dict[str, str], tmp_path: Path
) -> None:
    keys: list[str | bytes] = [
        "QueryRetrieveLevel=STUDY",
        "(0008,0005)=ISO_IR 192",
        b"PatientName=" + UTF8_NAME.encode(),
    ]
    found = findscu(qr_scp.port, STUDY_ROOT, keys, tmp_path / "utf8")
    assert [(ds.SpecificCharacterSet, str(ds.PatientName)) for ds in found.answers] == [
        ("ISO_IR 192", f"Wang^XiaoDong={UTF8_NAME}")
    ]
    # Latin-1 asked for: ASCII names stay Latin-1, Chinese ones come in UTF-8.
    keys = ["QueryRetrieveLevel=STUDY", "(0008,0005)=ISO_IR 100", "PatientName"]
    found = findscu(qr_scp.port, STUDY_ROOT, keys, tmp_path / "latin1")
    charsets = {str(ds.PatientName): ds.SpecificCharacterSet for ds in found.answers}
    assert charsets["DOE^JOHN"] == "ISO_IR 100"
    assert charsets[f"Wang^XiaoDong={GB_NAME}"] == "ISO_IR 192"
    # No charset asked for: none in ASCII answers.
    found = findscu(
        qr_scp.port, STUDY_ROOT, ["QueryRetrieveLevel=STUDY", "PatientName=DOE^JOHN"], tmp_path
    )
    assert "SpecificCharacterSet" not in found.answers[0]


def _identifier(charset: str | list[str] | None, level: str, **keys: object) -> Dataset:
    ds = Dataset()
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


_STUDY_KEYS: dict[str, object] = {
    "PatientName": "*",
    "PatientID": "",
    "PatientBirthDate": "",
    "StudyInstanceUID": "",
    "StudyDate": "",
    "StudyTime": "",
    "StudyDescription": "",
    "ReferringPhysicianName": "",
    "ModalitiesInStudy": "",
    "SOPClassesInStudy": "",
    "NumberOfStudyRelatedSeries": "",
    "NumberOfStudyRelatedInstances": "",
    "RetrieveAETitle": "",
    "InstanceAvailability": "",
    "PatientMotherBirthName": "",  # not indexed: returned empty
}


@pytest.mark.parametrize(
    ("charset", "level", "keys"),
    [
        (None, "STUDY", _STUDY_KEYS),
        ("ISO_IR 100", "STUDY", _STUDY_KEYS),  # Chinese names do not fit: UTF-8 answers
        ("ISO_IR 192", "STUDY", _STUDY_KEYS),
        ("GB18030", "STUDY", _STUDY_KEYS),
        (["", "ISO 2022 IR 87"], "STUDY", _STUDY_KEYS),
        (None, "SERIES", {"StudyInstanceUID": "", "SeriesNumber": "", "Modality": ""}),
        (None, "IMAGE", {"SOPInstanceUID": "", "InstanceNumber": "", "Rows": "", "Columns": ""}),
    ],
)
def test_flat_answers_are_written_as_their_datasets_would_be(
    core: Core,
    archive: dict[str, str],
    charset: str | list[str] | None,
    level: str,
    keys: dict[str, object],
) -> None:
    """C-FIND writes flat answers without building pydicom datasets: byte for byte what the
    datasets (`QrService._complete` + pydicom's writer) give, in every identifier syntax."""
    service = qr.QrService(core.settings.qrscp, core.sessions, core.storage, lambda _ae: None)
    identifier = _identifier(charset, level, **keys)
    decision = decide_charset(identifier)
    apply_charset(identifier, decision)
    relational = archive_query.QueryOptions(relational=True)
    request = qr.Request(
        STUDY_ROOT_MODEL, archive_query.Level(level), identifier, decision.effective
    )
    with core.sessions() as session:
        answers = archive_query.find(session, identifier, request.level, request.model, relational)
    assert answers.flat and len(answers) > 0
    for syntax in IDENTIFIER_SYNTAXES:
        expected = []
        for ds in answers:
            service._complete(ds, request)
            expected.append(encode_identifier(ds, syntax))
        assert list(service.encoded(answers, request, syntax)) == expected, syntax


def test_unknown_key_is_returned_empty_with_a_warning(
    qr_scp: Listener, archive: dict[str, str], tmp_path: Path
) -> None:
    keys = ["QueryRetrieveLevel=STUDY", "PatientID=PID1", "PatientMotherBirthName=SMITH"]
    found = findscu(qr_scp.port, STUDY_ROOT, keys, tmp_path / "rsp")
    assert found.final == "Success"
    assert "Pending: WarningUnsupportedOptionalKeys" in found.output
    assert len(found.answers) == 1
    assert found.answers[0].PatientMotherBirthName == ""


def test_a_malformed_query_is_refused_with_the_reason(
    qr_scp: Listener, archive: dict[str, str], tmp_path: Path
) -> None:
    found = findscu(
        qr_scp.port,
        STUDY_ROOT,
        ["QueryRetrieveLevel=STUDY", "StudyDate=2024XX"],
        tmp_path / "rsp",
    )
    assert "DataSetDoesNotMatchSOPClass" in found.final
    ident = Dataset()
    ident.QueryRetrieveLevel = "SERIES"
    ident.Modality = "CT"  # no StudyInstanceUID above the level
    responses = exchange(qr_scp.port, sop.STUDY_ROOT_FIND, engine.C_FIND_RQ, ident)
    assert responses.statuses == [0xA900]
    final = responses.commands[-1]
    assert "StudyInstanceUID" in final.text(engine.ERROR_COMMENT)
    assert final.command[engine.OFFENDING_ELEMENT] == engine.at(0x0020000D)


def test_cancel_before_the_first_answer(qr_scp: Listener, archive: dict[str, str]) -> None:
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.PatientName = ""
    responses = exchange(
        qr_scp.port, sop.STUDY_ROOT_FIND, engine.C_FIND_RQ, ident, cancel_at_once=True
    )
    assert responses.statuses == [0xFE00]


@pytest.fixture
def limited(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[Listener, Core]]:
    settings: Settings = make_settings(tmp_path, sqlite_url, qrscp={"find_limit": 2})
    core = open_core(settings)
    nowhere: dict[str, tuple[str, int]] = {}
    listener = qr.make_qr_listener(settings.qrscp, core.sessions, core.storage, nowhere.get)
    listener.start()
    try:
        yield listener, core
    finally:
        listener.stop(grace=2)
        core.close()


def test_find_limit_ends_with_a_clear_status(
    limited: tuple[Listener, Core], tmp_path: Path
) -> None:
    listener, core = limited
    for number in range(3):
        load(core, ct_series(tmp_path / f"s{number}", 1, patient_id=f"P{number}", seed=number))
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.PatientID = ""
    responses = exchange(listener.port, sop.STUDY_ROOT_FIND, engine.C_FIND_RQ, ident)
    assert responses.statuses == [0xFF00, 0xFF00, 0xA700]
    assert "find_limit" in responses.commands[-1].text(engine.ERROR_COMMENT)


def test_an_internal_error_costs_one_request_not_the_association(
    qr_scp: Listener, archive: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(archive_query, "find", broken)
    ident = Dataset()
    ident.QueryRetrieveLevel = "STUDY"
    ident.PatientID = ""
    responses = exchange(qr_scp.port, sop.STUDY_ROOT_FIND, engine.C_FIND_RQ, ident)
    assert responses.statuses == [0xC000]
    assert responses.commands[-1].text(engine.ERROR_COMMENT) == "internal error; see the log"
