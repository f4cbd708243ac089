"""Side-by-side ingest benchmark: openpacs against Orthanc on the same generated data.

Run from the repository root: `.venv/bin/python -m bench.ingest --help`. Each system gets a fresh
server per run; dcmtk's storescu is the sender for both, so only the receiver differs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol

from tests.generators import MULTIFRAME_FRAME_BYTES, ct_series, large_multiframe

from bench.orthanc import (
    CALLING_AE,
    LOCALHOST,
    OrthancServer,
    ReadyProbe,
    ServerError,
    ServerProcess,
    free_port,
    get_count,
    http_client,
    log_tail,
    nodelay_env,
)

REPO = Path(__file__).resolve().parent.parent
OPENPACS = REPO / ".venv" / "bin" / "openpacs"
SYSTEMS = ("orthanc", "openpacs")
RSS_INTERVAL_S = 0.05
# Some servers acknowledge before their index catches up; how long to wait for it.
INDEX_TIMEOUT_S = 60.0
# Far beyond any healthy run, even a 4 GB object; only a hung server gets here.
SEND_TIMEOUT_S = 900.0
OPENPACS_STOP_GRACE_S = 15.0
_ACKNOWLEDGED = ("I: Received Store Response (Success", "I: Received Store Response (Warning")
MB = 1024 * 1024


class Server(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def ae_title(self) -> str: ...
    @property
    def dicom_port(self) -> int: ...
    @property
    def pid(self) -> int: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def version(self) -> str: ...
    def instance_count(self) -> int: ...


class OpenpacsServer:
    """`openpacs serve` configured through environment variables, in its own folder."""

    name = "openpacs"
    ae_title = "STORESCP"
    # Every HTTP route wants a user: this one is made in the server's index before it starts.
    credentials = ("bench", "bench-password")

    def __init__(self, work_dir: Path, workers: int) -> None:
        self.work_dir = work_dir
        self.workers = workers
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.qr_port = free_port()
        self._process: ServerProcess | None = None
        self._http = http_client(self.credentials)

    @property
    def base_url(self) -> str:
        return f"http://{LOCALHOST}:{self.http_port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServerError("openpacs is not running")
        return self._process.popen.pid

    def environment(self) -> dict[str, str]:
        return nodelay_env(
            {
                "OPENPACS_STORESCP__AE_TITLE": self.ae_title,
                "OPENPACS_STORESCP__PORT": str(self.dicom_port),
                "OPENPACS_STORESCP__WORKERS": str(self.workers),
                "OPENPACS_QRSCP__PORT": str(self.qr_port),
                "OPENPACS_WORKLIST__PORT": str(free_port()),
                "OPENPACS_PRINTSCP__PORT": str(free_port()),
                "OPENPACS_HTTP__PORT": str(self.http_port),
                "OPENPACS_STORAGE__ROOT": str(self.work_dir / "storage"),
                "OPENPACS_DATABASE__URL": f"sqlite:///{self.work_dir / 'index.db'}",
                "OPENPACS_LOGGING__DIR": str(self.work_dir / "logs"),
            }
        )

    def start(self) -> None:
        if not OPENPACS.exists():
            raise ServerError(f"{OPENPACS} not found; run `make setup` first")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._add_user()
        command = [str(OPENPACS), "serve"]
        self._process = ServerProcess(self.name, command, self.work_dir, self.environment())
        try:
            probe = ReadyProbe(f"{self.base_url}/health", self.ae_title, self.dicom_port)
            self._process.wait_until_ready(self._http, probe)
        except BaseException:
            self.stop()
            raise

    def _add_user(self) -> None:
        """The benchmark's admin user (kept with the data between processes)."""
        user, password = self.credentials
        command = [str(OPENPACS), "user", "add", user, "--role", "admin", "--password", password]
        env = {**os.environ, **self.environment()}
        added = subprocess.run(
            [*command, "--no-must-change"], env=env, capture_output=True, text=True, check=False
        )
        if added.returncode != 0 and "exists already" not in added.stderr:
            raise ServerError(f"openpacs user add {user}: {added.stderr.strip()}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(signal.SIGINT, OPENPACS_STOP_GRACE_S)
            self._process = None
        self._http.close()

    def version(self) -> str:
        from openpacs import __version__

        return str(__version__)

    def instance_count(self) -> int:
        return get_count(self._http, f"{self.base_url}/api/system", "counts", "instances")


# ---------------------------------------------------------------------------------------------
# Resident memory of a process tree, from /proc (psutil is not a dependency).


def _parent_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may hold spaces; fields after it are fixed.
    return int(stat.rsplit(")", 1)[1].split()[1])


def process_tree(root: int) -> list[int]:
    """`root` and all of its descendants alive right now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _parent_of(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def rss_bytes(pid: int) -> int:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def tree_rss_bytes(root: int) -> int:
    # A sum over processes counts shared pages once per process: an upper bound for a
    # multi-process server, exact for a single process.
    return sum(rss_bytes(pid) for pid in process_tree(root))


class RssSampler:
    """Samples the resident memory of a process tree every RSS_INTERVAL_S in a thread."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.peak = tree_rss_bytes(root)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(RSS_INTERVAL_S):
            self.peak = max(self.peak, tree_rss_bytes(self.root))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_bytes(self.root))


