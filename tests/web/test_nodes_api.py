"""/api/nodes as a client sees it, over a real index; C-ECHO against real peers.

The echo route gets its sender the way `openpacs serve` builds it (server.echo_node over
openpacs.dimse.scu); without one it answers 501.
"""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openpacs.archive.core import Core
from openpacs.server import echo_node, start_store
from openpacs.web.api.deps import Services
from openpacs.web.app import create_app
from tests.conftest import free_port, need
from tests.web.client import Client

ORTHANC = {"name": "orthanc", "ae_title": "ORTHANC", "host": "10.0.0.2", "port": 4242}


@pytest.fixture
def client(core: Core) -> Client:
    return Client(create_app(core))


def echo_client(core: Core, timeout: float = 5) -> Client:
    echo = functools.partial(echo_node, calling_ae="OPENPACS", timeout=timeout)
    return Client(create_app(core, Services(echo=echo)))


def add(client: Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/api/nodes", json={**ORTHANC, **fields})
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


# --- the registry ----------------------------------------------------------------------------


def test_add_read_and_list(client: Client) -> None:
    response = client.post("/api/nodes", json={**ORTHANC, "description": "影像科"})
    assert response.status_code == 201
    assert response.headers["location"] == "/api/nodes/orthanc"
    node = response.json()
    assert {k: node[k] for k in ORTHANC} == ORTHANC
    assert node["tls"] is False and node["description"] == "影像科"
    assert node["uses"] == ["store_target", "qr_source", "move_destination"]
    assert node["permissions"] == ["echo", "store", "find", "move", "get", "print"]
    assert node["created_at"].endswith(("Z", "+00:00"))

    add(client, name="a-viewer", ae_title="VIEWER", uses=["move_destination"])
    assert client.get("/api/nodes/orthanc").json() == node
    listed = client.get("/api/nodes").json()
    assert [n["name"] for n in listed] == ["a-viewer", "orthanc"]


def test_a_taken_name_is_409(client: Client) -> None:
    add(client)
    response = client.post("/api/nodes", json={**ORTHANC, "ae_title": "OTHER"})
    assert response.status_code == 409
    assert response.json() == {
        "error": "DuplicateNode",
        "detail": "a node named 'orthanc' exists already; choose another name or PUT it",
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ae_title", "A_TITLE_THAT_IS_TOO_LONG"),
        ("ae_title", "BACK\\SLASH"),
        ("port", 0),
        ("port", 65536),
        ("host", ""),
        ("name", "a/b"),
        ("uses", ["archive"]),
        ("permissions", ["delete"]),
        ("colour", "blue"),
    ],
)
def test_invalid_fields_are_422_naming_the_field(client: Client, field: str, value: Any) -> None:
    response = client.post("/api/nodes", json={**ORTHANC, field: value})
    assert response.status_code == 422
    assert field in response.json()["detail"][0]["loc"]
    assert client.get("/api/nodes").json() == []


def test_missing_fields_are_422(client: Client) -> None:
    response = client.post("/api/nodes", json={"name": "x"})
    assert response.status_code == 422
    missing = {e["loc"][-1] for e in response.json()["detail"]}
    assert missing == {"ae_title", "host", "port"}


def test_put_replaces_and_renames(client: Client) -> None:
    created = add(client)
    add(client, name="taken")
    changed = {**ORTHANC, "name": "pacs-2", "port": 104, "permissions": ["echo"]}
    response = client.put("/api/nodes/orthanc", json=changed)
    assert response.status_code == 200
    node = response.json()
    assert node["name"] == "pacs-2" and node["port"] == 104 and node["permissions"] == ["echo"]
    # Every field is replaced: uses not given take their default.
    assert node["uses"] == ["store_target", "qr_source", "move_destination"]
    assert node["created_at"] == created["created_at"]
    assert node["updated_at"] > created["updated_at"]
    assert client.get("/api/nodes/orthanc").status_code == 404

    assert client.put("/api/nodes/pacs-2", json={**changed, "name": "taken"}).status_code == 409
    assert client.put("/api/nodes/nope", json=changed).status_code == 404
    assert client.put("/api/nodes/pacs-2", json={**changed, "port": -1}).status_code == 422


