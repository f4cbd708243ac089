"""One association's print session (PS3.4 H.4): the film session, its film boxes and their image
boxes, Presentation LUTs, as the SCU builds them with N-CREATE / N-SET / N-DELETE.

State lives in memory for the association's life (PS3.4 H.4.1.2: a film session and everything
under it exist only within the association that created it); what must survive (the job, the
films) goes through the `Keeper` into the storage and the index. Every method checks its input
and raises a `printing.errors` error naming the attribute and the reason; none leaves the
session half-changed, so after a refused request the session is as it was.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydicom import Dataset
from pydicom.sequence import Sequence

from openpacs.dicom.uids import InvalidUID, check_uid
from openpacs.printing import compose
from openpacs.printing.errors import (
    ClassInstanceConflict,
    DuplicateInstance,
    InvalidValue,
    MissingValue,
    NoSuchAction,
    NoSuchInstance,
    NothingToPrint,
    NotSettable,
    ResourceLimit,
    UnsupportedOperation,
)

# SOP classes (PS3.4 H.5, H.6).
GREY_META = "1.2.840.10008.5.1.1.9"  # Basic Grayscale Print Management Meta
COLOUR_META = "1.2.840.10008.5.1.1.18"  # Basic Color Print Management Meta
FILM_SESSION = "1.2.840.10008.5.1.1.1"
FILM_BOX = "1.2.840.10008.5.1.1.2"
GREY_IMAGE_BOX = "1.2.840.10008.5.1.1.4"
COLOUR_IMAGE_BOX = "1.2.840.10008.5.1.1.4.1"
PRINTER = "1.2.840.10008.5.1.1.16"
PRINTER_INSTANCE = "1.2.840.10008.5.1.1.17"  # the well-known Printer SOP instance
PRESENTATION_LUT = "1.2.840.10008.5.1.1.23"
ANNOTATION_BOX = "1.2.840.10008.5.1.1.15"  # Basic Annotation Box
# A film box naming any AnnotationDisplayFormatID gets this many annotation boxes; the SCU sets
# each one's position: 1 is printed above the images, 2 below them (format IDs are
# printer-defined; ours has these two places whatever the ID).
ANNOTATION_POSITIONS = 2

FILM_SESSION_KEYS = frozenset(
    {
        "NumberOfCopies",
        "PrintPriority",
        "MediumType",
        "FilmDestination",
        "FilmSessionLabel",
        "MemoryAllocation",
        "OwnerID",
        "SpecificCharacterSet",
        "ReferencedPresentationLUTSequence",
        "Illumination",
        "ReflectedAmbientLight",
    }
)
FILM_BOX_SETTABLE = frozenset(
    {
        "MagnificationType",
        "SmoothingType",
        "BorderDensity",
        "EmptyImageDensity",
        "MinDensity",
        "MaxDensity",
        "Trim",
        "ConfigurationInformation",
        "Illumination",
        "ReflectedAmbientLight",
        "ReferencedPresentationLUTSequence",
    }
)
FILM_BOX_KEYS = FILM_BOX_SETTABLE | {
    "ImageDisplayFormat",
    "FilmOrientation",
    "FilmSizeID",
    "RequestedResolutionID",
    "AnnotationDisplayFormatID",
    "ReferencedFilmSessionSequence",
    "SpecificCharacterSet",
}
IMAGE_BOX_KEYS = frozenset(
    {
        "ImageBoxPosition",
        "Polarity",
        "MagnificationType",
        "SmoothingType",
        "ConfigurationInformation",
        "RequestedImageSize",
        "RequestedDecimateCropBehavior",
        "BasicGrayscaleImageSequence",
        "BasicColorImageSequence",
        "ReferencedImageOverlayBoxSequence",
        "SpecificCharacterSet",
    }
)
# Attributes taken from an image for the film's patient and study when the modality sent them.
IDENTITY_KEYS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "StudyID",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyDescription",
)
MAX_FILM_BOXES = 32  # per film session at once: a print queue of one association


def new_uid() -> str:
    """A SOP Instance UID under the 2.25 root (PS3.5 B.2)."""
    return f"2.25.{uuid.uuid4().int}"


@dataclass
class ImageBox:
    uid: str
    position: int
    sop_class: str
    attributes: Dataset = field(default_factory=Dataset)
    display: compose.Display | None = None
    placement: compose.Placement = field(default_factory=compose.Placement)
    identity: Dataset | None = None  # patient/study attributes found in the image
    raw_file: str | None = None  # the archived N-SET dataset, relative to the job folder


@dataclass
class AnnotationBox:
    uid: str
    position: int
    text: str = ""


@dataclass
class FilmBox:
    uid: str
    number: int  # in creation order within the session, 1-based
    colour: bool
    attributes: Dataset
    spec: compose.FilmSpec
    boxes: list[ImageBox]
    lut_uid: str | None = None
    annotations: list[AnnotationBox] = field(default_factory=list)

    def image_box(self, uid: str) -> ImageBox | None:
        return next((b for b in self.boxes if b.uid == uid), None)

    def annotation_box(self, uid: str) -> AnnotationBox | None:
        return next((a for a in self.annotations if a.uid == uid), None)


@dataclass(frozen=True)
class Film:
    """What one N-ACTION prints: a film box's composition inputs, fixed at that moment."""

    film_box: FilmBox
    session_attributes: Dataset
    images: dict[int, tuple[compose.Display, compose.Placement]]
    identity: Dataset | None
    raw_files: dict[int, str]
    annotations: dict[int, str] = field(default_factory=dict)