# ---------------------------------------------------------------------------------------------
# Sending with storescu and checking what arrived.


@dataclass(frozen=True)
class StoreRun:
    sent: int
    acknowledged: int
    indexed: int
    acknowledged_s: float
    """Until every storescu exited."""
    seconds: float
    """Until every instance was acknowledged and visible in the index."""

    @property
    def rate(self) -> float:
        return self.sent / self.seconds


def _storescu(server: Server, files: Sequence[Path], log: IO[bytes]) -> subprocess.Popen[bytes]:
    # -v prints one line per response: the only per-instance acknowledgement storescu reports.
    command = [
        "storescu",
        "-v",
        "-aet",
        CALLING_AE,
        "-aec",
        server.ae_title,
        LOCALHOST,
        str(server.dicom_port),
        *map(str, files),
    ]
    return subprocess.Popen(
        command, env=nodelay_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
    )


def _acknowledged(log: Path) -> int:
    with log.open(errors="replace") as lines:
        return sum(line.startswith(_ACKNOWLEDGED) for line in lines)


def _wait_indexed(server: Server, expected: int) -> int:
    deadline = time.monotonic() + INDEX_TIMEOUT_S
    count = server.instance_count()
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.02)
        count = server.instance_count()
    return count


def send(
    server: Server, batches: Sequence[Sequence[Path]], log_dir: Path, already: int = 0
) -> StoreRun:
    """Send each batch over its own association, all at once, and check every instance landed
    (`already`: instances the server held before, from the warm-up)."""
    logs = [log_dir / f"storescu-{index}.log" for index in range(len(batches))]
    handles = [log.open("wb") for log in logs]
    try:
        start = time.perf_counter()
        processes = [_storescu(server, b, h) for b, h in zip(batches, handles, strict=True)]
        codes = _wait_all(processes, SEND_TIMEOUT_S)
        acknowledged_s = time.perf_counter() - start
        sent = sum(len(batch) for batch in batches)
        indexed = _wait_indexed(server, already + sent) - already
        seconds = time.perf_counter() - start
    finally:
        for handle in handles:
            handle.close()
    run = StoreRun(sent, sum(map(_acknowledged, logs)), indexed, acknowledged_s, seconds)
    _check(server, run, codes, logs)
    return run


