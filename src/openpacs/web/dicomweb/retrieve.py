"""WADO-RS routes: instances, metadata, frames, bulk data, rendered images and thumbnails.

Instances go out as stored, streamed from their files, whenever the Accept allows the stored
syntax (`transfer-syntax=*`, or the very syntax); otherwise each one is converted on its own
while the response streams. Without a transfer-syntax the standard's default, Explicit VR
Little Endian, is sent.

Rendered and thumbnail at study and series level show the series' representative image (the
middle of the stack; for a study, its series with the most images), not every instance.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from openpacs.archive import locate, outgoing, retrieve
from openpacs.archive.errors import (
    ArchiveError,
    CannotConvert,
    InvalidQuery,
    NotFound,
    StorageUnavailable,
)
from openpacs.archive.metadata import Metadata
from openpacs.dicom import json as dj
from openpacs.dicom import render
from openpacs.dicom.codecs import NATIVE
from openpacs.logs import get_logger
from openpacs.web.auth import Opened
from openpacs.web.dicomweb import media, urls
from openpacs.web.dicomweb.common import (
    DicomWeb,
    accept,
    accepts_gzip,
    located,
    not_modified,
    one_instance,
    only,
    state,
    uid,
)

log = get_logger("wado")
router = APIRouter()

S, SE, SOP = "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"
_PIXEL_TAGS = frozenset({"7FE00010", "7FE00008", "7FE00009"})
_MAX_FRAMES_PER_REQUEST = 100_000
# Bytes of stored files read per worker-thread hop while a retrieve streams.
_BATCH = 4 * 1024 * 1024


# --- instances ------------------------------------------------------------------------------


def _retrieve(request: Request, study: str, series: str | None, sop: str | None) -> Response:
    only(request, {"accept"})
    dicomweb = state(request)
    study = uid(study, S)
    series = uid(series, SE) if series is not None else None
    sop = uid(sop, SOP) if sop is not None else None
    choice = media.instance_choice(accept(request), single_part=sop is not None)
    if choice is None:
        raise CannotConvert(
            'instances are sent as multipart/related; type="application/dicom" (or a single '
            "application/dicom part for one instance); the Accept allows neither"
        )
    found = located(dicomweb, study, series, sop)
    for loc in found:
        if not outgoing.sendable(loc.instance.transfer_syntax_uid, choice.syntaxes):
            raise CannotConvert(
                f"instance {loc.instance.sop_instance_uid} is stored as "
                f"{loc.instance.transfer_syntax_uid} and cannot be given as "
                f"{', '.join(choice.syntaxes)}"
            )
    if not choice.multipart:
        encoded = outgoing.encode_instance(found[0].instance, choice.syntaxes)
        return StreamingResponse(
            encoded.chunks(),
            media_type=f"{media.DICOM}; transfer-syntax={encoded.transfer_syntax_uid}",
            headers={"Content-Length": str(encoded.size)},
        )
    boundary = media.new_boundary()
    root = urls.service_root(request)
    if _all_as_stored(found, choice.syntaxes):
        return _as_stored(found, boundary, root)
    # One instance is converted before the answer starts, so a failure is still a 406.
    first = outgoing.encode_instance(found[0].instance, choice.syntaxes) if sop else None
    return StreamingResponse(
        _instance_parts(found, choice.syntaxes, boundary, root, first),
        media_type=media.multipart_type(media.DICOM, boundary),
    )


def _instance_parts(
    found: Sequence[locate.Located],
    syntaxes: Sequence[str],
    boundary: str,
    root: str,
    first: outgoing.Encoded | None,
) -> Iterator[bytes]:
    sent = 0
    for position, loc in enumerate(found):
        instance = loc.instance
        try:
            encoded = first if position == 0 and first is not None else None
            encoded = encoded or outgoing.encode_instance(instance, syntaxes)
        except ArchiveError as exc:
            # The answer is already under way: leave the instance out and say why in the log.
            log.error("WADO-RS: %s left out of the response: %s", instance.sop_instance_uid, exc)
            continue
        location = urls.instance_url(
            root, loc.study_instance_uid, loc.series_instance_uid, instance.sop_instance_uid
        )
        content_type = f"{media.DICOM}; transfer-syntax={encoded.transfer_syntax_uid}"
        yield media.part_head(boundary, content_type, location)
        yield from encoded.chunks()
        yield b"\r\n"
        sent += 1
    yield media.closing(boundary)
    log.info("WADO-RS: sent %d of %d instances", sent, len(found))


def _all_as_stored(found: Sequence[locate.Located], syntaxes: Sequence[str]) -> bool:
    """Whether every instance goes out as stored (the Accept's first choice is '*' or each
    one's own syntax): then the whole answer is known before it starts."""
    first = syntaxes[0]
    return first == media.AS_STORED or all(
        loc.instance.transfer_syntax_uid == first for loc in found
    )


@dataclass(frozen=True)
class _StoredPart:
    head: bytes  # the part's boundary and headers, after the previous part's CRLF
    path: Path
    size: int


def _as_stored(found: Sequence[locate.Located], boundary: str, root: str) -> Response:
    """Instances as stored, straight from their files, with a Content-Length.

    The parts' sizes are known from the files, so the answer carries a Content-Length rather
    than chunked framing (where the HTTP writer copies every piece once more), and the files
    are read in groups of about _BATCH bytes per worker-thread hop, each file sent as the
    bytes it was read into. A missing file is a 503 before anything is sent; a file that
    changes size while it is sent ends the connection (its length was promised)."""
    parts = []
    for position, loc in enumerate(found):
        instance = loc.instance
        try:
            size = instance.path.stat().st_size
        except OSError as exc:
            raise StorageUnavailable(f"the file of {instance.sop_instance_uid} is missing") from exc
        location = urls.instance_url(
            root, loc.study_instance_uid, loc.series_instance_uid, instance.sop_instance_uid
        )
        content_type = f"{media.DICOM}; transfer-syntax={instance.transfer_syntax_uid}"
        head = media.part_head(boundary, content_type, location)
        parts.append(_StoredPart(head if position == 0 else b"\r\n" + head, instance.path, size))
    tail = (b"\r\n" if parts else b"") + media.closing(boundary)
    length = sum(len(part.head) + part.size for part in parts) + len(tail)
    return StreamingResponse(
        _stored_pieces(parts, tail),
        media_type=media.multipart_type(media.DICOM, boundary),
        headers={"Content-Length": str(length)},
    )


async def _stored_pieces(parts: Sequence[_StoredPart], tail: bytes) -> AsyncIterator[bytes]:
    start = 0
    while start < len(parts):
        end, batched = start, 0
        while end < len(parts) and (end == start or batched + parts[end].size <= _BATCH):
            batched += parts[end].size
            end += 1
        if parts[start].size > _BATCH:  # a large file on its own, in chunks
            yield parts[start].head
            async for chunk in iterate_in_threadpool(_file_chunks(parts[start])):
                yield chunk
        else:
            for piece in await run_in_threadpool(_read_group, parts[start:end]):
                yield piece
        start = end
    yield tail
    log.info("WADO-RS: sent %d instances as stored", len(parts))


def _read_group(parts: Sequence[_StoredPart]) -> list[bytes]:
    pieces: list[bytes] = []
    for part in parts:
        with part.path.open("rb") as fp:
            data = fp.read(part.size + 1)
        _check_size(part, len(data))
        pieces += (part.head, data)
    return pieces


def _file_chunks(part: _StoredPart) -> Iterator[bytes]:
    sent = 0
    with part.path.open("rb") as fp:
        while chunk := fp.read(min(outgoing.CHUNK, part.size - sent + 1)):
            sent += len(chunk)
            _check_size(part, sent, final=False)
            yield chunk
    _check_size(part, sent)


def _check_size(part: _StoredPart, size: int, *, final: bool = True) -> None:
    if size > part.size or (final and size != part.size):
        log.error("WADO-RS: %s changed while it was sent; connection ended", part.path.name)
        raise StorageUnavailable(f"{part.path.name} changed size while it was sent")


@router.get("/studies/{study}", summary="WADO-RS: retrieve a study", dependencies=[Opened])
def retrieve_study(study: str, request: Request) -> Response:
    return _retrieve(request, study, None, None)


@router.get(
    "/studies/{study}/series/{series}", summary="WADO-RS: retrieve a series", dependencies=[Opened]
)
def retrieve_series(study: str, series: str, request: Request) -> Response:
    return _retrieve(request, study, series, None)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}",
    summary="WADO-RS: retrieve an instance",
    dependencies=[Opened],
)
def retrieve_instance(study: str, series: str, sop: str, request: Request) -> Response:
    return _retrieve(request, study, series, sop)


