"""Matching keys of a C-FIND or QIDO-RS query (PS3.4 C.2.2.2), parsed into typed matchers.

A key's VR and value decide how it matches: an empty value (or only '*') is universal, a value
with '*' or '?' is a wildcard (for the text VRs that allow one), a DA/TM/DT value with '-' is a
range, several values (backslash-separated) match when any one does (lists of UIDs included), a
person name may name its component groups ('alphabetic=ideographic=phonetic'), and a sequence
key matches on the keys of its one item. Anything else is a single value.

Dates and times come out in the forms the index keeps them (`openpacs.dicom.values`): DA as
'YYYYMMDD', TM as 'HHMMSS.ffffff', so every range here is an inclusive pair of sortable strings.
A range bound is read at its own precision: an upper time '1030' means up to 10:30:59.999999,
an upper date-time '2020' the last moment of 2020. A single TM value is matched by meaning
(PS3.4 C.2.2.2.1.3: '2230' is 22:30:00 exactly); a single DT value covers its precision. DT
timezone offsets are dropped (compared as written; timezone adjustment is not supported).

This module knows no database: `openpacs.archive.query` turns matchers into SQL.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass
from typing import Any, TypeAlias

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from openpacs.dicom.uids import InvalidUID, check_uid

# PS3.4 C.2.2.2.4: the VRs whose values may hold wildcards.
WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
INTEGER_VRS = frozenset({"IS", "SL", "SS", "UL", "US", "SV", "UV"})
DECIMAL_VRS = frozenset({"DS", "FL", "FD"})
# Single-valued text: a backslash in it is a character, not a value separator.
_UNSPLIT_VRS = frozenset({"LT", "ST", "UT", "UR"})

# The DA/TM pairs that combined datetime matching (PS3.4 C.2.2.2.5.4) joins into one DT range.
DATE_TIME_PAIRS: Mapping[str, str] = {
    "PatientBirthDate": "PatientBirthTime",
    "StudyDate": "StudyTime",
    "SeriesDate": "SeriesTime",
    "ContentDate": "ContentTime",
    "AcquisitionDate": "AcquisitionTime",
    "InstanceCreationDate": "InstanceCreationTime",
    "PerformedProcedureStepStartDate": "PerformedProcedureStepStartTime",
    "ScheduledProcedureStepStartDate": "ScheduledProcedureStepStartTime",
}

WILDCARDS = frozenset("*?")
SEPARATOR = "\\"


class InvalidQuery(ValueError):
    """A key's value cannot be used for matching. `keyword` names the attribute, `reason` why."""

    def __init__(self, keyword: str, reason: str) -> None:
        super().__init__(f"{keyword}: {reason}")
        self.keyword = keyword
        self.reason = reason


@dataclass(frozen=True)
class Universal:
    """Zero length, or only '*': every entity matches; the key only asks for its value back."""


@dataclass(frozen=True)
class Single:
    """Exact match. Integers (IS, US, ...) are ints; dates and times are in their stored forms."""

    value: str | int


@dataclass(frozen=True)
class Wildcard:
    """A value with '*' (any run of characters, none included) and/or '?' (one character)."""

    pattern: str

    def like(self, escape: str = "!") -> str:
        """The pattern for SQL LIKE ... ESCAPE `escape`: '%', '_' and the escape taken literally."""
        return "".join(_like_char(ch, escape) for ch in self.pattern)

    def glob(self) -> str:
        """The pattern for SQLite GLOB (case-sensitive, unlike SQLite's LIKE)."""
        # '*' and '?' mean the same in GLOB; only '[' opens a character class there.
        return self.pattern.replace("[", "[[]")

    def regex(self, separator: str = "") -> str:
        """A regular expression body (Python `re` and PostgreSQL alike, unanchored).

        With a separator, wildcards stop at it: a pattern then matches within one value of a
        backslash-joined list instead of across two.
        """
        one = f"[^{re.escape(separator)}]" if separator else "."
        parts = {"*": one + "*", "?": one}
        return "".join(parts.get(ch) or re.escape(ch) for ch in self.pattern)


@dataclass(frozen=True)
class Range:
    """Inclusive range of sortable strings; None leaves that end open."""

    lower: str | None
    upper: str | None


@dataclass(frozen=True)
class DateTimeRange:
    """A DA range and a TM range of one pair, matched as one instant range (PS3.4 C.2.2.2.5.4).

    Each bound is (date 'YYYYMMDD', time 'HHMMSS.ffffff'); None leaves that end open.
    """

    lower: tuple[str, str] | None
    upper: tuple[str, str] | None


