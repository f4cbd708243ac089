"""The one query engine: C-FIND (every level, Patient Root and Study Root) and QIDO-RS both call
`find`, so they match and answer alike.

A query is an identifier (a pydicom Dataset, as C-FIND carries it; QIDO-RS builds one from its
URL) at a level of an information model. `prepare` parses it (`openpacs.dicom.matching`) into
one SELECT over the index tables, joining the levels above as needed; `Plan.run` executes it and
gives `Answers`: one Dataset per match holding exactly the requested keys, in the order
requested, empty where the index has no value.

What the caller still owns:
- SpecificCharacterSet, QueryRetrieveLevel, QueryRetrieveView and TimezoneOffsetFromUTC are
  neither matched nor returned. Values come back decoded (Python str, ints for IS/US, lists for
  multi-valued attributes), so the caller sets the response's SpecificCharacterSet (ISO_IR 192
  is always safe) and QueryRetrieveLevel.
- RetrieveAETitle, RetrieveURL, InstanceAvailability and the storage media keys come back empty
  for the caller to fill.
- Keys the index does not hold are returned empty and never matched on (`Answers.not_indexed`);
  those of them that carried a value are in `Answers.ignored` (C-FIND may answer FF01).

Person names are matched case-insensitively unless `pn_case_sensitive`; a value without '='
matches any component group (so an ideographic query finds the ideographic group), with '=' each
group its own. `fuzzy` turns PN matching into: every word of the query (split at '^', '=',
spaces, commas) is a case-insensitive prefix of some word of the stored name, in any order.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag
from sqlalchemy import ColumnElement, Row, Select, and_, func, literal, or_, select, true
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute, Session

from openpacs.archive import db
from openpacs.archive.errors import IndexUnavailable, InvalidQuery
from openpacs.archive.models import Base, Instance, Patient, Series, Study
from openpacs.dicom import matching as m
from openpacs.dicom import values
from openpacs.monitoring import metrics

Column: TypeAlias = InstrumentedAttribute[Any]
Element: TypeAlias = tuple[BaseTag, str, Any]  # an answer's element: tag, VR, value
Expr: TypeAlias = ColumnElement[Any] | Column
Query: TypeAlias = Select[*tuple[Any, ...]]

ESCAPE = "!"
SEP = m.SEPARATOR


class Level(enum.StrEnum):
    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Level.PATIENT: 0, Level.STUDY: 1, Level.SERIES: 2, Level.IMAGE: 3}


class Model(enum.StrEnum):
    PATIENT_ROOT = "PATIENT_ROOT"
    STUDY_ROOT = "STUDY_ROOT"


MODEL_LEVELS: dict[Model, tuple[Level, ...]] = {
    Model.PATIENT_ROOT: (Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE),
    Model.STUDY_ROOT: (Level.STUDY, Level.SERIES, Level.IMAGE),
}
UNIQUE_KEYS = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.IMAGE: "SOPInstanceUID",
}
# Required keys (PS3.4 C.6.1.1): with `match_unknown`, an entity whose value is unknown matches.
REQUIRED_KEYS = frozenset(
    {
        "PatientName",
        "PatientID",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "Modality",
        "SeriesNumber",
        "InstanceNumber",
    }
)
# Keys about the exchange, not the data: the caller handles them.
CALLER_KEYS = frozenset(
    {"SpecificCharacterSet", "QueryRetrieveLevel", "QueryRetrieveView", "TimezoneOffsetFromUTC"}
)
# Keys the caller fills in each answer (where to retrieve from, availability).
CALLER_FILLED = frozenset(
    {
        "RetrieveAETitle",
        "RetrieveURL",
        "InstanceAvailability",
        "StorageMediaFileSetID",
        "StorageMediaFileSetUID",
    }
)


@dataclass(frozen=True)
class QueryOptions:
    """How to run a query.

    limit/offset: page of answers (QIDO-RS limit/offset; C-FIND uses limit as its cap and
    `Answers.more` to say it stopped). relational: no unique keys required above the level
    (QIDO-RS, or C-FIND with relational queries negotiated). combined_datetime: a DA and TM
    range pair is one instant range (QIDO-RS; C-FIND when negotiated). match_unknown: an
    entity with no value for a required key matches it (PS3.4 C.2.2.1.2).
    case_insensitive: keys whose text values (LO, SH, ...) match regardless of case, against
    PS3.4's rule for C-FIND (the console's free-text boxes). order_by: keywords to sort on
    instead of the level's stable order, '-' first for descending; unknown values last.
    also: further conditions on the level's tables that no DICOM key says (the console's
    keyword over a study's description or its remark), combined with AND.
    """

    limit: int | None = None
    offset: int = 0
    relational: bool = False
    combined_datetime: bool = False
    fuzzy: bool = False
    pn_case_sensitive: bool = False
    match_unknown: bool = False
    case_insensitive: frozenset[str] = frozenset()
    order_by: tuple[str, ...] = ()
    also: tuple[ColumnElement[bool], ...] = ()


class Kind(enum.Enum):
    TEXT = enum.auto()  # one value, case-sensitive
    VALUES = enum.auto()  # several values joined by '\'
    NAME = enum.auto()  # PN, with a column per component group
    NAMES = enum.auto()  # several PN values joined by '\'
    DATE = enum.auto()
    TIME = enum.auto()
    DATETIME = enum.auto()
    NUMBER = enum.auto()
    COUNT = enum.auto()  # an aggregate: returned, never matched
    CODE_VALUE = enum.auto()  # the parts of a code stored as 'value^scheme'
    CODE_SCHEME = enum.auto()


@dataclass(frozen=True)
class Field:
    keyword: str
    level: Level
    column: Column
    kind: Kind = Kind.TEXT
    groups: tuple[Column, ...] = ()  # PN: alphabetic, ideographic, phonetic
    time: Column | None = None  # DA: the TM column combined datetime matching pairs it with
    folded: Column | None = None  # PN: folded words (values.fold_name) for fuzzy matching


def _name(
    keyword: str, level: Level, full: Column, *groups: Column, folded: Column | None = None
) -> Field:
    return Field(keyword, level, full, Kind.NAME, groups=groups, folded=folded)


P, ST, SE, IM = Level.PATIENT, Level.STUDY, Level.SERIES, Level.IMAGE

FIELDS: tuple[Field, ...] = (
    Field("PatientID", P, Patient.patient_id),
    Field("IssuerOfPatientID", P, Patient.issuer_of_patient_id),
    _name(
        "PatientName",
        P,
        Patient.patient_name,
        Patient.patient_name_alphabetic,
        Patient.patient_name_ideographic,
        Patient.patient_name_phonetic,
        folded=Patient.patient_name_folded,
    ),
    Field(
        "PatientBirthDate",
        P,
        Patient.patient_birth_date,
        Kind.DATE,
        time=Patient.patient_birth_time,
    ),
    Field("PatientBirthTime", P, Patient.patient_birth_time, Kind.TIME),
    Field("PatientSex", P, Patient.patient_sex),
    Field("OtherPatientIDs", P, Patient.other_patient_ids, Kind.VALUES),
    Field("EthnicGroup", P, Patient.ethnic_group),
    Field("PatientComments", P, Patient.patient_comments),
    Field("NumberOfPatientRelatedStudies", P, Patient.number_of_studies, Kind.COUNT),
    Field("NumberOfPatientRelatedSeries", P, Patient.number_of_series, Kind.COUNT),
    Field("NumberOfPatientRelatedInstances", P, Patient.number_of_instances, Kind.COUNT),
    Field("StudyInstanceUID", ST, Study.study_instance_uid),
    Field("StudyDate", ST, Study.study_date, Kind.DATE, time=Study.study_time),
    Field("StudyTime", ST, Study.study_time, Kind.TIME),
    Field("AccessionNumber", ST, Study.accession_number),
    Field("StudyID", ST, Study.study_id),
    Field("StudyDescription", ST, Study.study_description),
    _name(
        "ReferringPhysicianName",
        ST,
        Study.referring_physician_name,
        Study.referring_physician_alphabetic,
        Study.referring_physician_ideographic,
        Study.referring_physician_phonetic,
        folded=Study.referring_physician_folded,
    ),
    Field("NameOfPhysiciansReadingStudy", ST, Study.name_of_physicians_reading_study, Kind.NAMES),
    Field("AdmittingDiagnosesDescription", ST, Study.admitting_diagnoses_description, Kind.VALUES),
    Field("PatientAge", ST, Study.patient_age),
    Field("PatientSize", ST, Study.patient_size),
    Field("PatientWeight", ST, Study.patient_weight),
    Field("Occupation", ST, Study.occupation),
    Field("AdditionalPatientHistory", ST, Study.additional_patient_history),
    Field("InstitutionName", ST, Study.institution_name),
    Field("ModalitiesInStudy", ST, Study.modalities_in_study, Kind.VALUES),
    Field("SOPClassesInStudy", ST, Study.sop_classes_in_study, Kind.VALUES),
    Field("NumberOfStudyRelatedSeries", ST, Study.number_of_series, Kind.COUNT),
    Field("NumberOfStudyRelatedInstances", ST, Study.number_of_instances, Kind.COUNT),
    Field("SeriesInstanceUID", SE, Series.series_instance_uid),
    Field("Modality", SE, Series.modality),
    Field("SeriesNumber", SE, Series.series_number, Kind.NUMBER),
    Field("SeriesDescription", SE, Series.series_description),
    Field("SeriesDate", SE, Series.series_date, Kind.DATE, time=Series.series_time),
    Field("SeriesTime", SE, Series.series_time, Kind.TIME),
    Field("BodyPartExamined", SE, Series.body_part_examined),
    Field("Laterality", SE, Series.laterality),
    Field("ProtocolName", SE, Series.protocol_name),
    Field("Manufacturer", SE, Series.manufacturer),
    Field("ManufacturerModelName", SE, Series.manufacturer_model_name),
    Field("StationName", SE, Series.station_name),
    Field("InstitutionName", SE, Series.institution_name),
    Field("InstitutionalDepartmentName", SE, Series.institutional_department_name),
    Field("OperatorsName", SE, Series.operators_name, Kind.NAMES),
    Field("PerformingPhysicianName", SE, Series.performing_physician_name, Kind.NAMES),
    Field(
        "PerformedProcedureStepStartDate",
        SE,
        Series.performed_procedure_step_start_date,
        Kind.DATE,
        time=Series.performed_procedure_step_start_time,
    ),
    Field(
        "PerformedProcedureStepStartTime",
        SE,
        Series.performed_procedure_step_start_time,
        Kind.TIME,
    ),
    Field("PerformedProcedureStepID", SE, Series.performed_procedure_step_id),
    Field("FrameOfReferenceUID", SE, Series.frame_of_reference_uid),
    Field("NumberOfSeriesRelatedInstances", SE, Series.number_of_instances, Kind.COUNT),
    Field("SOPInstanceUID", IM, Instance.sop_instance_uid),
    Field("SOPClassUID", IM, Instance.sop_class_uid),
    Field("InstanceNumber", IM, Instance.instance_number, Kind.NUMBER),
    Field("ContentDate", IM, Instance.content_date, Kind.DATE, time=Instance.content_time),
    Field("ContentTime", IM, Instance.content_time, Kind.TIME),
    Field("AcquisitionDateTime", IM, Instance.acquisition_date_time, Kind.DATETIME),
    Field("ImageType", IM, Instance.image_type, Kind.VALUES),
    Field("Rows", IM, Instance.rows, Kind.NUMBER),
    Field("Columns", IM, Instance.columns, Kind.NUMBER),
    Field("BitsAllocated", IM, Instance.bits_allocated, Kind.NUMBER),
    Field("NumberOfFrames", IM, Instance.number_of_frames, Kind.NUMBER),
    Field("PhotometricInterpretation", IM, Instance.photometric_interpretation),
    Field("CompletionFlag", IM, Instance.completion_flag),
    Field("VerificationFlag", IM, Instance.verification_flag),
    Field("AvailableTransferSyntaxUID", IM, Instance.transfer_syntax_uid),
)

# Sequences the index keeps the first item of: their item keys, each on a column.
SEQUENCE_FIELDS: dict[str, tuple[Field, ...]] = {
    "IssuerOfAccessionNumberSequence": (
        Field("LocalNamespaceEntityID", ST, Study.issuer_of_accession_number),
    ),
    "RequestAttributesSequence": (
        Field("ScheduledProcedureStepID", SE, Series.scheduled_procedure_step_id),
        Field("RequestedProcedureID", SE, Series.requested_procedure_id),
    ),
    "ConceptNameCodeSequence": (
        Field("CodeValue", IM, Instance.concept_name_code, Kind.CODE_VALUE),
        Field("CodingSchemeDesignator", IM, Instance.concept_name_code, Kind.CODE_SCHEME),
    ),
}

_BY_KEYWORD: dict[str, list[Field]] = {}
for _field in FIELDS:
    _BY_KEYWORD.setdefault(_field.keyword, []).append(_field)

_TABLES: dict[Level, type[Base]] = {P: Patient, ST: Study, SE: Series, IM: Instance}
_PARENTS: dict[Level, tuple[type[Base], ColumnElement[bool]]] = {
    IM: (Series, Instance.series_pk == Series.pk),
    SE: (Study, Series.study_pk == Study.pk),
    ST: (Patient, Study.patient_pk == Patient.pk),
}
_KEYS: dict[Level, Column] = {P: Patient.pk, ST: Study.pk, SE: Series.pk, IM: Instance.pk}
# Stable orders: newest studies first; series and images in their numbering within their parent.
_ORDER: dict[Level, tuple[ColumnElement[Any], ...]] = {
    P: (Patient.pk.asc(),),
    ST: (
        Study.study_date.desc().nulls_last(),
        Study.study_time.desc().nulls_last(),
        Study.pk.desc(),
    ),
    SE: (Series.study_pk.desc(), Series.series_number.asc().nulls_last(), Series.pk.asc()),
    IM: (Instance.series_pk.desc(), Instance.instance_number.asc().nulls_last(), Instance.pk.asc()),
}


def field_for(keyword: str, level: Level) -> Field | None:
    """The index field of `keyword` usable at `level`: its own level's, else the nearest above."""
    usable = [f for f in _BY_KEYWORD.get(keyword, ()) if f.level.rank <= level.rank]
    return max(usable, key=lambda f: f.level.rank) if usable else None


