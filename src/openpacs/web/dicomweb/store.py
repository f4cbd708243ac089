"""STOW-RS: a multipart/related body of application/dicom parts, stored through the one ingest
path (`Archive.store`, origin http).

The body is streamed part by part to temporary files in the storage's temp folder; nothing is
stored until the whole body has arrived well formed, so a truncated or oversized request stores
nothing. Each part then succeeds or fails on its own: 200 when every part was stored, 202 when
some failed, 409 when none was. Failures are listed in FailedSOPSequence with a FailureReason
(PS3.18 Table I.2-1) and, in words, in one `Warning: 299` header per failed part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from starlette.concurrency import run_in_threadpool

from openpacs.archive import errors
from openpacs.archive.ingest import Archive, Incoming, Origin, read_header
from openpacs.dicom import json as dj
from openpacs.logs import get_logger
from openpacs.web.dicomweb import media, urls
from openpacs.web.dicomweb.common import only, state, uid

log = get_logger("wado")
router = APIRouter()

# PS3.18 Table I.2-1 / PS3.4 Annex B failure reasons.
PROCESSING_FAILURE = 0x0110
DUPLICATE = 0x0111
OUT_OF_RESOURCES = 0xA700
NOT_MATCHING = 0xA900
CANNOT_UNDERSTAND = 0xC000
SERVICE = "openpacs"


@dataclass
class StowResult:
    stored: list[Dataset] = field(default_factory=list)
    failed: list[Dataset] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    studies: set[str] = field(default_factory=set)


def _identity(path: Any) -> tuple[str, str, str]:
    """(SOP class, SOP instance, study) as far as the header can be read; '' where not."""
    try:
        ds = read_header(path)
    except errors.InvalidInstance:
        return "", "", ""
    return (
        str(ds.get("SOPClassUID", "") or ""),
        str(ds.get("SOPInstanceUID", "") or ""),
        str(ds.get("StudyInstanceUID", "") or ""),
    )


def _reason(exc: errors.ArchiveError) -> int:
    if isinstance(exc, errors.DuplicateRefused):
        return DUPLICATE
    if isinstance(exc, errors.InvalidAttribute):
        return NOT_MATCHING
    if isinstance(exc, errors.InvalidInstance):
        return CANNOT_UNDERSTAND
    if isinstance(exc, errors.StorageUnavailable | errors.IndexUnavailable):
        return OUT_OF_RESOURCES
    return PROCESSING_FAILURE


def store_parts(
    archive: Archive, parts: list[media.ReceivedPart], study: str | None, root: str
) -> StowResult:
    """Store each received part (the archive owns its temp file from here on)."""
    result = StowResult()
    for number, part in enumerate(parts, start=1):
        item, failure = _store_one(archive, part, study, root)
        if failure is None:
            result.stored.append(item)
            result.studies.add(str(item.get("StudyInstanceUID")))
            del item.StudyInstanceUID  # only for the answer's RetrieveURL, not part of the item
        else:
            result.failed.append(item)
            result.reasons.append(f"part {number}: {failure}")
    return result


def _store_one(
    archive: Archive, part: media.ReceivedPart, study: str | None, root: str
) -> tuple[Dataset, str | None]:
    """(the response item, None) when stored, else (the failure item, why)."""
    sop_class, sop_instance, part_study = _identity(part.path)
    item = Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance

    def fail(code: int, why: str) -> tuple[Dataset, str]:
        item.FailureReason = code
        part.path.unlink(missing_ok=True)
        return item, why

    declared = part.content_type.split(";")[0].strip().lower()
    if declared and declared != media.DICOM:
        return fail(CANNOT_UNDERSTAND, f"its Content-Type is {declared}, not {media.DICOM}")
    if study is not None and part_study and part_study != study:
        return fail(NOT_MATCHING, f"StudyInstanceUID {part_study} is not the study {study}")
    try:
        stored = archive.store(Incoming(part.path, Origin.http))
    except errors.ArchiveError as exc:
        return fail(_reason(exc), str(exc))
    keys = stored.keys
    item.ReferencedSOPClassUID = keys.sop_class_uid
    item.ReferencedSOPInstanceUID = keys.sop_instance_uid
    item.RetrieveURL = urls.instance_url(
        root, keys.study_instance_uid, keys.series_instance_uid, keys.sop_instance_uid
    )
    item.StudyInstanceUID = keys.study_instance_uid
    return item, None


def _answer(result: StowResult, study: str | None, root: str) -> Response:
    ds = Dataset()
    studies = {study} if study else result.studies
    if len(studies) == 1:
        ds.RetrieveURL = urls.study_url(root, next(iter(studies)))
    if result.failed:
        ds.FailedSOPSequence = Sequence(result.failed)
    if result.stored:
        ds.ReferencedSOPSequence = Sequence(result.stored)
    status = 200 if not result.failed else 202 if result.stored else 409
    response = Response(dj.dumps(dj.to_json(ds)), status_code=status, media_type=media.DICOM_JSON)
    for reason in result.reasons[:20]:
        response.headers.append("Warning", media.warning(SERVICE, reason))
    return response


async def _store(request: Request, study: str | None) -> Response:
    only(request, set())
    dicomweb = state(request)
    if study is not None:
        study = uid(study, "StudyInstanceUID")
    content_type = media.parse_media_type(request.headers.get("content-type") or "none/none")
    if content_type.media_type != media.MULTIPART:
        raise HTTPException(415, f"STOW-RS takes {media.MULTIPART}, not {content_type.media_type}")
    inner = content_type.inner
    if inner not in (None, media.DICOM):
        raise HTTPException(415, f"parts must be {media.DICOM}; {inner} is not supported")
    boundary = content_type.params.get("boundary")
    if not boundary:
        raise media.MediaError("the multipart Content-Type has no boundary")
    limit = dicomweb.settings.stow_max_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise media.TooLarge(f"the request body ({length} bytes) exceeds {limit} bytes")
    storage = dicomweb.core.storage
    parts = await media.receive_multipart(request.stream(), boundary, storage.new_temp, limit)
    if not parts:
        raise media.MediaError("the multipart body holds no parts")
    root = urls.service_root(request)
    try:
        result = await run_in_threadpool(store_parts, dicomweb.core.archive, parts, study, root)
    finally:
        media.remove_parts(parts)  # a store that raised past its own cleanup leaves none
    log.info(
        "STOW-RS: %d stored, %d failed%s",
        len(result.stored),
        len(result.failed),
        "".join(f"; {reason}" for reason in result.reasons[:5]),
    )
    return _answer(result, study, root)


@router.post("/studies", summary="STOW-RS: store instances")
async def store_instances(request: Request) -> Response:
    return await _store(request, None)


@router.post("/studies/{study}", summary="STOW-RS: store instances of one study")
async def store_study_instances(study: str, request: Request) -> Response:
    return await _store(request, study)
