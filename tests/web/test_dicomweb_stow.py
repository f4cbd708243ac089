"""STOW-RS through the app: answers per part, and hostile bodies that must store nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread

from openpacs.archive.core import Core
from openpacs.web.app import create_app
from tests.conftest import sample
from tests.generators import ct_series
from tests.web.client import Client
from tests.web.dicomweb_data import settings_for

BOUNDARY = "b0undary-42"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Core, Client]]:
    from openpacs.archive.core import open_core

    core = open_core(settings_for(tmp_path, dicomweb={"stow_max_bytes": 200_000}))
    try:
        yield core, Client(create_app(core))
    finally:
        core.close()


def body(*payloads: bytes, content_type: str = "application/dicom") -> bytes:
    out = b""
    for payload in payloads:
        out += f"--{BOUNDARY}\r\nContent-Type: {content_type}\r\n\r\n".encode() + payload + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def stored_count(core: Core) -> int:
    return core.counts().instances


def leftovers(core: Core) -> list[Path]:
    return list(core.storage.temp_dir.iterdir())


@pytest.fixture
def slices(tmp_path: Path) -> list[Path]:
    return ct_series(tmp_path / "ct", 3, rows=16, columns=16, seed=5)


def test_store_all(server: tuple[Core, Client], slices: list[Path]) -> None:
    core, client = server
    response = client.post(
        "/dicomweb/studies",
        content=body(*(p.read_bytes() for p in slices)),
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    study = str(dcmread(slices[0]).StudyInstanceUID)
    assert answer["00081190"]["Value"] == [f"http://openpacs/dicomweb/studies/{study}"]
    referenced = answer["00081199"]["Value"]
    assert [r["00081155"]["Value"][0] for r in referenced] == [
        str(dcmread(p).SOPInstanceUID) for p in slices
    ]
    assert all(
        r["00081190"]["Value"][0].startswith("http://openpacs/dicomweb/") for r in referenced
    )
    assert "00081198" not in answer
    assert stored_count(core) == 3
    assert leftovers(core) == []


def test_store_into_a_named_study_and_unquoted_type(
    server: tuple[Core, Client], slices: list[Path], tmp_path: Path
) -> None:
    core, client = server
    study = str(dcmread(slices[0]).StudyInstanceUID)
    other = ct_series(tmp_path / "other", 1, rows=16, columns=16, seed=6)[0]
    response = client.post(
        f"/dicomweb/studies/{study}",
        content=body(slices[0].read_bytes(), other.read_bytes()),
        headers={"Content-Type": f"multipart/related; type=application/dicom; boundary={BOUNDARY}"},
    )
    assert response.status_code == 202
    failed = response.json()["00081198"]["Value"]
    assert failed[0]["00081197"]["Value"] == [0xA900]
    assert failed[0]["00081155"]["Value"] == [str(dcmread(other).SOPInstanceUID)]
    assert "is not the study" in response.headers["warning"]
    assert stored_count(core) == 1
    assert leftovers(core) == []


def test_a_part_that_is_not_dicom(server: tuple[Core, Client], slices: list[Path]) -> None:
    core, client = server
    response = client.post(
        "/dicomweb/studies",
        content=body(slices[0].read_bytes(), b"just some text", slices[1].read_bytes()),
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert response.status_code == 202
    answer = response.json()
    (failed,) = answer["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xC000]
    assert len(answer["00081199"]["Value"]) == 2
    assert response.headers["warning"].startswith('299 openpacs: "part 2: not a DICOM file')
    assert stored_count(core) == 2
    assert leftovers(core) == []


def test_nothing_stored_is_409(server: tuple[Core, Client]) -> None:
    core, client = server
    response = client.post(
        "/dicomweb/studies",
        content=body(b"DICM? no", b"\x00" * 300),
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert response.status_code == 409
    assert len(response.json()["00081198"]["Value"]) == 2
    assert len(response.headers.get_list("warning")) == 2
    assert stored_count(core) == 0
    assert leftovers(core) == []


def test_a_json_part_is_refused(server: tuple[Core, Client], slices: list[Path]) -> None:
    _, client = server
    content = body(b"{}", content_type="application/dicom+json")
    response = client.post(
        "/dicomweb/studies", content=content, headers={"Content-Type": CONTENT_TYPE}
    )
    assert response.status_code == 409
    assert "application/dicom+json" in response.headers["warning"]


def test_duplicate_kept_is_success(server: tuple[Core, Client], slices: list[Path]) -> None:
    core, client = server
    for _ in range(2):
        response = client.post(
            "/dicomweb/studies",
            content=body(slices[0].read_bytes()),
            headers={"Content-Type": CONTENT_TYPE},
        )
        assert response.status_code == 200
    assert stored_count(core) == 1


def test_missing_patient_id_is_a_reasoned_failure(
    server: tuple[Core, Client], slices: list[Path], tmp_path: Path
) -> None:
    _, client = server
    ds = dcmread(slices[0])
    del ds.PatientID
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken)
    response = client.post(
        "/dicomweb/studies",
        content=body(broken.read_bytes()),
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert response.status_code == 409
    assert response.json()["00081198"]["Value"][0]["00081197"]["Value"] == [0xA900]
    assert "PatientID" in response.headers["warning"]


@pytest.mark.parametrize(
    "cut",
    [
        lambda b: b[: len(b) // 2],  # connection dropped mid-part
        lambda b: b[: -len(f"--{BOUNDARY}--\r\n")],  # no closing delimiter
        lambda b: b"no delimiter at all",
        lambda b: b.replace(b"\r\n\r\n", b"\r\n", 1)[:400],  # headers never end
    ],
)
def test_truncated_bodies_store_nothing(
    server: tuple[Core, Client], slices: list[Path], cut: Any
) -> None:
    core, client = server
    content = cut(body(slices[0].read_bytes(), slices[1].read_bytes()))
    response = client.post(
        "/dicomweb/studies", content=content, headers={"Content-Type": CONTENT_TYPE}
    )
    assert response.status_code == 400
    assert "truncated" in response.json()["detail"] or "header" in response.json()["detail"]
    assert stored_count(core) == 0
    assert leftovers(core) == []


def test_oversized_by_content_length(server: tuple[Core, Client]) -> None:
    core, client = server
    response = client.post(
        "/dicomweb/studies", content=body(b"x" * 300_000), headers={"Content-Type": CONTENT_TYPE}
    )
    assert response.status_code == 413
    assert "200000" in response.json()["detail"]
    assert stored_count(core) == 0 and leftovers(core) == []


def test_oversized_while_streaming(server: tuple[Core, Client], slices: list[Path]) -> None:
    core, client = server
    payload = slices[0].read_bytes()

    async def chunks() -> AsyncIterator[bytes]:
        # Without a Content-Length the limit is found while reading.
        data = body(*[payload] * 200)
        for start in range(0, len(data), 8192):
            yield data[start : start + 8192]

    response = client.post(
        "/dicomweb/studies", content=chunks(), headers={"Content-Type": CONTENT_TYPE}
    )
    assert response.status_code == 413
    assert stored_count(core) == 0
    assert leftovers(core) == []


@pytest.mark.parametrize(
    ("content_type", "code"),
    [
        ("application/dicom", 415),
        ('multipart/related; type="application/dicom+json"; boundary=x', 415),
        ('multipart/related; type="application/dicom"', 400),
        ("multipart/related; boundary", 400),
        ("", 415),
    ],
)
def test_bad_content_types(server: tuple[Core, Client], content_type: str, code: int) -> None:
    _, client = server
    response = client.post(
        "/dicomweb/studies", content=body(b"x"), headers={"Content-Type": content_type}
    )
    assert response.status_code == code
    assert response.json()["detail"]


def test_empty_multipart_is_400(server: tuple[Core, Client]) -> None:
    _, client = server
    response = client.post(
        "/dicomweb/studies", content=f"--{BOUNDARY}--\r\n", headers={"Content-Type": CONTENT_TYPE}
    )
    assert response.status_code == 400
    assert "no parts" in response.json()["detail"]


def test_store_then_retrieve_compressed_as_stored(server: tuple[Core, Client]) -> None:
    _, client = server
    source = sample("MR_small_jpeg_ls_lossless.dcm")
    response = client.post(
        "/dicomweb/studies",
        content=body(source.read_bytes()),
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert response.status_code == 200
    url = response.json()["00081199"]["Value"][0]["00081190"]["Value"][0]
    got = client.get(
        url.removeprefix("http://openpacs"),
        headers={"Accept": "multipart/related; type=application/dicom; transfer-syntax=*"},
    )
    assert source.read_bytes() in got.content
