"""De-identification by the DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile.

A `Profile` is the Basic Profile plus options, chosen by name::

    profile = Profile.from_names("basic+retain-dates+clean-descriptors")
    clean = deidentify(ds, profile, key, patient_id="ANON123")

`deidentify` works on a deep copy and leaves its input untouched. Pixel data is never changed:
burnt-in text is out of scope, so an object whose Burned In Annotation is YES is refused unless
the caller passes ``accept_burned_in=True`` (Burned In Annotation is kept as it was).

Actions, per attribute of Table E.1-1 (`openpacs.dicom.deid_table`), at every sequence depth:

X   removed.
Z   emptied (a sequence becomes empty). Patient's Name is the exception: it is set to the caller's
    name or to the patient pseudonym, which Z allows ("or a dummy value").
D   a dummy valid for the VR ("ANON", 0, 19000101, zero bytes); a UID gets a keyed replacement;
    Patient ID gets the patient pseudonym. A sequence keeps its items, and in them every
    attribute of the table gets its own action while every other text, date, time and UID value
    becomes a dummy too (coded strings, numbers and bytes stay), so its structure survives
    with nothing identifying left in it.
U   UIDs replaced by `replace_uid` (keyed, so consistent across a study and a run). UIDs of the
    standard (pydicom's UID dictionary and the 1.2.840.10008 root) are never replaced.
K   kept (sequences are still walked: attributes nested in them get their own actions).
C   cleaned (Clean Descriptors, and the C of Retain Patient Characteristics and Retain Device
    Identity): the text is kept with every value this run removes or replaces elsewhere in the
    object (names and their components, IDs, dates, institution and device names ...) and every
    run of six or more digits cut out. This catches an identity copied into a description, not
    one typed freely at the console. In a cleaned sequence the same holds for every text value,
    except the code itself of a coded entry. VRs that cannot be read as text fall back to the
    Basic Profile action.
M   (Retain Longitudinal Temporal Information Modified Dates): dates and datetimes move by a
    whole number of days, keyed per patient, so intervals survive; times stay. Values of other
    VRs, and dates that cannot be parsed, fall back to the Basic Profile action.

Combined actions, for which the standard's choice depends on the attribute's type in the IOD:
this module has no per-IOD knowledge, so it takes the choice that is valid in any IOD and reveals
no more than the others: X/Z -> Z, X/D -> D, Z/D -> D, X/Z/D -> D, and X/Z/U* -> keep the
sequence and replace the UIDs in its items.

When options disagree on a row (Retain Device Identity K and Modified Dates C on Date of Last
Calibration), the more protective action wins. Attributes the table does not list are kept.

Also: private attributes are removed unless a safe-list keeps them (Retain Safe Private takes the
rows of Table E.3.10-1 in `SAFE_PRIVATE`, ``safe_private`` adds the caller's own); a private
creator goes with its last kept element. Curve groups (50xx) and whole overlay groups (60xx)
are removed, since an overlay without its Overlay Data is not an overlay. Group lengths are
dropped. From the file meta, AE titles, presentation addresses and private information are
dropped and Media Storage SOP Instance UID follows SOP Instance UID; a file preamble is zeroed.
Patient Identity Removed, De-identification Method (and Code Sequence, CID 7050) and
Longitudinal Temporal Information Modified are set.
"""

from __future__ import annotations

import copy
import datetime as dt
import enum
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Final

from pydicom._uid_dict import UID_dictionary  # the public pydicom.uid does not re-export it
from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.dataset import Dataset, FileDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from openpacs.dicom.deid_table import SAFE_PRIVATE, TABLE, PrivateTag, Row

__all__ = [
    "BASIC",
    "BurnedInAnnotationError",
    "Option",
    "PrivateTag",
    "Profile",
    "deidentify",
    "is_well_known_uid",
    "replace_uid",
]

