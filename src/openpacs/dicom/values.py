"""Turn decoded DICOM values into the plain, sortable forms the index keeps."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

_DA = re.compile(r"(\d{4})\.?(\d{2})\.?(\d{2})")
_TM = re.compile(r"(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?")


def text(value: Any, limit: int | None = None) -> str | None:
    """A single or multi-valued text attribute as one string (backslash-joined), None if empty."""
    if value is None:
        return None
    if isinstance(value, MultiValue | list | tuple):
        joined = "\\".join(str(v) for v in value)
    else:
        joined = str(value)
    joined = joined.strip("\0 ")
    if not joined:
        return None
    return joined[:limit] if limit else joined


def da(value: Any) -> str | None:
    """A DA value as 'YYYYMMDD'; also accepts the old 'YYYY.MM.DD'. Unreadable dates: None."""
    raw = text(value)
    if raw is None:
        return None
    match = _DA.fullmatch(raw.split("\\")[0].strip())
    if not match:
        return None
    year, month, day = (int(g) for g in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    return f"{year:04d}{month:02d}{day:02d}"


def tm(value: Any) -> str | None:
    """A TM value zero-padded to 'HHMMSS.ffffff' so that text order is time order."""
    raw = text(value)
    if raw is None:
        return None
    match = _TM.fullmatch(raw.split("\\")[0].strip())
    if not match:
        return None
    hh, mm, ss, frac = match.groups()
    hours, minutes, seconds = int(hh), int(mm or 0), int(ss or 0)
    if hours > 23 or minutes > 59 or seconds > 60:
        return None
    return f"{hours:02d}{minutes:02d}{seconds:02d}.{(frac or '').ljust(6, '0')}"


def integer(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value[0] if isinstance(value, MultiValue) else value).strip())
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class NameGroups:
    """A person name as stored: the whole value and each component group on its own."""

    full: str | None
    alphabetic: str | None
    ideographic: str | None
    phonetic: str | None


def person_name(value: Any) -> NameGroups:
    """Split a decoded PN (or several, backslash-joined) into its component groups."""
    if value is None or value == "":
        return NameGroups(None, None, None, None)
    names: Iterable[Any] = value if isinstance(value, MultiValue | list) else [value]
    parsed = [v if isinstance(v, PersonName) else PersonName(str(v)) for v in names]
    first = parsed[0]
    return NameGroups(
        full=text([str(p) for p in parsed]),
        alphabetic=text(first.alphabetic),
        ideographic=text(first.ideographic),
        phonetic=text(first.phonetic),
    )


_NAME_SEPARATORS = re.compile(r"[\s^=,\\]+")


def fold_name(value: Any) -> str | None:
    """A person name as folded words for accent- and case-insensitive word-prefix search:
    components and groups split, accents dropped, case folded, each word preceded by a space
    (' muller jurgen ', ' zhang san 张 三 '), so `LIKE '% mul%'` finds a word start."""
    name = text(value)
    if name is None:
        return None
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    words = [word for word in _NAME_SEPARATORS.split(plain) if word]
    return " " + " ".join(words) + " " if words else None