# --- metadata -------------------------------------------------------------------------------


def _metadata(request: Request, study: str, series: str | None, sop: str | None) -> Response:
    only(request, {"accept", "charset"})
    dicomweb = state(request)
    study = uid(study, S)
    series = uid(series, SE) if series is not None else None
    sop = uid(sop, SOP) if sop is not None else None
    if not media.accepts_json(accept(request)):
        raise CannotConvert("metadata is given as application/dicom+json only")
    root = urls.service_root(request)

    def bulk_uri(study_uid: str, series_uid: str, sop_uid: str, path: str) -> str:
        return f"{urls.instance_url(root, study_uid, series_uid, sop_uid)}/bulk/{path}"

    source = dicomweb.metadata
    found: Metadata
    if sop is not None and series is not None:
        found = source.instance(study, series, sop, bulk_uri, root)
    else:
        etag = source.etag(study, series, root)
        if not_modified(request, etag):
            return Response(status_code=304, headers={"ETag": etag})
        if series is not None:
            found = source.series(study, series, bulk_uri, root)
        else:
            found = source.study(study, bulk_uri, root)
    if not_modified(request, found.etag):
        return Response(status_code=304, headers={"ETag": found.etag})
    headers = {"ETag": found.etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if accepts_gzip(request):
        headers["Content-Encoding"] = "gzip"
        return Response(found.gzipped(), media_type=media.DICOM_JSON, headers=headers)
    return Response(found.body, media_type=media.DICOM_JSON, headers=headers)


@router.get(
    "/studies/{study}/metadata", summary="WADO-RS: metadata of a study", dependencies=[Opened]
)
def study_metadata(study: str, request: Request) -> Response:
    return _metadata(request, study, None, None)


@router.get(
    "/studies/{study}/series/{series}/metadata",
    summary="WADO-RS: metadata of a series",
    dependencies=[Opened],
)
def series_metadata(study: str, series: str, request: Request) -> Response:
    return _metadata(request, study, series, None)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/metadata",
    summary="WADO-RS: metadata of an instance",
    dependencies=[Opened],
)
def instance_metadata(study: str, series: str, sop: str, request: Request) -> Response:
    return _metadata(request, study, series, sop)


