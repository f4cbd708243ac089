"""Side-by-side DICOMweb benchmark: openpacs against Orthanc (with its DICOMweb plugin).

Run from the repository root: `.venv/bin/python -m bench.dicomweb --help`. Both systems are
loaded once, untimed, with the same generated data by dcmtk's storescu (a 200-slice CT study and
many one-image studies for the searches). Then each timed run restarts a system on its loaded
folder (so "cold" means the first request its process answers) and measures, over HTTP with
httpx, what a viewer such as OHIF asks for: series metadata, a series retrieve as stored, every
frame with 6 requests in flight, study searches, a rendered image and a thumbnail. The systems
take turns run by run. Every answer is checked against the generated data (instances, frames,
bytes, matches); a system that answers wrongly gets its row failed, not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urlencode

import httpx
from pydicom import dcmread
from pydicom.uid import generate_uid
from tests.generators import ct_series

from bench.ingest import OpenpacsServer, Server, machine_info, send, split
from bench.orthanc import OrthancServer, ServerError

SYSTEMS = ("orthanc", "openpacs")
DICOMWEB = "/dicom-web"
MB = 1_000_000  # MB/s in 10^6 bytes, as network rates are usually given
HTTP_TIMEOUT_S = 300.0
LOAD_ASSOCIATIONS = 4

DICOM_AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
# What OHIF's image loader sends for frames.
FRAMES_AS_STORED = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
JPEG = "image/jpeg"

# Repetitions inside one run (the table shows the median, or percentiles, of every sample).
WARM_METADATA = 5
RETRIEVES = 3
FRAME_ROUNDS = 3
QIDO_ROUNDS = 20
RENDERS = 5

# Generated search data: one-image studies spread over surnames and five years of dates.
SURNAMES = ("SMITH", "JONES", "TAYLOR", "BROWN", "WILLIAMS", "WILSON", "JOHNSON", "DAVIES")
FIRST_DATE = date(2020, 1, 1)
DATE_SPAN_DAYS = 5 * 365
QIDO_LIMIT = 101  # what OHIF's study list asks for


class BenchServer(Server, Protocol):
    """What the benchmark needs of a running system (OrthancServer, OpenpacsServer): what the
    ingest benchmark needs, and where its HTTP API answers."""

    @property
    def base_url(self) -> str: ...
    @property
    def credentials(self) -> tuple[str, str] | None:
        """HTTP Basic user name and password, or None for a server without sign-in."""
        ...


class WrongAnswer(ServerError):
    """A system answered, but not what was stored: its row fails."""


class Unsupported(ServerError):
    """A system does not offer a resource (404, 400 ...): that cell shows n/a."""


# ---------------------------------------------------------------------------------------------
# Data.


@dataclass(frozen=True)
class SmallStudy:
    patient_name: str
    patient_id: str
    study_date: str


@dataclass(frozen=True)
class Study:
    """The CT study every per-study figure is measured on."""

    study: str
    series: str
    instances: list[str]  # SOP Instance UIDs in slice order
    files: list[Path]

    @property
    def bytes(self) -> int:
        return sum(path.stat().st_size for path in self.files)

    @property
    def middle(self) -> str:
        return self.instances[len(self.instances) // 2]


def ct_study(out_dir: Path, count: int) -> Study:
    files = ct_series(out_dir, count)
    headers = [dcmread(path, stop_before_pixels=True) for path in files]
    return Study(
        study=str(headers[0].StudyInstanceUID),
        series=str(headers[0].SeriesInstanceUID),
        instances=[str(ds.SOPInstanceUID) for ds in headers],
        files=files,
    )


def small_studies(out_dir: Path, count: int) -> tuple[list[Path], list[SmallStudy]]:
    """`count` studies of one 16x16 CT image each: names cycle through SURNAMES, dates through
    DATE_SPAN_DAYS days from FIRST_DATE (one template, a few attributes changed per file)."""
    (template,) = ct_series(out_dir / "template", 1, rows=16, columns=16, seed=7)
    ds = dcmread(template)
    shutil.rmtree(out_dir / "template")
    paths, studies = [], []
    for index in range(count):
        study = SmallStudy(
            patient_name=f"{SURNAMES[index % len(SURNAMES)]}^P{index:05d}",
            patient_id=f"P{index:07d}",
            study_date=(FIRST_DATE + timedelta(days=index % DATE_SPAN_DAYS)).strftime("%Y%m%d"),
        )
        ds.PatientName = study.patient_name
        ds.PatientID = study.patient_id
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = study.study_date
        ds.AccessionNumber = f"A{index:07d}"
        ds.StudyInstanceUID = generate_uid()
        ds.SeriesInstanceUID = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.FrameOfReferenceUID = generate_uid()
        path = out_dir / f"S{index:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
        studies.append(study)
    return paths, studies


@dataclass(frozen=True)
class Search:
    """A QIDO-RS study search and how many answers it must give."""

    key: str
    label: str
    params: dict[str, str]
    expected: int


def searches(studies: Sequence[SmallStudy], ct: Study) -> list[Search]:
    """The study searches timed: OHIF's study list, a name prefix, a month, one patient."""
    month = ("20230301", "20230331")
    in_month = sum(month[0] <= s.study_date <= month[1] for s in studies)
    prefix = SURNAMES[0][:3]
    named = sum(s.patient_name.startswith(prefix) for s in studies)
    total = len(studies) + 1  # and the CT study (BENCH^CT, 2024-01-02)
    one = studies[len(studies) // 2].patient_id if studies else "BENCH001"
    limit = str(QIDO_LIMIT)
    return [
        Search(
            "qido_list",
            "QIDO study list (OHIF: limit 101, includefield)",
            {"limit": limit, "offset": "0", "includefield": "00081030,00080060"},
            min(QIDO_LIMIT, total),
        ),
        Search(
            "qido_name",
            f"QIDO PatientName={prefix}*",
            {"PatientName": f"{prefix}*", "limit": limit},
            min(QIDO_LIMIT, named),
        ),
        Search(
            "qido_date",
            f"QIDO StudyDate={month[0]}-{month[1]}",
            {"StudyDate": f"{month[0]}-{month[1]}", "limit": limit},
            min(QIDO_LIMIT, in_month),
        ),
        Search("qido_id", "QIDO PatientID (one study)", {"PatientID": one}, 1),
    ]


# ---------------------------------------------------------------------------------------------
# What is measured, and the targets of issue #5.

Statistic = Literal["median", "p50", "p95"]


@dataclass(frozen=True)
class Target:
    """Met when openpacs/Orthanc is at most (or at least) `ratio`, or openpacs' own figure is
    under `below`."""

    text: str
    ratio_at_most: float | None = None
    ratio_at_least: float | None = None
    below: float | None = None

    def met(self, openpacs: float | None, ratio: float | None) -> bool | None:
        if self.below is not None:
            return None if openpacs is None else openpacs < self.below
        if ratio is None:
            return None
        if self.ratio_at_most is not None:
            return ratio <= self.ratio_at_most
        assert self.ratio_at_least is not None
        return ratio >= self.ratio_at_least


@dataclass(frozen=True)
class Metric:
    samples: str  # key into SystemResult.samples
    label: str
    unit: str
    statistic: Statistic = "median"
    higher_is_better: bool = False
    target: Target | None = None


def metrics(searched: Sequence[Search], count: int, parallel: int) -> list[Metric]:
    qido = [
        Metric(s.key, f"{s.label} {stat}", "ms", stat, target=_p95_target(stat))
        for s in searched
        for stat in ("p50", "p95")
    ]
    return [
        Metric("metadata_cold", "series metadata, cold (first request)", "ms"),
        Metric(
            "metadata_warm",
            "series metadata, warm",
            "ms",
            target=Target("<= 0.5x Orthanc", ratio_at_most=0.5),
        ),
        Metric("study_metadata", "study metadata, warm", "ms"),
        Metric(
            "retrieve",
            "series retrieve, transfer-syntax=*",
            "MB/s",
            higher_is_better=True,
            target=Target(">= Orthanc", ratio_at_least=1.0),
        ),
        Metric(
            "frames",
            f"{count} frames, {parallel} requests in flight",
            "ms",
            target=Target("<= 0.5x Orthanc", ratio_at_most=0.5),
        ),
        *qido,
        Metric("rendered", "rendered instance (JPEG)", "ms"),
        Metric("thumbnail", "series thumbnail (JPEG)", "ms"),
    ]


def _p95_target(statistic: Statistic) -> Target | None:
    return Target("p95 < 50 ms", below=50.0) if statistic == "p95" else None


# ---------------------------------------------------------------------------------------------
# Requests, each checked.


def _client(
    identity: bool, connections: int = 1, auth: tuple[str, str] | None = None
) -> httpx.Client:
    # trust_env=False: a proxy from the environment must never see traffic meant for 127.0.0.1.
    # httpx asks for gzip like a browser does; a system that compresses pays for it on both
    # ends (unless `identity`: no compression asked for).
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    headers = {"Accept-Encoding": "identity"} if identity else None
    return httpx.Client(
        timeout=HTTP_TIMEOUT_S, trust_env=False, limits=limits, headers=headers, auth=auth
    )


def _get(client: httpx.Client, url: str, accept: str | None = None) -> tuple[httpx.Response, float]:
    """The whole answer and the seconds it took; anything but 200 raises."""
    headers = {"Accept": accept} if accept else {}
    started = time.perf_counter()
    try:
        response = client.get(url, headers=headers)
    except httpx.HTTPError as error:
        raise ServerError(f"GET {url}: {error}") from error
    seconds = time.perf_counter() - started
    if response.status_code in (400, 404, 405, 501):
        raise Unsupported(f"GET {url}: {response.status_code} {response.text[:200]}")
    if response.status_code != 200:
        raise WrongAnswer(f"GET {url}: {response.status_code} {response.text[:300]}")
    return response, seconds


def _boundary(response: httpx.Response) -> bytes:
    content_type: str = response.headers.get("content-type", "")
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"').encode()
    raise WrongAnswer(f"{response.url}: no multipart boundary in {response.headers}")


def _json_list(response: httpx.Response) -> list[dict[str, object]]:
    try:
        value = response.json()
    except ValueError as error:
        raise WrongAnswer(f"{response.url}: not JSON: {error}") from error
    if not isinstance(value, list):
        raise WrongAnswer(f"{response.url}: a JSON array was expected")
    return value


def _sop_uids(items: Sequence[dict[str, object]]) -> list[str]:
    uids = []
    for item in items:
        element = item.get("00080018")
        values = element.get("Value") if isinstance(element, dict) else None
        uids.append(str(values[0]) if isinstance(values, list) and values else "")
    return uids


def metadata(client: httpx.Client, root: str, ct: Study, *, study: bool = False) -> float:
    url = f"{root}/studies/{ct.study}"
    url += "/metadata" if study else f"/series/{ct.series}/metadata"
    response, seconds = _get(client, url, "application/dicom+json")
    uids = _sop_uids(_json_list(response))
    if sorted(uids) != sorted(ct.instances):
        raise WrongAnswer(f"{url}: {len(uids)} instances described, {len(ct.instances)} stored")
    return seconds


def retrieve(client: httpx.Client, root: str, ct: Study) -> float:
    """MB/s of the series' multipart answer, read as it streams; parts and bytes checked."""
    url = f"{root}/studies/{ct.study}/series/{ct.series}"
    started = time.perf_counter()
    received = parts = 0
    with client.stream("GET", url, headers={"Accept": DICOM_AS_STORED}) as response:
        if response.status_code != 200:
            raise WrongAnswer(f"GET {url}: {response.status_code} {response.read()[:300]!r}")
        delimiter = b"--" + _boundary(response)
        edge = len(delimiter) - 1
        tail = b""
        for chunk in response.iter_bytes():
            received += len(chunk)
            # Delimiters inside the chunk, and one cut by the previous chunk's end.
            parts += chunk.count(delimiter) + (tail + chunk[:edge]).count(delimiter)
            tail = (tail + chunk)[-edge:] if len(chunk) < edge else chunk[-edge:]
    seconds = time.perf_counter() - started
    parts -= 1  # the closing delimiter
    expected = ct.bytes
    if parts != len(ct.instances) or abs(received - expected) > 0.01 * expected + 1000 * parts:
        raise WrongAnswer(
            f"{url}: {parts} parts, {received} bytes; stored: {len(ct.instances)} instances, "
            f"{expected} bytes"
        )
    return received / MB / seconds


def _single_part(response: httpx.Response) -> bytes:
    body = response.content
    boundary = _boundary(response)
    start = body.find(b"\r\n\r\n", body.find(b"--" + boundary))
    end = body.rfind(b"\r\n--" + boundary)
    if start < 0 or end < start:
        raise WrongAnswer(f"{response.url}: not one multipart part")
    return body[start + 4 : end]


def frames(
    root: str,
    ct: Study,
    data: Data,
    parallel: int,
    identity: bool,
    auth: tuple[str, str] | None = None,
) -> float:
    """Seconds to fetch frame 1 of every instance, `parallel` requests in flight (OHIF-style)."""
    urls = [
        f"{root}/studies/{ct.study}/series/{ct.series}/instances/{sop}/frames/1"
        for sop in ct.instances
    ]

    def fetch(index: int) -> None:
        response, _ = _get(client, urls[index], FRAMES_AS_STORED)
        frame = _single_part(response)
        sop = ct.instances[index]
        if len(frame) != data.frame_bytes or frame != data.reference_frames.get(sop, frame):
            raise WrongAnswer(
                f"{urls[index]}: {len(frame)} bytes, not the stored frame "
                f"({data.frame_bytes} bytes)"
            )

    with _client(identity, parallel, auth) as client, ThreadPoolExecutor(parallel) as pool:
        started = time.perf_counter()
        list(pool.map(fetch, range(len(urls))))
        return time.perf_counter() - started


def search(client: httpx.Client, root: str, query: Search) -> float:
    url = f"{root}/studies?{urlencode(query.params, safe='*,')}"
    response, seconds = _get(client, url, "application/dicom+json")
    found = len(_json_list(response))
    if found != query.expected:
        raise WrongAnswer(f"{url}: {found} studies, {query.expected} expected")
    return seconds


def picture(client: httpx.Client, url: str) -> float:
    response, seconds = _get(client, url, JPEG)
    if not response.content.startswith(b"\xff\xd8"):
        raise WrongAnswer(f"{url}: not a JPEG ({response.headers.get('content-type')})")
    return seconds


# ---------------------------------------------------------------------------------------------
# Runs.


@dataclass
class SystemResult:
    name: str
    version: str = "?"
    samples: dict[str, list[float]] = field(default_factory=dict)
    unsupported: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    def add(self, key: str, value: float) -> None:
        self.samples.setdefault(key, []).append(value)


@dataclass(frozen=True)
class Data:
    ct: Study
    small: list[Path]
    searches: list[Search]
    frame_bytes: int
    reference_frames: dict[str, bytes]  # first, middle and last slice: compared byte for byte


ServerFactory = Callable[[Path], BenchServer]


@contextmanager
def serving(factory: ServerFactory, work_dir: Path) -> Iterator[BenchServer]:
    """A new server process on `work_dir` (its data kept between processes)."""
    os.sync()  # what earlier steps wrote must not be flushed during a timed run
    server = factory(work_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def load(factory: ServerFactory, work_dir: Path, data: Data, result: SystemResult) -> None:
    started = time.perf_counter()
    with serving(factory, work_dir) as server:
        result.version = server.version()
        everything = [*data.ct.files, *data.small]
        send(server, split(everything, LOAD_ASSOCIATIONS), work_dir)
    print(f"    {len(everything)} instances in {time.perf_counter() - started:.1f} s", flush=True)


def measure(server: BenchServer, data: Data, result: SystemResult, options: Options) -> None:
    root = server.base_url + DICOMWEB
    ct = data.ct
    series_url = f"{root}/studies/{ct.study}/series/{ct.series}"
    with _client(options.identity, auth=server.credentials) as client:
        # First: the process has answered nothing but its readiness probe.
        result.add("metadata_cold", 1000 * metadata(client, root, ct))
        for _ in range(WARM_METADATA):
            result.add("metadata_warm", 1000 * metadata(client, root, ct))
        for _ in range(WARM_METADATA):
            result.add("study_metadata", 1000 * metadata(client, root, ct, study=True))
        for _ in range(RETRIEVES):
            result.add("retrieve", retrieve(client, root, ct))
        for _ in range(FRAME_ROUNDS):
            seconds = frames(root, ct, data, options.parallel, options.identity, server.credentials)
            result.add("frames", 1000 * seconds)
        for _ in range(QIDO_ROUNDS):
            for query in data.searches:  # interleaved, so no query has the machine to itself
                result.add(query.key, 1000 * search(client, root, query))
        optional = [
            ("rendered", f"{series_url}/instances/{ct.middle}/rendered"),
            ("thumbnail", f"{series_url}/thumbnail"),
        ]
        for key, url in optional:
            if key in result.unsupported:
                continue
            try:
                picture(client, url)  # untimed: the first one loads the imaging code
                for _ in range(RENDERS):
                    result.add(key, 1000 * picture(client, url))
            except Unsupported as error:
                result.unsupported[key] = str(error)


def _report(result: SystemResult, before: dict[str, int]) -> None:
    """This run's figures (`before`: how many samples each key had before it)."""

    def this_run(key: str, unit: str) -> str:
        values = result.samples.get(key, [])[before.get(key, 0) :]
        return f"{statistics.median(values):.1f} {unit}" if values else "n/a"

    print(
        f"    metadata cold {this_run('metadata_cold', 'ms')}, "
        f"warm {this_run('metadata_warm', 'ms')}; retrieve {this_run('retrieve', 'MB/s')}; "
        f"frames {this_run('frames', 'ms')}; QIDO list {this_run('qido_list', 'ms')}",
        flush=True,
    )


def run(options: Options, data: Data) -> list[SystemResult]:
    makers: dict[str, ServerFactory] = {
        "orthanc": OrthancServer,
        "openpacs": lambda work: OpenpacsServer(work, workers=0),
    }
    results = {name: SystemResult(name) for name in options.systems}
    folders = {name: options.work_dir / "systems" / name for name in options.systems}
    for name, result in results.items():
        print(f"{name}: loading (untimed) ...", flush=True)
        try:
            load(makers[name], folders[name], data, result)
        except ServerError as error:
            _fail(result, "loading", error)
    # Systems take turns run by run, so neither gets a machine slowed by the other's work.
    for attempt in range(1, options.repeat + 1):
        for name, result in results.items():
            if result.error is not None:
                continue
            print(f"{name}: run {attempt}/{options.repeat} ...", flush=True)
            before = {key: len(values) for key, values in result.samples.items()}
            try:
                with serving(makers[name], folders[name]) as server:
                    measure(server, data, result, options)
                _report(result, before)
            except ServerError as error:
                _fail(result, f"run {attempt}", error)
    return list(results.values())


def _fail(result: SystemResult, label: str, error: ServerError) -> None:
    kind = "wrong answer" if isinstance(error, WrongAnswer) else "error"
    result.error = f"{label}: {kind}: {error}"
    print("    FAILED (details at the end)", flush=True)


# ---------------------------------------------------------------------------------------------
# Output.


def statistic(values: Sequence[float], which: Statistic) -> float | None:
    if not values:
        return None
    if which in ("median", "p50"):
        return statistics.median(values)
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[94]


@dataclass(frozen=True)
class Row:
    metric: Metric
    figures: dict[str, float | None]
    ratio: float | None
    met: bool | None


def rows(results: Sequence[SystemResult], measured: Sequence[Metric]) -> list[Row]:
    table = []
    for metric in measured:
        figures = {
            r.name: statistic(r.samples.get(metric.samples, []), metric.statistic)
            for r in results
            if r.error is None
        }
        ours, theirs = figures.get("openpacs"), figures.get("orthanc")
        ratio = ours / theirs if ours is not None and theirs else None
        met = metric.target.met(ours, ratio) if metric.target else None
        table.append(Row(metric, figures, ratio, met))
    return table


def _cell(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _verdict(row: Row) -> str:
    if row.metric.target is None:
        return ""
    met = {True: "met", False: "NOT met", None: "?"}[row.met]
    return f"{row.metric.target.text}: {met}"


def render_table(results: Sequence[SystemResult], table: Sequence[Row]) -> str:
    names = [r.name for r in results if r.error is None]
    headers = ["figure", "unit", *names, "openpacs/orthanc", "target"]
    lines = [
        [
            row.metric.label,
            row.metric.unit + (" (higher is better)" if row.metric.higher_is_better else ""),
            *(_cell(row.figures.get(name)) for name in names),
            _cell(row.ratio, 2),
            _verdict(row),
        ]
        for row in table
    ]
    widths = [max(len(line[i]) for line in [headers, *lines]) for i in range(len(headers))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *lines]
    )


# ---------------------------------------------------------------------------------------------
# Command line.


@dataclass(frozen=True)
class Options:
    count: int
    studies: int
    parallel: int
    repeat: int
    identity: bool
    systems: tuple[str, ...]
    work_dir: Path
    json: Path | None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dicomweb", description=__doc__)
    parser.add_argument("--count", type=int, default=200, help="CT slices (512x512) in the study")
    parser.add_argument(
        "--studies", type=int, default=10_000, help="one-image studies added for the searches"
    )
    parser.add_argument("--parallel", type=int, default=6, help="frame requests in flight")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per system; the table shows medians"
    )
    parser.add_argument(
        "--identity",
        action="store_true",
        help="ask for uncompressed answers (Accept-Encoding: identity; default: gzip, deflate)",
    )
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma-separated, from: " + ", ".join(SYSTEMS)
    )
    parser.add_argument("--tmp", type=Path, default=None, help="parent folder for temporary data")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser.parse_args(argv)