MIN_KEY_LENGTH: Final = 16
DCM: Final = "DCM"
BASIC_CODE: Final = ("113100", "Basic Application Confidentiality Profile")
METHOD_PREFIX: Final = "openpacs: "


class Option(enum.StrEnum):
    """The options of PS3.15 Annex E that this module implements, named as `Profile` takes them."""

    RETAIN_SAFE_PRIVATE = "retain-safe-private"
    RETAIN_UIDS = "retain-uids"
    RETAIN_DEVICE_IDENTITY = "retain-device-identity"
    RETAIN_INSTITUTION_IDENTITY = "retain-institution-identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain-patient-characteristics"
    RETAIN_LONGITUDINAL_FULL_DATES = "retain-longitudinal-full-dates"
    RETAIN_LONGITUDINAL_MODIFIED_DATES = "retain-longitudinal-modified-dates"
    CLEAN_DESCRIPTORS = "clean-descriptors"


@dataclass(frozen=True)
class _OptionInfo:
    column: str  # its column in Table E.1-1
    code: str  # CID 7050
    meaning: str


_INFO: Final[dict[Option, _OptionInfo]] = {
    Option.RETAIN_SAFE_PRIVATE: _OptionInfo("priv", "113111", "Retain Safe Private Option"),
    Option.RETAIN_UIDS: _OptionInfo("uids", "113110", "Retain UIDs Option"),
    Option.RETAIN_DEVICE_IDENTITY: _OptionInfo("dev", "113109", "Retain Device Identity Option"),
    Option.RETAIN_INSTITUTION_IDENTITY: _OptionInfo(
        "inst", "113112", "Retain Institution Identity Option"
    ),
    Option.RETAIN_PATIENT_CHARACTERISTICS: _OptionInfo(
        "pat", "113108", "Retain Patient Characteristics Option"
    ),
    Option.RETAIN_LONGITUDINAL_FULL_DATES: _OptionInfo(
        "full", "113106", "Retain Longitudinal Temporal Information Full Dates Option"
    ),
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: _OptionInfo(
        "mod", "113107", "Retain Longitudinal Temporal Information Modified Dates Option"
    ),
    Option.CLEAN_DESCRIPTORS: _OptionInfo("desc", "113105", "Clean Descriptors Option"),
}

_ALIASES: Final[dict[str, Option]] = {
    "retain-private": Option.RETAIN_SAFE_PRIVATE,
    "retain-device": Option.RETAIN_DEVICE_IDENTITY,
    "retain-institution": Option.RETAIN_INSTITUTION_IDENTITY,
    "retain-patient": Option.RETAIN_PATIENT_CHARACTERISTICS,
    "retain-dates": Option.RETAIN_LONGITUDINAL_FULL_DATES,
    "retain-full-dates": Option.RETAIN_LONGITUDINAL_FULL_DATES,
    "retain-modified-dates": Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
    "shift-dates": Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
    "clean": Option.CLEAN_DESCRIPTORS,
}

# Resolution of the Basic Profile column, documented in the module docstring.
_BASIC: Final[dict[str, str]] = {
    "X": "X",
    "Z": "Z",
    "D": "D",
    "U": "U",
    "Z/D": "D",
    "X/Z": "Z",
    "X/D": "D",
    "X/Z/D": "D",
    "X/Z/U*": "U",
}
# Most protective first: when two options give a row different actions, the earlier one wins.
_PROTECTIVE: Final = "XZDUCMK"


class BurnedInAnnotationError(ValueError):
    """The object says its pixels carry burnt-in text, which de-identification does not touch."""


