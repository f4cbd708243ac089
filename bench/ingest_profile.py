"""CPU per received object on the ingest path, in process: what the wall-clock bench cannot show.

Run from the repository root: `.venv/bin/python -m bench.ingest_profile --help`. Generates a CT
series (untimed), then for each slice does what the Store SCP does per C-STORE: the engine's
part without the socket (a temp file in the storage's temporary folder, the file meta written,
then the dataset in the engine's block size) and `store_scp.store` (→ `Archive.store`, group
commit included). `--threads N` runs N associations' worth of threads at once, as receivers do.
With `--storescu`, the Store SCP listens in this process and dcmtk's `storescu` (N of them with
`--threads N`) sends the series: the engine's socket work is then counted too, the sender's not.
Reports CPU ms per object (whole process, and per stage from timing wrappers), the wall time of
the write transactions and, with `--profile`, a cProfile top list (in-process mode only:
cProfile sees the calling thread).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import functools
import io
import os
import pstats
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.generators import ct_series

from openpacs.archive import index, ingest, storage
from openpacs.archive.core import Core, open_core
from openpacs.archive.ingest import Incoming, Origin
from openpacs.config import Settings
from openpacs.dimse import engine, store_scp
from openpacs.dimse.engine import Listener
from openpacs.dimse.status import SUCCESS

# (label, module or class, attribute): wrapped to sum the thread CPU spent inside. Nested stages
# are counted in their parents too; missing attributes are skipped (the code may have moved).
STAGES: list[tuple[str, Any, str]] = [
    ("store (Archive.store)", ingest.Archive, "store"),
    ("  header read", ingest, "read_header"),
    ("  validate", ingest, "validate"),
    ("  charset decide", ingest, "decide_charset"),
    ("  charset apply", ingest, "apply_charset"),
    ("  group commit (lock, session, commit)", ingest._GroupCommitter, "run"),
    ("    duplicate check", index, "stored_path"),
    ("    place (mkdir, stat, rename)", storage.FileSystemStorage, "place"),
    ("    index rows", index, "record_instance"),
    ("      values from the header", index, "_row"),
]


class Meter:
    """Thread CPU per stage, summed over threads; wall time of each write transaction."""

    def __init__(self) -> None:
        self.cpu_ns: dict[str, int] = defaultdict(int)
        self.batches_ns: list[int] = []
        self._lock = threading.Lock()
        self._undo: list[tuple[Any, str, Any]] = []

    def time_batches(self) -> None:
        """Wall time of each group commit's transaction (lock, statements, commit)."""
        original = ingest._GroupCommitter._lead

        @functools.wraps(original)
        def timed(committer: Any) -> None:
            start = time.perf_counter_ns()
            try:
                original(committer)
            finally:
                spent = time.perf_counter_ns() - start
                with self._lock:
                    self.batches_ns.append(spent)

        self._undo.append((ingest._GroupCommitter, "_lead", original))
        setattr(ingest._GroupCommitter, "_lead", timed)  # noqa: B010 (mypy: a method)

    def wrap(self, label: str, owner: Any, name: str) -> None:
        original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name)
        if original is None:
            return

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time_ns()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.thread_time_ns() - start
                with self._lock:
                    self.cpu_ns[label] += spent

        self._undo.append((owner, name, original))
        setattr(owner, name, timed)

    def add(self, label: str, spent: int) -> None:
        with self._lock:
            self.cpu_ns[label] += spent

    def restore(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()


@dataclass(frozen=True)
class Slice:
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    dataset: bytes  # the dataset as it comes over the wire (no preamble, no file meta)


def load_slices(paths: list[Path]) -> list[Slice]:
    slices = []
    for path in paths:
        data = path.read_bytes()
        (meta_length,) = struct.unpack_from("<I", data, 140)
        meta = data[144 : 144 + meta_length]
        slices.append(
            Slice(
                _meta_value(meta, 0x0002),
                _meta_value(meta, 0x0003),
                _meta_value(meta, 0x0010),
                data[144 + meta_length :],
            )
        )
    return slices


def _meta_value(meta: bytes, element: int) -> str:
    offset = 0
    while offset < len(meta):
        _, elem, vr = struct.unpack_from("<HH2s", meta, offset)
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT"):
            (length,) = struct.unpack_from("<I", meta, offset + 8)
            start = offset + 12
        else:
            (length,) = struct.unpack_from("<H", meta, offset + 6)
            start = offset + 8
        if elem == element:
            return meta[start : start + length].rstrip(b"\0 ").decode()
        offset = start + length
    raise ValueError(f"file meta element (0002,{element:04X}) missing")


def receive(core: Core, item: Slice, meter: Meter) -> None:
    """What the engine does per C-STORE-RQ, minus the socket, then the Store SCP's handler."""
    start = time.thread_time_ns()
    fd, name = tempfile.mkstemp(dir=core.storage.temp_dir, suffix=".part")
    os.write(
        fd,
        engine.file_meta(item.sop_class_uid, item.sop_instance_uid, item.transfer_syntax, "BENCH"),
    )
    view = memoryview(item.dataset)
    for offset in range(0, len(view), engine.BUFFER):
        chunk = view[offset : offset + engine.BUFFER]
        while chunk:
            chunk = chunk[os.write(fd, chunk) :]
    os.close(fd)
    meter.add("engine share (temp file, meta, write)", time.thread_time_ns() - start)
    incoming = Incoming(
        path=Path(name),
        origin=Origin.dimse,
        calling_ae="BENCH",
        expected_sop_class_uid=item.sop_class_uid,
        expected_sop_instance_uid=item.sop_instance_uid,
    )
    start = time.thread_time_ns()
    status, comment = store_scp.store(core.archive, incoming)
    meter.add("store_scp.store", time.thread_time_ns() - start)
    if status != SUCCESS:
        raise RuntimeError(f"store failed with 0x{status:04X}: {comment}")


def send_round(listener: Listener, files: list[Path], senders: int) -> float:
    """dcmtk storescu of `files` to the in-process Store SCP; returns wall seconds."""
    env = {**os.environ, "TCP_NODELAY": "1"}
    shares = [files[i::senders] for i in range(senders)]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            ["storescu", "-aec", "STORESCP", "127.0.0.1", str(listener.port), *map(str, share)],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        for share in shares
    ]
    codes = [process.wait() for process in processes]
    wall = time.perf_counter() - started
    if any(codes):
        raise RuntimeError(f"storescu exited with {codes}")
    return wall