def supported_keys(level: Level) -> tuple[str, ...]:
    """Every keyword matched and returned at `level` (sequences: 'Sequence>ItemKeyword')."""
    plain = {f.keyword for f in FIELDS if f.level.rank <= level.rank}
    items = {
        f"{sequence}>{f.keyword}"
        for sequence, fields in SEQUENCE_FIELDS.items()
        for f in fields
        if f.level.rank <= level.rank
    }
    return tuple(sorted(plain | items))


# --- the plan: what to match, what to return ------------------------------------------------


@dataclass(frozen=True)
class _Term:
    field: Field
    matcher: m.Matcher


@dataclass(frozen=True)
class _Slot:
    """One element of every answer: its value read from a column, or empty (field None)."""

    tag: BaseTag
    vr: str
    field: Field | None
    items: tuple[_Slot, ...] | None = None  # a sequence: the keys of its one item


@dataclass
class _Parsed:
    terms: list[_Term] = field(default_factory=list)
    slots: list[_Slot] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    not_indexed: list[str] = field(default_factory=list)


def prepare(
    identifier: Dataset,
    level: Level,
    model: Model = Model.STUDY_ROOT,
    options: QueryOptions | None = None,
) -> Plan:
    """Parse and check a query without touching the database; InvalidQuery if it cannot run."""
    options = options or QueryOptions()
    _check_request(level, model, options)
    try:
        parsed = _parse(identifier, level, options)
    except m.InvalidQuery as exc:
        raise InvalidQuery(exc.keyword, exc.reason) from exc
    if not options.relational:
        _check_unique_keys(parsed.terms, level, model)
    return Plan(
        level=level,
        model=model,
        options=options,
        terms=tuple(parsed.terms),
        slots=tuple(parsed.slots),
        ignored=tuple(parsed.ignored),
        not_indexed=tuple(parsed.not_indexed),
    )


