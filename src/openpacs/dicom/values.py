"""Turn decoded DICOM values into the plain, sortable forms the index keeps."""

from __future__ import annotations

import re
import struct
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from pydicom import config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
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


def fold_name(value: Any, *, stored: bool = True) -> str | None:
    """A person name as folded words for accent- and case-insensitive word-prefix search:
    components and groups split, accents dropped, case folded, each word preceded by a space
    (' muller jurgen ', ' zhang san 张 三 张三 '), so `LIKE '% mul%'` finds a word start.

    A stored group written in East Asian characters is also one word of its components run
    together: people type 张三 for 张^三, as the name is written, never with the separator.
    A query (`stored=False`) is only split: each of its words must start a stored one."""
    name = text(value)
    if name is None:
        return None
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    words = [word for word in _NAME_SEPARATORS.split(plain) if word]
    for group in plain.split("=") if stored else ():
        parts = [word for word in _NAME_SEPARATORS.split(group) if word]
        if len(parts) > 1 and any(unicodedata.east_asian_width(c) in "WF" for c in group):
            words.append("".join(parts))
    return " " + " ".join(words) + " " if words else None


# --- straight from the raw bytes ----------------------------------------------------------
#
# Ingest reads a dozen values per object. Through pydicom each costs a DataElement built by
# its conversion hooks, a regex validation and the Dataset's bookkeeping (~10 µs). For the VRs
# below pydicom's conversion is a plain decode, so the index forms above are computed from the
# raw bytes instead, giving exactly what `text(ds.get(...))` etc. would. Anything else (another
# VR, an element pydicom already converted or deferred, non-default pydicom settings) answers
# SLOW, and the caller asks pydicom.


class _Slow:
    def __repr__(self) -> str:
        return "SLOW"


SLOW: Final = _Slow()

# Text VRs that are always decoded with the default repertoire (iso8859), whatever (0008,0005)
# says, by pydicom's converters that only decode and split on backslashes.
_PLAIN_TEXT_VRS = frozenset({"AS", "CS", "DA", "DT", "TM", "UI"})
_US = struct.Struct("<H")


def _raw(ds: Dataset, tag: int) -> tuple[str, bytes] | _Slow | None:
    """(VR, bytes) of a raw element, None when absent, SLOW when pydicom must convert it."""
    elem = ds.get_item(tag, keep_deferred=True)
    if elem is None:
        return None
    if not isinstance(elem, RawDataElement) or elem.value is None or not elem.is_little_endian:
        return SLOW
    if config.datetime_conversion or config.use_none_as_empty_text_VR_value:
        return SLOW
    if config.use_IS_numpy or config.data_element_callback is not None:
        return SLOW
    vr = elem.VR
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return SLOW
    return str(vr), bytes(elem.value)


def raw_text(ds: Dataset, tag: int) -> str | _Slow | None:
    """`text(ds.get(tag))` for plain text VRs, from the raw bytes; SLOW if not that simple."""
    raw = _raw(ds, tag)
    if raw is None or raw is SLOW:
        return raw
    vr, value = raw  # type: ignore[misc]
    if vr not in _PLAIN_TEXT_VRS:
        return SLOW
    decoded = value.decode("latin-1")
    if vr == "UI":  # pydicom's UID strips every value of all white space
        decoded = "\\".join(uid.strip() for uid in decoded.rstrip("\0 ").split("\\"))
    return decoded.strip("\0 ") or None


def raw_uid(ds: Dataset, tag: int) -> str | _Slow | None:
    """`ds.get(tag)` of a single-valued UI element as the str pydicom gives (trailing NULs and
    spaces removed); SLOW for several values or another VR."""
    raw = _raw(ds, tag)
    if raw is None or raw is SLOW:
        return raw
    vr, value = raw  # type: ignore[misc]
    if vr != "UI" or b"\\" in value:
        return SLOW
    return value.decode("latin-1").rstrip("\0 ").strip()  # as pydicom's UID makes it


def raw_integer(ds: Dataset, tag: int) -> int | _Slow | None:
    """`integer(ds.get(tag))` for one US value or an IS in ASCII, from the raw bytes."""
    raw = _raw(ds, tag)
    if raw is None or raw is SLOW:
        return raw
    vr, value = raw  # type: ignore[misc]
    if vr == "US":
        if not value:
            return None
        return int(_US.unpack(value)[0]) if len(value) == 2 else SLOW
    if vr != "IS" or not value.isascii():
        return SLOW
    first = value.decode("ascii").rstrip(" \0").split("\\")[0]
    try:
        return int(first.strip())
    except ValueError:
        return None
