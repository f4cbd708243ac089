"""A ZIP archive written as a stream of chunks: nothing is built in memory or on disk first.

Python's `zipfile` writes to a stream it cannot seek by putting each entry's CRC and sizes in
a data descriptor after its data, and switches to ZIP64 records by itself once offsets pass
4 GiB; an entry larger than 2 GiB needs ZIP64 from its local header on, which `force_zip64`
asks for (the size is known beforehand). Entries are stored, not deflated: DICOM pixel data
is mostly compressed already or compresses poorly, and storing keeps the CPU free. At most one
chunk of an entry plus zipfile's headers is held at a time.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Entry:
    """One file of the archive: its name inside, its size when known beforehand, its bytes."""

    name: str
    chunks: Iterable[bytes]
    size: int | None = None
    mtime: float | None = None


class _Sink(io.RawIOBase):
    """Collects what zipfile writes until the generator hands it on; not seekable."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._position = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._buffer += data
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position

    def take(self) -> bytes:
        data = bytes(self._buffer)
        self._buffer.clear()
        return data


def stream(entries: Iterable[Entry]) -> Iterator[bytes]:
    """The ZIP archive of `entries`, chunk by chunk (entries are read as they are reached)."""
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for entry in entries:
            info = zipfile.ZipInfo(entry.name, _date_time(entry.mtime))
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            big = entry.size is None or entry.size > zipfile.ZIP64_LIMIT
            with archive.open(info, "w", force_zip64=big) as out:
                for chunk in entry.chunks:
                    out.write(chunk)
                    if data := sink.take():
                        yield data
            if data := sink.take():  # the data descriptor
                yield data
    yield sink.take()  # the central directory


def _date_time(mtime: float | None) -> tuple[int, int, int, int, int, int]:
    stamp = time.localtime(mtime if mtime is not None else time.time())
    # ZIP dates start in 1980.
    return max(stamp[:6], (1980, 1, 1, 0, 0, 0))
