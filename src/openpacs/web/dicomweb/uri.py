"""WADO-URI (PS3.18 Chapter 9): `GET /wado?requestType=WADO&studyUID=..&seriesUID=..&objectUID=..`

contentType: image/jpeg (the default for images), image/png, image/gif or application/dicom
(the default for objects without pixels); a comma-separated list is tried in order.
transferSyntax (application/dicom only, default Explicit VR Little Endian), anonymize=yes (the
PS3.15 Basic Profile, keyed by `[dicomweb] anonymize_key`; refused for objects with burned-in
annotation, images included), rows, columns, windowCenter with windowWidth, frameNumber,
imageQuality. region and the presentation state parameters are not supported (400).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from openpacs.archive import outgoing
from openpacs.archive.errors import CannotConvert, InvalidQuery
from openpacs.archive.retrieve import StoredInstance
from openpacs.dicom import codecs, render
from openpacs.web.auth import Opened
from openpacs.web.dicomweb import media
from openpacs.web.dicomweb.common import one_instance, only, state, uid

router = APIRouter()

PARAMETERS = {
    "requesttype",
    "studyuid",
    "seriesuid",
    "objectuid",
    "contenttype",
    "charset",
    "anonymize",
    "annotation",
    "rows",
    "columns",
    "windowcenter",
    "windowwidth",
    "framenumber",
    "imagequality",
    "transfersyntax",
    "region",
    "presentationuid",
    "presentationseriesuid",
}
_IMAGE_ONLY = ("rows", "columns", "windowCenter", "windowWidth", "frameNumber", "imageQuality")
_NOT_SUPPORTED = ("region", "presentationUID", "presentationSeriesUID")
_IMAGES = {"image/jpeg": "jpeg", "image/png": "png", "image/gif": "gif"}


def _get(request: Request, name: str) -> str | None:
    """A parameter by its PS3.18 name; WADO-URI names are matched case-insensitively."""
    for key, value in request.query_params.multi_items():
        if key.lower() == name.lower():
            return value
    return None


def _required(request: Request, name: str) -> str:
    value = _get(request, name)
    if not value:
        raise InvalidQuery(name, "required")
    return value


def _positive(request: Request, name: str) -> int | None:
    value = _get(request, name)
    if value is None:
        return None
    if not value.isdigit() or int(value) < 1:
        raise InvalidQuery(name, f"{value!r} is not a positive whole number")
    return int(value)


def _number(request: Request, name: str) -> float | None:
    value = _get(request, name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidQuery(name, f"{value!r} is not a number") from None


def _content_types(request: Request, has_pixels: bool) -> list[str]:
    value = _get(request, "contentType")
    if not value:
        return ["image/jpeg" if has_pixels else media.DICOM]
    types = []
    for part in value.split(","):
        kind = part.split(";")[0].strip().lower()
        if kind in ("*/*", "image/*"):
            kind = "image/jpeg" if has_pixels else media.DICOM
        types.append(kind)
    return types


@router.get("/wado", summary="WADO-URI: one object, as DICOM or as an image", dependencies=[Opened])
def wado(request: Request) -> Response:
    only(request, PARAMETERS)
    request_type = _required(request, "requestType")
    if request_type != "WADO":
        raise InvalidQuery("requestType", f"{request_type!r}: only WADO is supported")
    for name in _NOT_SUPPORTED:
        if _get(request, name) is not None:
            raise InvalidQuery(name, "not supported")
    dicomweb = state(request)
    study = uid(_required(request, "studyUID"), "studyUID")
    series = uid(_required(request, "seriesUID"), "seriesUID")
    sop = uid(_required(request, "objectUID"), "objectUID")
    anonymize = (_get(request, "anonymize") or "").lower()
    if anonymize not in ("", "yes"):
        raise InvalidQuery("anonymize", f"{anonymize!r}: the only value is yes")
    loc = one_instance(dicomweb, study, series, sop)
    instance = loc.instance
    for kind in _content_types(request, loc.has_pixels):
        if kind == media.DICOM:
            return _dicom(request, instance, anonymize == "yes", dicomweb.anonymize_key)
        if kind in _IMAGES and loc.has_pixels:
            return _image(request, instance, _IMAGES[kind], anonymize == "yes")
    raise CannotConvert(
        f"contentType {_get(request, 'contentType')!r}: this object can be given as "
        + (
            "application/dicom, image/jpeg, image/png or image/gif"
            if loc.has_pixels
            else "application/dicom only (it has no pixel data)"
        )
    )


def _dicom(request: Request, instance: StoredInstance, anonymize: bool, key: bytes) -> Response:
    for name in _IMAGE_ONLY:
        if _get(request, name) is not None:
            raise InvalidQuery(name, "applies to images, not to contentType application/dicom")
    syntax = _get(request, "transferSyntax") or codecs.EXPLICIT_VR_LE
    if syntax != "*":
        syntax = uid(syntax, "transferSyntax")
    if anonymize:
        encoded = outgoing.deidentified(instance, key, syntax)
    else:
        encoded = outgoing.encode_instance(instance, [syntax])
    return Response(
        b"".join(encoded.chunks()),
        media_type=media.DICOM,
        headers={"Content-Disposition": f'attachment; filename="{instance.sop_instance_uid}.dcm"'},
    )


def _image(
    request: Request, instance: StoredInstance, image_format: str, anonymize: bool
) -> Response:
    if _get(request, "transferSyntax") is not None:
        raise InvalidQuery("transferSyntax", "applies to contentType application/dicom only")
    if anonymize:
        outgoing.check_deidentifiable(instance)
    center, width = _number(request, "windowCenter"), _number(request, "windowWidth")
    if (center is None) != (width is None):
        raise InvalidQuery("windowWidth", "windowCenter and windowWidth go together")
    try:
        options = render.RenderOptions(
            format=image_format,  # type: ignore[arg-type]  # one of _IMAGES
            window=(center, width) if center is not None and width is not None else None,
            rows=_positive(request, "rows"),
            columns=_positive(request, "columns"),
            quality=_positive(request, "imageQuality") or 90,
        )
    except render.RenderError as exc:
        raise InvalidQuery("rendering", str(exc)) from exc
    frame = _positive(request, "frameNumber")
    data = outgoing.rendered(instance, options, frame)
    return Response(data, media_type=render.MEDIA_TYPES[image_format])