def _wait_all(processes: Sequence[subprocess.Popen[bytes]], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    try:
        return [p.wait(timeout=max(0.0, deadline - time.monotonic())) for p in processes]
    except subprocess.TimeoutExpired as error:
        for process in processes:
            process.kill()
            process.wait()
        raise ServerError(f"storescu still running after {timeout:.0f} s") from error


def _check(server: Server, run: StoreRun, codes: list[int], logs: list[Path]) -> None:
    if any(codes) or run.acknowledged != run.sent:
        worst = logs[max(range(len(codes)), key=lambda i: codes[i])]
        raise ServerError(
            f"{server.name}: {run.acknowledged}/{run.sent} instances acknowledged, storescu exit "
            f"codes {codes}; storescu output:\n{log_tail(worst)}"
        )
    if run.indexed != run.sent:
        raise ServerError(
            f"{server.name}: {run.sent} instances acknowledged but {run.indexed} indexed "
            f"after {INDEX_TIMEOUT_S:.0f} s"
        )


# ---------------------------------------------------------------------------------------------
# Runs and results.


@dataclass(frozen=True)
class BigRun:
    size_bytes: int
    seconds: float
    idle_rss_mb: float
    peak_rss_mb: float


@dataclass
class SystemResult:
    name: str
    version: str = "?"
    workers: int | None = None
    single: list[StoreRun] = field(default_factory=list)
    parallel: list[StoreRun] = field(default_factory=list)
    big: BigRun | None = None
    error: str | None = None


ServerFactory = Callable[[Path], Server]


@contextmanager
def running(factory: ServerFactory, work_dir: Path) -> Iterator[Server]:
    """A fresh server in an empty folder: the reset between runs. The folder goes afterwards."""
    # Flush what earlier steps wrote (a 1 GB object, a deleted store) so its writeback does not
    # compete with the run being timed.
    os.sync()
    server = factory(work_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


def split(files: Sequence[Path], parts: int) -> list[list[Path]]:
    """`files` dealt round-robin into `parts` non-empty lists."""
    return [list(files[index::parts]) for index in range(min(parts, len(files)))]


def store_run(
    result: SystemResult,
    factory: ServerFactory,
    batches: list[list[Path]],
    work: Path,
    warmup: list[Path],
) -> StoreRun:
    with running(factory, work) as server:
        result.version = server.version()
        if warmup:
            # Untimed: a server in service is warm (code loaded, statements prepared).
            send(server, [warmup], work)
        run = send(server, batches, work, already=len(warmup))
    _report(run)
    return run


def measure_big(factory: ServerFactory, big: Path, work_dir: Path) -> BigRun:
    with running(factory, work_dir) as server:
        idle = tree_rss_bytes(server.pid)
        with RssSampler(server.pid) as sampler:
            run = send(server, [[big]], work_dir)
    big_run = BigRun(big.stat().st_size, run.seconds, idle / MB, sampler.peak / MB)
    print(
        f"    {big_run.size_bytes / MB:.0f} MB in {big_run.seconds:.2f} s, "
        f"RSS idle {big_run.idle_rss_mb:.0f} MB, peak {big_run.peak_rss_mb:.0f} MB",
        flush=True,
    )
    return big_run


def bench_store(
    factories: dict[str, ServerFactory],
    series: list[Path],
    warmup: list[Path],
    options: Options,
) -> list[SystemResult]:
    """Single- and multi-association runs, the systems taking turns run by run (A B A B ...):
    this machine's disk slows as data piles up, and whole blocks per system would hand the
    later system a slower machine."""
    results = {
        name: SystemResult(name, workers=options.openpacs_workers if name == "openpacs" else None)
        for name in options.systems
    }
    steps = [
        ("1 association", [series], "single"),
        (f"{options.parallel} associations", split(series, options.parallel), "parallel"),
    ]
    for attempt in range(1, options.repeat + 1):
        for name, result in results.items():
            if result.error is not None:
                continue  # later runs would only repeat the failure
            work = options.work_dir / "runs" / name
            for label, batches, kind in steps:
                print(f"{name}: {label}, run {attempt}/{options.repeat} ...", flush=True)
                try:
                    run = store_run(result, factories[name], batches, work, warmup)
                    getattr(result, kind).append(run)
                except ServerError as error:
                    _fail(result, label, error)
                    break
    return list(results.values())


def bench_big(result: SystemResult, factory: ServerFactory, big: Path, options: Options) -> None:
    print(f"{result.name}:\n  big object ...", flush=True)
    try:
        result.big = measure_big(factory, big, options.work_dir / "runs" / result.name)
    except ServerError as error:
        _fail(result, "big object", error)


def _fail(result: SystemResult, label: str, error: ServerError) -> None:
    result.error = f"{label}: {error}"
    print("    FAILED (details at the end)", flush=True)


def _report(run: StoreRun) -> None:
    print(
        f"    {run.sent} sent, {run.acknowledged} acknowledged, {run.indexed} indexed; "
        f"acknowledged after {run.acknowledged_s:.2f} s, indexed after {run.seconds:.2f} s "
        f"-> {run.rate:.1f} inst/s",
        flush=True,
    )


# ---------------------------------------------------------------------------------------------
# Output.


def machine_info() -> list[tuple[str, str]]:
    storescu = subprocess.run(["storescu", "--version"], capture_output=True, text=True).stdout
    return [
        ("date", datetime.now().astimezone().isoformat(timespec="seconds")),
        ("nproc", str(len(os.sched_getaffinity(0)))),
        ("cpu", _cpu_model()),
        ("memory", f"{_meminfo_mb('MemTotal'):.0f} MB"),
        ("os", platform.platform()),
        ("python", platform.python_version()),
        ("sender", storescu.splitlines()[0].strip("$ ") if storescu else "storescu ?"),
    ]


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def _meminfo_mb(key: str) -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def median_rate(runs: Sequence[StoreRun]) -> float | None:
    return statistics.median(run.rate for run in runs) if runs else None


def _row(result: SystemResult) -> list[float | None]:
    return [
        median_rate(result.single),
        median_rate(result.parallel),
        result.big.seconds if result.big else None,
        result.big.peak_rss_mb if result.big else None,
    ]


def _workers(workers: int | None) -> str:
    if workers is None:
        return "-"
    return str(workers) if workers else f"auto ({os.cpu_count()})"


def table(results: Sequence[SystemResult], parallel: int) -> str:
    headers = [
        "system",
        "version",
        "workers",
        "1-assoc inst/s",
        f"{parallel}-assoc inst/s",
        "big s",
        "big peak RSS MB",
    ]
    rows = [[r.name, r.version, _workers(r.workers), *(_cell(v) for v in _row(r))] for r in results]
    by_name = {r.name: _row(r) for r in results}
    if "openpacs" in by_name and "orthanc" in by_name:
        ratios = [
            _ratio(a, b) for a, b in zip(by_name["openpacs"], by_name["orthanc"], strict=True)
        ]
        rows.append(["openpacs/orthanc", "", "", *(_cell(r, 2) for r in ratios)])
    widths = [max(len(line[i]) for line in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    )


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


# ---------------------------------------------------------------------------------------------
# Command line.


@dataclass(frozen=True)
class Options:
    count: int
    parallel: int
    big_gb: float
    skip_big: bool
    repeat: int
    systems: tuple[str, ...]
    openpacs_workers: int
    warmup: int
    work_dir: Path
    json: Path | None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="CT slices (512x512) to send")
    parser.add_argument("--parallel", type=int, default=4, help="associations in the parallel run")
    parser.add_argument("--big-gb", type=float, default=1.0, help="big object size, 10^9 bytes")
    parser.add_argument("--skip-big", action="store_true", help="skip the big-object run")
    parser.add_argument(
        "--repeat", type=int, default=1, help="timed runs per step; the table shows the median"
    )
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma-separated, from: " + ", ".join(SYSTEMS)
    )
    parser.add_argument(
        "--openpacs-workers",
        type=int,
        default=0,
        help="OPENPACS_STORESCP__WORKERS (0, the default: one receiver process per core)",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=20,
        help="slices of another series sent, untimed, to each fresh server before a timed run",
    )
    parser.add_argument("--tmp", type=Path, default=None, help="parent folder for temporary data")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser.parse_args(argv)


def _systems(text: str) -> tuple[str, ...]:
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = set(chosen) - set(SYSTEMS)
    if unknown or not chosen:
        raise SystemExit(f"--systems: choose from {', '.join(SYSTEMS)} (got {text!r})")
    return chosen


def generate_series(options: Options) -> list[Path]:
    start = time.perf_counter()
    series = ct_series(options.work_dir / "ct", options.count)
    print(f"generated {len(series)} CT slices in {time.perf_counter() - start:.1f} s", flush=True)
    return series


def generate_big(options: Options) -> Path:
    start = time.perf_counter()
    big = large_multiframe(options.work_dir / "big.dcm", int(options.big_gb * 1e9))
    size = big.stat().st_size
    print(
        f"generated a {size / MB:.0f} MB object ({size // MULTIFRAME_FRAME_BYTES} frames) "
        f"in {time.perf_counter() - start:.1f} s",
        flush=True,
    )
    return big


def factories(options: Options) -> dict[str, ServerFactory]:
    return {
        "orthanc": OrthancServer,
        "openpacs": lambda work: OpenpacsServer(work, options.openpacs_workers),
    }


def run(options: Options) -> list[SystemResult]:
    series = generate_series(options)
    makers = factories(options)
    warmup = (
        ct_series(options.work_dir / "warmup", options.warmup, seed=1) if options.warmup else []
    )
    results = bench_store(makers, series, warmup, options)
    if options.skip_big:
        return results
    # Big runs come last, after every system's timed small runs: writing a gigabyte leaves this
    # kind of VM's disk slow for seconds, and fsync-bound small runs would pay for it.
    big = generate_big(options)
    for result in results:
        if result.error is None:
            bench_big(result, makers[result.name], big, options)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    namespace = parse_args(argv)
    if shutil.which("storescu") is None:
        raise SystemExit("storescu not found: install dcmtk (apt-get install dcmtk)")
    if min(namespace.count, namespace.parallel, namespace.repeat) < 1:
        raise SystemExit("--count, --parallel and --repeat must be at least 1")
    if namespace.openpacs_workers < 0:
        raise SystemExit("--openpacs-workers must be 0 (one per core) or more")
    with tempfile.TemporaryDirectory(prefix="openpacs-bench-", dir=namespace.tmp) as tmp:
        options = Options(
            count=namespace.count,
            parallel=namespace.parallel,
            big_gb=namespace.big_gb,
            skip_big=namespace.skip_big,
            repeat=namespace.repeat,
            systems=_systems(namespace.systems),
            openpacs_workers=namespace.openpacs_workers,
            warmup=namespace.warmup,
            work_dir=Path(tmp),
            json=namespace.json,
        )
        machine = machine_info()
        for key, value in machine:
            print(f"{key:>7}: {value}")
        results = run(options)
    print()
    print(table(results, options.parallel))
    print(
        f"inst/s: median of {options.repeat} run(s), higher is better; big s and MB: lower is "
        "better. RSS sums the server's process tree."
    )
    if options.json is not None:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"machine": dict(machine), "results": [asdict(r) for r in results]}
        options.json.write_text(json.dumps(payload, indent=2))
    failed = [r for r in results if r.error]
    for result in failed:
        print(f"\n{result.name} failed, {result.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
