"""Matching keys parsed into typed matchers (PS3.4 C.2.2.2), with no database."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.valuerep import PersonName

from openpacs.dicom import matching as m
from openpacs.dicom.matching import (
    AnyOf,
    DateTimeRange,
    InvalidQuery,
    NameMatch,
    Range,
    SequenceMatch,
    Single,
    Universal,
    Wildcard,
)

U = Universal()


@pytest.mark.parametrize("value", [None, "", " ", "*", "**", [], ["", ""], b""])
def test_empty_and_star_are_universal(value: Any) -> None:
    assert m.parse("AccessionNumber", "SH", value) == U


@pytest.mark.parametrize(
    ("vr", "value", "expected"),
    [
        ("SH", "ACC1 ", Single("ACC1")),
        ("CS", "CT", Single("CT")),
        ("LO", "Head^Neck", Single("Head^Neck")),
        ("IS", "12", Single(12)),
        ("US", 512, Single(512)),
        ("DS", "70.5", Single("70.5")),
        ("AS", "045Y", Single("045Y")),
        ("LT", "a\\b", Single("a\\b")),  # a backslash in LT is text, not a separator
    ],
)
def test_single_values(vr: str, value: Any, expected: m.Matcher) -> None:
    assert m.parse("Key", vr, value) == expected


@pytest.mark.parametrize(
    ("vr", "value"),
    [("SH", "AC*"), ("CS", "C?"), ("LO", "*head*"), ("AE", "STORE*"), ("UT", "x?y")],
)
def test_wildcards(vr: str, value: str) -> None:
    assert m.parse("Key", vr, value) == Wildcard(value)


def test_wildcard_translations_escape_what_sql_would_read() -> None:
    w = Wildcard("A%B_!*?[x]")
    assert w.like() == "A!%B!_!!%_[x]"
    assert w.like("\\") == "A\\%B\\_!%_[x]"
    assert w.glob() == "A%B_!*?[[]x]"
    assert re.fullmatch(w.regex(), "A%B_!anything.[x]")
    assert not re.fullmatch(w.regex(), "A%B_![x]")  # '?' needs one character
    per_value = Wildcard("C*R").regex(m.SEPARATOR)
    assert re.fullmatch(per_value, "CTR")
    assert not re.fullmatch(per_value, "CT\\MR")  # '*' stops at the value separator
    assert m.like_literal("50%_!") == "50!%!_!!"
    assert m.glob_literal("a*b?[c") == "a[*]b[?][[]c"


@pytest.mark.parametrize(
    ("vr", "value"),
    [("IS", "1*"), ("DA", "2020*"), ("TM", "10?0"), ("UI", "1.2.*"), ("US", "5?")],
)
def test_wildcards_are_refused_where_the_vr_has_none(vr: str, value: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        m.parse("Key", vr, value)
    assert caught.value.keyword == "Key"
    assert "wildcard" in caught.value.reason


def test_uid_lists() -> None:
    assert m.parse("StudyInstanceUID", "UI", "1.2.3") == Single("1.2.3")
    assert m.parse("StudyInstanceUID", "UI", ["1.2.3", "1.2.4"]) == AnyOf(
        (Single("1.2.3"), Single("1.2.4"))
    )
    assert m.parse("StudyInstanceUID", "UI", "1.2.3\\1.2.4\\") == AnyOf(
        (Single("1.2.3"), Single("1.2.4"))
    )


@pytest.mark.parametrize("value", ["1.2.abc", "../etc", "1." * 40 + "1"])
def test_bad_uids_are_refused_with_the_attribute_named(value: str) -> None:
    with pytest.raises(InvalidQuery, match=r"^SeriesInstanceUID: ") as caught:
        m.parse("SeriesInstanceUID", "UI", value)
    assert not caught.value.reason.startswith("SeriesInstanceUID")


def test_multiple_values_match_any_and_a_universal_one_matches_all() -> None:
    assert m.parse("ModalitiesInStudy", "CS", "CT\\MR") == AnyOf((Single("CT"), Single("MR")))
    assert m.parse("ModalitiesInStudy", "CS", ["CT", "M*"]) == AnyOf((Single("CT"), Wildcard("M*")))
    assert m.parse("ModalitiesInStudy", "CS", ["CT", "*"]) == U


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20200115", Single("20200115")),
        ("2020.01.15", Single("20200115")),
        ("20200101-20201231", Range("20200101", "20201231")),
        ("20200101 - 20201231", Range("20200101", "20201231")),
        ("-20200101", Range(None, "20200101")),
        ("20200101-", Range("20200101", None)),
        ("20200101-20200101", Range("20200101", "20200101")),
    ],
)
def test_dates(value: str, expected: m.Matcher) -> None:
    assert m.parse("StudyDate", "DA", value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2020", "not a date"),
        ("20201301", "not a calendar date"),
        ("20200230", "not a calendar date"),
        ("yesterday", "not a date"),
        ("-", "needs a lower or an upper bound"),
        ("20201231-20200101", "ends before it starts"),
        ("2020-01-01", "one '-'"),
    ],
)
def test_bad_dates(value: str, reason: str) -> None:
    with pytest.raises(InvalidQuery, match=reason) as caught:
        m.parse("StudyDate", "DA", value)
    assert caught.value.keyword == "StudyDate"
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2230", Single("223000.000000")),  # by meaning: '2230' is 22:30:00 (C.2.2.2.1.3)
        ("101530.25", Single("101530.250000")),
        ("10:15:30", Single("101530.000000")),
        ("1000-1800", Range("100000.000000", "180059.999999")),  # to the end of 18:00
        ("-10", Range(None, "105959.999999")),
        ("103000.5-", Range("103000.500000", None)),
        ("1030-1030", Range("103000.000000", "103059.999999")),
    ],
)
def test_times(value: str, expected: m.Matcher) -> None:
    assert m.parse("StudyTime", "TM", value) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("2500", "not a time of day"),
        ("1060", "not a time of day"),
        ("10h30", "not a time"),
        ("2200-0200", "cannot cross midnight"),
    ],
)
def test_bad_times(value: str, reason: str) -> None:
    with pytest.raises(InvalidQuery, match=reason):
        m.parse("StudyTime", "TM", value)


def test_a_reversed_time_range_is_kept_for_combined_matching() -> None:
    reversed_range = m.parse("StudyTime", "TM", "2200-0200", reversed_time_ok=True)
    assert reversed_range == Range("220000.000000", "020059.999999")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2020", Range("2020", "20201231235959.999999")),
        ("20200115103000", Range("20200115103000", "20200115103000.999999")),
        ("20200115103000.5+0100", Range("20200115103000.5", "20200115103000.599999")),
        ("2020-2021", Range("2020", "20211231235959.999999")),
        ("202001-", Range("202001", None)),
        ("-20200115", Range(None, "20200115235959.999999")),
        (
            "20200101120000-0500-20200102120000-0500",
            Range("20200101120000", "20200102120000.999999"),
        ),
    ],
)
def test_datetimes(value: str, expected: m.Matcher) -> None:
    assert m.parse("AcquisitionDateTime", "DT", value) == expected


@pytest.mark.parametrize(
    "value", ["20", "202013", "2020011", "20200101.5", "20200101120000-0500", "x-y"]
)
def test_bad_datetimes(value: str) -> None:
    with pytest.raises(InvalidQuery):
        m.parse("AcquisitionDateTime", "DT", value)


@pytest.mark.parametrize(
    ("vr", "value"), [("IS", "twelve"), ("DS", "7O"), ("US", "1.5"), ("OB", b"\x01")]
)
def test_bad_numbers_and_binary_values(vr: str, value: Any) -> None:
    with pytest.raises(InvalidQuery):
        m.parse("Key", vr, value)


def test_names_without_groups_match_any_group() -> None:
    assert m.parse("PatientName", "PN", "Wang^XiaoDong^^") == NameMatch(
        "Wang^XiaoDong^^", Single("Wang^XiaoDong"), (U, U, U)
    )
    assert m.parse("PatientName", "PN", PersonName("王*")) == NameMatch(
        "王*", Wildcard("王*"), (U, U, U)
    )


def test_names_with_groups_match_each_group() -> None:
    assert m.parse("PatientName", "PN", "Wang^XiaoDong=王^小东") == NameMatch(
        "Wang^XiaoDong=王^小东", None, (Single("Wang^XiaoDong"), Single("王^小东"), U)
    )
    assert m.parse("PatientName", "PN", "=王*") == NameMatch("=王*", None, (U, Wildcard("王*"), U))
    assert m.parse("PatientName", "PN", "*=*=*") == U
    assert m.parse("PatientName", "PN", "^^") == U
    with pytest.raises(InvalidQuery, match="at most three component groups"):
        m.parse("PatientName", "PN", "a=b=c=d")


def test_name_words_for_fuzzy_matching() -> None:
    assert m.name_words("Doe^Jo  Ann=多^=*") == ("Doe", "Jo", "Ann", "多")
    assert m.name_words("smith, j") == ("smith", "j")


def test_sequences_match_on_their_item_keys() -> None:
    item = Dataset()
    item.ScheduledProcedureStepID = "SPS1"
    item.RequestedProcedureID = ""
    element = DataElement("RequestAttributesSequence", "SQ", Sequence([item]))
    assert m.parse_element(element) == SequenceMatch({"ScheduledProcedureStepID": Single("SPS1")})
    assert m.parse_sequence("RequestAttributesSequence", Sequence([Dataset()])) == U
    assert m.parse_sequence("RequestAttributesSequence", Sequence([])) == U
    with pytest.raises(InvalidQuery, match="one item"):
        m.parse_sequence("RequestAttributesSequence", Sequence([item, item]))


def test_parse_element_uses_the_dictionary_vr() -> None:
    element = DataElement(0x00200011, "UN", "7")  # SeriesNumber received as UN
    assert m.parse_element(element) == Single(7)
    assert m.element_keyword(DataElement(0x00091010, "LO", "x")) == "(0009,1010)"


@pytest.mark.parametrize(
    ("date", "time", "expected"),
    [
        (
            "20060705-20060707",
            "1000-1800",
            DateTimeRange(("20060705", "100000.000000"), ("20060707", "180059.999999")),
        ),
        ("20060705-", "1000-", DateTimeRange(("20060705", "100000.000000"), None)),
        ("-20060707", "-1800", DateTimeRange(None, ("20060707", "180059.999999"))),
        (
            "20060705-20060706",
            "2200-0200",  # across midnight is fine once the dates carry it
            DateTimeRange(("20060705", "220000.000000"), ("20060706", "020059.999999")),
        ),
    ],
)
def test_combined_datetime_ranges(date: str, time: str, expected: DateTimeRange) -> None:
    assert m.combine_datetime("StudyDate", date, "StudyTime", time) == expected


@pytest.mark.parametrize(
    ("date", "time"),
    [
        ("20060705", "1000-1800"),  # a single date is not a range
        ("20060705-20060707", "1000"),
        ("20060705-", "-1800"),  # not the same form of range
        ("20060705-20060707", ""),
    ],
)
def test_pairs_that_do_not_combine(date: str, time: str) -> None:
    assert m.combine_datetime("StudyDate", date, "StudyTime", time) is None


def test_a_combined_range_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(InvalidQuery, match="ends before it starts"):
        m.combine_datetime("StudyDate", "20060705-20060705", "StudyTime", "1800-1000")
