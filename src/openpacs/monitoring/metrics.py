"""Prometheus metrics: latency histograms and counters, exposed at /metrics.

Recording must cost next to nothing (it runs once per DIMSE request, HTTP request and index
write), so each labelled child is looked up once and kept: an observation is then two locked
additions, about a microsecond.

Receiver processes (`storescp.workers`) cannot share the main process's memory. They run
prometheus-client's multiprocess mode: `receiver_environment()` names a folder that each
receiver, started with it in its environment, writes its values to (memory-mapped files), and
`exposition()` in the main process adds them to its own. The main process itself keeps its
values in memory (it imported prometheus-client before any folder existed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The classic text format, which generate_latest writes and every Prometheus version reads.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds: from a C-ECHO's 100 µs to a C-MOVE of a large study.
DIMSE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                 10, 30, 60, 300)  # fmt: skip
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
INDEX_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                 0.5, 1, 2.5, 5)  # fmt: skip

REGISTRY = CollectorRegistry(auto_describe=True)

DIMSE_SECONDS = Histogram(
    "openpacs_dimse_request_seconds",
    "DIMSE requests we served, from the whole request received to the last response sent",
    ["service", "command"],
    buckets=DIMSE_BUCKETS,
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "openpacs_http_request_seconds",
    "HTTP requests, by route template, method and status class, until the answer's last byte",
    ["route", "method", "status"],
    buckets=HTTP_BUCKETS,
    registry=REGISTRY,
)
INDEX_SECONDS = Histogram(
    "openpacs_index_seconds",
    "Index work: query engine searches (find), worklist searches, ingest write transactions",
    ["operation"],
    buckets=INDEX_BUCKETS,
    registry=REGISTRY,
)
INSTANCES = Counter(
    "openpacs_instances",
    "Objects offered to the archive, by origin and outcome (stored, overwritten, duplicate, "
    "rejected)",
    ["origin", "outcome"],
    registry=REGISTRY,
)
ASSOCIATIONS = Counter(
    "openpacs_associations",
    "Associations requested of our listeners, by service and result (accepted, rejected)",
    ["service", "result"],
    registry=REGISTRY,
)
# Main process only (the HTTP side runs there).
LOG_FOLLOWS = Gauge(
    "openpacs_log_follows",
    "Live log views (GET /api/logs/.../follow) open now",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)

COMMANDS = {
    0x0001: "C-STORE",
    0x0010: "C-GET",
    0x0020: "C-FIND",
    0x0021: "C-MOVE",
    0x0030: "C-ECHO",
    0x0100: "N-EVENT-REPORT",
    0x0110: "N-GET",
    0x0120: "N-SET",
    0x0130: "N-ACTION",
    0x0140: "N-CREATE",
    0x0150: "N-DELETE",
}

Observe = Callable[[float], None]


class _Children:
    """Labelled children looked up once: `labels()` costs more than the observation."""

    def __init__(self, make: Callable[..., Observe]) -> None:
        self._make = make
        self._known: dict[tuple[str, ...], Observe] = {}
        self._lock = threading.Lock()

    def __call__(self, *labels: str) -> Observe:
        found = self._known.get(labels)
        if found is None:
            with self._lock:
                found = self._known.setdefault(labels, self._make(*labels))
        return found


_dimse = _Children(lambda service, command: DIMSE_SECONDS.labels(service, command).observe)
_http = _Children(lambda route, method, status: HTTP_SECONDS.labels(route, method, status).observe)
_index = _Children(lambda operation: INDEX_SECONDS.labels(operation).observe)
_instances = _Children(lambda origin, outcome: INSTANCES.labels(origin, outcome).inc)
_associations = _Children(lambda service, result: ASSOCIATIONS.labels(service, result).inc)


def dimse_request(service: str, command_field: int, seconds: float) -> None:
    _dimse(service, COMMANDS.get(command_field, "other"))(seconds)


def http_request(route: str, method: str, status: int, seconds: float) -> None:
    _http(route, method, f"{status // 100}xx")(seconds)


def index_work(operation: str, seconds: float) -> None:
    _index(operation)(seconds)


@contextmanager
def timed_index(operation: str) -> Iterator[None]:
    """Time a block of index work (also when it fails: a slow failure is slow)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        _index(operation)(time.perf_counter() - started)


def instance(origin: str, outcome: str) -> None:
    _instances(origin, outcome)(1)


def association(service: str, *, accepted: bool) -> None:
    _associations(service, "accepted" if accepted else "rejected")(1)


# --- receiver processes -------------------------------------------------------------------------


def receiver_environment(folder: Path) -> dict[str, str]:
    """The environment receivers start with so that they write their values into `folder`."""
    return {MULTIPROCESS_ENV: str(folder)}


class _Merged(Collector):
    """The main process's families with the receivers' values added, sample by sample: one
    family per name, as the exposition format wants (two would be a scrape error)."""

    def __init__(self, receivers: Path | None, extra: Iterable[Collector]) -> None:
        self._receivers = receivers
        self._extra = list(extra)

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for family in REGISTRY.collect():
            families[family.name] = family
        if self._receivers is not None and self._receivers.is_dir():
            receivers = MultiProcessCollector(None, path=str(self._receivers))  # type: ignore[no-untyped-call]
            for theirs in receivers.collect():  # type: ignore[no-untyped-call]
                ours = families.get(theirs.name)
                if ours is None:
                    families[theirs.name] = theirs
                else:
                    families[theirs.name] = _add(ours, theirs)
        for collector in self._extra:
            for family in collector.collect():
                families[family.name] = family
        return list(families.values())


def _add(ours: Metric, theirs: Metric) -> Metric:
    merged = Metric(ours.name, ours.documentation, ours.type, ours.unit)
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    order: list[tuple[str, tuple[tuple[str, str], ...]]] = []
    for sample in [*ours.samples, *theirs.samples]:
        key = (sample.name, tuple(sorted(sample.labels.items())))
        if key not in values:
            order.append(key)
            values[key] = 0.0
        values[key] += sample.value
    for name, labels in order:
        merged.add_sample(name, dict(labels), values[(name, labels)])
    return merged


def exposition(receivers: Path | None = None, extra: Iterable[Collector] = ()) -> bytes:
    """The text exposition of this process's metrics, the receivers' in `receivers` added, and
    `extra` collectors (values computed at scrape time, e.g. associations open)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(receivers, extra))
    return generate_latest(registry)
