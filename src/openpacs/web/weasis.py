"""Weasis: a manifest of a study (`GET /api/studies/{study}/weasis.xml`) and a `weasis://`
launch URL for it (`GET /api/studies/{study}/weasis`).

Weasis is a desktop program: it fetches what the link names without the browser's cookie. So
the launch URL carries a short-lived, read-only personal token (`[studies]
weasis_token_minutes`) of the user who asked:

- `$dicom:get -w "<manifest URL>"` loads the manifest (Weasis' documented commands: `dicom:get`
  takes -l/-r/-p/-i/-w and no header option);
- `$weasis:config auth="Bearer <token>"`: Weasis' launcher documents `auth` as "the web
  authorization parameter", the Authorization value for its own requests;
- the manifest (Weasis manifest 2.5, `http://www.weasis.org/xsd/2.5`) names our WADO-URI
  endpoint as its `arcQuery baseUrl` and repeats the token in an `httpTag` element, which
  Weasis sends as an HTTP header with every image request.

URLs are absolute as the client sees the server (X-Forwarded-* honoured, `dicomweb.urls`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree as ET

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from sqlalchemy import select

from openpacs import logs
from openpacs.accounts import Action, tokens, users
from openpacs.archive import locate
from openpacs.archive.errors import NotFound
from openpacs.archive.models import Instance, Patient, Series, Study
from openpacs.web import auth
from openpacs.web.api.deps import core_of
from openpacs.web.dicomweb import urls
from openpacs.web.dicomweb.common import only, uid

log = logs.get_logger("api")
router = APIRouter(prefix="/api/studies", tags=["studies"])
NAMESPACE = "http://www.weasis.org/xsd/2.5"
ARCHIVE_ID = "openpacs"
TOKEN_NAME = "weasis"


class Launch(BaseModel):
    url: str  # weasis://?... : open it in the browser
    manifest: str  # the manifest's absolute URL
    expires_at: dt.datetime  # when the token in both stops working


def _launch_token(request: Request) -> tuple[str, dt.datetime]:
    """The caller's bearer token when it is a launch token already (Weasis fetching the
    manifest), else a new one for the signed-in caller."""
    principal = auth.signed_in(request)
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    access = auth.access_of(request)
    now = access.clock()
    core = core_of(request)
    if scheme.lower() == "bearer" and principal.read_only:
        with core.sessions() as session:
            found = tokens.find_token(session, value.strip())
        if found is not None and found[0].expires_at is not None:
            return value.strip(), found[0].expires_at
    minutes = core.settings.studies.weasis_token_minutes
    with core.writing() as session:
        user = users.get(session, principal.username or "")
        row, token = tokens.create_launch_token(
            session, user, TOKEN_NAME, now, dt.timedelta(minutes=minutes)
        )
        expires = row.expires_at
    assert expires is not None
    return token, expires


def manifest_url(request: Request, study: str) -> str:
    return f"{urls.origin(request)}{urls.prefix(request)}/api/studies/{study}/weasis.xml"


def launch_url(manifest: str, token: str) -> str:
    commands = f'$dicom:get -w "{manifest}" $weasis:config auth="Bearer {token}"'
    return "weasis://?" + quote(commands, safe="")


@router.get("/{study}/weasis", response_model=Launch, summary="A weasis:// link to a study")
def weasis_launch(study: str, request: Request) -> Launch:
    """A `weasis://` URL opening the study in Weasis, with a short-lived read-only token."""
    only(request, ())
    study = uid(study, "StudyInstanceUID")
    core = core_of(request)
    with core.sessions() as session:
        if session.scalar(select(Study.pk).where(Study.study_instance_uid == study)) is None:
            raise NotFound(f"study {study} is not stored")
    token, expires = _launch_token(request)
    manifest = manifest_url(request, study)
    return Launch(url=launch_url(manifest, token), manifest=manifest, expires_at=expires)


@router.get(
    "/{study}/weasis.xml",
    summary="Weasis manifest of a study",
    response_class=Response,
    responses={200: {"content": {"application/xml": {}}}},
)
def weasis_manifest(study: str, request: Request) -> Response:
    """The study's series and instances as a Weasis manifest 2.5, fetched through WADO-URI
    with the bearer token in its httpTag."""
    only(request, ())
    study = uid(study, "StudyInstanceUID")
    core = core_of(request)
    with core.sessions() as session:
        rows = session.execute(
            locate.study_select(
                study,
                None,
                Patient.patient_id,
                Patient.issuer_of_patient_id,
                Patient.patient_name,
                Patient.patient_birth_date,
                Patient.patient_sex,
                Study.study_description,
                Study.study_date,
                Study.study_time,
                Study.accession_number,
                Study.study_id,
                Study.referring_physician_name,
                Series.series_instance_uid,
                Series.series_description,
                Series.series_number,
                Series.modality,
                Instance.sop_instance_uid,
                Instance.instance_number,
            )
        ).all()
    if not rows:
        raise NotFound(f"study {study} is not stored")
    token, _ = _launch_token(request)
    base = f"{urls.origin(request)}{urls.prefix(request)}/wado"
    auth.record(request, Action.opened, study=study, detail="Weasis manifest")
    return Response(_manifest(rows, study, base, token), media_type="application/xml")


def _set(element: ET.Element, name: str, value: object) -> None:
    if value is not None and value != "":
        element.set(name, str(value))


def _manifest(rows: Sequence[Any], study: str, base: str, token: str) -> bytes:
    ET.register_namespace("", NAMESPACE)
    root = ET.Element(f"{{{NAMESPACE}}}manifest")
    query = ET.SubElement(root, f"{{{NAMESPACE}}}arcQuery")
    query.set("arcId", ARCHIVE_ID)
    query.set("baseUrl", base)
    query.set("requireOnlySOPInstanceUID", "false")
    # Files as stored: Weasis decodes every compressed syntax itself.
    query.set("additionnalParameters", "&transferSyntax=*")
    tag = ET.SubElement(query, f"{{{NAMESPACE}}}httpTag")
    tag.set("key", "Authorization")
    tag.set("value", f"Bearer {token}")
    first = rows[0]
    patient = ET.SubElement(query, f"{{{NAMESPACE}}}Patient")
    _set(patient, "PatientID", first.patient_id)
    _set(patient, "IssuerOfPatientID", first.issuer_of_patient_id)
    _set(patient, "PatientName", first.patient_name)
    _set(patient, "PatientBirthDate", first.patient_birth_date)
    _set(patient, "PatientSex", first.patient_sex)
    element = ET.SubElement(patient, f"{{{NAMESPACE}}}Study")
    _set(element, "StudyInstanceUID", study)
    _set(element, "StudyDescription", first.study_description)
    _set(element, "StudyDate", first.study_date)
    _set(element, "StudyTime", first.study_time)
    _set(element, "AccessionNumber", first.accession_number)
    _set(element, "StudyID", first.study_id)
    _set(element, "ReferringPhysicianName", first.referring_physician_name)
    series: dict[str, ET.Element] = {}
    for row in rows:
        current = series.get(row.series_instance_uid)
        if current is None:
            current = series[row.series_instance_uid] = ET.SubElement(
                element, f"{{{NAMESPACE}}}Series"
            )
            _set(current, "SeriesInstanceUID", row.series_instance_uid)
            _set(current, "SeriesDescription", row.series_description)
            _set(current, "SeriesNumber", row.series_number)
            _set(current, "Modality", row.modality)
        instance = ET.SubElement(current, f"{{{NAMESPACE}}}Instance")
        _set(instance, "SOPInstanceUID", row.sop_instance_uid)
        _set(instance, "InstanceNumber", row.instance_number)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data