@dataclass(frozen=True)
class Profile:
    """The Basic Application Level Confidentiality Profile with a set of options.

    ``safe_private`` lists private attributes the caller knows to be safe; they are kept with
    or without Retain Safe Private, which adds the rows of PS3.15 Table E.3.10-1 it carries.
    """

    options: frozenset[Option] = frozenset()
    safe_private: frozenset[PrivateTag] = frozenset()

    def __post_init__(self) -> None:
        # Accept option names as well as members: Profile(frozenset({"retain-uids"})).
        object.__setattr__(self, "options", frozenset(Option(o) for o in self.options))
        both = {Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES}
        if both <= self.options:
            raise ValueError("the Full Dates and Modified Dates options exclude each other")

    @classmethod
    def from_names(
        cls, names: str | Iterable[str], *, safe_private: Iterable[PrivateTag] = ()
    ) -> Profile:
        """A profile from option names: ``"basic+retain-dates"`` or a list of names.

        "basic" may be given and is always implied. Names are the `Option` values or a short
        alias (retain-dates, retain-modified-dates, retain-device, retain-patient,
        retain-institution, retain-private); case, "_" and spaces do not matter.
        """
        given = [names] if isinstance(names, str) else list(names)
        parts = [part for name in given for part in re.split(r"[+,]", name)]
        options: set[Option] = set()
        for part in parts:
            name = re.sub(r"[\s_]+", "-", part.strip().lower())
            if name in ("", "basic", "basic-profile"):
                continue
            option = _ALIASES.get(name)
            if option is None:
                try:
                    option = Option(name)
                except ValueError:
                    known = sorted([*(o.value for o in Option), *_ALIASES, "basic"])
                    raise ValueError(
                        f"unknown de-identification option {part!r}; known: {', '.join(known)}"
                    ) from None
            options.add(option)
        return cls(frozenset(options), frozenset(safe_private))

    @property
    def name(self) -> str:
        """The canonical name, which `from_names` reads back: "basic+<option>+..."."""
        return "+".join(["basic", *(o.value for o in Option if o in self.options)])

    @property
    def retains_private(self) -> bool:
        return Option.RETAIN_SAFE_PRIVATE in self.options or bool(self.safe_private)

    @property
    def method_codes(self) -> list[tuple[str, str]]:
        """CID 7050 (code value, code meaning) of the profile and each option, in that order."""
        codes = [BASIC_CODE]
        for option in Option:
            if option in self.options or (
                option is Option.RETAIN_SAFE_PRIVATE and self.retains_private
            ):
                codes.append((_INFO[option].code, _INFO[option].meaning))
        return codes

    def action(self, tag: int) -> str | None:
        """The action this profile takes on a Table E.1-1 attribute, None if it is not listed.

        One of X, Z, D, U, K, C and M (dates moved), as the module docstring describes.
        """
        return self._actions.get(int(tag))

    def keeps_private(self, group: int, creator: str, element: int) -> bool:
        """Whether a private attribute, given by its block (`PrivateTag`), is kept."""
        tag = PrivateTag(group, creator.strip(), element & 0xFF)
        if tag in self.safe_private:
            return True
        return Option.RETAIN_SAFE_PRIVATE in self.options and tag in SAFE_PRIVATE

    @cached_property
    def _actions(self) -> dict[int, str]:
        return {tag: self._resolve(row) for tag, row in TABLE.items()}

    def _resolve(self, row: Row) -> str:
        chosen = []
        for option in self.options:
            action = row.options.get(_INFO[option].column)
            if action is None:
                continue
            # The Modified Dates column says C, but its cleaning is moving the date.
            chosen.append("M" if option is Option.RETAIN_LONGITUDINAL_MODIFIED_DATES else action)
        if chosen:
            return min(chosen, key=_PROTECTIVE.index)
        return _BASIC[row.basic]


BASIC: Final = Profile()


def replace_uid(uid: str, key: bytes) -> str:
    """The replacement of a UID under a key: ``2.25.<int>``, the same for the same UID and key.

    The integer is the first 128 bits of HMAC-SHA256(key, uid) marked as a version 8 UUID, so
    the result is a valid UID of at most 44 characters from which the original cannot be found
    without the key. Empty values and UIDs of the standard come back unchanged.
    """
    text = str(uid).rstrip("\0 ")
    if not text or is_well_known_uid(text):
        return text
    digest = hmac.new(key, b"uid\0" + text.encode("ascii", "replace"), hashlib.sha256).digest()
    value = int.from_bytes(digest[:16], "big")
    value = (value & ~(0xF << 76)) | (0x8 << 76)  # UUID version 8 (custom)
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
    return f"2.25.{value}"


