"""De-identification by PS3.15 Annex E: every row of Table E.1-1, each option, UIDs, real files."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from pydicom import config, dcmread, dcmwrite
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import validate_value

from openpacs.dicom.deid_table import SAFE_PRIVATE, TABLE, PrivateTag
from openpacs.dicom.deidentify import (
    BASIC,
    BurnedInAnnotationError,
    Option,
    Profile,
    deidentify,
    replace_uid,
)
from openpacs.dicom.uids import check_uid
from tests.conftest import sample

KEY = b"0123456789abcdef-test-key"
OTHER_KEY = b"fedcba9876543210-other-key"
NAME = "Doe^Jane"
BIRTH = "19700203"
STUDY_DATE = "20200102"
BOOKKEEPING = {0x00120063, 0x00120064, 0x00280303}  # method, method codes, dates modified
CODE_MEANING = 0x00080104
REF_SOP = 0x00081155


def _text(vr: str, n: int, keyword: str) -> Any:
    values: dict[str, Any] = {
        "AE": f"ORIGAE{n}",
        "AS": "042Y",
        "CS": f"ORIGCS{n}",
        "DA": STUDY_DATE,
        "DT": STUDY_DATE + "030405",
        "TM": "030405",
        "DS": "1.5",
        "IS": "7",
        "SH": f"ORIGSH{n}",
        "PN": NAME,
        "UI": f"1.2.826.0.1.3680043.10.999.{n}",
        "UR": "http://orig.example/x",
        "FL": 1.5,
        "FD": 1.5,
        "OF": b"ORIG",
        "OL": b"ORIG",
        "OD": b"ORIGORIG",
        "OV": b"ORIGORIG",
    }
    if vr in values:
        return values[vr]
    if vr in ("LO", "LT", "ST", "UT", "UC"):
        return f"ORIG {keyword}"
    if vr in ("SL", "SS", "UL", "US", "SV", "UV"):
        return 7
    return b"ORIG"  # OB, OW, UN


def _item(n: int) -> Dataset:
    item = Dataset()
    item.add_new(CODE_MEANING, "LO", f"ORIG MEANING {n}")
    item.add_new(REF_SOP, "UI", f"1.2.826.0.1.3680043.10.998.{n}")
    item.private_block(0x0009, "ACME", create=True).add_new(0x01, "LO", "ORIG PRIVATE")
    return item


def _vr_of(tag: int) -> str:
    try:
        return str(dictionary_VR(tag)).split(" or ")[0]
    except KeyError:
        return "UN"  # newer than pydicom's dictionary: how an implicit VR file would read it


def _full() -> Dataset:
    """A data set with every single-tag row of Table E.1-1 filled with a recognisable value."""
    ds = Dataset()
    for n, tag in enumerate(sorted(TABLE)):
        if tag >> 16 == 0x0002:
            continue  # file meta, see the UID tests
        vr = _vr_of(tag)
        keyword = TABLE[tag].name.replace(" ", "")
        value = Sequence([_item(n)]) if vr == "SQ" else _text(vr, n, keyword)
        ds.add(DataElement(tag, vr, value))
    ds.PatientBirthDate = BIRTH
    ds.SOPClassUID = CTImageStorage
    return ds


FULL = _full()


def _valid(vr: str, value: Any) -> None:
    for v in value if isinstance(value, list) else [value]:
        validate_value(vr, v, config.RAISE)


def test_the_table_is_the_standards() -> None:
    assert len(TABLE) == 653
    assert TABLE[0x00100010].basic == "Z"
    assert TABLE[0x00100020].basic == "Z/D"
    assert dict(TABLE[0x00181200].options) == {"dev": "K", "full": "K", "mod": "C"}
    assert TABLE[0x00082112].basic == "X/Z/U*"


def test_basic_profile_leaves_no_listed_value_in_place() -> None:
    out = deidentify(FULL, BASIC, KEY)
    seen: set[str] = set()
    for tag in TABLE:
        if tag not in FULL:
            continue
        action = BASIC.action(tag)
        assert action is not None
        seen.add(action)
        before = FULL[tag]
        if action == "X":
            assert tag not in out, TABLE[tag].name
            continue
        after = out[tag]
        if action == "Z":
            if tag == 0x00100010:
                assert after.value == out.PatientID != NAME
            else:
                assert after.is_empty, TABLE[tag].name
        elif action == "D" and before.VR == "SQ":
            (item,) = after.value
            assert item[CODE_MEANING].value == "ANON"
            assert item[REF_SOP].value == replace_uid(before.value[0][REF_SOP].value, KEY)
            assert not any(e.tag.is_private for e in item)
        elif action == "D":
            assert after.value != before.value, TABLE[tag].name
            _valid(after.VR, after.value)
            if after.VR == "UI":
                check_uid(after.value, TABLE[tag].name)
        elif action == "U" and before.VR == "SQ":
            (item,) = after.value
            assert item[REF_SOP].value == replace_uid(before.value[0][REF_SOP].value, KEY)
            assert item[CODE_MEANING].value == before.value[0][CODE_MEANING].value
        elif action == "U":
            assert after.value != before.value
            assert check_uid(after.value, TABLE[tag].name).startswith("2.25.")
        else:
            pytest.fail(f"{TABLE[tag].name}: the Basic Profile never gives {action}")
    assert seen == {"X", "Z", "D", "U"}
    assert out.PatientIdentityRemoved == "YES"
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert [i.CodeValue for i in out.DeidentificationMethodCodeSequence] == ["113100"]
    assert out.SOPClassUID == CTImageStorage
    assert not any(e.tag.is_private for e in out.iterall())


def test_combined_actions_take_the_choice_valid_in_any_iod() -> None:
    assert BASIC.action(0x00080022) == "Z"  # Acquisition Date X/Z
    assert BASIC.action(0x00080021) == "D"  # Series Date X/D
    assert BASIC.action(0x00080080) == "D"  # Institution Name X/Z/D
    assert BASIC.action(0x00100020) == "D"  # Patient ID Z/D
    assert BASIC.action(0x00081140) == "U"  # Referenced Image Sequence X/Z/U*
    assert BASIC.action(0x00080060) is None  # Modality: not in the table, kept


def test_sequences_are_walked_at_every_depth() -> None:
    inner = Dataset()
    inner.OtherPatientIDs = "OLDID"
    inner.InstitutionName = "St Elsewhere"
    inner.StudyDate = STUDY_DATE
    inner.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.10.999.1"
    inner.CodeMeaning = "kept"
    inner.private_block(0x0011, "ACME", create=True).add_new(0x01, "LO", "secret")
    middle = Dataset()
    middle.ProcedureCodeSequence = Sequence([inner])  # not in the table
    ds = Dataset()
    ds.PatientName = NAME
    ds.ReferencedSeriesSequence = Sequence([middle])  # not in the table

    out = deidentify(ds, BASIC, KEY)

    item = out.ReferencedSeriesSequence[0].ProcedureCodeSequence[0]
    assert "OtherPatientIDs" not in item
    assert item.InstitutionName == "ANON"
    assert item.StudyDate == ""
    assert item.ReferencedSOPInstanceUID == replace_uid("1.2.826.0.1.3680043.10.999.1", KEY)
    assert item.CodeMeaning == "kept"
    assert not any(e.tag.is_private for e in item)


def test_a_dummy_sequence_keeps_its_shape_but_no_text() -> None:
    code = Dataset()
    code.CodeValue = "EMP-4711"
    code.CodingSchemeDesignator = "99HOSP"
    code.CodeMeaning = "Dr Who badge"
    content = Dataset()
    content.RelationshipType = "CONTAINS"
    content.ValueType = "TEXT"
    content.TextValue = "Seen by Dr Who"
    ds = Dataset()
    ds.PersonIdentificationCodeSequence = Sequence([code])  # D
    ds.ContentSequence = Sequence([content])  # D

    out = deidentify(ds, BASIC, KEY)

    (code_out,) = out.PersonIdentificationCodeSequence
    assert (code_out.CodeValue, code_out.CodingSchemeDesignator) == ("ANON", "ANON")
    assert code_out.CodeMeaning == "ANON"
    (content_out,) = out.ContentSequence
    assert (content_out.RelationshipType, content_out.ValueType) == ("CONTAINS", "TEXT")
    assert content_out.TextValue == "ANON"


def test_private_attributes_go_unless_a_safe_list_keeps_them() -> None:
    ds = Dataset()
    ds.PatientName = NAME
    gems = ds.private_block(0x0019, "GEMS_ACQU_01", create=True)
    gems.add_new(0x23, "DS", "39.375")  # Table Speed: in Table E.3.10-1
    gems.add_new(0x99, "LO", "who knows")
    acme = ds.private_block(0x0029, "ACME", create=True)
    acme.add_new(0x10, "LO", "operator Smith")
    ds.ReferencedImageSequence = Sequence([_item(1)])

    assert not any(e.tag.is_private for e in deidentify(ds, BASIC, KEY).iterall())

    safe = Profile.from_names("retain-safe-private")
    out = deidentify(ds, safe, KEY)
    assert PrivateTag(0x0019, "GEMS_ACQU_01", 0x23) in SAFE_PRIVATE
    assert sorted(str(e.tag) for e in out if e.tag.is_private) == ["(0019,0010)", "(0019,1023)"]
    assert out[0x00191023].value == "39.375"
    assert "113111" in [i.CodeValue for i in out.DeidentificationMethodCodeSequence]

    own = Profile.from_names("basic", safe_private=[PrivateTag(0x0029, "ACME", 0x10)])
    out = deidentify(ds, own, KEY)
    assert sorted(str(e.tag) for e in out if e.tag.is_private) == ["(0029,0010)", "(0029,1010)"]
    assert not any(e.tag.is_private for e in out.ReferencedImageSequence[0])


def test_overlays_curves_and_group_lengths_go() -> None:
    ds = Dataset()
    ds.PatientName = NAME
    ds.add_new(0x60000010, "US", 8)  # Overlay Rows
    ds.add_new(0x60003000, "OW", b"\0" * 8)  # Overlay Data
    ds.add_new(0x50000005, "US", 1)  # Curve Dimensions
    ds.add_new(0x00080000, "UL", 42)  # a group length
    ds.Modality = "CT"
    out = deidentify(ds, BASIC, KEY)
    assert [int(e.tag) for e in out if e.tag.group in (0x0008, 0x5000, 0x6000)] == [0x00080060]


def _diff(a: Dataset, b: Dataset) -> set[int]:
    tags = {int(e.tag) for e in a} | {int(e.tag) for e in b}
    return {t for t in tags if (a.get(t) is None) != (b.get(t) is None) or a.get(t) != b.get(t)}


@pytest.mark.parametrize("option", [o for o in Option if o is not Option.RETAIN_SAFE_PRIVATE])
def test_each_option_changes_only_its_column(option: Option) -> None:
    column = {
        Option.RETAIN_UIDS: "uids",
        Option.RETAIN_DEVICE_IDENTITY: "dev",
        Option.RETAIN_INSTITUTION_IDENTITY: "inst",
        Option.RETAIN_PATIENT_CHARACTERISTICS: "pat",
        Option.RETAIN_LONGITUDINAL_FULL_DATES: "full",
        Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: "mod",
        Option.CLEAN_DESCRIPTORS: "desc",
    }[option]
    profile = Profile(frozenset({option}))
    basic = deidentify(FULL, BASIC, KEY)
    with_option = deidentify(FULL, profile, KEY)

    rows = {tag for tag, row in TABLE.items() if column in row.options and tag in FULL}
    shifts = set()
    changed = _diff(basic, with_option) - BOOKKEEPING
    # A sequence may change through a row nested in its items (Referenced SOP Instance UID).
    assert all(FULL[tag].VR == "SQ" for tag in changed - rows)
    for tag in rows:
        action = profile.action(tag)
        before, after = FULL[tag], with_option.get(tag)
        if action == "K" and before.VR == "SQ":
            assert after is not None
            assert after.value[0][CODE_MEANING].value == before.value[0][CODE_MEANING].value
        elif action == "K":
            assert after is not None and after.value == before.value, TABLE[tag].name
        elif action == "C" and before.VR not in ("UN", "OB"):  # bytes: the basic action
            assert after is not None and tag in changed, TABLE[tag].name
        elif action == "M" and before.VR in ("DA", "DT"):
            assert after is not None
            shifts.add(_day(after.value) - _day(before.value))
            assert after.value[8:] == before.value[8:]
    if option is Option.RETAIN_LONGITUDINAL_MODIFIED_DATES:
        (shift,) = shifts  # one patient, one shift
        assert shift < dt.timedelta(0)
    if option is Option.RETAIN_UIDS:
        (item,) = with_option.ContentSequence
        assert item[REF_SOP].value == FULL.ContentSequence[0][REF_SOP].value
        assert with_option.UID != FULL.UID  # the table gives UID (0040,A124) no option
    else:
        assert with_option.StudyInstanceUID == basic.StudyInstanceUID


def test_retain_dates_keeps_dates_and_says_so() -> None:
    out = deidentify(FULL, Profile.from_names("basic+retain-dates"), KEY)
    assert out.StudyDate == STUDY_DATE
    assert out.AcquisitionDateTime == FULL.AcquisitionDateTime
    assert out.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert out.PatientBirthDate == ""  # no option keeps it
    assert "113106" in [i.CodeValue for i in out.DeidentificationMethodCodeSequence]


def test_modified_dates_move_every_date_of_a_patient_by_the_same_days() -> None:
    ds = Dataset()
    ds.PatientID = "P1"
    ds.StudyDate = "20200102"
    ds.SeriesDate = "20200105"
    ds.AcquisitionDateTime = "20200105101112.5"
    ds.StudyTime = "101112"
    ds.TimezoneOffsetFromUTC = "+0100"
    profile = Profile.from_names("retain-modified-dates")

    out = deidentify(ds, profile, KEY)

    assert out.StudyDate != "20200102"
    assert _day(out.SeriesDate) - _day(out.StudyDate) == dt.timedelta(days=3)
    assert out.AcquisitionDateTime == out.SeriesDate + "101112.5"
    assert out.StudyTime == "101112"
    assert "TimezoneOffsetFromUTC" not in out  # not a date: the Basic Profile's X
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"
    assert deidentify(ds, profile, KEY).StudyDate == out.StudyDate
    again = deidentify(out, Profile.from_names("retain-dates"), KEY)
    assert again.LongitudinalTemporalInformationModified == "MODIFIED"
    methods = list(again.DeidentificationMethod)
    assert methods[0].startswith("openpacs: Basic") and len(methods) == len(set(methods)) == 3
    with pytest.raises(ValueError, match="exclude"):
        Profile.from_names("retain-dates+retain-modified-dates")


def _day(text: str) -> dt.date:
    return dt.datetime.strptime(text[:8], "%Y%m%d").date()


def test_options_that_disagree_take_the_more_protective_action() -> None:
    calibration = 0x00181200  # Date of Last Calibration: Device K, Modified Dates C
    assert Profile.from_names("retain-device").action(calibration) == "K"
    assert Profile.from_names("retain-device+retain-modified-dates").action(calibration) == "M"


def test_retain_device_patient_and_institution() -> None:
    out = deidentify(FULL, Profile.from_names("retain-device"), KEY)
    assert out.DeviceSerialNumber == FULL.DeviceSerialNumber
    assert out.StationName == FULL.StationName
    assert out.StationAETitle == FULL.StationAETitle  # C: nothing identifying in it
    assert "InstitutionName" not in out or out.InstitutionName == "ANON"

    out = deidentify(FULL, Profile.from_names("retain-patient"), KEY)
    assert (out.PatientSex, out.PatientAge) == (FULL.PatientSex, FULL.PatientAge)
    assert out.PatientWeight == FULL.PatientWeight
    assert out.PatientName != NAME

    out = deidentify(FULL, Profile.from_names("retain-institution"), KEY)
    assert out.InstitutionName == FULL.InstitutionName


def test_clean_descriptors_cut_what_the_profile_removes() -> None:
    ds = Dataset()
    ds.PatientName = NAME
    ds.PatientID = "MRN123"
    ds.StudyDate = STUDY_DATE
    ds.StudyDescription = "CT head for Jane DOE, MRN123, 2020-01-02"
    ds.SeriesDescription = "axial 5mm phone 5551234567"
    ds.ImageComments = "nothing to see"
    ds.PerformedProcedureStepDescription = "read by Gregory House"
    who = Dataset()
    who.PersonIdentificationCodeSequence = Sequence([Dataset()])
    who.PersonIdentificationCodeSequence[0].CodeMeaning = "Gregory House"
    ds.ReferringPhysicianIdentificationSequence = Sequence([who])  # X, so its text is cut

    out = deidentify(ds, Profile.from_names("clean-descriptors"), KEY)

    assert out.StudyDescription == "CT head for , ,"
    assert out.PerformedProcedureStepDescription == "read by"
    assert out.SeriesDescription == "axial 5mm phone"
    assert out.ImageComments == "nothing to see"
    assert "StudyDescription" not in deidentify(ds, BASIC, KEY)


def test_uids_map_consistently_across_a_study() -> None:
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    first, second = _instance(study, series, frame), _instance(study, series, frame)
    second.ReferencedImageSequence = Sequence([Dataset()])
    second.ReferencedImageSequence[0].ReferencedSOPClassUID = CTImageStorage
    second.ReferencedImageSequence[0].ReferencedSOPInstanceUID = first.SOPInstanceUID

    a, b = deidentify(first, BASIC, KEY), deidentify(second, BASIC, KEY)

    assert a.StudyInstanceUID == b.StudyInstanceUID != study
    assert a.SeriesInstanceUID == b.SeriesInstanceUID != series
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID != frame
    assert a.SOPInstanceUID != b.SOPInstanceUID
    reference = b.ReferencedImageSequence[0]
    assert reference.ReferencedSOPInstanceUID == a.SOPInstanceUID
    assert reference.ReferencedSOPClassUID == CTImageStorage == a.SOPClassUID
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    assert a.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert "SourceApplicationEntityTitle" not in a.file_meta
    assert a.PatientID == b.PatientID != "P1"

    other = deidentify(first, BASIC, OTHER_KEY)
    assert other.StudyInstanceUID not in (study, a.StudyInstanceUID)
    kept = deidentify(first, Profile.from_names("retain-uids"), KEY)
    assert (kept.StudyInstanceUID, kept.SOPInstanceUID) == (study, first.SOPInstanceUID)


def _instance(study: str, series: str, frame: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = "CT_ROOM_3"
    ds.PatientID = "P1"
    ds.PatientName = NAME
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    return ds


def test_replace_uid() -> None:
    uid = "1.2.826.0.1.3680043.10.999.42"
    new = replace_uid(uid, KEY)
    assert new == replace_uid(uid + "\0", KEY) != replace_uid(uid, OTHER_KEY)
    assert check_uid(new, "uid") == new and len(new) <= 64 and new.startswith("2.25.")
    assert replace_uid(CTImageStorage, KEY) == CTImageStorage
    assert replace_uid("1.2.840.10008.1.4.1.1", KEY) == "1.2.840.10008.1.4.1.1"
    assert replace_uid("", KEY) == ""


def test_patient_identity_is_a_keyed_pseudonym_or_the_callers() -> None:
    ds = _instance(generate_uid(), generate_uid(), generate_uid())
    out = deidentify(ds, BASIC, KEY)
    assert out.PatientID.startswith("ANON-") and out.PatientName == out.PatientID
    assert deidentify(ds, BASIC, KEY).PatientID == out.PatientID
    assert deidentify(ds, BASIC, OTHER_KEY).PatientID != out.PatientID
    chosen = deidentify(ds, BASIC, KEY, patient_id="ANON123", patient_name="Anon^Case1")
    assert (chosen.PatientID, chosen.PatientName) == ("ANON123", "Anon^Case1")
    assert ds.PatientName == NAME  # the input is left alone


def test_profiles_by_name() -> None:
    profile = Profile.from_names("Basic + retain_dates, clean descriptors")
    assert profile.options == {Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.CLEAN_DESCRIPTORS}
    assert Profile.from_names(profile.name) == profile
    assert Profile.from_names(["basic", "retain-device-identity"]).name == (
        "basic+retain-device-identity"
    )
    assert Profile.from_names("basic") == BASIC
    with pytest.raises(ValueError, match="unknown de-identification option"):
        Profile.from_names("basic+retain-everything")
    assert Profile(frozenset({"retain-uids"})) == Profile.from_names("retain-uids")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="16 bytes"):
        deidentify(Dataset(), BASIC, b"short")


def test_burned_in_annotation_is_refused_unless_accepted() -> None:
    ds = Dataset()
    ds.PatientName = NAME
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(BurnedInAnnotationError):
        deidentify(ds, BASIC, KEY)
    assert deidentify(ds, BASIC, KEY, accept_burned_in=True).BurnedInAnnotation == "YES"


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm"])
def test_real_files_are_written_and_read_back(name: str) -> None:
    original = dcmread(sample(name))
    out = deidentify(original, BASIC, KEY)
    buffer = io.BytesIO()
    dcmwrite(buffer, out, enforce_file_format=True)
    back = dcmread(io.BytesIO(buffer.getvalue()))

    assert back.PatientIdentityRemoved == "YES"
    assert back.PatientName != original.PatientName
    assert back.SOPClassUID == original.SOPClassUID
    assert back.StudyInstanceUID == replace_uid(original.StudyInstanceUID, KEY)
    assert back.file_meta.MediaStorageSOPInstanceUID == back.SOPInstanceUID
    assert back.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert not any(e.tag.is_private for e in back.iterall())
    if "PixelData" in original:
        assert back.PixelData == original.PixelData
    old = {str(e.value) for e in original.iterall() if e.VR == "UI"}
    for elem in back.iterall():
        if elem.VR == "UI" and str(elem.value) in old:
            assert str(elem.value).startswith("1.2.840.10008."), elem
    removed = {
        str(e.value)
        for e in original.iterall()
        if e.VR in ("PN", "LO", "SH", "DA") and BASIC.action(e.tag) and len(str(e.value)) > 3
    }
    left = {str(e.value) for e in back.iterall() if e.VR != "SQ"}
    assert not removed & left