def run_round(core: Core, slices: list[Slice], threads: int, meter: Meter) -> float:
    """Send `slices` over `threads` "associations" (dealt round-robin); returns wall seconds."""
    shares = [slices[i::threads] for i in range(threads)]
    errors: list[BaseException] = []

    def association(share: list[Slice]) -> None:
        try:
            for item in share:
                receive(core, item, meter)
        except BaseException as exc:
            errors.append(exc)

    started = time.perf_counter()
    if threads == 1:
        association(shares[0])
    else:
        workers = [threading.Thread(target=association, args=(s,)) for s in shares]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return wall


@contextlib.contextmanager
def archive(work: Path, database_url: str | None) -> Iterator[Core]:
    settings = Settings.model_validate(
        {
            "database": {"url": database_url or f"sqlite:///{work / 'index.db'}"},
            "storage": {"root": str(work / "storage")},
            "logging": {"dir": str(work / "logs"), "console": False},
        }
    )
    core = open_core(settings)
    try:
        yield core
    finally:
        core.close()


@contextlib.contextmanager
def listening(core: Core, enabled: bool) -> Iterator[Listener | None]:
    if not enabled:
        yield None
        return
    settings = core.settings.storescp.model_copy(update={"host": "127.0.0.1", "port": 0})
    listener = store_scp.make_store_listener(settings, core.archive)
    listener.start()
    try:
        yield listener
    finally:
        listener.stop(5.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="CT slices per series")
    parser.add_argument("--rows", type=int, default=512, help="rows and columns of each slice")
    parser.add_argument("--rounds", type=int, default=3, help="series stored one after another")
    parser.add_argument("--threads", type=int, default=1, help="concurrent associations")
    parser.add_argument("--warmup", type=int, default=20, help="untimed slices first")
    parser.add_argument("--storescu", action="store_true", help="receive from dcmtk storescu")
    parser.add_argument("--profile", action="store_true", help="cProfile the last round")
    parser.add_argument("--top", type=int, default=30, help="rows of the profile to print")
    parser.add_argument("--database", help="index URL (default: SQLite in the work folder)")
    parser.add_argument("--tmp", type=Path, help="work folder (default: system temp)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="openpacs-ingest-profile-", dir=args.tmp) as tmp:
        work = Path(tmp)
        paths = [
            ct_series(
                work / f"src{n}",
                args.count if n else max(args.warmup, 1),
                rows=args.rows,
                columns=args.rows,
                patient_id=f"PROFILE{n}",
                seed=n,
            )
            for n in range(args.rounds + 1)
        ]
        series = [load_slices(files) for files in paths]
        with archive(work, args.database) as core, listening(core, args.storescu) as listener:
            if listener is not None:
                send_round(listener, paths[0][: args.warmup], 1)
            else:
                run_round(core, series[0][: args.warmup] if args.warmup else [], 1, Meter())
            print(
                f"{args.count} slices {args.rows}x{args.rows} per round, {args.threads} "
                f"thread(s), {args.warmup} warm-up slices; CPU ms per object"
            )
            for number, slices in enumerate(series[1:], start=1):
                meter = Meter()
                for label, owner, name in STAGES:
                    meter.wrap(label, owner, name)
                meter.time_batches()
                profiler = None
                if args.profile and number == args.rounds and listener is None:
                    profiler = cProfile.Profile()
                cpu_start = time.process_time()
                if profiler is not None:
                    profiler.enable()
                try:
                    if listener is not None:
                        wall = send_round(listener, paths[number], args.threads)
                    else:
                        wall = run_round(core, slices, args.threads, meter)
                finally:
                    if profiler is not None:
                        profiler.disable()
                    meter.restore()
                cpu = time.process_time() - cpu_start
                report(number, len(slices), wall, cpu, meter)
                if profiler is not None:
                    print_profile(profiler, args.top)
    return 0


def report(number: int, count: int, wall: float, cpu: float, meter: Meter) -> None:
    print(f"round {number}: {count / wall:.0f} obj/s, process CPU {cpu * 1000 / count:.2f} ms/obj")
    labels = [label for label, _, _ in STAGES]
    ordered = ["engine share (temp file, meta, write)", "store_scp.store", *labels]
    for label in ordered:
        if label in meter.cpu_ns:
            print(f"  {label:<42} {meter.cpu_ns[label] / 1e6 / count:6.3f}")
    batches = sorted(meter.batches_ns)
    if batches:
        slow = [b for b in batches if b > 5_000_000]
        print(
            f"  transactions: {len(batches)}, wall ms p50 {batches[len(batches) // 2] / 1e6:.2f}"
            f" p99 {batches[len(batches) * 99 // 100] / 1e6:.2f} max {batches[-1] / 1e6:.1f};"
            f" {len(slow)} over 5 ms took {sum(slow) / 1e6:.0f} ms of {wall * 1000:.0f} ms"
        )


def print_profile(profiler: cProfile.Profile, top: int) -> None:
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats(key).print_stats(top)
        lines = out.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        print(f"\nprofile by {key}:")
        print("\n".join(line[:160] for line in lines[start:]))


if __name__ == "__main__":
    sys.exit(main())