class Keeper(Protocol):
    """Where a session's lasting effects go (printing.films.FilmKeeper in the server)."""

    def open_job(self, session: PrintSession) -> None: ...
    def session_changed(self, session: PrintSession) -> None: ...
    def keep_image_box(self, session: PrintSession, box: ImageBox, ds: Dataset) -> str: ...
    def print_films(self, session: PrintSession, films: list[Film]) -> None: ...
    def close_job(self, session: PrintSession, reason: str | None) -> None: ...


@dataclass
class Defaults:
    """What a film box gets when the SCU does not say (the [printscp] settings)."""

    film_size: str = "8INX10IN"
    orientation: str = "PORTRAIT"
    magnification: str = "BILINEAR"
    border_density: str = "BLACK"
    empty_image_density: str = "BLACK"
    min_density: int = compose.DEFAULT_MIN_DENSITY
    max_density: int = compose.DEFAULT_MAX_DENSITY


class PrintSession:
    """The objects one association created. `job_id` is set by the keeper when the film
    session is created; `films_printed` counts films kept."""

    def __init__(self, calling_ae: str, called_ae: str, keeper: Keeper, defaults: Defaults) -> None:
        self.calling_ae = calling_ae
        self.called_ae = called_ae
        self.keeper = keeper
        self.defaults = defaults
        self.film_session_uid: str | None = None
        self.film_session: Dataset | None = None
        self.film_boxes: dict[str, FilmBox] = {}
        self.luts: dict[str, Dataset] = {}
        self.job_id: int | None = None
        self.job_folder = ""
        self.films_printed = 0
        # The study of films whose images name none, and a series per study, for the session.
        self.study_uid = new_uid()
        self._series: dict[str, str] = {}
        self._film_box_count = 0
        self.colour = False  # the film session was created on the colour meta class

    def series_uid(self, study_uid: str) -> str:
        """The series this session's films join within `study_uid` (one per study)."""
        return self._series.setdefault(study_uid, new_uid())

    # -- film session
    def create_film_session(
        self, uid: str | None, attrs: Dataset, *, colour: bool
    ) -> tuple[str, Dataset]:
        if self.film_session_uid is not None:
            if uid == self.film_session_uid:
                raise DuplicateInstance(f"film session {uid} exists already")
            raise ResourceLimit("one film session per association; delete the current one first")
        uid = _instance_uid(uid)
        session = Dataset()
        session.NumberOfCopies = 1
        session.PrintPriority = "MED"
        session.MediumType = "PAPER"
        session.FilmDestination = "MAGAZINE"
        _merge(session, attrs, FILM_SESSION_KEYS, self.luts, "film session")
        self.film_session_uid, self.film_session, self.colour = uid, session, colour
        try:
            self.keeper.open_job(self)
        except Exception:
            self.film_session_uid, self.film_session = None, None
            raise
        return uid, session

    def set_film_session(self, uid: str, attrs: Dataset) -> Dataset:
        session = self._film_session(uid)
        changed = _copy(session)
        _merge(changed, attrs, FILM_SESSION_KEYS, self.luts, "film session")
        self.film_session = changed
        self.keeper.session_changed(self)
        return changed

    def delete_film_session(self, uid: str) -> None:
        self._film_session(uid)
        self.end("film session deleted before anything was printed")

    def end(self, reason: str) -> None:
        """The session is over (N-DELETE, release, abort): close the job."""
        if self.film_session_uid is None:
            return
        self.film_session_uid, self.film_session = None, None
        self.film_boxes.clear()
        self.keeper.close_job(self, None if self.films_printed else reason)

    def _film_session(self, uid: str) -> Dataset:
        if self.film_session is None or uid != self.film_session_uid:
            raise NoSuchInstance(f"no film session {uid or '(none named)'} in this association")
        return self.film_session

    # -- film box
    def create_film_box(
        self, uid: str | None, attrs: Dataset, *, colour: bool
    ) -> tuple[str, Dataset]:
        if self.film_session is None:
            raise NoSuchInstance("no film session: N-CREATE a Basic Film Session first")
        if uid is not None and uid in self.film_boxes:
            raise DuplicateInstance(f"film box {uid} exists already")
        if len(self.film_boxes) >= MAX_FILM_BOXES:
            raise ResourceLimit(f"more than {MAX_FILM_BOXES} film boxes in one film session")
        referenced = attrs.get("ReferencedFilmSessionSequence")
        if not referenced:
            raise MissingValue("ReferencedFilmSessionSequence", "missing")
        if str(referenced[0].get("ReferencedSOPInstanceUID", "")) != self.film_session_uid:
            raise InvalidValue(
                "ReferencedFilmSessionSequence", "does not name this association's film session"
            )
        uid = _instance_uid(uid)
        box = Dataset()
        d = self.defaults
        box.FilmOrientation = d.orientation
        box.FilmSizeID = d.film_size
        box.MagnificationType = d.magnification
        box.BorderDensity = d.border_density
        box.EmptyImageDensity = d.empty_image_density
        box.MinDensity = d.min_density
        box.MaxDensity = d.max_density
        box.Trim = "NO"
        _merge(box, attrs, FILM_BOX_KEYS, self.luts, "film box")
        spec = _film_spec(box)
        image_class = COLOUR_IMAGE_BOX if colour else GREY_IMAGE_BOX
        count = compose.box_count(spec.display_format)
        boxes = [ImageBox(new_uid(), n, image_class) for n in range(1, count + 1)]
        box.ReferencedImageBoxSequence = Sequence([_reference(image_class, b.uid) for b in boxes])
        notes = []
        if box.get("AnnotationDisplayFormatID"):
            notes = [AnnotationBox(new_uid(), n) for n in range(1, ANNOTATION_POSITIONS + 1)]
            box.ReferencedBasicAnnotationBoxSequence = Sequence(
                [_reference(ANNOTATION_BOX, a.uid) for a in notes]
            )
        self._film_box_count += 1
        film = FilmBox(uid, self._film_box_count, colour, box, spec, boxes, _lut_uid(box), notes)
        self.film_boxes[uid] = film
        return uid, box

    def set_film_box(self, uid: str, attrs: Dataset) -> Dataset:
        film = self._film_box(uid)
        for element in attrs:
            if element.keyword not in FILM_BOX_SETTABLE:
                raise NotSettable(
                    element.keyword or str(element.tag), "may not be set on an existing film box"
                )
        changed = _copy(film.attributes)
        _merge(changed, attrs, FILM_BOX_SETTABLE, self.luts, "film box")
        film.spec = _film_spec(changed)
        film.attributes, film.lut_uid = changed, _lut_uid(changed)
        return changed

    def delete_film_box(self, uid: str) -> None:
        self._film_box(uid)
        del self.film_boxes[uid]

    def _film_box(self, uid: str) -> FilmBox:
        film = self.film_boxes.get(uid)
        if film is None:
            raise NoSuchInstance(f"no film box {uid or '(none named)'} in this film session")
        return film

    # -- image box
    def set_image_box(self, uid: str, sop_class: str, attrs: Dataset) -> Dataset:
        film, box = self._image_box(uid)
        if sop_class != box.sop_class:
            raise ClassInstanceConflict(f"image box {uid} is a {_class_name(box.sop_class)}")
        for element in attrs:
            if element.keyword not in IMAGE_BOX_KEYS:
                raise NotSettable(element.keyword or str(element.tag), "not an image box attribute")
        position = attrs.get("ImageBoxPosition")
        if position is not None and int(position) != box.position:
            raise InvalidValue(
                "ImageBoxPosition", f"{position}: this image box is position {box.position}"
            )
        polarity = str(attrs.get("Polarity") or "NORMAL").strip().upper()
        if polarity not in compose.POLARITIES:
            raise InvalidValue("Polarity", f"{polarity!r}: use NORMAL or REVERSE")
        placement = _placement(attrs, film.spec.magnification)
        keyword = "BasicColorImageSequence" if film.colour else "BasicGrayscaleImageSequence"
        other = "BasicGrayscaleImageSequence" if film.colour else "BasicColorImageSequence"
        if other in attrs:
            raise InvalidValue(other, f"not for a {_class_name(box.sop_class)}")
        sequence = attrs.get(keyword)
        display, identity = None, None
        if sequence:
            item = sequence[0]
            lut_uid = film.lut_uid or _lut_uid(self.film_session or Dataset())
            lut = self.luts.get(lut_uid) if lut_uid else None
            display = (
                compose.colour_display(item, polarity=polarity)
                if film.colour
                else compose.grey_display(item, polarity=polarity, lut=lut)
            )
            identity = _identity(item)
        raw = self.keeper.keep_image_box(self, box, attrs) if sequence else None
        box.display, box.identity, box.placement, box.raw_file = display, identity, placement, raw
        kept = Dataset()
        for element in attrs:
            if element.keyword not in (keyword,):
                kept.add(element)
        box.attributes = kept
        answer = Dataset()
        answer.ImageBoxPosition = box.position
        return answer

    def _image_box(self, uid: str) -> tuple[FilmBox, ImageBox]:
        for film in self.film_boxes.values():
            box = film.image_box(uid)
            if box is not None:
                return film, box
        raise NoSuchInstance(f"no image box {uid or '(none named)'} in this film session")

    # -- annotation box
    def set_annotation_box(self, uid: str, attrs: Dataset) -> Dataset:
        """AnnotationPosition and TextString (PS3.3 C.13.7): text printed with the film."""
        found = None
        for film in self.film_boxes.values():
            found = film.annotation_box(uid) or found
        if found is None:
            raise NoSuchInstance(f"no annotation box {uid or '(none named)'} in this film session")
        for element in attrs:
            if element.keyword not in ("AnnotationPosition", "TextString", "SpecificCharacterSet"):
                raise NotSettable(
                    element.keyword or str(element.tag), "not an annotation box attribute"
                )
        # The SCU places each box (PS3.3 C.13.7); our positions: 1 above, 2 below the images.
        position = int(attrs.get("AnnotationPosition") or found.position)
        if not 1 <= position <= ANNOTATION_POSITIONS:
            raise InvalidValue(
                "AnnotationPosition", f"{position}: use 1 (above the images) or 2 (below)"
            )
        found.position = position
        found.text = str(attrs.get("TextString") or "").strip()[:64]
        answer = Dataset()
        answer.AnnotationPosition = found.position
        return answer

    # -- Presentation LUT
    def create_lut(self, uid: str | None, attrs: Dataset) -> tuple[str, Dataset]:
        if uid is not None and uid in self.luts:
            raise DuplicateInstance(f"Presentation LUT {uid} exists already")
        lut = Dataset()
        if "PresentationLUTSequence" in attrs and attrs.PresentationLUTSequence:
            item = attrs.PresentationLUTSequence[0]
            descriptor = list(item.get("LUTDescriptor") or [])
            data = item.get("LUTData")
            if len(descriptor) != 3 or data is None:
                raise InvalidValue("PresentationLUTSequence", "needs LUTDescriptor and LUTData")
            entries = descriptor[0] or 65536
            if descriptor[2] not in range(10, 17) or len(list(_words(data))) != entries:
                raise InvalidValue(
                    "LUTDescriptor", f"{descriptor}: 10-16 bits and as many LUTData entries"
                )
            lut.PresentationLUTSequence = attrs.PresentationLUTSequence
        else:
            shape = str(attrs.get("PresentationLUTShape") or "").strip().upper()
            if shape not in ("IDENTITY", "LIN OD", "INVERSE"):
                raise InvalidValue(
                    "PresentationLUTShape", f"{shape!r}: use IDENTITY, LIN OD or a LUT sequence"
                )
            lut.PresentationLUTShape = shape
        uid = _instance_uid(uid)
        self.luts[uid] = lut
        return uid, lut

    def delete_lut(self, uid: str) -> None:
        if uid not in self.luts:
            raise NoSuchInstance(f"no Presentation LUT {uid or '(none named)'}")
        del self.luts[uid]

    # -- printing
    def print_film_box(self, uid: str, action: int) -> int:
        """Print one film; returns how many films had no image (printed as empty pages)."""
        if action != 1:
            raise NoSuchAction(f"Action Type ID {action}: a film box knows 1 (print)")
        film = self._film_box(uid)
        return self._print([film])

    def print_film_session(self, uid: str, action: int) -> int:
        """Print every film box of the session, in creation order; returns the empty ones."""
        if action != 1:
            raise NoSuchAction(f"Action Type ID {action}: a film session knows 1 (print)")
        self._film_session(uid)
        if not self.film_boxes:
            raise NothingToPrint("the film session holds no film box")
        films = sorted(self.film_boxes.values(), key=lambda f: f.number)
        return self._print(films)

    def _print(self, films: list[FilmBox]) -> int:
        assert self.film_session is not None
        jobs = []
        empty = 0
        for film in films:
            images: dict[int, tuple[compose.Display, compose.Placement]] = {}
            for b in film.boxes:
                if b.display is not None:
                    images[b.position] = (b.display, b.placement)
            empty += not images
            identity = next((b.identity for b in film.boxes if b.identity is not None), None)
            raw: dict[int, str] = {}
            for b in film.boxes:
                if b.raw_file is not None:
                    raw[b.position] = b.raw_file
            notes = {a.position: a.text for a in film.annotations if a.text}
            jobs.append(Film(film, _copy(self.film_session), images, identity, raw, notes))
        self.keeper.print_films(self, jobs)
        self.films_printed += len(jobs)
        return empty