NamePart: TypeAlias = Universal | Single | Wildcard


@dataclass(frozen=True)
class NameMatch:
    """A person name key.

    Without '=' (`any_group` set) the value may match any one component group, so that
    'Wang*' finds the alphabetic group and '王*' the ideographic one. With '=' each group given
    matches its own group (`groups`: alphabetic, ideographic, phonetic). Trailing '^' and spaces
    are dropped from each group: 'DOE^JOHN^^' means 'DOE^JOHN'. `text` is the value as given.
    """

    text: str
    any_group: Single | Wildcard | None
    groups: tuple[NamePart, NamePart, NamePart]


@dataclass(frozen=True)
class AnyOf:
    """Several values (a list of UIDs, 'CT\\MR'): an entity matches if any one of them does."""

    matchers: tuple[Matcher, ...]


@dataclass(frozen=True)
class SequenceMatch:
    """A sequence key with item keys that match (universal item keys are left out)."""

    items: Mapping[str, Matcher]


Matcher: TypeAlias = (
    Universal | Single | Wildcard | Range | DateTimeRange | NameMatch | AnyOf | SequenceMatch
)


def _like_char(ch: str, escape: str) -> str:
    if ch == "*":
        return "%"
    if ch == "?":
        return "_"
    if ch in ("%", "_", escape):
        return escape + ch
    return ch


def like_literal(text: str, escape: str = "!") -> str:
    """`text` for SQL LIKE with no wildcard of its own."""
    return "".join(escape + ch if ch in ("%", "_", escape) else ch for ch in text)


def glob_literal(text: str) -> str:
    """`text` for SQLite GLOB with no wildcard of its own."""
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in text)


def element_vr(element: DataElement) -> str:
    """The dictionary VR of a known attribute (what the index stored), else the element's own."""
    try:
        vr = dictionary_VR(element.tag)
    except KeyError:
        return str(element.VR)
    # Attributes such as 'US or SS' keep the VR the element was decoded with.
    return str(element.VR) if " or " in vr else vr


def element_keyword(element: DataElement) -> str:
    return str(element.keyword or element.tag)


def parse_element(element: DataElement) -> Matcher:
    """The matcher for one element of an identifier (a sequence's item keys included)."""
    keyword = element_keyword(element)
    vr = element_vr(element)
    if vr == "SQ":
        return parse_sequence(keyword, element.value or [])
    return parse(keyword, vr, element.value)


def parse_sequence(keyword: str, items: SequenceOf[Dataset]) -> Universal | SequenceMatch:
    """PS3.4 C.2.2.2.6: one item whose keys match; no item, or an empty one, is universal."""
    if len(items) > 1:
        raise InvalidQuery(keyword, f"a sequence key holds one item, not {len(items)}")
    if not items:
        return Universal()
    matchers = {}
    for element in items[0]:
        if element.tag.element == 0:  # group lengths carry no key
            continue
        matcher = parse_element(element)
        if not isinstance(matcher, Universal):
            matchers[element_keyword(element)] = matcher
    return SequenceMatch(matchers) if matchers else Universal()


def parse(keyword: str, vr: str, value: Any, *, reversed_time_ok: bool = False) -> Matcher:
    """The matcher for a key's value (as pydicom decoded it) of the given VR.

    `reversed_time_ok` lets a TM range end before it starts: only combined datetime matching
    gives that a meaning (22:00 one day to 02:00 the next); alone it is refused.
    """
    if vr == "SQ":
        raise InvalidQuery(keyword, "a sequence key is parsed with parse_sequence")
    values = _values(keyword, vr, value)
    if not values:
        return Universal()
    parsed = [_parse_one(keyword, vr, text, reversed_time_ok) for text in values]
    # Any value universal: the whole key matches everything.
    if any(isinstance(p, Universal) for p in parsed):
        return Universal()
    return parsed[0] if len(parsed) == 1 else AnyOf(tuple(parsed))


def _values(keyword: str, vr: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bytes | bytearray):
        if not value:
            return []
        raise InvalidQuery(keyword, f"a binary value (VR {vr}) cannot be matched")
    if isinstance(value, MultiValue | list | tuple):
        raw = [str(v) for v in value]
    elif isinstance(value, str) and vr not in _UNSPLIT_VRS:
        raw = value.split(SEPARATOR)
    else:
        raw = [str(value)]
    if vr in _UNSPLIT_VRS:
        stripped = [text.rstrip(" \0") for text in raw]
    else:
        stripped = [text.strip(" \0") for text in raw]
    return [text for text in stripped if text]