# --- frames and bulk data -------------------------------------------------------------------


def parse_frame_list(text: str) -> list[int]:
    numbers = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise InvalidQuery("frames", f"{part!r} is not a frame number (1, 2, ...)")
        numbers.append(int(part))
    if len(numbers) > _MAX_FRAMES_PER_REQUEST:
        raise InvalidQuery("frames", f"at most {_MAX_FRAMES_PER_REQUEST} frames per request")
    return numbers


def _pixel_candidates(
    choice: media.PixelChoice, stored: str
) -> tuple[list[str], list[tuple[str | None, str]]]:
    """The syntaxes to try for a stored object, and the (media, syntax) pairs they came from.

    An image type with '*' only takes the stored syntax when that is of the same type; an
    image type with a syntax of another type is no option at all."""
    pairs: list[tuple[str | None, str]] = []
    for media_type, syntax in choice.options:
        if media_type is not None and media_type.startswith("image/"):
            wanted = stored if syntax == media.AS_STORED else syntax
            if media.media_for(wanted) != media_type:
                continue
            syntax = wanted
        pairs.append((media_type, syntax))
    return [syntax for _, syntax in pairs], pairs


def _content_type(pairs: Sequence[tuple[str | None, str]], stored: str, syntax: str) -> str:
    produced = media.OCTET if syntax in NATIVE else media.media_for(syntax)
    for media_type, asked in pairs:
        if asked in (syntax, media.AS_STORED) or (asked == stored and syntax in NATIVE):
            if media_type == media.OCTET:
                produced = media.OCTET  # as the client asked, as OHIF does for '*'
            break
    return f"{produced}; transfer-syntax={syntax}"