def is_well_known_uid(uid: str) -> bool:
    """A UID defined by the standard (SOP classes, transfer syntaxes, coding schemes ...)."""
    return uid in UID_dictionary or uid.startswith("1.2.840.10008.")


def deidentify(
    ds: Dataset,
    profile: Profile,
    key: bytes,
    *,
    patient_id: str | None = None,
    patient_name: str | None = None,
    accept_burned_in: bool = False,
) -> Dataset:
    """A de-identified deep copy of ``ds`` (file meta included), as the module docstring says.

    ``key`` (at least 16 bytes, kept secret) makes UIDs, the patient pseudonym and the date
    shift: the same key gives the same results, so objects de-identified with one key in one
    run or several still fit together. Patient ID and Patient's Name become ``patient_id`` and
    ``patient_name`` if given, else a pseudonym derived from the key and the original Patient ID.

    Raises BurnedInAnnotationError when Burned In Annotation is YES and ``accept_burned_in``
    is not set, and ValueError for a short key.
    """
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(f"the de-identification key must have at least {MIN_KEY_LENGTH} bytes")
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES" and not accept_burned_in:
        raise BurnedInAnnotationError(
            "Burned In Annotation is YES: the pixels may show identity, which de-identification "
            "leaves as is; pass accept_burned_in=True to de-identify the header anyway"
        )
    run = _Run(profile, key, ds, patient_id, patient_name)
    out = copy.deepcopy(ds)
    run.walk(out, _Mode.NORMAL)
    run.finish(out)
    return out


class _Mode(enum.Enum):
    NORMAL = enum.auto()
    DUMMY = enum.auto()  # inside a sequence the profile replaces with a dummy (D)
    CLEAN = enum.auto()  # inside a sequence the profile cleans (C)


