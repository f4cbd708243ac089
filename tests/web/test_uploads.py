"""POST /api/uploads: files and ZIPs through the ingest path with a result per file; caps from
[studies]; a truncated body keeps what arrived whole; nothing lands outside the storage."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from openpacs.accounts import Role
from openpacs.archive.core import Core, open_core
from openpacs.web.app import create_app
from tests.conftest import make_settings
from tests.generators import ct_series
from tests.web.client import Client, bearer, token_for

BOUNDARY = "openpacs-test-boundary"


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[FastAPI]:
    studies: dict[str, object] = {"upload_max_files": 6, "upload_max_file_bytes": 64 * 1024}
    core = open_core(make_settings(tmp_path, database_url, studies=studies))
    try:
        yield create_app(core)
    finally:
        core.close()


def _core(app: FastAPI) -> Core:
    return app.state.core  # type: ignore[no-any-return]


def _multipart(files: list[tuple[str, bytes]], *, close: bool = True) -> bytes:
    body = b""
    for name, data in files:
        body += (
            (
                f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
                f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + data
            + b"\r\n"
        )
    return body + (f"--{BOUNDARY}--\r\n".encode() if close else b"")


def _post(client: Client, body: bytes, content_type: str | None = None) -> dict[str, object]:
    response = client.post(
        "/api/uploads",
        content=body,
        headers={"Content-Type": content_type or f"multipart/form-data; boundary={BOUNDARY}"},
    )
    result: dict[str, object] = {"status": response.status_code, **response.json()}
    return result


def _ct(tmp_path: Path, count: int, seed: int) -> list[Path]:
    return ct_series(tmp_path / f"src-{seed}", count, rows=16, columns=16, seed=seed)


def _stored_files(core: Core) -> list[Path]:
    return [p for p in core.storage.root.rglob("*.dcm") if ".incoming" not in p.parts]


def test_files_get_a_result_each(app: FastAPI, tmp_path: Path) -> None:
    client = Client(app)
    ct = _ct(tmp_path, 2, 1)
    files = [(p.name, p.read_bytes()) for p in ct] + [("notes.txt", b"not dicom at all")]

    answer = _post(client, _multipart(files))

    assert answer["status"] == 200, answer
    assert (answer["stored"], answer["duplicates"], answer["rejected"]) == (2, 0, 1)
    results = answer["files"]
    assert isinstance(results, list)
    assert [r["outcome"] for r in results] == ["stored", "stored", "rejected"]
    assert results[2]["name"] == "notes.txt" and "DICOM" in results[2]["reason"]
    assert results[0]["study"] and results[0]["sop_instance_uid"]
    again = _post(client, _multipart(files[:1]))
    assert again["duplicates"] == 1
    assert len(_stored_files(_core(app))) == 2
    assert not list(_core(app).storage.temp_dir.iterdir())


def test_zip_members_are_stored_and_names_never_make_paths(app: FastAPI, tmp_path: Path) -> None:
    ct = _ct(tmp_path, 3, 2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("../../../escape.dcm", ct[0].read_bytes())
        bundle.writestr("/abs/path.dcm", ct[1].read_bytes())
        bundle.writestr("study/series/IM3", ct[2].read_bytes())
        bundle.writestr("study/DICOMDIR", b"DICM")
        bundle.writestr("study/empty/", b"")
    answer = _post(Client(app), _multipart([("study.zip", buffer.getvalue())]))
    assert answer["status"] == 200, answer
    results = answer["files"]
    assert isinstance(results, list)
    outcomes = {r["name"]: r["outcome"] for r in results}
    assert outcomes == {
        "study.zip/../../../escape.dcm": "stored",
        "study.zip//abs/path.dcm": "stored",
        "study.zip/study/series/IM3": "stored",
        "study.zip/study/DICOMDIR": "rejected",
    }
    assert not (tmp_path / "escape.dcm").exists() and not Path("/abs/path.dcm").exists()
    assert len(_stored_files(_core(app))) == 3
    # The same ZIP as the whole body.
    raw = _post(Client(app), buffer.getvalue(), "application/zip")
    assert raw["status"] == 200 and raw["duplicates"] == 3


def test_caps_reject_with_reasons(app: FastAPI, tmp_path: Path) -> None:
    big = ct_series(tmp_path / "big", 1, rows=256, columns=256, seed=3)[0]  # 128 KiB > 64 KiB
    small = _ct(tmp_path, 1, 4)[0]
    answer = _post(
        Client(app), _multipart([("big.dcm", big.read_bytes()), ("small.dcm", small.read_bytes())])
    )
    results = answer["files"]
    assert isinstance(results, list)
    assert [r["outcome"] for r in results] == ["rejected", "stored"]
    assert "upload_max_file_bytes" in results[0]["reason"]
    many = _ct(tmp_path, 8, 5)
    answer = _post(Client(app), _multipart([(p.name, p.read_bytes()) for p in many]))
    assert answer["status"] == 413 and "upload_max_files" in str(answer["detail"])
    assert answer["stored"] == 6  # what came before the cap is kept


def test_a_body_past_the_byte_cap_is_413_and_keeps_whole_files(
    tmp_path: Path, database_url: str
) -> None:
    ct = _ct(tmp_path, 3, 8)
    body = _multipart([(p.name, p.read_bytes()) for p in ct])
    limit = len(body) - 100  # the last file crosses the limit
    core = open_core(make_settings(tmp_path, database_url, studies={"upload_max_bytes": limit}))

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the stream is counted
        for start in range(0, len(body), 4096):
            yield body[start : start + 4096]

    try:
        response = Client(create_app(core)).post(
            "/api/uploads",
            content=chunked(),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
        )
        answer = {"status": response.status_code, **response.json()}
        assert answer["status"] == 413 and "exceeds" in str(answer["detail"])
        assert answer["stored"] == 2
        assert not list(core.storage.temp_dir.iterdir())
    finally:
        core.close()


def test_a_truncated_body_keeps_the_complete_files(app: FastAPI, tmp_path: Path) -> None:
    ct = _ct(tmp_path, 3, 6)
    body = _multipart([(p.name, p.read_bytes()) for p in ct], close=False)
    cut = body[: len(body) - len(ct[2].read_bytes()) // 2]  # the third file cut in half

    answer = _post(Client(app), cut)

    assert answer["status"] == 400 and "truncated" in str(answer["detail"])
    assert answer["stored"] == 2
    assert len(_stored_files(_core(app))) == 2
    assert not list(_core(app).storage.temp_dir.iterdir())


def test_bad_requests_and_roles(app: FastAPI, tmp_path: Path) -> None:
    client = Client(app)
    response = client.post("/api/uploads", content=b"x", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    response = client.post(
        "/api/uploads", content=b"x", headers={"Content-Type": "multipart/form-data"}
    )
    assert response.status_code == 400
    viewer = bearer(token_for(_core(app), Role.viewer))
    small = _ct(tmp_path, 1, 7)[0]
    response = client.post(
        "/api/uploads",
        content=_multipart([("a.dcm", small.read_bytes())]),
        headers={**viewer, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    assert response.status_code == 403
    assert Client(app, role=None).post("/api/uploads", content=b"").status_code == 401