def find(
    session: Session,
    identifier: Dataset,
    level: Level,
    model: Model = Model.STUDY_ROOT,
    options: QueryOptions | None = None,
) -> Answers:
    """Run a query: the matches (at most `limit`), whether more exist, the keys not used."""
    return prepare(identifier, level, model, options).run(session)


def _check_request(level: Level, model: Model, options: QueryOptions) -> None:
    if level not in MODEL_LEVELS[model]:
        raise InvalidQuery("QueryRetrieveLevel", f"{model} has no {level} level")
    if options.limit is not None and options.limit < 0:
        raise InvalidQuery("limit", f"{options.limit} is negative")
    if options.offset < 0:
        raise InvalidQuery("offset", f"{options.offset} is negative")
    for key in options.order_by:
        if field_for(key.removeprefix("-"), level) is None:
            raise InvalidQuery(key.removeprefix("-"), f"not a key the {level} level sorts on")


def _check_unique_keys(terms: Sequence[_Term], level: Level, model: Model) -> None:
    """Hierarchical queries (PS3.4 C.4.1.2.1) name one entity at each level above their own."""
    matchers = {term.field.keyword: term.matcher for term in terms}
    levels = MODEL_LEVELS[model]
    for above in levels[: levels.index(level)]:
        keyword = UNIQUE_KEYS[above]
        if not _names_entities(matchers.get(keyword)):
            raise InvalidQuery(
                keyword,
                f"a {level} query of {model} needs a single value (or a UID list) for {keyword}"
                " unless relational queries were negotiated",
            )