def _frames_response(
    request: Request, loc: locate.Located, numbers: Sequence[int], *, allow_single: bool
) -> Response:
    instance = loc.instance
    choice = media.pixel_choice(accept(request), single_part=allow_single and len(numbers) == 1)
    if choice is None:
        raise CannotConvert(
            "frames are sent as multipart/related with application/octet-stream, image/jpeg, "
            "image/jls, image/jp2 or image/dicom-rle parts; the Accept allows none of them"
        )
    if not loc.has_pixels:
        raise NotFound(f"instance {instance.sop_instance_uid} has no pixel data")
    outgoing.check_frames(instance, numbers)
    stored = instance.transfer_syntax_uid
    syntaxes, pairs = _pixel_candidates(choice, stored)
    if not syntaxes:
        raise CannotConvert(f"no acceptable frame form for an object stored as {stored}")
    # The first frame is made before the answer starts, so a failure is still a 406.
    data, syntax = outgoing.encode_frame_of(instance, numbers[0], syntaxes)
    content_type = _content_type(pairs, stored, syntax)
    if not choice.multipart:
        return Response(data, media_type=content_type)
    boundary = media.new_boundary()
    inner = content_type.split(";")[0]
    if len(numbers) == 1:
        # One frame (what a viewer asks, image by image): the answer in one piece, made now;
        # streaming it would cost a worker-thread hop and a chunk per part.
        body = b"".join((*media.one_part(boundary, content_type, data), media.closing(boundary)))
        return Response(body, media_type=media.multipart_type(inner, boundary))

    def parts() -> Iterator[bytes]:
        yield media.part_head(boundary, content_type)
        yield data
        yield b"\r\n"
        for number in numbers[1:]:
            try:
                more, made = outgoing.encode_frame_of(instance, number, syntaxes)
            except ArchiveError as exc:
                log.error("WADO-RS: frames of %s cut short: %s", instance.sop_instance_uid, exc)
                return
            yield media.part_head(boundary, _content_type(pairs, stored, made))
            yield more
            yield b"\r\n"
        yield media.closing(boundary)

    return StreamingResponse(parts(), media_type=media.multipart_type(inner, boundary))


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{frame_list}",
    summary="WADO-RS: frames of an instance",
)
def retrieve_frames(
    study: str, series: str, sop: str, frame_list: str, request: Request
) -> Response:
    only(request, {"accept"})
    numbers = parse_frame_list(frame_list)
    loc = one_instance(state(request), study, series, sop)
    return _frames_response(request, loc, numbers, allow_single=True)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/bulk/{path}",
    summary="WADO-RS: a bulk data value (BulkDataURI)",
)
def retrieve_bulk(study: str, series: str, sop: str, path: str, request: Request) -> Response:
    only(request, {"accept"})
    dicomweb = state(request)
    loc = one_instance(dicomweb, study, series, sop)
    if path.upper() in _PIXEL_TAGS:
        numbers = list(range(1, loc.instance.number_of_frames + 1))
        return _frames_response(request, loc, numbers, allow_single=False)
    try:
        ds = dj.read_dataset(loc.instance.path, defer_size=dicomweb.settings.bulkdata_threshold)
        value = dj.bulk_value(ds, path.upper())
    except dj.JsonModelError as exc:
        raise InvalidQuery("bulk data path", str(exc)) from exc
    except KeyError as exc:
        raise NotFound(f"instance {loc.instance.sop_instance_uid} has no {path}") from exc
    ranges = accept(request)
    single = any(r.media_type in (media.OCTET, "application/*") for r in ranges[:1])
    if not single and not any(r.media_type in (media.MULTIPART, "*/*") for r in ranges):
        raise CannotConvert("bulk data is sent as application/octet-stream")
    try:
        span = media.parse_range(request.headers.get("range"), len(value))
    except ValueError as exc:
        if isinstance(exc, media.MediaError):
            raise
        return Response(
            status_code=416, headers={"Content-Range": f"bytes */{len(value)}"}, content=str(exc)
        )
    status, headers = 200, {"Accept-Ranges": "bytes"}
    if span is not None:
        first, last = span
        headers["Content-Range"] = f"bytes {first}-{last}/{len(value)}"
        value = value[first : last + 1]
        status = 206
    if single:
        return Response(value, status_code=status, media_type=media.OCTET, headers=headers)
    boundary = media.new_boundary()
    body = b"".join(media.one_part(boundary, media.OCTET, value)) + media.closing(boundary)
    return Response(
        body,
        status_code=status,
        media_type=media.multipart_type(media.OCTET, boundary),
        headers=headers,
    )


