"""Associations open now and recently ended, per process, for the status page and /metrics.

The DIMSE engine tells an `Associations` when a listener accepts or rejects an association,
serves a request, and when an association ends; the web side reads `snapshot()` (through
`web.api.deps.Services`, so it never imports the engine). Receiver processes
(`storescp.workers`) keep their own lists, which the main process cannot see; their counts
(open, accepted, rejected) go to a `SharedCounts` in shared memory, so the totals cover every
process. Each call takes one short lock: the engine calls it once per association and once per
request.
"""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any

from openpacs.monitoring import metrics

# Our DICOM listeners, in the order the status page shows them.
LISTENERS = ("storescp", "qrscp", "worklist", "printscp")
RECENT = 50


@dataclass(frozen=True)
class Association:
    """One association as the status page shows it."""

    id: int
    service: str
    calling_ae: str
    called_ae: str
    peer: str
    started_at: dt.datetime
    accepted: bool
    requests: int = 0
    ended_at: dt.datetime | None = None
    # How it ended: released, aborted, peer gone, timeout...; for a rejection, why.
    outcome: str | None = None


@dataclass(frozen=True)
class Totals:
    open: int = 0
    accepted: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class Snapshot:
    open: list[Association]
    recent: list[Association]
    # Per service, every process counted (this one and the receivers).
    totals: dict[str, Totals]
    # Of those, open in receiver processes (whose associations are not listed above).
    in_receivers: dict[str, int] = field(default_factory=dict)


class SharedCounts:
    """Open / accepted / rejected per listener in shared memory, written by receiver processes
    and read by the main one. Made with the multiprocessing context that starts them."""

    def __init__(self, context: Any) -> None:
        self.array = context.Array("q", 3 * len(LISTENERS))

    def add(self, service: str, slot: int, amount: int) -> None:
        if service in LISTENERS:
            with self.array.get_lock():
                self.array[3 * LISTENERS.index(service) + slot] += amount

    def read(self) -> dict[str, Totals]:
        with self.array.get_lock():
            values = list(self.array)
        return {
            service: Totals(*values[3 * number : 3 * number + 3])
            for number, service in enumerate(LISTENERS)
        }


OPEN, ACCEPTED, REJECTED = range(3)


class Associations:
    """The associations of this process's listeners. `shared`: the receivers' counts; with
    `publish`, this process (a receiver) writes its counts there instead of keeping them."""

    def __init__(
        self,
        *,
        recent: int = RECENT,
        shared: SharedCounts | None = None,
        publish: bool = False,
        clock: Any = None,
    ) -> None:
        self._open: dict[int, Association] = {}
        self._recent: deque[Association] = deque(maxlen=recent)
        self._counts: dict[str, list[int]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._shared = shared
        self._publish = publish and shared is not None
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def _count(self, service: str, slot: int, amount: int) -> None:
        if self._publish:
            assert self._shared is not None
            self._shared.add(service, slot, amount)
        else:
            self._counts.setdefault(service, [0, 0, 0])[slot] += amount

    def accepted(self, service: str, calling_ae: str, called_ae: str, peer: str) -> int:
        """Record an accepted association; its id is what the engine reports later with."""
        metrics.association(service, accepted=True)
        now = self._clock()
        with self._lock:
            number = next(self._ids)
            self._open[number] = Association(
                number, service, calling_ae, called_ae, peer, now, accepted=True
            )
            self._count(service, OPEN, 1)
            self._count(service, ACCEPTED, 1)
        return number

    def rejected(
        self, service: str, calling_ae: str, called_ae: str, peer: str, reason: str
    ) -> None:
        metrics.association(service, accepted=False)
        now = self._clock()
        with self._lock:
            record = Association(
                next(self._ids),
                service,
                calling_ae,
                called_ae,
                peer,
                now,
                accepted=False,
                ended_at=now,
                outcome=reason,
            )
            self._recent.append(record)
            self._count(service, REJECTED, 1)

    def served(self, number: int, service: str, command_field: int, started: float) -> None:
        """A request (by its command field) answered; `started`: time.perf_counter() when it
        had arrived whole."""
        metrics.dimse_request(service, command_field, time.perf_counter() - started)
        with self._lock:
            record = self._open.get(number)
            if record is not None:
                self._open[number] = replace(record, requests=record.requests + 1)

    def ended(self, number: int, outcome: str) -> None:
        with self._lock:
            record = self._open.pop(number, None)
            if record is None:
                return
            self._recent.append(replace(record, ended_at=self._clock(), outcome=outcome))
            self._count(record.service, OPEN, -1)

    def snapshot(self) -> Snapshot:
        with self._lock:
            opened = sorted(self._open.values(), key=lambda a: a.id)
            recent = list(reversed(self._recent))
            local = {service: list(values) for service, values in self._counts.items()}
        receivers = self._shared.read() if self._shared is not None and not self._publish else {}
        totals: dict[str, Totals] = {}
        for service in LISTENERS:
            mine = local.get(service, [0, 0, 0])
            theirs = receivers.get(service, Totals())
            totals[service] = Totals(
                mine[OPEN] + theirs.open,
                mine[ACCEPTED] + theirs.accepted,
                mine[REJECTED] + theirs.rejected,
            )
        in_receivers = {service: receivers[service].open for service in receivers}
        return Snapshot(opened, recent, totals, in_receivers)
