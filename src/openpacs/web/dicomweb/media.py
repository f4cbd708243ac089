"""HTTP framing for DICOMweb: Accept negotiation, multipart/related out and in, byte ranges.

Accept headers arrive in every spelling PS3.18 allows and some it does not: `type` quoted or
not, q-values, `transfer-syntax=*`, several ranges in one header or in several. A range that
cannot be parsed is a 400 (`MediaError`); ranges that parse but ask for nothing we make are left
for the caller to answer 406.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import anyio
from starlette.requests import ClientDisconnect

from openpacs.dicom import codecs

AS_STORED = "*"
DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
OCTET = "application/octet-stream"
MULTIPART = "multipart/related"

# PS3.18 Table 8.7.3-5 (and -4 for the defaults): media types of compressed pixel data.
SYNTAX_MEDIA: dict[str, str] = {
    codecs.JPEG_BASELINE: "image/jpeg",
    codecs.JPEG_EXTENDED: "image/jpeg",
    codecs.JPEG_LOSSLESS: "image/jpeg",
    codecs.JPEG_LOSSLESS_SV1: "image/jpeg",
    codecs.JPEG_LS_LOSSLESS: "image/jls",
    codecs.JPEG_LS_NEAR_LOSSLESS: "image/jls",
    codecs.JPEG_2000_LOSSLESS: "image/jp2",
    codecs.JPEG_2000: "image/jp2",
    codecs.HTJ2K_LOSSLESS: "image/jphc",
    codecs.HTJ2K_LOSSLESS_RPCL: "image/jphc",
    codecs.HTJ2K: "image/jphc",
    codecs.RLE_LOSSLESS: "image/dicom-rle",
}
MEDIA_DEFAULT_SYNTAX: dict[str, str] = {
    OCTET: codecs.EXPLICIT_VR_LE,
    "image/jpeg": codecs.JPEG_LOSSLESS_SV1,
    "image/jls": codecs.JPEG_LS_LOSSLESS,
    "image/jp2": codecs.JPEG_2000_LOSSLESS,
    "image/jphc": codecs.HTJ2K_LOSSLESS,
    "image/dicom-rle": codecs.RLE_LOSSLESS,
    "image/x-dicom-rle": codecs.RLE_LOSSLESS,
    "image/x-jls": codecs.JPEG_LS_LOSSLESS,
}
_ALIASES = {"image/x-dicom-rle": "image/dicom-rle", "image/x-jls": "image/jls"}

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class MediaError(ValueError):
    """A header that cannot be parsed; the message says what is wrong with it."""


class TooLarge(MediaError):
    """A request body over the size limit."""


@dataclass(frozen=True)
class MediaRange:
    """One range of an Accept header: `type/subtype`, its parameters (keys lowercase, values
    unquoted) and its q-value."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def inner(self) -> str | None:
        """The `type` parameter of a multipart range, lowercase."""
        value = self.params.get("type")
        return value.lower() if value else None

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")

    def matches(self, media_type: str) -> bool:
        return _covers(self.media_type, media_type)


def _covers(pattern: str, media_type: str) -> bool:
    if pattern == "*/*":
        return True
    kind, _, sub = pattern.partition("/")
    if sub == "*":
        return media_type.startswith(kind + "/")
    return pattern == _ALIASES.get(media_type, media_type)


def _split(text: str, separator: str) -> list[str]:
    """Split at `separator` outside double quotes."""
    parts, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\" and quoted:
            current.append(char)
            escaped = True
        elif char == '"':
            quoted = not quoted
            current.append(char)
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise MediaError(f"unbalanced quotes in {text!r}")
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_media_type(text: str) -> MediaRange:
    """One media type with parameters (a Content-Type, or one range of an Accept)."""
    pieces = _split(text, ";")
    media_type = pieces[0].strip().lower()
    kind, slash, sub = media_type.partition("/")
    if not slash or not _TOKEN.fullmatch(kind) or not _TOKEN.fullmatch(sub):
        raise MediaError(f"{pieces[0].strip()!r} is not a media type (type/subtype)")
    media_type = _ALIASES.get(media_type, media_type)
    params: dict[str, str] = {}
    q = 1.0
    for piece in pieces[1:]:
        if not piece.strip():
            continue
        name, equals, value = piece.partition("=")
        name = name.strip().lower()
        if not equals or not _TOKEN.fullmatch(name):
            raise MediaError(f"parameter {piece.strip()!r} of {media_type} is not name=value")
        if name == "q":
            try:
                q = float(value.strip())
            except ValueError:
                raise MediaError(f"q={value.strip()!r} is not a number") from None
            if not 0 <= q <= 1:
                raise MediaError(f"q={value.strip()} is not between 0 and 1")
            continue
        params[name] = _unquote(value)
    if "type" in params:
        params["type"] = _ALIASES.get(params["type"].lower(), params["type"].lower())
    return MediaRange(media_type, params, q)