def test_delete_and_unknown_names(client: Client) -> None:
    add(client)
    response = client.delete("/api/nodes/orthanc")
    assert response.status_code == 204 and response.content == b""
    for method in (client.get, client.delete):
        response = method("/api/nodes/orthanc")
        assert response.status_code == 404
        assert response.json()["error"] == "NodeNotFound"
        assert "GET /api/nodes lists" in response.json()["detail"]
    assert client.post("/api/nodes/orthanc/echo").status_code == 404


def test_names_in_any_script_work_in_urls(client: Client) -> None:
    response = client.post("/api/nodes", json={**ORTHANC, "name": "影像科-CT"})
    assert response.headers["location"] == "/api/nodes/%E5%BD%B1%E5%83%8F%E7%A7%91-CT"
    assert client.get(response.headers["location"]).json()["name"] == "影像科-CT"
    assert client.get("/api/nodes/影像科-CT").json()["name"] == "影像科-CT"


def test_openapi_documents_the_node_routes(client: Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/api/nodes"]) == {"get", "post"}
    assert set(paths["/api/nodes/{name}"]) == {"get", "put", "delete"}
    assert set(paths["/api/nodes/{name}/echo"]) == {"post"}


# --- C-ECHO ----------------------------------------------------------------------------------


def test_echo_without_a_dimse_side_is_501(client: Client) -> None:
    add(client)
    response = client.post("/api/nodes/orthanc/echo")
    assert response.status_code == 501
    assert response.json()["error"] == "EchoUnavailable"


def test_echo_to_a_tls_node_is_501_and_says_why(core: Core) -> None:
    client = echo_client(core)
    add(client, tls=True)
    response = client.post("/api/nodes/orthanc/echo")
    assert response.status_code == 501
    assert "cannot connect over TLS yet" in response.json()["detail"]


@pytest.fixture
def own_store_scp(core: Core) -> Iterator[int]:
    listener = start_store(core)
    try:
        yield core.settings.storescp.port
    finally:
        listener.stop(grace=2)


@pytest.mark.peer
def test_echo_our_own_store_scp(core: Core, own_store_scp: int) -> None:
    client = echo_client(core)
    add(client, name="self", ae_title="STORESCP", host="127.0.0.1", port=own_store_scp)
    response = client.post("/api/nodes/self/echo")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == 0 and body["round_trip_ms"] > 0
    assert (body["node"], body["ae_title"], body["port"]) == ("self", "STORESCP", own_store_scp)


@pytest.mark.peer
def test_a_rejected_association_is_502_with_the_reason(core: Core, own_store_scp: int) -> None:
    client = echo_client(core)
    add(client, name="wrong", ae_title="NOTTHEAE", host="127.0.0.1", port=own_store_scp)
    response = client.post("/api/nodes/wrong/echo")
    assert response.status_code == 502
    assert response.json()["error"] == "PeerRefused"
    detail = response.json()["detail"]
    assert "rejected the association permanently: called AE title not recognised" in detail


def test_a_closed_port_is_502(core: Core) -> None:
    client = echo_client(core)
    add(client, host="127.0.0.1", port=free_port())
    response = client.post("/api/nodes/orthanc/echo")
    assert response.status_code == 502
    assert "Connection refused; check the host, port" in response.json()["detail"]


def test_a_peer_that_never_answers_is_504(core: Core) -> None:
    # A listening socket nobody accepts on: the connection opens, the A-ASSOCIATE-RQ is never
    # answered.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        client = echo_client(core, timeout=1)
        add(client, host="127.0.0.1", port=silent.getsockname()[1])
        response = client.post("/api/nodes/orthanc/echo")
    assert response.status_code == 504
    assert response.json()["error"] == "PeerSilent"
    assert "did not answer the association request within 1 s" in response.json()["detail"]


@pytest.fixture
def dcmtk_storescp(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    received = tmp_path / "received"
    received.mkdir()
    process = subprocess.Popen(
        [need("storescp"), "-aet", "DCMTKSCP", "-od", str(received), str(port)],
        env={**os.environ, "TCP_NODELAY": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("dcmtk storescp did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.mark.peer
def test_echo_a_dcmtk_storescp(core: Core, dcmtk_storescp: int) -> None:
    client = echo_client(core)
    add(client, name="dcmtk", ae_title="DCMTKSCP", host="127.0.0.1", port=dcmtk_storescp)
    response = client.post("/api/nodes/dcmtk/echo")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == 0 and response.json()["round_trip_ms"] > 0