# --- rendered and thumbnails ----------------------------------------------------------------


def _numbers(name: str, text: str, count: int | None = None) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise InvalidQuery(name, f"{text!r} is not a comma-separated list of numbers") from None
    if count is not None and len(values) != count:
        raise InvalidQuery(name, f"{text!r}: {count} numbers expected")
    return values


def _viewport(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    values = _numbers("viewport", text)
    if len(values) == 1:
        values = values * 2  # viewport=512: a square
    if len(values) not in (2, 6):
        raise InvalidQuery("viewport", "give vw,vh (a source region is not supported)")
    if len(values) == 6:
        raise InvalidQuery("viewport", "a source region (sx,sy,sw,sh) is not supported")
    width, height = (int(v) for v in values)
    if width < 1 or height < 1:
        raise InvalidQuery("viewport", "sizes must be positive")
    return width, height


def render_options(request: Request, image_format: str) -> render.RenderOptions:
    """RenderOptions from window, viewport and quality; 400 with the reason when invalid."""
    params = request.query_params
    window = None
    function = None
    if "window" in params:
        parts = params["window"].split(",")
        if len(parts) not in (2, 3):
            raise InvalidQuery("window", "give center,width[,function]")
        center, width = _numbers("window", ",".join(parts[:2]), 2)
        window = (center, width)
        if len(parts) == 3:
            function = parts[2].strip().upper().replace("-", "_")
    quality = 90
    if "quality" in params:
        text = params["quality"]
        if not text.isdigit():
            raise InvalidQuery("quality", f"{text!r} is not a number from 1 to 100")
        quality = int(text)
    try:
        return render.RenderOptions(
            format=image_format,  # type: ignore[arg-type]  # checked by RenderOptions
            window=window,
            voi_function=function,  # type: ignore[arg-type]
            viewport=_viewport(params.get("viewport")),
            quality=quality,
        )
    except render.RenderError as exc:
        raise InvalidQuery("rendering", str(exc)) from exc


def _image_format(request: Request) -> str:
    found = media.image_format(accept(request))
    if found is None:
        raise CannotConvert("rendered images are image/jpeg, image/png or image/gif")
    return found


def _representative(dicomweb: DicomWeb, study: str, series: str | None) -> retrieve.StoredInstance:
    with dicomweb.core.sessions() as session:
        if series is None:
            series = locate.representative_series(session, study)
        else:
            locate.series_states(session, study, series)  # NotFound unless in this study
        return retrieve.representative_instance(session, dicomweb.core.storage, series)


def _target(
    dicomweb: DicomWeb, study: str, series: str | None, sop: str | None
) -> retrieve.StoredInstance:
    """The instance a rendered or thumbnail request names, else its level's representative."""
    if sop is not None and series is not None:
        return one_instance(dicomweb, study, series, sop).instance
    return _representative(dicomweb, study, series)


def _rendered(
    request: Request,
    study: str,
    series: str | None = None,
    sop: str | None = None,
    frame: str | None = None,
) -> Response:
    only(request, {"accept", "window", "viewport", "quality", "annotation", "charset"})
    dicomweb = state(request)
    image_format = _image_format(request)
    options = render_options(request, image_format)
    study = uid(study, S)
    series = uid(series, SE) if series is not None else None
    number = None
    if frame is not None:
        numbers = parse_frame_list(frame)
        if len(numbers) != 1:
            raise InvalidQuery("frames", "one frame is rendered at a time")
        number = numbers[0]
    instance = _target(dicomweb, study, series, sop)
    data = outgoing.rendered(instance, options, number)
    return Response(data, media_type=render.MEDIA_TYPES[image_format])


@router.get("/studies/{study}/rendered", summary="WADO-RS: a study rendered")
def rendered_study(study: str, request: Request) -> Response:
    return _rendered(request, study)


@router.get("/studies/{study}/series/{series}/rendered", summary="WADO-RS: a series rendered")
def rendered_series(study: str, series: str, request: Request) -> Response:
    return _rendered(request, study, series)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/rendered",
    summary="WADO-RS: an instance rendered",
)
def rendered_instance(study: str, series: str, sop: str, request: Request) -> Response:
    return _rendered(request, study, series, sop)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{frame}/rendered",
    summary="WADO-RS: a frame rendered",
)
def rendered_frame(study: str, series: str, sop: str, frame: str, request: Request) -> Response:
    return _rendered(request, study, series, sop, frame)


