"""Print benchmark: a 4x5 film of CT images received and composed by openpacs, next to dcmtk's
reference Print SCP (dcmprscp) receiving the same job.

Run from the repository root: `.venv/bin/python -m bench.print --help`. dcmpsprt renders the
print job once (20 CT slices, 12-bit, 14INX17IN, STANDARD\\4,5); dcmprscu sends it to each SCP
`--runs` times. The time is dcmprscu's whole run, association to release: for openpacs that
includes composing the film, storing it as a Secondary Capture and writing its PNG (the
N-ACTION is answered once the film is kept); dcmprscp stores the Hardcopy Grayscale images and a
Stored Print object.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from tests.generators import ct_series
from tests.integration.print_peers import DcmPrScp

from bench.ingest import OpenpacsServer
from bench.orthanc import free_port, nodelay_env

_CONFIG = """\
[[GENERAL]]
[APPLICATION]
LogDirectory = log
LogFile = general.log
LogLevel = ERROR
[PRINT]
Directory = spool
DeletePrintJobs = false
[DATABASE]
Directory = db
[LUT]
Directory = lut
[NETWORK]
aetitle = BENCH
[[COMMUNICATION]]
"""
_TARGET = """\
[{name}]
Type = PRINTER
Aetitle = {ae_title}
Hostname = 127.0.0.1
Port = {port}
MaxPDU = 65536
SupportsPresentationLUT = false
Supports12Bit = true
SupportsImageSize = true
SupportsDecimateCrop = false
SupportsTrim = true
DisplayFormat = 4,5
FilmSizeID = 14INX17IN
MagnificationType = REPLICATE\\BILINEAR
"""


class PrintServer(OpenpacsServer):
    """`openpacs serve` with its Print SCP on a port we know."""

    def __init__(self, work_dir: Path) -> None:
        super().__init__(work_dir, workers=1)
        self.print_port = free_port()

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env["OPENPACS_PRINTSCP__PORT"] = str(self.print_port)
        return env


def _job(work: Path, images: list[Path], targets: dict[str, tuple[str, int]]) -> Path:
    for folder in ("db", "spool", "lut", "log"):
        (work / folder).mkdir(parents=True, exist_ok=True)
    text = _CONFIG + "".join(
        _TARGET.format(name=name, ae_title=ae, port=port) for name, (ae, port) in targets.items()
    )
    (work / "dcmpstat.cfg").write_text(text)
    first = next(iter(targets))
    command = ["dcmpsprt", "-c", "dcmpstat.cfg", "-p", first, "--layout", "4", "5"]
    command += ["--filmsize", "14INX17IN", *map(str, images)]
    subprocess.run(command, cwd=work, env=nodelay_env({}), check=True, capture_output=True)
    (stored,) = (work / "db").glob("SP_*.dcm")
    return stored


def _send(work: Path, target: str, stored: Path) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        ["dcmprscu", "-c", "dcmpstat.cfg", "-p", target, str(stored)],
        cwd=work,
        env=nodelay_env({}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0 or "E:" in result.stderr:
        raise RuntimeError(f"dcmprscu to {target} failed: {result.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=5, help="prints per system (default 5)")
    parser.add_argument("--size", type=int, default=512, help="CT rows and columns (512)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="openpacs-bench-print-") as tmp:
        work = Path(tmp)
        images = ct_series(work / "ct", 20, rows=args.size, columns=args.size)
        server = PrintServer(work / "openpacs")
        server.start()
        try:
            with DcmPrScp(work / "dcmprscp") as reference:
                targets = {
                    "OPENPACS": ("PRINTSCP", server.print_port),
                    "DCMPRSCP": (reference.ae_title, reference.port),
                }
                stored = _job(work / "job", images, targets)
                times: dict[str, list[float]] = {name: [] for name in targets}
                for _ in range(args.runs):
                    for name in targets:
                        times[name].append(_send(work / "job", name, stored))
        finally:
            server.stop()
    results = {
        name: {
            "median_s": round(statistics.median(values), 3),
            "min_s": round(min(values), 3),
            "runs": [round(v, 3) for v in values],
        }
        for name, values in times.items()
    }
    print(f"4x5 film of {args.size}x{args.size} 12-bit CT, 14INX17IN, dcmprscu, {args.runs} runs")
    for name, row in results.items():
        print(f"  {name:9s} median {row['median_s']:.3f} s  min {row['min_s']:.3f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