def _names_entities(matcher: m.Matcher | None) -> bool:
    if isinstance(matcher, m.Single):
        return True
    return isinstance(matcher, m.AnyOf) and all(
        isinstance(one, m.Single) for one in matcher.matchers
    )


def _parse(identifier: Dataset, level: Level, options: QueryOptions) -> _Parsed:
    parsed = _Parsed()
    combined = _combined(identifier, level) if options.combined_datetime else {}
    for element in identifier:
        keyword = m.element_keyword(element)
        if element.tag.element == 0 or keyword in CALLER_KEYS:
            continue
        if m.element_vr(element) == "SQ":
            parsed.slots.append(_sequence(element, keyword, level, parsed))
            continue
        found = field_for(keyword, level)
        if found is None:
            _not_indexed(element, keyword, parsed)
            parsed.slots.append(_Slot(element.tag, m.element_vr(element), None))
            continue
        matcher = combined[keyword] if keyword in combined else m.parse_element(element)
        _add_term(found, matcher, keyword, parsed)
        parsed.slots.append(_Slot(element.tag, m.element_vr(element), found))
    return parsed


def _add_term(found: Field, matcher: m.Matcher, keyword: str, parsed: _Parsed) -> None:
    if isinstance(matcher, m.Universal):
        return
    if found.kind is Kind.COUNT:
        parsed.ignored.append(keyword)  # aggregates are return keys only
        return
    parsed.terms.append(_Term(found, matcher))