def unsupported(operation: str, sop_class: str) -> UnsupportedOperation:
    return UnsupportedOperation(f"{operation} does not apply to a {_class_name(sop_class)}")


def _class_name(sop_class: str) -> str:
    return {
        FILM_SESSION: "Basic Film Session",
        FILM_BOX: "Basic Film Box",
        GREY_IMAGE_BOX: "Basic Grayscale Image Box",
        COLOUR_IMAGE_BOX: "Basic Color Image Box",
        PRINTER: "Printer",
        PRESENTATION_LUT: "Presentation LUT",
        ANNOTATION_BOX: "Basic Annotation Box",
    }.get(sop_class, sop_class)


def _instance_uid(uid: str | None) -> str:
    if not uid:
        return new_uid()
    try:
        return check_uid(uid, "AffectedSOPInstanceUID")
    except InvalidUID as exc:
        raise InvalidValue("AffectedSOPInstanceUID", str(exc)) from exc


def _copy(ds: Dataset) -> Dataset:
    out = Dataset()
    for element in ds:
        out.add(element)
    return out


def _merge(
    target: Dataset, attrs: Dataset, allowed: frozenset[str], luts: dict[str, Dataset], what: str
) -> None:
    for element in attrs:
        keyword = element.keyword
        if keyword not in allowed:
            raise NotSettable(keyword or str(element.tag), f"not a {what} attribute")
        if keyword == "ReferencedPresentationLUTSequence":
            ref = element.value[0].get("ReferencedSOPInstanceUID") if element.value else None
            if ref is not None and str(ref) not in luts:
                raise InvalidValue(keyword, f"no Presentation LUT {ref} was created")
        target.add(element)
    copies = target.get("NumberOfCopies")
    if copies is not None and not 1 <= int(copies) <= 99:
        raise InvalidValue("NumberOfCopies", f"{copies}: use 1 to 99")
    priority = target.get("PrintPriority")
    if priority is not None and str(priority).upper() not in ("HIGH", "MED", "LOW"):
        raise InvalidValue("PrintPriority", f"{priority!r}: use HIGH, MED or LOW")


