"""/api/nodes: the registry of remote DICOM nodes, C-ECHO to verify one, C-FIND to query one."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from openpacs import logs, nodes
from openpacs.accounts import Action
from openpacs.archive.models import Node
from openpacs.config import NodeSettings, NodeUse, Permission
from openpacs.dicom import json as dicom_json
from openpacs.dicom import qr
from openpacs.web import auth
from openpacs.web.api.deps import ReadSession, ServicesDep, WriteSession

log = logs.get_logger("api")
router = APIRouter(prefix="/api/nodes", tags=["nodes"])


class NodeIn(NodeSettings):
    """A remote node as POST and PUT take it; PUT replaces every field (and may rename)."""


class NodeOut(BaseModel):
    name: str
    ae_title: str
    host: str
    port: int
    tls: bool
    description: str
    uses: list[NodeUse]
    permissions: list[Permission]
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, node: Node) -> NodeOut:
        return cls(
            name=node.name,
            ae_title=node.ae_title,
            host=node.host,
            port=node.port,
            tls=node.tls,
            description=node.description,
            uses=nodes.uses(node),
            permissions=nodes.permissions(node),
            created_at=node.created_at,
            updated_at=node.updated_at,
        )


class EchoOut(BaseModel):
    node: str
    ae_title: str
    host: str
    port: int
    status: int
    round_trip_ms: float


@router.get("", response_model=list[NodeOut])
def list_nodes(session: ReadSession) -> list[NodeOut]:
    """Every registered node, by name."""
    return [NodeOut.of(node) for node in nodes.list_nodes(session)]


@router.post(
    "",
    response_model=NodeOut,
    status_code=status.HTTP_201_CREATED,
    dependencies=[auth.AdminOnly],
)
def add_node(spec: NodeIn, session: WriteSession, request: Request, response: Response) -> NodeOut:
    """Register a node (admin); 409 when the name is taken."""
    node = nodes.create(session, spec)
    auth.record_in(session, request, Action.changed, obj=f"node:{node.name}", detail="added")
    log.info("node %s added: %s@%s:%d", node.name, node.ae_title, node.host, node.port)
    response.headers["Location"] = f"/api/nodes/{quote(node.name)}"  # names may be Chinese
    return NodeOut.of(node)


@router.get("/{name}", response_model=NodeOut)
def get_node(name: str, session: ReadSession) -> NodeOut:
    return NodeOut.of(nodes.get(session, name))


@router.put("/{name}", response_model=NodeOut, dependencies=[auth.AdminOnly])
def replace_node(name: str, spec: NodeIn, session: WriteSession, request: Request) -> NodeOut:
    """Replace a node's fields (admin); a different `name` in the body renames it. A node
    written in openpacs.toml takes the file's values again at the next start."""
    node = nodes.update(session, name, spec)
    auth.record_in(session, request, Action.changed, obj=f"node:{name}", detail="changed")
    log.info("node %s changed: %s@%s:%d", node.name, node.ae_title, node.host, node.port)
    return NodeOut.of(node)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[auth.AdminOnly])
def delete_node(name: str, session: WriteSession, request: Request) -> Response:
    """Remove a node from the registry (admin)."""
    nodes.delete(session, name)
    auth.record_in(session, request, Action.deleted, obj=f"node:{name}")
    log.info("node %s removed", name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/echo", response_model=EchoOut)
def echo_node(name: str, session: ReadSession, services: ServicesDep) -> EchoOut:
    """C-ECHO the node: the round-trip time (association + echo + release); 502 when it
    refuses, 504 when it does not answer, each with the reason."""
    node = nodes.get(session, name)
    result = nodes.verify(services.echo, node)
    log.info("C-ECHO node %s: %.1f ms", node.name, result.seconds * 1000)
    return EchoOut(
        node=node.name,
        ae_title=node.ae_title,
        host=node.host,
        port=node.port,
        status=result.status,
        round_trip_ms=round(result.seconds * 1000, 3),
    )


class FindIn(BaseModel):
    """A C-FIND: the level, the information model, and keys (keyword → value to match, or ""
    to have it returned); each level's usual keys are returned anyway."""

    level: str = "STUDY"
    model: Literal["study", "patient"] = "study"
    keys: dict[str, str] = Field(default_factory=dict, max_length=100)


class FindOut(BaseModel):
    node: str
    level: str
    answers: list[dict[str, Any]]  # DICOM JSON (PS3.18 F.2), as QIDO-RS answers


@router.post(
    "/{name}/find",
    response_model=FindOut,
    responses={
        400: {"description": "a key that cannot be sent"},
        502: {"description": "the node refused the association or the query"},
        504: {"description": "the node did not answer"},
    },
)
def find_on_node(
    name: str, body: FindIn, session: ReadSession, services: ServicesDep
) -> FindOut | JSONResponse:
    """C-FIND on the node: its answers as DICOM JSON; 502 when it refuses (with its status and
    reason), 504 when it does not answer."""
    node = nodes.get(session, name)
    try:
        identifier, _ = qr.find_identifier(body.level, body.keys)
    except qr.InvalidKeys as exc:
        log.warning("POST /api/nodes/%s/find -> 400: %s", name, exc)
        return JSONResponse({"error": "InvalidKeys", "detail": str(exc)}, status_code=400)
    started = time.perf_counter()
    result = nodes.query(services.find, nodes.Address.of(node), identifier, body.model)
    log.info(
        "C-FIND node %s at %s level: %d answer(s) in %.0f ms",
        node.name,
        identifier.QueryRetrieveLevel,
        len(result.answers),
        (time.perf_counter() - started) * 1000,
    )
    return FindOut(
        node=node.name,
        level=identifier.QueryRetrieveLevel,
        answers=[dicom_json.to_json(answer) for answer in result.answers],
    )