def parse_accept(values: Iterable[str]) -> list[MediaRange]:
    """The ranges of one or more Accept headers (or `accept` query parameters), best first;
    q=0 ranges are dropped. No header at all means `*/*`."""
    ranges: list[MediaRange] = []
    seen = False
    for value in values:
        for part in _split(value, ","):
            if part.strip():
                seen = True
                ranges.append(parse_media_type(part))
    if not seen:
        return [MediaRange("*/*")]
    ordered = sorted(enumerate(ranges), key=lambda pair: (-pair[1].q, pair[0]))
    return [r for _, r in ordered if r.q > 0]


# --- what a retrieve of instances accepts ---------------------------------------------------


@dataclass(frozen=True)
class InstanceChoice:
    """How to answer a retrieve of DICOM objects: multipart or a single part, and the transfer
    syntaxes acceptable in order ('*': as stored)."""

    multipart: bool
    syntaxes: tuple[str, ...]


def instance_choice(ranges: list[MediaRange], *, single_part: bool) -> InstanceChoice | None:
    """None when nothing acceptable is a DICOM object (406)."""
    found: list[tuple[bool, str]] = []
    for r in ranges:
        if r.media_type == MULTIPART:
            inner = r.inner
            if inner is None or inner == DICOM or _covers(inner, DICOM):
                found.append((True, r.transfer_syntax or codecs.EXPLICIT_VR_LE))
        elif r.media_type == DICOM:
            if single_part:
                found.append((False, r.transfer_syntax or codecs.EXPLICIT_VR_LE))
        elif r.matches(DICOM) and r.media_type != "application/*":
            found.append((True, codecs.EXPLICIT_VR_LE))  # */*: the default
        elif r.media_type == "application/*":
            found.append((True, codecs.EXPLICIT_VR_LE))
    if not found:
        return None
    multipart = found[0][0]
    syntaxes = tuple(dict.fromkeys(ts for part, ts in found if part == multipart))
    return InstanceChoice(multipart, syntaxes)


# --- what a retrieve of frames or bulk data accepts -----------------------------------------


@dataclass(frozen=True)
class PixelChoice:
    """Acceptable (media type, transfer syntax) pairs in order; media None means 'the media
    type of whatever syntax is sent', syntax '*' means as stored."""

    multipart: bool
    options: tuple[tuple[str | None, str], ...]


def pixel_choice(ranges: list[MediaRange], *, single_part: bool) -> PixelChoice | None:
    found: list[tuple[bool, str | None, str]] = []
    for r in ranges:
        multipart = r.media_type == MULTIPART
        inner = r.inner if multipart else r.media_type
        if not multipart and not single_part and inner not in ("*/*",):
            continue
        if inner is None or inner == "*/*":
            if r.transfer_syntax:
                found.append((multipart or inner is None, None, r.transfer_syntax))
            else:
                found.append((True, OCTET, codecs.EXPLICIT_VR_LE))
            continue
        if inner == "image/*":
            found.append((multipart, None, r.transfer_syntax or AS_STORED))
            continue
        default = MEDIA_DEFAULT_SYNTAX.get(inner)
        if default is None:
            continue
        found.append((multipart, inner, r.transfer_syntax or default))
    if not found:
        return None
    multipart = found[0][0]
    options = tuple(dict.fromkeys((m, ts) for part, m, ts in found if part == multipart))
    return PixelChoice(multipart, options)


def warning(service: str, text: str) -> str:
    """A `Warning: 299` header value; the text reduced to printable ASCII (no quotes, no line
    breaks), since it may quote what a client sent."""
    plain = text.replace('"', "'").replace("\\", "/")
    clean = "".join(c if " " <= c <= "~" else "?" for c in plain)
    return f'299 {service}: "{clean[:500]}"'


def media_for(syntax: str) -> str:
    return SYNTAX_MEDIA.get(syntax, OCTET)