def _not_indexed(element: DataElement, keyword: str, parsed: _Parsed) -> None:
    if keyword not in CALLER_FILLED:
        parsed.not_indexed.append(keyword)
    if _has_value(element):
        parsed.ignored.append(keyword)


def _has_value(element: DataElement) -> bool:
    try:
        return not isinstance(m.parse_element(element), m.Universal)
    except m.InvalidQuery:
        return True  # a value we could not even read is still a value we did not match on


def _combined(identifier: Dataset, level: Level) -> dict[str, m.Matcher]:
    """The DA/TM pairs that combine into one instant range: date key → range, time key →
    universal (its bounds now live in the date's range)."""
    combined: dict[str, m.Matcher] = {}
    for date_keyword, time_keyword in m.DATE_TIME_PAIRS.items():
        date_field = field_for(date_keyword, level)
        if date_field is None or date_field.time is None:
            continue
        if field_for(time_keyword, level) is None:
            continue
        if date_keyword not in identifier or time_keyword not in identifier:
            continue
        instant = m.combine_datetime(
            date_keyword,
            identifier[date_keyword].value,
            time_keyword,
            identifier[time_keyword].value,
        )
        if instant is not None:
            combined[date_keyword] = instant
            combined[time_keyword] = m.Universal()
    return combined


def _sequence(element: DataElement, keyword: str, level: Level, parsed: _Parsed) -> _Slot:
    items = element.value or []
    if len(items) > 1:
        raise InvalidQuery(keyword, f"a sequence key holds one item, not {len(items)}")
    known = {f.keyword: f for f in SEQUENCE_FIELDS.get(keyword, ()) if f.level.rank <= level.rank}
    if not known:
        _not_indexed(element, keyword, parsed)
        return _Slot(element.tag, "SQ", None, items=())
    requested = [e for e in items[0] if e.tag.element != 0] if items else []
    if not requested:  # an empty item asks for the whole sequence: all we keep of it
        return _Slot(element.tag, "SQ", None, items=tuple(_whole_item(known)))
    slots = []
    for item_element in requested:
        item_keyword = m.element_keyword(item_element)
        found = known.get(item_keyword)
        if found is None:
            _not_indexed(item_element, f"{keyword}>{item_keyword}", parsed)
        else:
            _add_term(found, m.parse_element(item_element), item_keyword, parsed)
        slots.append(_Slot(item_element.tag, m.element_vr(item_element), found))
    return _Slot(element.tag, "SQ", None, items=tuple(slots))


def _whole_item(known: dict[str, Field]) -> Iterator[_Slot]:
    for keyword, found in known.items():
        element = DataElement(keyword, "UN", None)  # resolves the tag and VR by keyword
        yield _Slot(element.tag, m.element_vr(element), found)


# --- SQL ------------------------------------------------------------------------------------


def _column_key(column: Column) -> str:
    return f"{column.class_.__name__}.{column.key}"


def _pn(column: Column, matcher: m.Matcher) -> Expr:
    # Trailing empty components are insignificant: 'DOE^JOHN^^' is 'DOE^JOHN'. A pattern that
    # ends in '*' absorbs them anyway, and the bare column is cheaper to scan.
    if isinstance(matcher, m.Wildcard) and matcher.pattern.endswith("*"):
        return column
    return func.rtrim(column, "^ ")


