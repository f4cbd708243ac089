"""QIDO-RS: a search URL turned into a query of the one engine (`openpacs.archive.query`), its
answers into the DICOM JSON model.

Keys are keywords or 8-hex tags, sequence items after a '.' (`RequestAttributesSequence.
ScheduledProcedureStepID`, `0040A730.0040A160`). Repeated keys and, for UI, CS and AE values,
commas give several values (any one matches), as a backslash does. `Modality` at study level
means ModalitiesInStudy. `includefield` (repeated or comma-separated, `all`) adds return keys to
the level's defaults (PS3.18 Tables 10.6.3-3 to -5), and series and instance answers carry
their parents' defaults too.

Zero matches: 200 with an empty array (the answer CP-2473 moves the standard to; the older text
says 204). Clients that follow either accept an empty 200 array, and an empty array needs no
special case in a client that loops over results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydicom import config as pydicom_config
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag
from sqlalchemy.orm import Session

from openpacs.archive import query
from openpacs.archive.errors import InvalidQuery
from openpacs.archive.query import Level
from openpacs.web.dicomweb import urls

PARAMETERS = frozenset({"limit", "offset", "fuzzymatching", "includefield"})
# Parameters of the HTTP exchange that do not select anything (PS3.18 8.3.3): allowed, unused.
IGNORED_PARAMETERS = frozenset({"accept", "charset"})
_SPLIT_ON_COMMA = frozenset({"UI", "CS", "AE"})
SEPARATOR = "\\"

STUDY_DEFAULTS = (
    "SpecificCharacterSet",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "InstanceAvailability",
    "ModalitiesInStudy",
    "ReferringPhysicianName",
    "TimezoneOffsetFromUTC",
    "RetrieveURL",
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyID",
    "StudyDescription",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
SERIES_DEFAULTS = (
    "SpecificCharacterSet",
    "Modality",
    "TimezoneOffsetFromUTC",
    "SeriesDescription",
    "RetrieveURL",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SeriesDate",
    "SeriesTime",
    "NumberOfSeriesRelatedInstances",
    "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime",
    "RequestAttributesSequence",
)
INSTANCE_DEFAULTS = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceAvailability",
    "TimezoneOffsetFromUTC",
    "RetrieveURL",
    "InstanceNumber",
    "Rows",
    "Columns",
    "BitsAllocated",
    "NumberOfFrames",
)
# The parents' keys that make an answer usable on its own (its UIDs, the patient, the study).
_PARENT_DEFAULTS = {
    Level.STUDY: (),
    Level.SERIES: STUDY_DEFAULTS,
    Level.IMAGE: (*STUDY_DEFAULTS, *SERIES_DEFAULTS),
}
_OWN_DEFAULTS = {
    Level.STUDY: STUDY_DEFAULTS,
    Level.SERIES: SERIES_DEFAULTS,
    Level.IMAGE: INSTANCE_DEFAULTS,
}


@dataclass
class Search:
    """A parsed search: the identifier for the engine and how to run it."""

    level: Level
    identifier: Dataset
    options: query.QueryOptions
    warnings: list[str] = field(default_factory=list)


def parse_tag_path(text: str) -> list[BaseTag]:
    """'Keyword', '0020000D' or a '.'-joined sequence path, as tags; InvalidQuery otherwise."""
    tags = []
    parts = text.split(".")
    for position, part in enumerate(parts):
        tag = _tag(part, text)
        is_last = position == len(parts) - 1
        if not is_last and _vr(tag) != "SQ":
            raise InvalidQuery(text, f"{part} is not a sequence, so nothing can follow it")
        tags.append(tag)
    return tags


def _tag(part: str, whole: str) -> BaseTag:
    if len(part) == 8 and all(c in "0123456789abcdefABCDEF" for c in part):
        return BaseTag(int(part, 16))
    found = tag_for_keyword(part)
    if found is None:
        raise InvalidQuery(whole, f"{part!r} is neither a DICOM keyword nor an 8-hex tag")
    return BaseTag(found)


def _known(keyword: str) -> BaseTag:
    found = tag_for_keyword(keyword)
    if found is None:
        raise KeyError(keyword)  # only dictionary keywords of our own tables come here
    return BaseTag(found)


def _vr(tag: BaseTag) -> str:
    try:
        vr = dictionary_VR(tag)
    except KeyError:
        return "UN"
    return vr.split(" or ")[0]


def _element(tag: BaseTag, value: str | None) -> DataElement:
    vr = _vr(tag)
    if vr == "SQ":
        return DataElement(tag, vr, DicomSequence([]))
    # The value stays the text it came as: the engine's matching parses it by VR and says
    # what is wrong with it, which pydicom's validation here would only pre-empt.
    try:
        return DataElement(tag, vr, value or None, validation_mode=pydicom_config.IGNORE)
    except (TypeError, ValueError, OverflowError):
        # pydicom converts number VRs (IS, DS, US ...) even when told not to validate.
        keyword = keyword_for_tag(tag) or f"{int(tag):08X}"
        raise InvalidQuery(keyword, f"{value!r} is not a {vr} value") from None


def _study_level_name(level: Level, tag: BaseTag) -> BaseTag:
    if level is Level.STUDY and tag == 0x00080060:  # Modality -> ModalitiesInStudy
        return BaseTag(0x00080061)
    return tag


def _put(ds: Dataset, tags: Sequence[BaseTag], value: str | None) -> None:
    """Set a (possibly nested) key; a value replaces an earlier one, None only adds a return key."""
    head = tags[0]
    if len(tags) == 1:
        if value is None and head in ds:
            return
        ds[head] = _element(head, value)
        return
    if head not in ds or ds[head].VR != "SQ":
        ds[head] = DataElement(head, "SQ", DicomSequence([]))
    items = ds[head].value
    if not items:
        items.append(Dataset())
    _put(items[0], tags[1:], value)


def parse(
    level: Level,
    params: Sequence[tuple[str, str]],
    path_uids: dict[str, str],
    *,
    max_results: int,
) -> Search:
    """The search a URL asks for; InvalidQuery (400) naming the parameter that is wrong."""
    identifier = Dataset()
    for keyword in (*_PARENT_DEFAULTS[level], *_OWN_DEFAULTS[level]):
        _put(identifier, [_study_level_name(level, _known(keyword))], None)

    limit: int | None = None
    offset = 0
    fuzzy = False
    matches: dict[tuple[BaseTag, ...], list[str]] = {}
    warnings: list[str] = []
    for name, value in params:
        lowered = name.lower()
        if lowered == "limit":
            limit = _count(name, value, minimum=1)
        elif lowered == "offset":
            offset = _count(name, value, minimum=0)
        elif lowered == "fuzzymatching":
            fuzzy = _boolean(name, value)
        elif lowered == "includefield":
            _include(identifier, level, value)
        elif lowered in IGNORED_PARAMETERS:
            continue
        else:
            tags = tuple(_study_level_name(level, t) for t in parse_tag_path(name))
            matches.setdefault(tags, []).extend(_values(tags[-1], value))
    for keyword, uid in path_uids.items():
        matches[(_known(keyword),)] = [uid]
    for tags, values in matches.items():
        _put(identifier, list(tags), SEPARATOR.join(values) if values else None)

    if limit is None or limit > max_results:
        limit = max_results
    options = query.QueryOptions(
        limit=limit, offset=offset, relational=True, combined_datetime=True, fuzzy=fuzzy
    )
    return Search(level, identifier, options, warnings)


def _values(tag: BaseTag, value: str) -> list[str]:
    vr = _vr(tag)
    if vr == "SQ":
        raise InvalidQuery(keyword_for_tag(tag) or str(tag), "a sequence matches on its items")
    parts = value.split(SEPARATOR)
    if vr in _SPLIT_ON_COMMA:
        parts = [piece for part in parts for piece in part.split(",")]
    return [part.strip() for part in parts if part.strip()]


def _count(name: str, value: str, *, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise InvalidQuery(name, f"{value!r} is not a whole number") from None
    if number < minimum:
        raise InvalidQuery(name, f"{number} is below {minimum}")
    return number


def _boolean(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise InvalidQuery(name, f"{value!r} is neither true nor false")


def _include(identifier: Dataset, level: Level, value: str) -> None:
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        if item.lower() == "all":
            for key in query.supported_keys(level):
                sequence, _, inner = key.partition(">")
                tags = [_known(sequence)]
                if inner:
                    tags.append(_known(inner))
                _put(identifier, tags, None)
            continue
        tags = [_study_level_name(level, t) for t in parse_tag_path(item)]
        _put(identifier, tags, None)


def run(session: Session, search: Search) -> query.Answers:
    return query.find(
        session, search.identifier, search.level, query.Model.STUDY_ROOT, search.options
    )


def complete(ds: Dataset, level: Level, root: str) -> Dataset:
    """Fill what the engine leaves to the caller: character set, availability, RetrieveURL."""
    ds.SpecificCharacterSet = "ISO_IR 192"
    if "InstanceAvailability" in ds:
        ds.InstanceAvailability = "ONLINE"
    if "RetrieveURL" in ds:
        study = str(ds.get("StudyInstanceUID") or "")
        series = str(ds.get("SeriesInstanceUID") or "")
        sop = str(ds.get("SOPInstanceUID") or "")
        if level is Level.STUDY:
            ds.RetrieveURL = urls.study_url(root, study)
        elif level is Level.SERIES:
            ds.RetrieveURL = urls.series_url(root, study, series)
        else:
            ds.RetrieveURL = urls.instance_url(root, study, series, sop)
    return ds


def warnings_for(answers: query.Answers, search: Search) -> list[str]:
    """Warning header texts (PS3.18 8.3.3.3: 299 with the service's name)."""
    texts = list(search.warnings)
    if answers.ignored:
        texts.append(
            "The following attributes are not supported as matching keys and were ignored: "
            + ", ".join(answers.ignored)
        )
    if answers.more:
        texts.append(
            "The number of results exceeded the limit; more results can be requested with "
            f"offset={search.options.offset + len(answers)}"
        )
    return texts