def _film_spec(box: Dataset) -> compose.FilmSpec:
    display_format = str(box.get("ImageDisplayFormat") or "")
    compose.box_count(display_format)  # checks the format
    film_size = str(box.FilmSizeID).strip().upper()
    orientation = str(box.FilmOrientation).strip().upper()
    compose.film_pixels(film_size, orientation, 1)  # checks both
    magnification = str(box.MagnificationType).strip().upper()
    if magnification not in compose.MAGNIFICATIONS:
        raise InvalidValue(
            "MagnificationType", f"{magnification!r}: use {', '.join(compose.MAGNIFICATIONS)}"
        )
    trim = str(box.get("Trim") or "NO").strip().upper()
    if trim not in ("YES", "NO"):
        raise InvalidValue("Trim", f"{trim!r}: use YES or NO")
    low, high = int(box.MinDensity), int(box.MaxDensity)
    if not 0 <= low < high:
        raise InvalidValue("MaxDensity", f"{low}..{high}: MinDensity must be below MaxDensity")
    return compose.FilmSpec(
        display_format=display_format,
        film_size=film_size,
        orientation=orientation,
        magnification=magnification,
        border=compose.density_grey(box.BorderDensity, "BorderDensity", low, high),
        empty=compose.density_grey(box.EmptyImageDensity, "EmptyImageDensity", low, high),
        trim=trim == "YES",
    )


