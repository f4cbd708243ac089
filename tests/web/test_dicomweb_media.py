"""Accept negotiation, ranges and the streaming multipart reader, on their own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from openpacs.web.dicomweb import media

EXPLICIT = "1.2.840.10008.1.2.1"
JLS = "1.2.840.10008.1.2.4.80"


def test_accept_spellings_and_order() -> None:
    ranges = media.parse_accept(
        [
            'multipart/related; type="application/dicom"; transfer-syntax=*; q=0.5',
            "multipart/related;type=application/dicom;q=0.9, application/json;q=0",
        ]
    )
    assert [(r.media_type, r.inner, r.transfer_syntax, r.q) for r in ranges] == [
        ("multipart/related", "application/dicom", None, 0.9),
        ("multipart/related", "application/dicom", "*", 0.5),
    ]
    assert media.parse_accept([]) == [media.MediaRange("*/*")]
    assert media.parse_accept(["image/x-jls"])[0].media_type == "image/jls"


@pytest.mark.parametrize(
    "header", ["application", 'a/b; type="x', "a/b; q=2", "a/b; q=high", "a/b; =x", "/b"]
)
def test_malformed_accept(header: str) -> None:
    with pytest.raises(media.MediaError):
        media.parse_accept([header])


def test_instance_choice() -> None:
    def choose(header: str, single: bool = False) -> media.InstanceChoice | None:
        return media.instance_choice(media.parse_accept([header]), single_part=single)

    assert choose("*/*") == media.InstanceChoice(True, (EXPLICIT,))
    assert choose(
        f"multipart/related; type=application/dicom; transfer-syntax={JLS}, "
        "multipart/related; type=application/dicom; q=0.5"
    ) == media.InstanceChoice(True, (JLS, EXPLICIT))
    assert choose("application/dicom") is None
    assert choose("application/dicom", single=True) == media.InstanceChoice(False, (EXPLICIT,))
    assert choose("image/jpeg") is None


def test_pixel_choice_for_ohif_and_images() -> None:
    ohif = media.parse_accept(
        ["multipart/related; type=application/octet-stream; transfer-syntax=*"]
    )
    assert media.pixel_choice(ohif, single_part=False) == media.PixelChoice(
        True, ((media.OCTET, "*"),)
    )
    jls = media.parse_accept(['multipart/related; type="image/jls"'])
    assert media.pixel_choice(jls, single_part=False) == media.PixelChoice(
        True, (("image/jls", JLS),)
    )
    assert media.pixel_choice(media.parse_accept(["text/html"]), single_part=True) is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("bytes=0-9", (0, 9)), ("bytes=5-", (5, 99)), ("bytes=-10", (90, 99))],
)
def test_ranges(header: str | None, expected: tuple[int, int] | None) -> None:
    assert media.parse_range(header, 100) == expected


def test_bad_ranges() -> None:
    with pytest.raises(media.MediaError):
        media.parse_range("items=0-1", 100)
    with pytest.raises(media.MediaError):
        media.parse_range("bytes=0-1,5-6", 100)
    with pytest.raises(ValueError):
        media.parse_range("bytes=200-", 100)


def _body(boundary: str, *payloads: bytes) -> bytes:
    out = b"preamble to ignore\r\n"
    for payload in payloads:
        out += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        out += payload + b"\r\n"
    return out + f"--{boundary}--\r\nepilogue".encode()


def _receive(data: bytes, chunk: int, tmp_path: Path, limit: int = 10**9) -> list[bytes]:
    counter = iter(range(10**6))

    def new_temp() -> Path:
        return tmp_path / f"{next(counter)}.part"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(data), chunk):
            yield data[start : start + chunk]

    parts = asyncio.run(media.receive_multipart(chunks(), "bnd", new_temp, limit))
    return [part.path.read_bytes() for part in parts]


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 100_000])
def test_multipart_any_chunking(tmp_path: Path, chunk: int) -> None:
    # Payloads that hold pieces of the delimiter (never all of it, RFC 2046), CRLFs, dashes.
    payloads = [b"\r\n--bn\r\n-bnd\r\n", b"", b"x" * 5000, b"--bnd\r\n", b"\r\n--bn"]
    assert _receive(_body("bnd", *payloads), chunk, tmp_path) == payloads


def test_multipart_errors_leave_no_files(tmp_path: Path) -> None:
    whole = _body("bnd", b"a" * 1000, b"b" * 1000)
    with pytest.raises(media.MediaError, match="truncated"):
        _receive(whole[:1500], 100, tmp_path)
    with pytest.raises(media.TooLarge):
        _receive(whole, 100, tmp_path, limit=1200)
    with pytest.raises(media.MediaError, match="truncated"):
        _receive(b"no boundary here", 4, tmp_path)
    with pytest.raises(media.MediaError):
        _receive(b"--bnd\r\nBroken header line\r\n\r\nx\r\n--bnd--", 4, tmp_path)
    assert list(tmp_path.iterdir()) == []