def _is_universal(text: str) -> bool:
    return set(text) == {"*"}


def _parse_one(keyword: str, vr: str, text: str, reversed_time_ok: bool) -> Matcher:
    if _is_universal(text):
        return Universal()
    if vr == "PN":
        return parse_name(keyword, text)
    if WILDCARDS & set(text):
        if vr in WILDCARD_VRS:
            return Wildcard(text)
        raise InvalidQuery(keyword, f"{text!r}: wildcards are not allowed for VR {vr}")
    if vr == "UI":
        return Single(_uid(keyword, text))
    if vr == "DA":
        return _date_key(keyword, text)
    if vr == "TM":
        return _time_key(keyword, text, reversed_time_ok)
    if vr == "DT":
        return _datetime_key(keyword, text)
    if vr in INTEGER_VRS:
        return Single(_integer(keyword, text))
    if vr in DECIMAL_VRS:
        _decimal(keyword, text)
    return Single(text)


def _integer(keyword: str, text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidQuery(keyword, f"{text!r} is not an integer") from None


def _decimal(keyword: str, text: str) -> None:
    try:
        float(text)
    except ValueError:
        raise InvalidQuery(keyword, f"{text!r} is not a number") from None


def _uid(keyword: str, text: str) -> str:
    try:
        return check_uid(text, keyword)
    except InvalidUID as exc:
        raise InvalidQuery(keyword, str(exc).removeprefix(f"{keyword} ")) from None


# --- person names ---------------------------------------------------------------------------


def parse_name(keyword: str, text: str) -> NameMatch | Universal:
    groups = text.split("=")
    if len(groups) > 3:
        raise InvalidQuery(keyword, f"{text!r}: a person name has at most three component groups")
    parts = [_name_part(group) for group in groups]
    if len(parts) == 1:
        only = parts[0]
        if isinstance(only, Universal):
            return only
        return NameMatch(text, only, (Universal(), Universal(), Universal()))
    while len(parts) < 3:
        parts.append(Universal())
    if all(isinstance(part, Universal) for part in parts):
        return Universal()
    return NameMatch(text, None, (parts[0], parts[1], parts[2]))


def _name_part(group: str) -> NamePart:
    trimmed = group.strip(" ").rstrip("^ ")
    if not trimmed or _is_universal(trimmed):
        return Universal()
    if WILDCARDS & set(trimmed):
        return Wildcard(trimmed)
    return Single(trimmed)


def name_words(text: str) -> tuple[str, ...]:
    """The words of a name for fuzzy matching: components and groups split, blanks dropped."""
    words = re.split(r"[\s^=,\\]+", text)
    return tuple(word for word in words if word and not _is_universal(word))


# --- dates and times ------------------------------------------------------------------------

_DATE = re.compile(r"\d{8}|\d{4}\.\d{2}\.\d{2}")
_TIME = re.compile(r"(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?")
# Up to YYYYMMDDHHMMSS.FFFFFF, then an optional UTC offset (dropped: compared as written).
_DATETIME = r"\d{4}(?:\d{2}){0,5}(?:\.\d{1,6})?(?:[+-]\d{4})?"
_DATETIME_RANGE = re.compile(rf"({_DATETIME})?-({_DATETIME})?")
_DATETIME_LATEST = "1231235959"


def _split_range(keyword: str, text: str) -> tuple[str, str]:
    lower, _, upper = text.partition("-")
    if "-" in upper:
        raise InvalidQuery(keyword, f"{text!r}: a range has one '-'")
    return lower.strip(), upper.strip()


def _range(keyword: str, text: str, lower: str | None, upper: str | None) -> Range:
    if lower is None and upper is None:
        raise InvalidQuery(keyword, f"{text!r}: a range needs a lower or an upper bound")
    if lower is not None and upper is not None and lower > upper:
        raise InvalidQuery(keyword, f"{text!r}: the range ends before it starts")
    return Range(lower, upper)


def _date(keyword: str, text: str) -> str:
    if not _DATE.fullmatch(text):
        raise InvalidQuery(keyword, f"{text!r} is not a date (YYYYMMDD)")
    digits = text.replace(".", "")
    try:
        dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        raise InvalidQuery(keyword, f"{text!r} is not a calendar date") from None
    return digits


def _date_key(keyword: str, text: str) -> Single | Range:
    if "-" not in text:
        return Single(_date(keyword, text))
    lower, upper = _split_range(keyword, text)
    return _range(
        keyword,
        text,
        _date(keyword, lower) if lower else None,
        _date(keyword, upper) if upper else None,
    )


def _time(keyword: str, text: str, *, upper: bool) -> str:
    """A TM value as 'HHMMSS.ffffff'; an upper bound is filled to the end of its precision."""
    match = _TIME.fullmatch(text)
    if not match:
        raise InvalidQuery(keyword, f"{text!r} is not a time (HHMMSS.FFFFFF)")
    hh, mm, ss, frac = match.groups()
    if int(hh) > 23 or int(mm or 0) > 59 or int(ss or 0) > 60:
        raise InvalidQuery(keyword, f"{text!r} is not a time of day")
    fill = "9" if upper else "0"
    minutes = mm or ("59" if upper else "00")
    seconds = ss or ("59" if upper else "00")
    return f"{hh}{minutes}{seconds}.{(frac or '').ljust(6, fill)}"


def _time_key(keyword: str, text: str, reversed_ok: bool) -> Single | Range:
    if "-" not in text:
        return Single(_time(keyword, text, upper=False))
    lower, upper = _split_range(keyword, text)
    low = _time(keyword, lower, upper=False) if lower else None
    high = _time(keyword, upper, upper=True) if upper else None
    if reversed_ok and low is not None and high is not None and low > high:
        return Range(low, high)
    if low is not None and high is not None and low > high:
        raise InvalidQuery(
            keyword, f"{text!r}: a time range cannot cross midnight (PS3.4 C.2.2.2.5.2)"
        )
    return _range(keyword, text, low, high)


def _datetime(keyword: str, text: str, *, upper: bool) -> str:
    """A DT bound, offset dropped; an upper bound is filled to the end of its precision."""
    body = re.sub(r"[+-]\d{4}$", "", text) if len(text) > 4 else text
    digits, _, frac = body.partition(".")
    if frac and len(digits) != 14:
        raise InvalidQuery(keyword, f"{text!r}: a fraction needs seconds (YYYYMMDDHHMMSS.F)")
    _check_datetime(keyword, text, digits)
    if not upper:
        return body
    filled = digits + _DATETIME_LATEST[len(digits) - 4 :]
    return f"{filled}.{frac.ljust(6, '9')}"


def _check_datetime(keyword: str, text: str, digits: str) -> None:
    earliest = digits + "0101000000"[len(digits) - 4 :]
    try:
        dt.datetime(
            int(earliest[:4]),
            int(earliest[4:6]),
            int(earliest[6:8]),
            int(earliest[8:10]),
            int(earliest[10:12]),
            min(int(earliest[12:14]), 59),  # a leap second is a valid DT
        )
    except ValueError:
        raise InvalidQuery(keyword, f"{text!r} is not a date-time") from None


def _datetime_key(keyword: str, text: str) -> Range:
    # A '-' always means a range (PS3.4 C.2.2.2.1.3 note 3), even where it could be an offset.
    if "-" not in text and re.fullmatch(_DATETIME, text):
        # A single DT value covers its precision: '2020' is the whole year.
        return Range(_datetime(keyword, text, upper=False), _datetime(keyword, text, upper=True))
    match = _DATETIME_RANGE.fullmatch(text)
    if not match:
        raise InvalidQuery(keyword, f"{text!r} is not a date-time (YYYYMMDDHHMMSS.FFFFFF&ZZXX)")
    lower, upper = match.groups()
    return _range(
        keyword,
        text,
        _datetime(keyword, lower, upper=False) if lower else None,
        _datetime(keyword, upper, upper=True) if upper else None,
    )


def combine_datetime(
    date_keyword: str, date_value: Any, time_keyword: str, time_value: Any
) -> DateTimeRange | None:
    """One instant range from a DA key and its TM key (PS3.4 C.2.2.2.5.4), if they qualify.

    They qualify when both are ranges of the same form ('d1-d2' with 't1-t2', 'd1-' with 't1-',
    '-d2' with '-t2'); otherwise None, and each is matched on its own.
    """
    date = parse(date_keyword, "DA", date_value)
    time = parse(time_keyword, "TM", time_value, reversed_time_ok=True)
    if not (isinstance(date, Range) and isinstance(time, Range)):
        return None
    if (date.lower is None) != (time.lower is None) or (date.upper is None) != (time.upper is None):
        return None
    lower = upper = None
    if date.lower is not None and time.lower is not None:
        lower = (date.lower, time.lower)
    if date.upper is not None and time.upper is not None:
        upper = (date.upper, time.upper)
    if lower is not None and upper is not None and lower > upper:
        raise InvalidQuery(date_keyword, "the date and time range ends before it starts")
    return DateTimeRange(lower, upper)
