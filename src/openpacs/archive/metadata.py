"""Per-series metadata in the DICOM JSON model, built from the stored files and cached.

Viewers ask for a series' metadata before they show anything, and ask again on every visit; it
changes only when the series does. So a series' JSON (and its gzip) is built once per series
*state* (instance count, last change, newest row: `locate.SeriesState`) and kept in a small LRU
cache; the state doubles as the ETag. Study metadata is its series' JSON joined; an instance's is
cut from its series' when that is cached, else read from its one file.

Bulk data URIs depend on how the client reached the server (scheme, host, prefix), so the caller
supplies them (`bulk_uri`) and names the variant they belong to (`variant`), which is part of
the cache key and the ETag.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from openpacs.archive import locate
from openpacs.archive.errors import NotFound
from openpacs.archive.storage import FileSystemStorage
from openpacs.dicom import json as dj
from openpacs.logs import get_logger

log = get_logger("wado")

# (study, series, SOP instance, bulk data path) -> absolute URI
BulkUri = Callable[[str, str, str, str], str]

_GZIP_LEVEL = 6


@dataclass
class Metadata:
    """A metadata answer: the JSON array, its ETag, and its gzip made on first demand."""

    etag: str
    body: bytes
    items: dict[str, bytes] = field(default_factory=dict)  # SOP Instance UID -> its object
    _gzipped: bytes | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def gzipped(self) -> bytes:
        with self._lock:
            if self._gzipped is None:
                self._gzipped = gzip.compress(self.body, _GZIP_LEVEL, mtime=0)
            return self._gzipped


class MetadataCache:
    """The last `size` series built, least recently used out first; safe across threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, ...], Metadata] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> Metadata | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: tuple[str, ...], value: Metadata) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


@dataclass(frozen=True)
class MetadataSource:
    """Where metadata comes from and how it is written: one per application."""

    sessions: sessionmaker[Session]
    storage: FileSystemStorage
    cache: MetadataCache
    threshold: int = dj.DEFAULT_THRESHOLD

    def study(self, study: str, bulk_uri: BulkUri, variant: str) -> Metadata:
        """Every instance of a study, series by series."""
        with self.sessions() as session:
            states = locate.series_states(session, study)
        parts = [self._series(state, bulk_uri, variant) for state in states]
        return _joined(parts)

    def series(self, study: str, series: str, bulk_uri: BulkUri, variant: str) -> Metadata:
        with self.sessions() as session:
            (state,) = locate.series_states(session, study, series)
        return self._series(state, bulk_uri, variant)

    def instance(
        self, study: str, series: str, sop_instance: str, bulk_uri: BulkUri, variant: str
    ) -> Metadata:
        with self.sessions() as session:
            (state,) = locate.series_states(session, study, series)
            (found,) = locate.instances(session, self.storage, study, series, sop_instance)
        etag = _etag("instance", sop_instance, *self._key(state, variant))
        cached = self.cache.get(self._key(state, variant))
        if cached is not None and sop_instance in cached.items:
            item = cached.items[sop_instance]
        else:
            item = self._item(found, bulk_uri)
        return Metadata(etag=etag, body=b"[" + item + b"]", items={sop_instance: item})

    def etag(self, study: str, series: str | None, variant: str) -> str:
        """The ETag the study or series metadata would have now, without building it."""
        with self.sessions() as session:
            states = locate.series_states(session, study, series)
        return _joined_etag([_etag(*self._key(state, variant)) for state in states])

    def _key(self, state: locate.SeriesState, variant: str) -> tuple[str, ...]:
        return (
            state.series_instance_uid,
            str(state.instances),
            state.updated_at,
            str(state.last_pk),
            str(self.threshold),
            variant,
        )

    def _series(self, state: locate.SeriesState, bulk_uri: BulkUri, variant: str) -> Metadata:
        key = self._key(state, variant)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        with self.sessions() as session:
            try:
                found = locate.instances(
                    session, self.storage, state.study_instance_uid, state.series_instance_uid
                )
            except NotFound:
                found = []  # removed since its state was read: an empty series
        items = {loc.instance.sop_instance_uid: self._item(loc, bulk_uri) for loc in found}
        built = Metadata(
            etag=_etag(*key),
            body=b"[" + b",".join(items.values()) + b"]",
            items=items,
        )
        self.cache.put(key, built)
        return built

    def _item(self, loc: locate.Located, bulk_uri: BulkUri) -> bytes:
        sop = loc.instance.sop_instance_uid

        def uri(path: str) -> str:
            return bulk_uri(loc.study_instance_uid, loc.series_instance_uid, sop, path)

        try:
            ds = dj.read_dataset(loc.instance.path, defer_size=self.threshold)
        except Exception as exc:  # a file gone or damaged after it was indexed
            log.error("metadata of %s: cannot read %s: %s", sop, loc.instance.path, exc)
            return dj.dumps(_index_only(loc))
        return dj.dumps(dj.to_json(ds, bulk_uri=uri, threshold=self.threshold))


def _index_only(loc: locate.Located) -> dict[str, object]:
    """What the index alone says of an instance whose file cannot be read."""
    return {
        "00080016": {"vr": "UI", "Value": [loc.instance.sop_class_uid]},
        "00080018": {"vr": "UI", "Value": [loc.instance.sop_instance_uid]},
        "0020000D": {"vr": "UI", "Value": [loc.study_instance_uid]},
        "0020000E": {"vr": "UI", "Value": [loc.series_instance_uid]},
    }


def _etag(*parts: str) -> str:
    digest = hashlib.blake2b("\0".join(parts).encode("utf-8"), digest_size=12).hexdigest()
    return f'"{digest}"'


def _joined_etag(etags: Sequence[str]) -> str:
    return etags[0] if len(etags) == 1 else _etag("study", *etags)


def _joined(parts: Sequence[Metadata]) -> Metadata:
    if len(parts) == 1:
        return parts[0]
    bodies = [part.body[1:-1] for part in parts if len(part.body) > 2]
    items: dict[str, bytes] = {}
    for part in parts:
        items.update(part.items)
    return Metadata(
        etag=_joined_etag([part.etag for part in parts]),
        body=b"[" + b",".join(bodies) + b"]",
        items=items,
    )
