"""What every DICOMweb route shares: the application's DICOMweb state, UID and parameter
checks, and Accept / If-None-Match reading."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import Request

from openpacs.archive import locate
from openpacs.archive.core import Core
from openpacs.archive.errors import InvalidQuery
from openpacs.archive.metadata import MetadataSource
from openpacs.config import DicomWebSettings
from openpacs.dicom.uids import InvalidUID, check_uid
from openpacs.web.dicomweb import media


@dataclass(frozen=True)
class DicomWeb:
    """Made once per application by `install`; routes reach it through `state(request)`."""

    core: Core
    settings: DicomWebSettings
    metadata: MetadataSource
    anonymize_key: bytes


def state(request: Request) -> DicomWeb:
    found: DicomWeb = request.app.state.dicomweb
    return found


def located(
    dicomweb: DicomWeb, study: str, series: str | None = None, sop: str | None = None
) -> list[locate.Located]:
    """The stored instances a retrieve names (UIDs already checked); NotFound otherwise."""
    with dicomweb.core.sessions() as session:
        return locate.instances(session, dicomweb.core.storage, study, series, sop)


def one_instance(dicomweb: DicomWeb, study: str, series: str, sop: str) -> locate.Located:
    """The instance a URL names, its UIDs checked (400) and its parents verified (404)."""
    checked = (
        uid(study, "StudyInstanceUID"),
        uid(series, "SeriesInstanceUID"),
        uid(sop, "SOPInstanceUID"),
    )
    return located(dicomweb, *checked)[0]


def uid(value: str, keyword: str) -> str:
    """A UID from a URL path, or 400 saying what is wrong with it (never a file path part)."""
    try:
        return check_uid(value, keyword)
    except InvalidUID as exc:
        raise InvalidQuery(keyword, str(exc).removeprefix(f"{keyword} ")) from None


def only(request: Request, allowed: Iterable[str]) -> None:
    """400 for a query parameter this resource does not know (a misspelt one would otherwise
    be silently ignored)."""
    known = {name.lower() for name in allowed}
    for name in request.query_params:
        if name.lower() not in known:
            raise InvalidQuery(name, f"unknown parameter; this resource takes {_listed(known)}")


def _listed(names: set[str]) -> str:
    return ", ".join(sorted(names)) if names else "no parameters"


def accept(request: Request) -> list[media.MediaRange]:
    """The Accept ranges, best first; an `accept` query parameter replaces the header."""
    from_query = request.query_params.getlist("accept")
    return media.parse_accept(from_query or request.headers.getlist("accept"))


def not_modified(request: Request, etag: str) -> bool:
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


def accepts_gzip(request: Request) -> bool:
    for coding in request.headers.get("accept-encoding", "").split(","):
        name, _, params = coding.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=").strip()
            return not q or _positive(q)
    return False


def _positive(q: str) -> bool:
    try:
        return float(q) > 0
    except ValueError:
        return False