class _Sql:
    """Matchers as SQL conditions for one dialect.

    SQLite's LIKE ignores ASCII case, so case-sensitive wildcards use GLOB there and
    case-insensitive ones plain LIKE; PostgreSQL's LIKE is case-sensitive and ILIKE is not.
    """

    def __init__(self, dialect: str, options: QueryOptions) -> None:
        self.sqlite = dialect == "sqlite"
        self.options = options

    def term(self, term: _Term) -> ColumnElement[bool]:
        condition = self.match(term.field, term.matcher)
        if self.options.match_unknown and term.field.keyword in REQUIRED_KEYS:
            return or_(condition, term.field.column.is_(None))
        return condition

    def match(self, f: Field, matcher: m.Matcher) -> ColumnElement[bool]:
        if isinstance(matcher, m.AnyOf):
            return self._any(f, matcher)
        if f.kind is Kind.NAME:
            return self._name(f, matcher)
        if f.kind is Kind.NAMES:
            return self._names(f, matcher)
        if f.kind is Kind.VALUES:
            return self._values(f.column, matcher, ci=False, keyword=f.keyword)
        if f.kind in (Kind.CODE_VALUE, Kind.CODE_SCHEME):
            return self._code(f, matcher)
        if isinstance(matcher, m.DateTimeRange) and f.time is not None:
            return _instant(f.column, f.time, matcher)
        if isinstance(matcher, m.Range):
            return _between(f.column, matcher)
        ci = f.keyword in self.options.case_insensitive
        return self._text(f.column, matcher, ci=ci, keyword=f.keyword)

    def _any(self, f: Field, matcher: m.AnyOf) -> ColumnElement[bool]:
        singles = [one.value for one in matcher.matchers if isinstance(one, m.Single)]
        plain = f.kind in (Kind.TEXT, Kind.NUMBER, Kind.DATE, Kind.TIME)
        if plain and len(singles) == len(matcher.matchers):
            return f.column.in_(singles)
        return or_(*(self.match(f, one) for one in matcher.matchers))

    def _text(
        self, column: Expr, matcher: m.Matcher, *, ci: bool, keyword: str
    ) -> ColumnElement[bool]:
        if isinstance(matcher, m.Single):
            if ci:
                return func.lower(column) == func.lower(literal(matcher.value))
            return column == matcher.value
        if isinstance(matcher, m.Wildcard):
            return self._wildcard(column, matcher, ci=ci)
        raise _unmatchable(keyword, matcher)

    def _wildcard(self, column: Expr, matcher: m.Wildcard, *, ci: bool) -> ColumnElement[bool]:
        if ci and self.sqlite:
            # SQLite's LIKE already folds case exactly as far as its lower() does (ASCII), and
            # in this form a prefix pattern searches the NOCASE name indexes (migration 0004)
            # instead of scanning: ILIKE would compile to lower(column) LIKE lower(pattern).
            return column.like(matcher.like(ESCAPE), escape=ESCAPE)
        if ci:
            return column.ilike(matcher.like(ESCAPE), escape=ESCAPE)
        if self.sqlite:
            return column.bool_op("GLOB")(matcher.glob())
        return column.like(matcher.like(ESCAPE), escape=ESCAPE)

    def _values(
        self, column: Expr, matcher: m.Matcher, *, ci: bool, keyword: str
    ) -> ColumnElement[bool]:
        """A backslash-joined list matches when one of its values does."""
        if isinstance(matcher, m.Single):
            value = str(matcher.value)
            wrapped = literal(SEP) + column + literal(SEP)
            if self.sqlite and not ci:
                return wrapped.bool_op("GLOB")(f"*{SEP}{m.glob_literal(value)}{SEP}*")
            pattern = f"%{SEP}{m.like_literal(value, ESCAPE)}{SEP}%"
            if ci:
                return wrapped.ilike(pattern, escape=ESCAPE)
            return wrapped.like(pattern, escape=ESCAPE)
        if isinstance(matcher, m.Wildcard):
            # LIKE's '%' would run across values; a regular expression can stop at '\'.
            sep = re.escape(SEP)
            pattern = f"(^|{sep}){matcher.regex(SEP)}({sep}|$)"
            if ci and self.sqlite:
                return column.regexp_match("(?i)" + pattern)
            return column.regexp_match(pattern, flags="i" if ci else None)
        raise _unmatchable(keyword, matcher)

    def _name(self, f: Field, matcher: m.Matcher) -> ColumnElement[bool]:
        if not isinstance(matcher, m.NameMatch):
            raise _unmatchable(f.keyword, matcher)
        if self.options.fuzzy:
            if f.folded is not None:
                return _folded_fuzzy(f.folded, matcher.text)
            return _fuzzy(f.column, matcher.text)
        ci = not self.options.pn_case_sensitive
        if matcher.any_group is not None:
            one = matcher.any_group
            return or_(*(self._text(_pn(g, one), one, ci=ci, keyword=f.keyword) for g in f.groups))
        return and_(
            *(
                self._text(_pn(group, part), part, ci=ci, keyword=f.keyword)
                for group, part in zip(f.groups, matcher.groups, strict=True)
                if not isinstance(part, m.Universal)
            )
        )

    def _names(self, f: Field, matcher: m.Matcher) -> ColumnElement[bool]:
        if not isinstance(matcher, m.NameMatch):
            raise _unmatchable(f.keyword, matcher)
        if self.options.fuzzy:
            return _fuzzy(f.column, matcher.text)
        # Only whole values are stored here, so the query is matched against each whole value.
        text = matcher.text.rstrip("^ ")
        whole: m.Matcher = m.Wildcard(text) if m.WILDCARDS & set(text) else m.Single(text)
        ci = not self.options.pn_case_sensitive
        return self._values(f.column, whole, ci=ci, keyword=f.keyword)

    def _code(self, f: Field, matcher: m.Matcher) -> ColumnElement[bool]:
        """One part of a code stored as 'value^scheme', as a pattern over the whole."""
        if isinstance(matcher, m.Single):
            part = str(matcher.value)
        elif isinstance(matcher, m.Wildcard):
            part = matcher.pattern
        else:
            raise _unmatchable(f.keyword, matcher)
        whole = f"{part}^*" if f.kind is Kind.CODE_VALUE else f"*^{part}"
        return self._wildcard(f.column, m.Wildcard(whole), ci=False)