def accepts_json(ranges: list[MediaRange]) -> bool:
    return any(
        r.matches(DICOM_JSON) or r.matches("application/json")
        for r in ranges
        if r.media_type != MULTIPART
    )


def image_format(ranges: list[MediaRange], default: str = "jpeg") -> str | None:
    """The rendered image format asked for: 'jpeg', 'png' or 'gif'; None when none is."""
    for r in ranges:
        if r.media_type in ("*/*", "image/*"):
            return default
        for name in ("jpeg", "png", "gif"):
            if r.media_type == f"image/{name}":
                return name
    return None


# --- multipart out --------------------------------------------------------------------------


def new_boundary() -> str:
    return uuid.uuid4().hex


def multipart_type(inner: str, boundary: str) -> str:
    return f'{MULTIPART}; type="{inner}"; boundary={boundary}'


def part_head(boundary: str, content_type: str, location: str | None = None) -> bytes:
    head = f"--{boundary}\r\nContent-Type: {content_type}\r\n"
    if location:
        head += f"Content-Location: {location}\r\n"
    return (head + "\r\n").encode("latin-1")


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("latin-1")


def one_part(boundary: str, content_type: str, data: bytes) -> Iterator[bytes]:
    yield part_head(boundary, content_type)
    yield data
    yield b"\r\n"


# --- multipart in (STOW-RS) -----------------------------------------------------------------


@dataclass
class ReceivedPart:
    """One body part received to a temporary file."""

    headers: dict[str, str]
    path: Path
    size: int = 0

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


_MAX_HEADER_BYTES = 16 * 1024
_WRITE_BATCH = 1024 * 1024


async def receive_multipart(
    chunks: AsyncIterator[bytes],
    boundary: str,
    new_temp: Callable[[], Path],
    limit: int,
    *,
    keep_complete: bool = False,
) -> list[ReceivedPart]:
    """Every part of a multipart body, each streamed to its own temporary file.

    The body is never held in memory: at most one write batch and a delimiter's length are.
    Raises TooLarge past `limit` bytes and MediaError for a body that is not well formed
    (truncated, no closing delimiter, oversized part headers), after removing every temp file
    it wrote. File writes run in worker threads, off the event loop.

    With `keep_complete`, a body that ends early (cut off, the client gone, past `limit`)
    raises Truncated holding the parts that arrived whole; only the unfinished one is removed.
    """
    receiver = _Receiver(boundary.encode("latin-1"), new_temp)
    total = 0
    try:
        try:
            async for chunk in chunks:
                total += len(chunk)
                if total > limit:
                    raise TooLarge(f"the request body exceeds {limit} bytes")
                receiver.buffer += chunk
                await receiver.advance()
                if receiver.state == "done":
                    break
        except ClientDisconnect as exc:
            raise MediaError("the client went away before the body ended") from exc
        if receiver.state != "done":
            where = "no boundary delimiter" if receiver.state == "preamble" else "no closing one"
            raise MediaError(f"the multipart body is truncated: {where}")
        return receiver.parts
    except MediaError as exc:
        if not keep_complete:
            receiver.discard()
            raise
        complete = receiver.complete()
        raise Truncated(str(exc), complete, too_large=isinstance(exc, TooLarge)) from exc
    except BaseException:
        receiver.discard()
        raise


class Truncated(MediaError):
    """A body that ended early; `complete` are the parts received whole before that."""

    def __init__(self, message: str, complete: list[ReceivedPart], *, too_large: bool) -> None:
        super().__init__(message)
        self.complete = complete
        self.too_large = too_large


async def receive_body(
    chunks: AsyncIterator[bytes], new_temp: Callable[[], Path], limit: int
) -> ReceivedPart:
    """A whole (non-multipart) body streamed to one temporary file; TooLarge past `limit`,
    MediaError when the client goes away before it ends (the file is then removed)."""
    part = ReceivedPart({}, new_temp())
    try:
        with part.path.open("wb") as out:
            try:
                async for chunk in chunks:
                    part.size += len(chunk)
                    if part.size > limit:
                        raise TooLarge(f"the request body exceeds {limit} bytes")
                    await anyio.to_thread.run_sync(out.write, chunk)
            except ClientDisconnect as exc:
                raise MediaError("the client went away before the body ended") from exc
    except BaseException:
        part.path.unlink(missing_ok=True)
        raise
    return part


