"""Codec benchmark: openpacs's transcoding and rendering next to GDCM's and dcmtk's tools.

Run from the repository root: `.venv/bin/python -m bench.codecs --help`. Every operation works
on the same generated 512x512 16-bit CT slices, file to file: the C tool is one process per
slice (as a PACS that shells out would run it), openpacs is a function call per slice in this
process (as the server runs it). Both sides read the input file and write the output file.

Process start-up is part of a C tool's cost when used per file, but it is not codec work, so
the table also shows each tool's per-slice time minus its own start-up (the median time of the
same program printing its version), the fairer comparison of the codecs themselves.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)
from tests.generators import ct_series

from bench.ingest import machine_info
from openpacs.dicom import frames, render
from openpacs.dicom.codecs import transcode_file

THUMBNAIL_SIZE = 128

Ours = Callable[[Path, Path], None]


@dataclass(frozen=True)
class Operation:
    name: str
    source: str  # "native" or the transfer syntax the input slices are first converted to
    ours: Ours
    tool: Sequence[str]  # the command, before the input and output paths
    tool_version: Sequence[str]  # the same program doing no work: its start-up cost


def _transcode_to(target: UID) -> Ours:
    def run(src: Path, dst: Path) -> None:
        transcode_file(src, dst, target)

    return run


def _thumbnail(src: Path, dst: Path) -> None:
    ds = dcmread(src, stop_before_pixels=True)
    pixels = frames.decode_frame(src, 0)
    dst.write_bytes(render.thumbnail(ds, pixels, size=THUMBNAIL_SIZE))


OPERATIONS = (
    Operation(
        "J2K lossless encode",
        "native",
        _transcode_to(JPEG2000Lossless),
        ("gdcmconv", "--j2k"),
        ("gdcmconv", "--version"),
    ),
    Operation(
        "J2K lossless decode",
        JPEG2000Lossless,
        _transcode_to(ExplicitVRLittleEndian),
        ("gdcmconv", "--raw"),
        ("gdcmconv", "--version"),
    ),
    Operation(
        "JPEG-LS lossless encode",
        "native",
        _transcode_to(JPEGLSLossless),
        ("dcmcjpls",),
        ("dcmcjpls", "--version"),
    ),
    Operation(
        "JPEG-LS lossless decode",
        JPEGLSLossless,
        _transcode_to(ExplicitVRLittleEndian),
        ("dcmdjpls",),
        ("dcmdjpls", "--version"),
    ),
    Operation(
        "RLE encode",
        "native",
        _transcode_to(RLELossless),
        ("dcmcrle",),
        ("dcmcrle", "--version"),
    ),
    Operation(
        "RLE decode",
        RLELossless,
        _transcode_to(ExplicitVRLittleEndian),
        ("dcmdrle",),
        ("dcmdrle", "--version"),
    ),
    Operation(
        f"JPEG thumbnail {THUMBNAIL_SIZE} px",
        "native",
        _thumbnail,
        # the object's first window, scaled to fit 128 px, as the thumbnail does
        ("dcmj2pnm", "--write-jpeg", "+Wi", "1", "+Sxv", str(THUMBNAIL_SIZE)),
        ("dcmj2pnm", "--version"),
    ),
)


@dataclass
class Result:
    name: str
    ours_ms: float
    tool_ms: float
    startup_ms: float
    tool: str

    @property
    def tool_work_ms(self) -> float:
        return max(self.tool_ms - self.startup_ms, 0.0)


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000


def _run_tool(command: Sequence[str | Path]) -> None:
    subprocess.run([str(c) for c in command], check=True, capture_output=True)


def prepare_inputs(slices: Sequence[Path], source: str, work: Path) -> list[Path]:
    """The slices in the operation's input syntax (converted once, untimed)."""
    if source == "native":
        return list(slices)
    folder = work / f"in-{source}"
    folder.mkdir(exist_ok=True)
    converted = []
    for path in slices:
        out = folder / path.name
        transcode_file(path, out, UID(source))
        converted.append(out)
    return converted


def measure(operation: Operation, inputs: Sequence[Path], work: Path, rounds: int) -> Result:
    out_dir = work / "out"
    out_dir.mkdir(exist_ok=True)
    ours: list[float] = []
    tool: list[float] = []
    startup: list[float] = []
    for _ in range(rounds):
        # Alternate sides slice by slice so drift on a noisy machine hits both alike.
        for path in inputs:
            mine = out_dir / f"ours-{path.name}"
            theirs = out_dir / f"tool-{path.name}"
            ours.append(_timed(lambda p=path, o=mine: operation.ours(p, o)))  # type: ignore[misc]
            tool.append(_timed(lambda p=path, o=theirs: _run_tool([*operation.tool, p, o])))  # type: ignore[misc]
            startup.append(_timed(lambda: _run_tool(operation.tool_version)))
    return Result(
        operation.name,
        statistics.median(ours),
        statistics.median(tool),
        statistics.median(startup),
        operation.tool[0],
    )


def table(results: Sequence[Result]) -> str:
    header = (
        "| operation | openpacs ms | tool | tool ms | tool ms − start-up | speed vs tool "
        "| speed vs tool's codec work |"
    )
    lines = [header, "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r.name} | {r.ours_ms:.1f} | {r.tool} | {r.tool_ms:.1f} | {r.tool_work_ms:.1f} "
            f"| {r.tool_ms / r.ours_ms:.2f}x | {r.tool_work_ms / r.ours_ms:.2f}x |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.codecs", description=__doc__)
    parser.add_argument("--count", type=int, default=20, help="CT slices (512x512, 16-bit)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the slices")
    parser.add_argument("--only", default="", help="operations whose name contains this text")
    parser.add_argument("--tmp", type=Path, default=None, help="parent folder for temporary data")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    chosen = [op for op in OPERATIONS if options.only.lower() in op.name.lower()]
    missing = sorted({op.tool[0] for op in chosen if shutil.which(op.tool[0]) is None})
    if missing:
        raise SystemExit(f"not found: {', '.join(missing)}: apt-get install dcmtk libgdcm-tools")
    for key, value in machine_info():
        print(f"{key:>7}: {value}")
    results = []
    with tempfile.TemporaryDirectory(prefix="openpacs-codecs-", dir=options.tmp) as tmp:
        work = Path(tmp)
        slices = ct_series(work / "ct", options.count)
        for operation in chosen:
            inputs = prepare_inputs(slices, operation.source, work)
            result = measure(operation, inputs, work, options.rounds)
            print(
                f"{result.name}: openpacs {result.ours_ms:.1f} ms, {result.tool} "
                f"{result.tool_ms:.1f} ms (start-up {result.startup_ms:.1f} ms)",
                flush=True,
            )
            results.append(result)
    print()
    print(table(results))
    print(
        f"median ms per slice over {options.count} slices x {options.rounds} rounds; "
        "speed > 1: openpacs faster. openpacs: in-process call, file to file; tool: one process "
        "per slice."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