def condition(
    f: Field, matcher: m.Matcher, dialect: str, options: QueryOptions | None = None
) -> ColumnElement[bool]:
    """One matcher as a SQL condition on `f`'s column(s): the C-FIND semantics for other
    tables that keep attributes the same way (the worklist)."""
    return _Sql(dialect, options or QueryOptions()).match(f, matcher)


def _between(column: Column, matcher: m.Range) -> ColumnElement[bool]:
    bounds = []
    if matcher.lower is not None:
        bounds.append(column >= matcher.lower)
    if matcher.upper is not None:
        bounds.append(column <= matcher.upper)
    return and_(*bounds)


def _instant(date: Column, time: Column, matcher: m.DateTimeRange) -> ColumnElement[bool]:
    """Date and time against a combined range; an unknown time does not exclude its date."""
    bounds = []
    if matcher.lower is not None:
        day, at = matcher.lower
        bounds += [date >= day, or_(date > day, time.is_(None), time >= at)]
    if matcher.upper is not None:
        day, at = matcher.upper
        bounds += [date <= day, or_(date < day, time.is_(None), time <= at)]
    return and_(*bounds)


def _fuzzy(column: Column, text: str) -> ColumnElement[bool]:
    words = m.name_words(text)
    if not words:
        return true()
    flat = literal(" ") + func.replace(
        func.replace(func.replace(column, "^", " "), "=", " "), SEP, " "
    )
    return and_(*(flat.ilike(f"% {m.Wildcard(w).like(ESCAPE)}%", escape=ESCAPE) for w in words))


def _folded_fuzzy(folded: Column, text: str) -> ColumnElement[bool]:
    """Every query word starts some word of the name, accents and case aside: both sides are
    folded the same way (values.fold_name), so plain LIKE works on every database."""
    words = (values.fold_name(text, stored=False) or "").split()
    if not words:
        return true()
    return and_(*(folded.like(f"% {m.Wildcard(w).like(ESCAPE)}%", escape=ESCAPE) for w in words))


def _unmatchable(keyword: str, matcher: m.Matcher) -> InvalidQuery:
    return InvalidQuery(keyword, f"cannot be matched by {type(matcher).__name__}")


# --- running and answering ------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """A checked query: run it with `run`, or look at its SQL with `statement`."""

    level: Level
    model: Model
    options: QueryOptions
    terms: tuple[_Term, ...]
    slots: tuple[_Slot, ...]
    ignored: tuple[str, ...]
    not_indexed: tuple[str, ...]

    def columns(self) -> list[Column]:
        """The selected columns: the level's key first, then each returned field's once."""
        chosen = {_column_key(_KEYS[self.level]): _KEYS[self.level]}
        for slot in _flatten(self.slots):
            if slot.field is not None:
                chosen.setdefault(_column_key(slot.field.column), slot.field.column)
        return list(chosen.values())

    def statement(self, dialect: str) -> Query:
        stmt = self._matching(dialect, *self.columns()).order_by(*self._order())
        if self.options.limit is not None:
            stmt = stmt.limit(self.options.limit + 1)  # one more says whether more exist
        if self.options.offset:
            stmt = stmt.offset(self.options.offset)
        return stmt

    def count(self, session: Session) -> int:
        """How many entities match, whatever the page (a paged list's total)."""
        dialect = session.get_bind().dialect.name
        matching = self._matching(dialect, _KEYS[self.level]).subquery()
        try:
            return int(session.scalar(select(func.count()).select_from(matching)) or 0)
        except SQLAlchemyError as exc:
            raise IndexUnavailable(f"index database unreachable: {db.describe(exc)}") from exc

    def _matching(self, dialect: str, *columns: Column) -> Query:
        sql = _Sql(dialect, self.options)
        stmt = select(*columns).select_from(_TABLES[self.level])
        stmt = _join_up(stmt, self.level, self._top())
        return stmt.where(*(sql.term(term) for term in self.terms), *self.options.also)

    def _sorted_on(self) -> list[tuple[Field, bool]]:
        found = []
        for key in self.options.order_by:
            chosen = field_for(key.removeprefix("-"), self.level)
            assert chosen is not None  # prepare() refused unknown keys
            found.append((chosen, key.startswith("-")))
        return found

    def _order(self) -> tuple[ColumnElement[Any], ...]:
        if not self.options.order_by:
            return _ORDER[self.level]
        chosen = [
            (f.column.desc() if descending else f.column.asc()).nulls_last()
            for f, descending in self._sorted_on()
        ]
        return (*chosen, _KEYS[self.level].asc())  # ties in a stable order, so pages never overlap

    def _top(self) -> Level:
        used = [term.field.level for term in self.terms]
        used += [slot.field.level for slot in _flatten(self.slots) if slot.field is not None]
        used += [f.level for f, _ in self._sorted_on()]
        return min(used, key=lambda lvl: lvl.rank, default=self.level)

    def run(self, session: Session) -> Answers:
        stmt = self.statement(session.get_bind().dialect.name)
        try:
            with metrics.timed_index("find"):
                rows = session.execute(stmt).all()
        except SQLAlchemyError as exc:
            raise IndexUnavailable(f"index database unreachable: {db.describe(exc)}") from exc
        limit = self.options.limit
        more = limit is not None and len(rows) > limit
        return Answers(
            rows=rows[:limit] if more else rows,
            more=more,
            ignored=self.ignored,
            not_indexed=self.not_indexed,
            plan=self,
        )