_TEXT_VRS: Final = frozenset({"AE", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
_BINARY_SIZES: Final = {"OB": 2, "OW": 2, "UN": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
_NUMERIC_VRS: Final = frozenset({"FL", "FD", "SL", "SS", "UL", "US", "SV", "UV"})
_DUMMIES: Final = {
    "AE": "ANON",
    "AS": "000Y",
    "CS": "ANON",
    "DA": "19000101",
    "DT": "19000101000000.000000",
    "DS": "0",
    "IS": "0",
    "LO": "ANON",
    "LT": "ANON",
    "PN": "ANON",
    "SH": "ANON",
    "ST": "ANON",
    "TM": "000000.00",
    "UC": "ANON",
    "UR": "ANON",
    "UT": "ANON",
}
# Values an identity is found in, to cut from the descriptors that Clean keeps.
_TERM_VRS: Final = _TEXT_VRS | {"DA", "DT"}
# The code of a coded entry: it names a concept, not a person, and cleaning it breaks the code.
_CODE_TAGS: Final = frozenset(
    {0x00080100, 0x00080102, 0x00080103, 0x00080105, 0x0008010F, 0x00080119, 0x00080120}
)
_DIGIT_RUN: Final = r"(?<![0-9])[0-9]{6,}(?![0-9])"
_FILE_META_DROPPED: Final = (
    0x00020016,  # Source Application Entity Title
    0x00020017,  # Sending Application Entity Title
    0x00020018,  # Receiving Application Entity Title
    0x00020026,  # Source Presentation Address
    0x00020027,  # Sending Presentation Address
    0x00020028,  # Receiving Presentation Address
    0x00020100,  # Private Information Creator UID
    0x00020102,  # Private Information
)
_DATE_STATES: Final = ("UNMODIFIED", "MODIFIED", "REMOVED")
PATIENT_ID: Final = 0x00100020
MAX_SHIFT_DAYS: Final = 3650


def _mac(key: bytes, purpose: bytes, text: str) -> bytes:
    return hmac.new(key, purpose + b"\0" + text.encode("utf-8"), hashlib.sha256).digest()


def _vr(elem: DataElement) -> str:
    # An in-memory element may carry an ambiguous dictionary VR such as "US or SS".
    return str(elem.VR).split(" or ")[0]


def _values(elem: DataElement) -> list[Any]:
    value = elem.value
    if value is None or value == "":
        return []
    if isinstance(value, (list, MultiValue)):
        return list(value)
    return [value]


class _Run:
    """One call of `deidentify`: the profile, the key and what was read from the original."""

    def __init__(
        self,
        profile: Profile,
        key: bytes,
        original: Dataset,
        patient_id: str | None,
        patient_name: str | None,
    ) -> None:
        self.profile = profile
        self.key = key
        self.uids: dict[str, str] = {}
        self.original_id = str(original.get("PatientID", "") or "").strip()
        seed = self.original_id or "name:{}|{}".format(
            original.get("PatientName", ""), original.get("PatientBirthDate", "")
        )
        pseudonym = "ANON-" + _mac(key, b"patient", seed)[:8].hex().upper()
        self.patient_id = patient_id if patient_id is not None else pseudonym
        self.patient_name = patient_name if patient_name is not None else self.patient_id
        days = 1 + int.from_bytes(_mac(key, b"date-shift", seed)[:4], "big") % MAX_SHIFT_DAYS
        self.shift = dt.timedelta(days=-days)
        self.scrub = self._scrubber(original)

    # -- walking ---------------------------------------------------------------------------

    def walk(self, ds: Dataset, mode: _Mode) -> None:
        creators = {
            (int(e.tag.group), int(e.tag.element)): str(e.value).strip()
            for e in ds
            if e.tag.is_private and 0x10 <= e.tag.element <= 0xFF
        }
        used: set[tuple[int, int]] = set()
        for elem in list(ds):
            tag = elem.tag
            if tag.is_private:
                self._private(ds, elem, creators, used)
            elif tag.element == 0 and tag.group != 2:
                del ds[tag]  # a group length, which the edits below would make wrong
            elif (tag.group & 0xFF00) in (0x5000, 0x6000):
                del ds[tag]  # curves and overlays, see the module docstring
            else:
                action = self.profile.action(tag)
                if action is None:
                    self._unlisted(elem, mode)
                else:
                    self._apply(ds, elem, action, TABLE[int(tag)])
        for block in creators.keys() - used:
            del ds[Tag(*block)]

    def _private(
        self,
        ds: Dataset,
        elem: DataElement,
        creators: dict[tuple[int, int], str],
        used: set[tuple[int, int]],
    ) -> None:
        group, element = int(elem.tag.group), int(elem.tag.element)
        if 0x10 <= element <= 0xFF:
            return  # a private creator: it stays while one of its elements does
        block = (group, element >> 8)
        creator = creators.get(block)
        if element > 0xFF and creator and self.profile.keeps_private(group, creator, element):
            used.add(block)
            self._recurse(elem, _Mode.NORMAL)
        else:
            del ds[elem.tag]

    def _recurse(self, elem: DataElement, mode: _Mode) -> None:
        if _vr(elem) == "SQ":
            for item in elem.value or ():
                self.walk(item, mode)

    def _unlisted(self, elem: DataElement, mode: _Mode) -> None:
        vr = _vr(elem)
        if vr == "SQ":
            self._recurse(elem, mode)
        elif mode is _Mode.DUMMY:
            if vr == "UI":
                if Option.RETAIN_UIDS not in self.profile.options:
                    self._replace_uids(elem)
            elif vr in _TEXT_VRS | {"AS", "DA", "DT", "TM", "UR"}:
                self._dummy(elem)
        elif mode is _Mode.CLEAN and vr in _TEXT_VRS and int(elem.tag) not in _CODE_TAGS:
            self._clean_text(elem)

    def _apply(self, ds: Dataset, elem: DataElement, action: str, row: Row) -> None:
        vr = _vr(elem)
        if action == "X":
            del ds[elem.tag]
        elif action == "Z":
            elem.value = Sequence() if vr == "SQ" else empty_value_for_VR(vr)
        elif action == "D":
            self._dummy(elem)
        elif action == "U":
            if vr == "SQ":
                self._recurse(elem, _Mode.NORMAL)  # X/Z/U*: the UIDs in the items
            elif vr == "UI":
                self._replace_uids(elem)
            else:
                self._dummy(elem)
        elif action == "K":
            self._recurse(elem, _Mode.NORMAL)
        elif action == "C":
            if vr == "SQ":
                self._recurse(elem, _Mode.CLEAN)
            elif vr in _TEXT_VRS:
                self._clean_text(elem)
            elif vr in _BINARY_SIZES:
                self._apply(ds, elem, _BASIC[row.basic], row)  # bytes cannot be read to clean
            # else a coded string (CS defined terms) names no one and stays
        elif action == "M" and not self._shift_dates(elem):
            self._apply(ds, elem, _BASIC[row.basic], row)

    # -- values ----------------------------------------------------------------------------

    def _dummy(self, elem: DataElement) -> None:
        vr = _vr(elem)
        if elem.is_empty:
            return  # nothing to hide, and an empty Type 2 attribute stays valid
        if vr == "SQ":
            self._recurse(elem, _Mode.DUMMY)
        elif vr == "UI":
            self._replace_uids(elem)
        elif int(elem.tag) == PATIENT_ID:
            elem.value = self._pseudonym(str(elem.value))
        elif vr in _DUMMIES:
            elem.value = _DUMMIES[vr]
        elif vr in _NUMERIC_VRS:
            elem.value = 0.0 if vr in ("FL", "FD") else 0
        elif vr in _BINARY_SIZES:
            elem.value = bytes(_BINARY_SIZES[vr])

    def _pseudonym(self, original: str) -> str:
        if original.strip() == self.original_id:
            return self.patient_id
        return "ANON-" + _mac(self.key, b"patient", original.strip())[:8].hex().upper()

    def _replace_uids(self, elem: DataElement) -> None:
        # Retain UIDs acts through the table, which leaves some UIDs to U even so.
        new = [self.uid(str(v)) for v in _values(elem)]
        if new:
            elem.value = new if len(new) > 1 else new[0]

    def uid(self, uid: str) -> str:
        found = self.uids.get(uid)
        if found is None:
            found = self.uids[uid] = replace_uid(uid, self.key)
        return found

    def _clean_text(self, elem: DataElement) -> None:
        new = [self.scrub(str(v)) for v in _values(elem)]
        if new:
            elem.value = new if len(new) > 1 else new[0]

    def _shift_dates(self, elem: DataElement) -> bool:
        vr = _vr(elem)
        if vr == "TM":
            return True  # a shift by whole days leaves the time of day as it was
        if vr not in ("DA", "DT"):
            return False
        new = [self._shift(str(v).strip()) for v in _values(elem)]
        if any(v is None for v in new):
            return False
        if new:
            elem.value = new if len(new) > 1 else new[0]
        return True

    def _shift(self, text: str) -> str | None:
        if len(text) < 8 or not text[:8].isdigit():
            return None
        try:
            day = dt.date(int(text[:4]), int(text[4:6]), int(text[6:8])) + self.shift
        except (ValueError, OverflowError):
            return None
        return f"{day.year:04d}{day.month:02d}{day.day:02d}{text[8:]}"

    # -- cleaning --------------------------------------------------------------------------

    def _scrubber(self, original: Dataset) -> Callable[[str], str]:
        terms = set(self._terms(original))
        words = sorted((re.escape(t) for t in terms), key=len, reverse=True)
        alternatives = [*(rf"(?<![0-9A-Za-z]){w}(?![0-9A-Za-z])" for w in words), _DIGIT_RUN]
        pattern = re.compile("|".join(alternatives), re.IGNORECASE)

        def scrub(text: str) -> str:
            return re.sub(r" {2,}", " ", pattern.sub("", text)).strip()

        return scrub

    def _terms(self, ds: Dataset, hidden: bool = False) -> Iterator[str]:
        """The values this run removes or replaces, as they may be copied into a descriptor.

        ``hidden``: inside a sequence the run removes, empties or dummies, where every text
        value goes (a physician's name in a removed identification sequence).
        """
        for elem in ds:
            vr = _vr(elem)
            if elem.tag.is_private:
                continue
            action = self.profile.action(elem.tag)
            if vr == "SQ":
                inner = (hidden and action is None) or action in ("X", "Z", "D")
                for item in elem.value or ():
                    yield from self._terms(item, inner)
                continue
            goes = action not in (None, "K", "C") or (
                hidden and action is None and int(elem.tag) not in _CODE_TAGS
            )
            if vr not in _TERM_VRS or not goes:
                continue
            for value in _values(elem):
                text = str(value).strip()
                if vr == "PN":
                    yield from (p for p in re.split(r"[\^=]+", text) if len(p.strip()) > 1)
                elif vr in ("DA", "DT") and len(text) >= 8 and text[:8].isdigit():
                    y, m, d = text[:4], text[4:6], text[6:8]
                    yield from (text[:8], f"{y}-{m}-{d}", f"{y}/{m}/{d}", f"{d}.{m}.{y}")
                    yield from (f"{d}/{m}/{y}", f"{m}/{d}/{y}")
                elif len(text) >= 3:
                    yield text

    # -- bookkeeping -----------------------------------------------------------------------

    def finish(self, ds: Dataset) -> None:
        ds.PatientID = self.patient_id
        ds.PatientName = self.patient_name
        ds.PatientIdentityRemoved = "YES"
        old = ds.get("DeidentificationMethod") or []
        methods = [str(v) for v in ([old] if isinstance(old, str) else old)]
        ours = [METHOD_PREFIX + BASIC_CODE[1], *(m for c, m in self.profile.method_codes[1:])]
        ds.DeidentificationMethod = methods + [m for m in ours if m not in methods]
        items = list(ds.get("DeidentificationMethodCodeSequence", None) or [])
        have = {str(item.get("CodeValue", "")) for item in items}
        for code, meaning in self.profile.method_codes:
            if code not in have:
                item = Dataset()
                item.CodeValue = code
                item.CodingSchemeDesignator = DCM
                item.CodeMeaning = meaning
                items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        options = self.profile.options
        if Option.RETAIN_LONGITUDINAL_FULL_DATES in options:
            state = "UNMODIFIED"
        elif Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in options:
            state = "MODIFIED"
        else:
            state = "REMOVED"
        # Keeping dates that an earlier de-identification already moved does not unmove them.
        before = str(ds.get("LongitudinalTemporalInformationModified", "")).strip().upper()
        if before in _DATE_STATES and _DATE_STATES.index(before) > _DATE_STATES.index(state):
            state = before
        ds.LongitudinalTemporalInformationModified = state
        self._file_meta(ds)

    def _file_meta(self, ds: Dataset) -> None:
        if isinstance(ds, FileDataset) and ds.preamble is not None:
            # A preamble can hold another format's header (TIFF), with its own identity.
            ds.preamble = bytes(128)
        meta = getattr(ds, "file_meta", None)
        if meta is None:
            return
        for tag in _FILE_META_DROPPED:
            meta.pop(tag, None)
        if "MediaStorageSOPInstanceUID" in meta:
            if "SOPInstanceUID" in ds:
                meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            elif Option.RETAIN_UIDS not in self.profile.options:
                meta.MediaStorageSOPInstanceUID = self.uid(str(meta.MediaStorageSOPInstanceUID))