def _thumbnail(
    request: Request, study: str, series: str | None = None, sop: str | None = None
) -> Response:
    only(request, {"accept", "size", "viewport", "charset"})
    dicomweb = state(request)
    image_format = _image_format(request)
    params = request.query_params
    size = 128
    if "size" in params:
        text = params["size"]
        if not text.isdigit() or not 1 <= int(text) <= 4096:
            raise InvalidQuery("size", f"{text!r} is not a size from 1 to 4096")
        size = int(text)
    viewport = _viewport(params.get("viewport"))
    study = uid(study, S)
    series = uid(series, SE) if series is not None else None
    instance = _target(dicomweb, study, series, sop)
    if image_format == "jpeg" and viewport is None:
        data = retrieve.thumbnail(instance, size)
    else:
        try:
            options = render.RenderOptions(
                format=image_format,  # type: ignore[arg-type]
                viewport=viewport,
                rows=None if viewport else size,
                columns=None if viewport else size,
            )
        except render.RenderError as exc:
            raise InvalidQuery("thumbnail", str(exc)) from exc
        middle = (instance.number_of_frames - 1) // 2 + 1
        data = outgoing.rendered(instance, options, middle)
    return Response(data, media_type=render.MEDIA_TYPES[image_format])


@router.get("/studies/{study}/thumbnail", summary="WADO-RS: a thumbnail of a study")
def thumbnail_study(study: str, request: Request) -> Response:
    return _thumbnail(request, study)


@router.get("/studies/{study}/series/{series}/thumbnail", summary="WADO-RS: series thumbnail")
def thumbnail_series(study: str, series: str, request: Request) -> Response:
    return _thumbnail(request, study, series)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/thumbnail",
    summary="WADO-RS: a thumbnail of an instance",
)
def thumbnail_instance(study: str, series: str, sop: str, request: Request) -> Response:
    return _thumbnail(request, study, series, sop)