def _systems(text: str) -> tuple[str, ...]:
    chosen = tuple(name.strip() for name in text.split(",") if name.strip())
    if not chosen or set(chosen) - set(SYSTEMS):
        raise SystemExit(f"--systems: choose from {', '.join(SYSTEMS)} (got {text!r})")
    return chosen


def generate(options: Options) -> Data:
    started = time.perf_counter()
    ct = ct_study(options.work_dir / "ct", options.count)
    small, studies = small_studies(options.work_dir / "small", options.studies)
    reference = {}
    for index in sorted({0, len(ct.files) // 2, len(ct.files) - 1}):
        reference[ct.instances[index]] = bytes(dcmread(ct.files[index]).PixelData)
    header = dcmread(ct.files[0], stop_before_pixels=True)
    print(
        f"generated {len(ct.files)} CT slices and {len(small)} one-image studies in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return Data(
        ct=ct,
        small=small,
        searches=searches(studies, ct),
        frame_bytes=int(header.Rows) * int(header.Columns) * int(header.BitsAllocated) // 8,
        reference_frames=reference,
    )


def main(argv: Sequence[str] | None = None) -> int:
    namespace = parse_args(argv)
    if shutil.which("storescu") is None:
        raise SystemExit("storescu not found: install dcmtk (apt-get install dcmtk)")
    if min(namespace.count, namespace.parallel, namespace.repeat) < 1 or namespace.studies < 0:
        raise SystemExit("--count, --parallel and --repeat must be at least 1, --studies 0 or more")
    with tempfile.TemporaryDirectory(prefix="openpacs-bench-", dir=namespace.tmp) as tmp:
        options = Options(
            count=namespace.count,
            studies=namespace.studies,
            parallel=namespace.parallel,
            repeat=namespace.repeat,
            identity=namespace.identity,
            systems=_systems(namespace.systems),
            work_dir=Path(tmp),
            json=namespace.json,
        )
        machine = machine_info()
        for key, value in machine:
            print(f"{key:>7}: {value}")
        data = generate(options)
        results = run(options, data)
    measured = metrics(data.searches, options.count, options.parallel)
    table = rows(results, measured)
    print()
    print(render_table(results, table))
    print(
        f"Medians (or percentiles) over {options.repeat} run(s); ms: lower is better. "
        f"{options.studies + 1} studies in the index."
    )
    for result in results:
        for key, reason in result.unsupported.items():
            print(f"{result.name}: {key} n/a: {reason.splitlines()[0]}")
    if options.json is not None:
        options.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": dict(machine),
            "options": {
                "count": options.count,
                "studies": options.studies,
                "parallel": options.parallel,
                "repeat": options.repeat,
                "identity": options.identity,
            },
            "table": [
                {
                    "figure": row.metric.label,
                    "unit": row.metric.unit,
                    **row.figures,
                    "ratio": row.ratio,
                    "target": row.metric.target.text if row.metric.target else None,
                    "met": row.met,
                }
                for row in table
            ],
            "results": [asdict(r) for r in results],
        }
        options.json.write_text(json.dumps(payload, indent=2))
    failed = [r for r in results if r.error]
    for result in failed:
        print(f"\n{result.name} failed, {result.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