def _flatten(slots: Sequence[_Slot]) -> Iterator[_Slot]:
    for slot in slots:
        yield slot
        if slot.items:
            yield from _flatten(slot.items)


def _join_up(stmt: Query, level: Level, top: Level) -> Query:
    current = level
    while current.rank > top.rank:
        parent, on = _PARENTS[current]
        stmt = stmt.join(parent, on)
        current = MODEL_LEVELS[Model.PATIENT_ROOT][current.rank - 1]
    return stmt


def _fill(ds: Dataset, slots: Sequence[_Slot], row: Row[Any], positions: dict[str, int]) -> Dataset:
    for slot in slots:
        if slot.items is not None:
            ds.add_new(slot.tag, "SQ", _item(slot.items, row, positions))
            continue
        value = None
        if slot.field is not None:
            value = _returned(slot.field, row[positions[_column_key(slot.field.column)]])
        # Stored values were checked when their objects were received; validating them again
        # would cost more than the rest of building the answer.
        ds.add(DataElement(slot.tag, slot.vr, value, validation_mode=config.IGNORE))
    return ds


def _item(slots: Sequence[_Slot], row: Row[Any], positions: dict[str, int]) -> DicomSequence:
    """The one item the index keeps, with the requested keys; no item when it holds none."""
    held = [
        slot
        for slot in slots
        if slot.field is not None and row[positions[_column_key(slot.field.column)]] is not None
    ]
    if not held:
        return DicomSequence([])
    return DicomSequence([_fill(Dataset(), slots, row, positions)])


def _returned(f: Field, value: Any) -> Any:
    """A stored value in the form pydicom takes for the attribute's VR."""
    if value is None or value == "":
        return None
    if f.kind in (Kind.VALUES, Kind.NAMES):
        return str(value).split(SEP)
    if f.kind is Kind.TIME:
        return str(value).removesuffix(".000000")  # stored zero-padded; no false precision
    if f.kind is Kind.CODE_VALUE:
        return str(value).rpartition("^")[0] or None
    if f.kind is Kind.CODE_SCHEME:
        return str(value).rpartition("^")[2] or None
    return value


@dataclass(frozen=True)
class Answers:
    """The matches of a query, in a stable order; iterate for one Dataset per match.

    more: there were matches past `limit` (C-FIND: stop and say so; QIDO-RS: a warning).
    ignored: keys that carried a value but were not matched on (not indexed, or return-only).
    not_indexed: keys returned empty because the index does not hold them.
    """

    rows: Sequence[Row[Any]]
    more: bool
    ignored: tuple[str, ...]
    not_indexed: tuple[str, ...]
    plan: Plan

    def __iter__(self) -> Iterator[Dataset]:
        positions = {_column_key(c): i for i, c in enumerate(self.plan.columns())}
        for row in self.rows:
            yield _fill(Dataset(), self.plan.slots, row, positions)

    @property
    def flat(self) -> bool:
        """No sequence among the requested keys: `records` can stand in for the datasets."""
        return all(slot.items is None for slot in self.plan.slots)

    def records(self) -> Iterator[list[Element]]:
        """Flat answers as (tag, VR, value) in the order requested, the values as the datasets
        are given them (str, int, list of str, None). Building a pydicom Dataset costs ~5 us
        an element, most of an answer's cost when it is encoded at once (C-FIND)."""
        if not self.flat:
            raise ValueError("records() needs flat answers; iterate for datasets")
        positions = {_column_key(c): i for i, c in enumerate(self.plan.columns())}
        slots = [
            (slot.tag, slot.vr, slot.field, positions[_column_key(slot.field.column)])
            if slot.field is not None
            else (slot.tag, slot.vr, None, 0)
            for slot in self.plan.slots
        ]
        for row in self.rows:
            yield [
                (tag, vr, None if found is None else _returned(found, row[position]))
                for tag, vr, found, position in slots
            ]

    def __len__(self) -> int:
        return len(self.rows)
