"""CPU and memory of the openpacs processes (the main one and its receivers), by psutil."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class ProcessUsage:
    pid: int
    role: str  # main | receiver
    cpu_percent: float  # of one core, since the previous look (first look: since it started)
    memory_bytes: int  # resident set size
    threads: int
    started_at: float  # seconds since the epoch


@dataclass(frozen=True)
class MachineUsage:
    cpu_count: int
    cpu_percent: float  # every core, since the previous look
    memory_total_bytes: int
    memory_available_bytes: int


class ProcessWatch:
    """Keeps the psutil handles between looks, so CPU percentages cover the time since the
    previous look (one status refresh to the next) rather than the process's whole life."""

    def __init__(self) -> None:
        self._known: dict[int, psutil.Process] = {}

    def _process(self, pid: int) -> tuple[psutil.Process, bool]:
        known = self._known.get(pid)
        if known is not None:
            return known, False
        process = self._known[pid] = psutil.Process(pid)
        return process, True

    def look(self, receivers: list[int]) -> list[ProcessUsage]:
        found = []
        wanted = [(os.getpid(), "main"), *((pid, "receiver") for pid in receivers)]
        for pid, role in wanted:
            try:
                process, first = self._process(pid)
                with process.oneshot():
                    percent = process.cpu_percent(None)
                    if first:  # psutil's first answer is 0.0: take the life-long average
                        times = process.cpu_times()
                        alive = max(time.time() - process.create_time(), 1e-3)
                        percent = 100.0 * (times.user + times.system) / alive
                    found.append(
                        ProcessUsage(
                            pid,
                            role,
                            round(percent, 1),
                            process.memory_info().rss,
                            process.num_threads(),
                            process.create_time(),
                        )
                    )
            except psutil.Error:
                self._known.pop(pid, None)  # gone (a receiver that stopped)
        for pid in set(self._known) - {pid for pid, _ in wanted}:
            del self._known[pid]
        return found

    @staticmethod
    def machine() -> MachineUsage:
        memory = psutil.virtual_memory()
        return MachineUsage(
            psutil.cpu_count() or 1,
            psutil.cpu_percent(None),
            memory.total,
            memory.available,
        )