def _placement(attrs: Dataset, film_magnification: str) -> compose.Placement:
    magnification = str(attrs.get("MagnificationType") or film_magnification).strip().upper()
    if magnification not in compose.MAGNIFICATIONS:
        raise InvalidValue(
            "MagnificationType", f"{magnification!r}: use {', '.join(compose.MAGNIFICATIONS)}"
        )
    behaviour = str(attrs.get("RequestedDecimateCropBehavior") or "DECIMATE").strip().upper()
    if behaviour not in compose.DECIMATE_CROP:
        raise InvalidValue("RequestedDecimateCropBehavior", f"{behaviour!r}")
    size = attrs.get("RequestedImageSize")
    try:
        size_mm = float(size) if size not in (None, "") else None
    except (TypeError, ValueError) as exc:
        raise InvalidValue("RequestedImageSize", f"{size!r}: a width in mm") from exc
    if size_mm is not None and size_mm <= 0:
        raise InvalidValue("RequestedImageSize", f"{size_mm}: must be positive")
    return compose.Placement(magnification, size_mm, behaviour)


def _identity(item: Dataset) -> Dataset | None:
    if not item.get("PatientID") and not item.get("StudyInstanceUID"):
        return None
    found = Dataset()
    for keyword in IDENTITY_KEYS:
        if keyword in item:
            found.add(item[keyword])
    if "SpecificCharacterSet" in item:
        found.SpecificCharacterSet = item.SpecificCharacterSet
    return found


def _reference(sop_class: str, uid: str) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID = sop_class
    ref.ReferencedSOPInstanceUID = uid
    return ref


def _lut_uid(box: Dataset) -> str | None:
    seq = box.get("ReferencedPresentationLUTSequence")
    if not seq:
        return None
    return str(seq[0].get("ReferencedSOPInstanceUID") or "") or None


def _words(data: Any) -> list[int]:
    if isinstance(data, bytes | bytearray):
        return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]
    return [int(v) for v in data]
