"""The node registry against a real index (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import select

from openpacs import nodes
from openpacs.archive.core import Core
from openpacs.archive.models import Base, Node
from openpacs.config import NodeSettings, NodeUse, Permission
from openpacs.server import seed_nodes


def spec(name: str = "orthanc", **fields: Any) -> NodeSettings:
    values: dict[str, Any] = {"name": name, "ae_title": "ORTHANC", "host": "10.0.0.2", "port": 4242}
    return NodeSettings.model_validate({**values, **fields})


def test_migrations_build_the_schema_the_models_describe(core: Core) -> None:
    with core.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_add_read_list_and_defaults(core: Core) -> None:
    with core.writing() as session:
        nodes.create(session, spec("b-node", description="影像科 CT"))
        nodes.create(session, spec("a-node", ae_title="OTHER", tls=True))
    with core.sessions() as session:
        listed = nodes.list_nodes(session)
        b = nodes.get(session, "b-node")
    assert [n.name for n in listed] == ["a-node", "b-node"]
    assert b.description == "影像科 CT" and b.port == 4242 and not b.tls
    assert nodes.uses(b) == [NodeUse.store_target, NodeUse.qr_source, NodeUse.move_destination]
    assert nodes.permissions(b) == list(Permission)
    assert b.created_at.tzinfo is not None and b.created_at == b.updated_at
    assert nodes.settings_of(b) == spec("b-node", description="影像科 CT")


def test_a_taken_name_is_refused_and_the_transaction_stays_usable(core: Core) -> None:
    with core.writing() as session:
        nodes.create(session, spec())
    with core.writing() as session:
        with pytest.raises(nodes.DuplicateNode, match="exists already"):
            nodes.create(session, spec(ae_title="SECOND"))
        nodes.create(session, spec("other"))
    with core.sessions() as session:
        assert [n.ae_title for n in nodes.list_nodes(session)] == ["ORTHANC", "ORTHANC"]


def test_update_replaces_every_field_and_may_rename(core: Core) -> None:
    with core.writing() as session:
        nodes.create(session, spec())
        nodes.create(session, spec("taken"))
    changed = spec("renamed", port=104, uses=["printer"], permissions=["echo"])
    with core.writing() as session:
        with pytest.raises(nodes.DuplicateNode):
            nodes.update(session, "orthanc", spec("taken"))
        node = nodes.update(session, "orthanc", changed)
        assert node.updated_at > node.created_at
    with core.sessions() as session:
        assert nodes.find(session, "orthanc") is None
        assert nodes.settings_of(nodes.get(session, "renamed")) == changed


def test_unknown_names_and_delete(core: Core) -> None:
    with core.writing() as session:
        nodes.create(session, spec())
    with core.writing() as session, pytest.raises(nodes.NodeNotFound, match="nope"):
        nodes.get(session, "nope")
    with core.writing() as session, pytest.raises(nodes.NodeNotFound):
        nodes.update(session, "nope", spec("nope"))
    with core.writing() as session:
        nodes.delete(session, "orthanc")
    with core.sessions() as session:
        assert nodes.list_nodes(session) == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ae_title", "THIS_AE_IS_TOO_LONG", "1-16 ASCII"),
        ("ae_title", "BACK\\SLASH", "without a backslash"),
        ("ae_title", "  ", "1-16 ASCII"),
        ("ae_title", "影像", "1-16 ASCII"),
        ("port", 0, "greater than or equal to 1"),
        ("port", 65536, "less than or equal to 65535"),
        ("host", "", "host name or IP address"),
        ("host", "a b", "host name or IP address"),
        ("name", "a/b", "letters, digits"),
        ("name", "", "letters, digits"),
        ("uses", ["archive"], "store_target"),
        ("permissions", ["delete"], "echo"),
    ],
)
def test_invalid_fields_say_what_to_write(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        spec(**{field: value})


def test_values_are_tidied() -> None:
    node = spec(ae_title=" PACS ", host=" pacs.local ", uses=["printer", "store_target", "printer"])
    assert node.ae_title == "PACS" and node.host == "pacs.local"
    assert node.uses == [NodeUse.store_target, NodeUse.printer]


def test_permits_and_destination(core: Core) -> None:
    with core.writing() as session:
        nodes.create(session, spec("ws", ae_title="WS1", permissions=["echo", "find"]))
        nodes.create(session, spec("viewer", ae_title="VIEWER", uses=["move_destination"]))
        nodes.create(session, spec("printer", ae_title="VIEWER", uses=["printer"]))
    directory = nodes.NodeDirectory(core.sessions)
    assert directory.permits("WS1", Permission.find)
    assert directory.permits("WS1 ", Permission.echo)  # trailing padding is not significant
    assert not directory.permits("WS1", Permission.move)
    assert not directory.permits("STRANGER", Permission.echo)
    target = directory.destination("VIEWER")
    assert target is not None and target.name == "viewer" and target.port == 4242
    assert directory.destination("WS1") is not None  # a move destination by default
    assert directory.destination("STRANGER") is None


def test_seed_adds_updates_and_keeps_the_others(core: Core) -> None:
    with core.writing() as session:
        nodes.create(session, spec("from-api", ae_title="API"))
        nodes.create(session, spec("orthanc", port=1111))
    settings = core.settings.model_copy(
        update={"nodes": [spec("orthanc"), spec("new", ae_title="NEW")]}
    )
    with core.writing() as session:
        report = nodes.seed(session, settings.nodes)
    assert report.added == ["new"] and report.updated == ["orthanc"]
    # The server seeds the same way at every start; a second run changes nothing.
    seed_nodes(Core(settings, core.engine, core.sessions, core.storage, core.archive))
    with core.writing() as session:
        again = nodes.seed(session, settings.nodes)
    assert again.added == [] and again.updated == []
    with core.sessions() as session:
        ports = {n.name: n.port for n in session.scalars(select(Node))}
    assert ports == {"from-api": 4242, "orthanc": 4242, "new": 4242}
