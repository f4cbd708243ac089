"""The registry of remote DICOM nodes: queries over the `node` table.

Functions take the caller's session and never commit: the HTTP request's session dependency, or
the start-up seeding, owns the transaction. Input arrives as `config.NodeSettings`, so a node
added through the API obeys exactly the rules of one written in `openpacs.toml`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from openpacs.archive.models import Node
from openpacs.config import NodeSettings, NodeUse, Permission
from openpacs.nodes.errors import DuplicateNode, NodeNotFound

# Each use and permission is a boolean column, so listeners can test them in SQL.
USE_COLUMNS: dict[NodeUse, InstrumentedAttribute[bool]] = {
    NodeUse.store_target: Node.store_target,
    NodeUse.qr_source: Node.qr_source,
    NodeUse.move_destination: Node.move_destination,
    NodeUse.printer: Node.printer,
}
PERMISSION_COLUMNS: dict[Permission, InstrumentedAttribute[bool]] = {
    Permission.echo: Node.may_echo,
    Permission.store: Node.may_store,
    Permission.find: Node.may_find,
    Permission.move: Node.may_move,
    Permission.get: Node.may_get,
    Permission.print: Node.may_print,
}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def uses(node: Node) -> list[NodeUse]:
    return [use for use, column in USE_COLUMNS.items() if getattr(node, column.key)]


def permissions(node: Node) -> list[Permission]:
    return [perm for perm, column in PERMISSION_COLUMNS.items() if getattr(node, column.key)]


def settings_of(node: Node) -> NodeSettings:
    """The node as it would be written in openpacs.toml."""
    return NodeSettings(
        name=node.name,
        ae_title=node.ae_title,
        host=node.host,
        port=node.port,
        tls=node.tls,
        description=node.description,
        uses=uses(node),
        permissions=permissions(node),
    )


def _apply(node: Node, spec: NodeSettings) -> None:
    node.name = spec.name
    node.ae_title = spec.ae_title
    node.host = spec.host
    node.port = spec.port
    node.tls = spec.tls
    node.description = spec.description
    for use, column in USE_COLUMNS.items():
        setattr(node, column.key, use in spec.uses)
    for perm, column in PERMISSION_COLUMNS.items():
        setattr(node, column.key, perm in spec.permissions)


def list_nodes(session: Session) -> list[Node]:
    return list(session.scalars(select(Node).order_by(Node.name)))


def find(session: Session, name: str) -> Node | None:
    return session.scalars(select(Node).where(Node.name == name)).one_or_none()


def get(session: Session, name: str) -> Node:
    node = find(session, name)
    if node is None:
        raise NodeNotFound(f"no node named {name!r}; GET /api/nodes lists the registered ones")
    return node


def create(session: Session, spec: NodeSettings) -> Node:
    if find(session, spec.name) is not None:
        raise _duplicate(spec.name)
    when = _now()
    node = Node(created_at=when, updated_at=when)
    _apply(node, spec)
    _flush(session, node)
    return node


def update(session: Session, name: str, spec: NodeSettings) -> Node:
    """Replace every field of the node called `name`; `spec.name` may rename it."""
    node = get(session, name)
    if spec.name != name and find(session, spec.name) is not None:
        raise _duplicate(spec.name)
    _apply(node, spec)
    node.updated_at = _now()
    _flush(session, node)
    return node


def delete(session: Session, name: str) -> None:
    session.delete(get(session, name))
    session.flush()


def _duplicate(name: str) -> DuplicateNode:
    return DuplicateNode(f"a node named {name!r} exists already; choose another name or PUT it")


def _flush(session: Session, node: Node) -> None:
    # Two requests may pass the name check at once (PostgreSQL); the unique index decides, and
    # the savepoint keeps the caller's transaction usable.
    try:
        with session.begin_nested():
            session.add(node)
    except IntegrityError as exc:
        raise _duplicate(node.name) from exc


@dataclass
class SeedReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


def seed(session: Session, specs: Sequence[NodeSettings]) -> SeedReport:
    """Make the registry hold the nodes of openpacs.toml: absent ones are added, registered ones
    with those names take the file's values (the file wins), every other node is left alone."""
    report = SeedReport()
    for spec in specs:
        node = find(session, spec.name)
        if node is None:
            create(session, spec)
            report.added.append(spec.name)
        elif settings_of(node) != spec:
            update(session, spec.name, spec)
            report.updated.append(spec.name)
    return report


def _calling(ae_title: str) -> ColumnElement[bool]:
    # PS3.5: leading and trailing spaces of an AE title are not significant.
    return Node.ae_title == ae_title.strip()


def permits(session: Session, calling_ae: str, action: Permission) -> bool:
    """Whether a registered node with this AE title may ask `action` of us."""
    query = select(Node.pk).where(_calling(calling_ae), PERMISSION_COLUMNS[action] == true())
    return session.scalars(query.limit(1)).first() is not None


def destination(session: Session, ae_title: str) -> Node | None:
    """The node a C-MOVE to `ae_title` sends to: registered as a move destination (the first
    by name when several share the AE title)."""
    query = select(Node).where(_calling(ae_title), Node.move_destination == true())
    return session.scalars(query.order_by(Node.name).limit(1)).first()


class NodeDirectory:
    """Look-ups for DIMSE listeners, each in its own short read transaction."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def permits(self, calling_ae: str, action: Permission) -> bool:
        with self._sessions() as session:
            return permits(session, calling_ae, action)

    def destination(self, ae_title: str) -> Node | None:
        with self._sessions() as session:
            return destination(session, ae_title)