class _Receiver:
    """The parser's state between chunks: preamble, after-delimiter, headers, body, done."""

    def __init__(self, boundary: bytes, new_temp: Callable[[], Path]) -> None:
        self.delimiter = b"--" + boundary
        self.body_end = b"\r\n" + self.delimiter
        self.new_temp = new_temp
        self.buffer = bytearray()
        self.state = "preamble"
        self.parts: list[ReceivedPart] = []
        self.handle: BinaryIO | None = None
        self.pending = bytearray()

    async def advance(self) -> None:
        while await self._step():
            pass

    async def _step(self) -> bool:
        """One parsing step on the buffer; False when it needs more data (or is done)."""
        buffer = self.buffer
        if self.state == "preamble":
            at = buffer.find(self.delimiter)
            if at < 0:
                del buffer[: max(0, len(buffer) - len(self.delimiter))]
                return False
            del buffer[: at + len(self.delimiter)]
            self.state = "after-delimiter"
            return True
        if self.state == "after-delimiter":
            if buffer[:2] == b"--":
                self.state = "done"
                return False
            end = buffer.find(b"\r\n")
            if end < 0:
                if len(buffer) > _MAX_HEADER_BYTES:
                    raise MediaError("no line end after a boundary delimiter")
                return False
            if buffer[:end].strip(b" \t"):
                raise MediaError("text after a boundary delimiter")
            del buffer[: end + 2]
            self.state = "headers"
            return True
        if self.state == "headers":
            if buffer.startswith(b"\r\n"):
                end, skip = 0, 2  # a part without headers
            else:
                end, skip = buffer.find(b"\r\n\r\n"), 4
            if end < 0:
                if len(buffer) > _MAX_HEADER_BYTES:
                    raise MediaError("part headers are too long")
                return False
            part = ReceivedPart(_part_headers(bytes(buffer[:end])), self.new_temp())
            del buffer[: end + skip]
            self.parts.append(part)
            self.handle = part.path.open("wb")
            self.state = "body"
            return True
        if self.state == "body":
            part = self.parts[-1]
            at = buffer.find(self.body_end)
            if at >= 0:
                self.pending += buffer[:at]
                part.size += at
                del buffer[: at + len(self.body_end)]
                await self._flush()
                self._close()
                self.state = "after-delimiter"
                return True
            keep = len(self.body_end) - 1  # a delimiter may straddle two chunks
            if len(buffer) > keep:
                cut = len(buffer) - keep
                self.pending += buffer[:cut]
                part.size += cut
                del buffer[:cut]
            if len(self.pending) >= _WRITE_BATCH:
                await self._flush()
            return False
        return False

    async def _flush(self) -> None:
        if self.pending and self.handle is not None:
            data = bytes(self.pending)
            self.pending.clear()
            await anyio.to_thread.run_sync(self.handle.write, data)

    def _close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def discard(self) -> None:
        self._close()
        remove_parts(self.parts)

    def complete(self) -> list[ReceivedPart]:
        """The parts received whole; the one being written, if any, is removed."""
        if self.state == "body" and self.parts:
            self._close()
            remove_parts(self.parts[-1:])
            return self.parts[:-1]
        self._close()
        return self.parts


def _part_headers(raw: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in raw.decode("latin-1").split("\r\n"):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise MediaError(f"part header {line[:80]!r} is not 'Name: value'")
        headers[name.strip().lower()] = value.strip()
    return headers


def remove_parts(parts: Iterable[ReceivedPart]) -> None:
    for part in parts:
        part.path.unlink(missing_ok=True)


# --- ranges ---------------------------------------------------------------------------------


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The (first, last) byte of a single `bytes=` range within `size` bytes; None for no
    Range header. MediaError for a malformed one, ValueError when it is unsatisfiable."""
    if header is None:
        return None
    unit, equals, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not equals:
        raise MediaError(f"Range {header!r}: only 'bytes=first-last' is supported")
    if "," in spec:
        raise MediaError(f"Range {header!r}: one range per request")
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        raise MediaError(f"Range {header!r} is not first-last")
    try:
        if first_text == "":
            suffix = int(last_text)
            first, last = max(0, size - suffix), size - 1
        else:
            first = int(first_text)
            last = int(last_text) if last_text else size - 1
    except ValueError:
        raise MediaError(f"Range {header!r} is not first-last") from None
    last = min(last, size - 1)
    if first < 0 or first > last:
        raise ValueError(f"bytes {spec} lie outside the {size} bytes")
    return first, last
