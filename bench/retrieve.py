"""Side-by-side retrieve benchmark: C-MOVE and C-GET of one CT study from openpacs and Orthanc.

Run from the repository root: `.venv/bin/python -m bench.retrieve --help`. Each system gets a
fresh server per run, loaded with the same generated study by dcmtk's storescu (untimed). Then,
timed: `movescu` asks it to C-MOVE the study to a dcmtk `storescp` (writing files), and `getscu`
C-GETs it into a folder. dcmtk is the client and the destination for both, so only the archive
differs. `TCP_NODELAY=1` everywhere.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from tests.generators import ct_series

from bench.ingest import OpenpacsServer, machine_info, running, send
from bench.orthanc import CALLING_AE, LOCALHOST, OrthancServer, ServerError, free_port, nodelay_env

SYSTEMS = ("orthanc", "openpacs")
DESTINATION_AE = "BENCHDEST"
RETRIEVE_TIMEOUT_S = 600.0


class QrOpenpacs(OpenpacsServer):
    """openpacs with its Q/R SCP on a known port and the destination in its node list."""

    def __init__(self, work_dir: Path, destination_port: int) -> None:
        super().__init__(work_dir, workers=0)
        self.destination_port = destination_port

    @property
    def qr_ae(self) -> str:
        return "QRSCP"

    def environment(self) -> dict[str, str]:
        node = {
            "name": "benchdest",
            "ae_title": DESTINATION_AE,
            "host": LOCALHOST,
            "port": self.destination_port,
        }
        return {**super().environment(), "OPENPACS_NODES": json.dumps([node])}


def orthanc(work_dir: Path, destination_port: int) -> OrthancServer:
    return OrthancServer(
        work_dir,
        {
            "DicomModalities": {
                "bench": [CALLING_AE, LOCALHOST, 104],  # the calling side; never called
                "dest": [DESTINATION_AE, LOCALHOST, destination_port],
            },
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowMove": True,
            "DicomAlwaysAllowGet": True,
        },
    )


@dataclass
class Result:
    name: str
    move: list[float] = field(default_factory=list)  # instances/s per run
    get: list[float] = field(default_factory=list)
    error: str | None = None


class Destination:
    """dcmtk storescp writing what it receives into a folder emptied between runs."""

    def __init__(self, folder: Path, ignore: bool) -> None:
        self.folder = folder
        self.ignore = ignore
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Destination:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = ["storescp", "-aet", DESTINATION_AE, "-od", str(self.folder), str(self.port)]
        if self.ignore:
            command.insert(1, "--ignore")
        log = (self.folder.parent / "storescp.log").open("wb")
        self.process = subprocess.Popen(command, env=nodelay_env(), stdout=log, stderr=log)
        log.close()
        time.sleep(0.3)  # storescp listens at once; an echo would add an association to its log
        return self

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    def take(self, expected: int) -> int:
        """How many files arrived since the last call (with --ignore: that storescp logged);
        the folder is emptied."""
        if self.ignore:
            return expected  # movescu's exit status and final response vouch for it
        files = [p for p in self.folder.iterdir() if p.is_file()]
        for path in files:
            path.unlink()
        return len(files)


def _retrieve(command: list[str], expected: int, count: Callable[[], int], what: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        command, env=nodelay_env(), capture_output=True, timeout=RETRIEVE_TIMEOUT_S, check=False
    )
    seconds = time.perf_counter() - started
    arrived = count()
    if result.returncode != 0 or arrived != expected:
        tail = (result.stdout + result.stderr).decode(errors="replace")[-2000:]
        raise ServerError(f"{what}: {arrived}/{expected} arrived, exit {result.returncode}\n{tail}")
    return expected / seconds


def _keys(study: str) -> list[str]:
    return ["-S", "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]


def move(port: int, ae: str, study: str, expected: int, destination: Destination) -> float:
    command = ["movescu", "-aet", CALLING_AE, "-aec", ae, "-aem", DESTINATION_AE]
    command += [*_keys(study), LOCALHOST, str(port)]
    return _retrieve(command, expected, lambda: destination.take(expected), "C-MOVE")


def get(port: int, ae: str, study: str, expected: int, folder: Path) -> float:
    folder.mkdir(parents=True, exist_ok=True)

    def take() -> int:
        files = list(folder.iterdir())
        for path in files:
            path.unlink()
        return len(files)

    command = ["getscu", "-aet", CALLING_AE, "-aec", ae, "-od", str(folder)]
    command += [*_keys(study), LOCALHOST, str(port)]
    return _retrieve(command, expected, take, "C-GET")


def one_run(
    name: str, result: Result, series: list[Path], warmup: list[Path], work: Path, ignore: bool
) -> None:
    study = str(dcmread(series[0], stop_before_pixels=True).StudyInstanceUID)
    warm_study = str(dcmread(warmup[0], stop_before_pixels=True).StudyInstanceUID)
    with Destination(work.parent / f"{name}-dest", ignore) as destination:
        factory: Callable[[Path], OrthancServer | QrOpenpacs]
        if name == "openpacs":
            factory = lambda folder: QrOpenpacs(folder, destination.port)  # noqa: E731
        else:
            factory = lambda folder: orthanc(folder, destination.port)  # noqa: E731
        with running(factory, work) as server:
            send(server, [series, warmup], work)
            port = server.qr_port if isinstance(server, QrOpenpacs) else server.dicom_port
            ae = server.qr_ae if isinstance(server, QrOpenpacs) else server.ae_title
            # Untimed: a server in service has moved something before.
            move(port, ae, warm_study, len(warmup), destination)
            result.move.append(move(port, ae, study, len(series), destination))
            result.get.append(get(port, ae, study, len(series), work.parent / f"{name}-got"))
    print(f"    C-MOVE {result.move[-1]:.1f} inst/s, C-GET {result.get[-1]:.1f} inst/s", flush=True)


def table(results: Sequence[Result]) -> str:
    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.1f}" if values else "-"

    lines = ["system    C-MOVE inst/s  C-GET inst/s"]
    for r in results:
        lines.append(f"{r.name:<9} {median(r.move):>13}  {median(r.get):>12}")
    by_name = {r.name: r for r in results}
    if {"openpacs", "orthanc"} <= set(by_name):
        a, b = by_name["openpacs"], by_name["orthanc"]
        if a.move and b.move and a.get and b.get:
            move_ratio = statistics.median(a.move) / statistics.median(b.move)
            get_ratio = statistics.median(a.get) / statistics.median(b.get)
            lines.append(f"{'ratio':<9} {move_ratio:>13.2f}  {get_ratio:>12.2f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.retrieve", description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="CT slices (512x512) in the study")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the table shows medians")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    parser.add_argument("--tmp", type=Path, default=None, help="parent folder for temporary data")
    parser.add_argument(
        "--ignore",
        action="store_true",
        help="the C-MOVE destination discards what it receives (storescp --ignore): measures "
        "the senders without the destination's disk writes",
    )
    args = parser.parse_args(argv)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not systems or set(systems) - set(SYSTEMS):
        raise SystemExit(f"--systems: choose from {', '.join(SYSTEMS)}")
    for tool in ("storescu", "storescp", "movescu", "getscu"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install dcmtk (apt-get install dcmtk)")
    for key, value in machine_info():
        print(f"{key:>7}: {value}")
    with tempfile.TemporaryDirectory(prefix="openpacs-bench-", dir=args.tmp) as tmp:
        work_dir = Path(tmp)
        series = ct_series(work_dir / "ct", args.count)
        warmup = ct_series(work_dir / "warmup", 5, seed=1)
        results = {name: Result(name) for name in systems}
        # Systems take turns run by run, so neither gets a machine slowed by the other's data.
        for attempt in range(1, args.repeat + 1):
            for name, result in results.items():
                if result.error is not None:
                    continue
                print(f"{name}: run {attempt}/{args.repeat} ...", flush=True)
                try:
                    one_run(name, result, series, warmup, work_dir / "runs" / name, args.ignore)
                except (ServerError, subprocess.TimeoutExpired) as error:
                    result.error = str(error)
                    print(f"    FAILED: {error}", flush=True)
        print()
        print(table(list(results.values())))
    return 1 if any(r.error for r in results.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
