"""Side-by-side Modality Worklist benchmark: MWL C-FIND latency of openpacs and dcmtk's wlmscpfs
on the same generated items.

Run from the repository root: `.venv/bin/python -m bench.worklist --help`. N worklist items
(seeded: modalities, station AE titles, start dates over 60 days, Latin and Chinese names) go into
openpacs' index before its server starts, and the very same datasets into a folder of `.wl` files
that `wlmscpfs` reads (untimed). Then, timed: the queries a modality sends (its modality and a
start date, a date range, or its station AE title), each measured from an in-process pynetdicom
client, over a fresh association per query (what modalities do), over one association for all,
and optionally as one `findscu` process per query. Both systems get the same queries and must
give the same number of answers to each. `TCP_NODELAY=1` everywhere.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from ssl import SSLContext

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import UID, ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.transport import AddressInformation, AssociationSocket

from bench.ingest import OpenpacsServer, machine_info
from bench.orthanc import CALLING_AE, LOCALHOST, ServerError, free_port, log_tail, nodelay_env
from openpacs.dicom import codecs
from openpacs.dimse import engine
from openpacs.dimse.identifier import encode_identifier

SYSTEMS = ("openpacs", "wlmscpfs")
MODES = ("fresh", "one", "engine", "findscu")
MWL_FIND = "1.2.840.10008.5.1.4.31"
WLMSCPFS_AE = "WLMSCP"
FIRST_DAY = date(2026, 12, 1)
DAYS = 60
START_TIMEOUT_S = 30.0
QUERY_TIMEOUT_S = 120.0

# (modality, share of items, stations); weights roughly as in a mid-size hospital.
MODALITIES: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("CT", 30, ("CT01", "CT02", "CT03")),
    ("MR", 20, ("MR01", "MR02")),
    ("US", 20, ("US01", "US02", "US03", "US04")),
    ("CR", 12, ("CR01", "CR02")),
    ("DX", 10, ("DX01", "DX02")),
    ("MG", 5, ("MG01",)),
    ("XA", 3, ("XA01",)),
)
SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou")
CHINESE_SURNAMES = ("王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "欧阳", "司马")
CHINESE_GIVEN = ("伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳")
LATIN = (("Smith", "John"), ("Müller", "Anna"), ("García", "José"), ("Dupont", "Marie"))
GIVEN = ("Wei", "Fang", "Na", "Min", "Jing", "Li", "Qiang", "Lei", "Jun", "Yang")
PROCEDURES = {
    "CT": ("CT Chest", "胸部CT平扫", "CT Abdomen with contrast", "头颅CT"),
    "MR": ("MR Brain", "膝关节MRI", "MR Lumbar spine"),
    "US": ("US Abdomen", "甲状腺超声", "US Obstetric"),
    "CR": ("Chest PA", "胸部正位片"),
    "DX": ("Hand AP", "腰椎正侧位"),
    "MG": ("Screening mammography",),
    "XA": ("Coronary angiography",),
}


# ---------------------------------------------------------------------------------------------
# Items.


@dataclass(frozen=True)
class Item:
    """One generated item: what the query side needs to know, and the JSON openpacs takes."""

    modality: str
    station: str
    start_date: str
    body: dict[str, object]


def _day(offset: int) -> str:
    return (FIRST_DAY + timedelta(days=offset)).strftime("%Y%m%d")


def _name(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.35:  # Chinese only: openpacs romanises it for a modality without a charset
        return f"{rng.choice(CHINESE_SURNAMES)}^{rng.choice(CHINESE_GIVEN)}"
    if kind < 0.65:  # romanised and ideographic groups, as a Chinese RIS writes them
        family = rng.randrange(len(SURNAMES))  # the same surname in both groups
        romanised = f"{SURNAMES[family]}^{rng.choice(GIVEN)}"
        return f"{romanised}={CHINESE_SURNAMES[family]}^{rng.choice(CHINESE_GIVEN)}"
    if kind < 0.9:
        return f"{rng.choice(SURNAMES)}^{rng.choice(GIVEN)}"
    surname, given = rng.choice(LATIN)
    return f"{surname}^{given}"


def generate_items(count: int, seed: int = 0) -> list[Item]:
    """`count` items, the same for the same seed (Study Instance UIDs included)."""
    rng = random.Random(seed)
    weights = [share for _, share, _ in MODALITIES]
    out = []
    for index in range(count):
        modality, _, stations = rng.choices(MODALITIES, weights)[0]
        station = rng.choice(stations)
        start = _day(rng.randrange(DAYS))
        minute = rng.randrange(7 * 60, 19 * 60, 5)
        description = rng.choice(PROCEDURES[modality])
        code = {
            "value": f"{modality}{len(description):03d}",
            "scheme": "99LOCAL",
            "meaning": description,
        }
        body: dict[str, object] = {
            "patient_id": f"P{rng.randrange(10**7):07d}",
            "patient_name": _name(rng),
            "patient_birth_date": f"{rng.randrange(1930, 2024)}{rng.randrange(1, 13):02d}"
            f"{rng.randrange(1, 29):02d}",
            "patient_sex": rng.choice(("M", "F")),
            "accession_number": f"A{index:08d}",
            "referring_physician": rng.choice(("Zhou^Ming", "李^医生", "Brown^Paul")),
            "requested_procedure_id": f"RP{index:07d}",
            "requested_procedure_description": description,
            "requested_procedure_codes": [code],
            "priority": rng.choice(("ROUTINE", "ROUTINE", "ROUTINE", "HIGH", "STAT")),
            "study_instance_uid": f"2.25.{rng.getrandbits(127)}",
            # Type 2 sequences, empty (wlmscpfs warns about every item that lacks them).
            "attributes": {"00081110": {"vr": "SQ"}, "00081120": {"vr": "SQ"}},
            "step": {
                "id": f"SPS{index:07d}",
                "modality": modality,
                "station_ae_titles": [station],
                "station_name": f"{station}-ROOM",
                "start_date": start,
                "start_time": f"{minute // 60:02d}{minute % 60:02d}00",
                "description": description,
                "performing_physician": rng.choice(("Sun^Tech", "孙^技师", "")) or None,
                "location": f"Room {station[-1]}",
                # wlmscpfs ignores an item whose code sequences are empty.
                "protocol_codes": [code],
            },
        }
        out.append(Item(modality, station, start, body))
    return out


def load_openpacs(database_url: str, storage_root: Path, items: Sequence[Item]) -> float:
    """Write the items into the index the server will open, in one transaction; seconds."""
    from openpacs.archive.core import open_core
    from openpacs.config import DatabaseSettings, Settings, StorageSettings
    from openpacs.worklist import items as worklist_items
    from openpacs.worklist.spec import ItemSpec

    started = time.perf_counter()
    settings = Settings(
        database=DatabaseSettings(url=database_url), storage=StorageSettings(root=storage_root)
    )
    core = open_core(settings)
    try:
        with core.writing() as session:
            for item in items:
                worklist_items.create(session, ItemSpec.model_validate(item.body))
    finally:
        core.engine.dispose()
    return time.perf_counter() - started


def write_wlmscpfs_folder(folder: Path, items: Sequence[Item]) -> float:
    """The same datasets as Part-10 `.wl` files in `folder` (the called AE's subfolder), with
    the `lockfile` wlmscpfs wants; seconds."""
    from openpacs.worklist.spec import ItemSpec, build_dataset

    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lockfile").touch()
    for index, item in enumerate(items):
        spec = ItemSpec.model_validate(item.body)
        ds = build_dataset(spec, str(spec.study_instance_uid))
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = UID(MWL_FIND)
        ds.file_meta.MediaStorageSOPInstanceUID = ds.StudyInstanceUID
        ds.save_as(folder / f"item{index:06d}.wl", enforce_file_format=True)
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# Queries.

ITEM_KEYS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyInstanceUID",
    "RequestedProcedureDescription",
    "RequestedProcedureID",
    "RequestedProcedurePriority",
)
STEP_KEYS = (
    "ScheduledStationAETitle",
    "ScheduledProcedureStepStartDate",
    "ScheduledProcedureStepStartTime",
    "Modality",
    "ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepDescription",
    "ScheduledStationName",
    "ScheduledProcedureStepLocation",
    "ScheduledProcedureStepID",
)
KINDS = ("modality+date", "modality+range", "station+date")


@dataclass(frozen=True)
class Query:
    kind: str
    modality: str = ""
    station: str = ""
    dates: str = ""  # YYYYMMDD or YYYYMMDD-YYYYMMDD
    expected: int = 0  # from the generated items

    def dataset(self) -> Dataset:
        """The identifier, as a modality without a character set sends it (it gets Chinese
        text in pinyin from openpacs)."""
        ds = Dataset()
        for keyword in ITEM_KEYS:
            setattr(ds, keyword, "")
        step = Dataset()
        for keyword in STEP_KEYS:
            setattr(step, keyword, "")
        step.ScheduledProcedureStepStartDate = self.dates
        if self.modality:
            step.Modality = self.modality
        if self.station:
            step.ScheduledStationAETitle = self.station
        ds.ScheduledProcedureStepSequence = DicomSequence([step])
        return ds

    def findscu_keys(self) -> list[str]:
        keys = [f"{keyword}=" for keyword in ITEM_KEYS]
        values = {keyword: "" for keyword in STEP_KEYS}
        values["ScheduledProcedureStepStartDate"] = self.dates
        if self.modality:
            values["Modality"] = self.modality
        if self.station:
            values["ScheduledStationAETitle"] = self.station
        keys += [f"ScheduledProcedureStepSequence[0].{k}={v}" for k, v in values.items()]
        return [arg for key in keys for arg in ("-k", key)]


def make_queries(items: Sequence[Item], count: int, seed: int = 1) -> list[Query]:
    """`count` queries, the three kinds in turn, on modalities, stations and days drawn from
    the items (so a busy modality is asked about more often, as in service)."""
    rng = random.Random(seed)
    by_day: dict[tuple[str, str], int] = {}
    by_station: dict[tuple[str, str], int] = {}
    for item in items:
        by_day[item.modality, item.start_date] = by_day.get((item.modality, item.start_date), 0) + 1
        key = (item.station, item.start_date)
        by_station[key] = by_station.get(key, 0) + 1
    queries = []
    for index in range(count):
        picked = rng.choice(items)
        kind = KINDS[index % len(KINDS)]
        if kind == "modality+date":
            expected = by_day.get((picked.modality, picked.start_date), 0)
            queries.append(Query(kind, picked.modality, dates=picked.start_date, expected=expected))
        elif kind == "modality+range":
            first = date(
                int(picked.start_date[:4]), int(picked.start_date[4:6]), int(picked.start_date[6:])
            )
            days = [(first + timedelta(days=d)).strftime("%Y%m%d") for d in range(3)]
            expected = sum(by_day.get((picked.modality, day), 0) for day in days)
            dates = f"{days[0]}-{days[-1]}"
            queries.append(Query(kind, picked.modality, dates=dates, expected=expected))
        else:
            expected = by_station.get((picked.station, picked.start_date), 0)
            queries.append(
                Query(kind, station=picked.station, dates=picked.start_date, expected=expected)
            )
    return queries


# ---------------------------------------------------------------------------------------------
# Servers.


class WorklistOpenpacs(OpenpacsServer):
    """openpacs with its worklist SCP on a known port and the items in its index before it
    starts."""

    def __init__(self, work_dir: Path, items: Sequence[Item]) -> None:
        super().__init__(work_dir, workers=1)
        self.items = items
        self.worklist_port = free_port()
        self.load_seconds = 0.0

    @property
    def worklist_ae(self) -> str:
        return "WORKLISTSCP"

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "OPENPACS_WORKLIST__PORT": str(self.worklist_port)}

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.load_seconds = load_openpacs(
            f"sqlite:///{self.work_dir / 'index.db'}", self.work_dir / "storage", self.items
        )
        super().start()


class Wlmscpfs:
    """dcmtk's file-based worklist SCP over `folder/<WLMSCPFS_AE>/*.wl` (forks per association,
    its default)."""

    name = "wlmscpfs"

    def __init__(self, work_dir: Path, items: Sequence[Item]) -> None:
        self.work_dir = work_dir
        self.items = items
        self.port = free_port()
        self.write_seconds = 0.0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.work_dir / "wlmscpfs.log"

    def start(self) -> None:
        self.write_seconds = write_wlmscpfs_folder(self.work_dir / "db" / WLMSCPFS_AE, self.items)
        command = [dcmtk("wlmscpfs"), "-dfp", str(self.work_dir / "db"), str(self.port)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command, env=nodelay_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"wlmscpfs exited while starting:\n{log_tail(self.log)}")
            if echo(self.port, WLMSCPFS_AE):
                return
            time.sleep(0.05)
        raise ServerError(f"wlmscpfs not ready after {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def version(self) -> str:
        out = subprocess.run([dcmtk("wlmscpfs"), "--version"], capture_output=True, text=True)
        return out.stdout.splitlines()[0].strip("$ ") if out.stdout else "?"


def dcmtk(tool: str) -> str:
    """dcmtk's tool, never pynetdicom's app of the same name that the venv puts on PATH."""
    for folder in ("/usr/bin", "/usr/local/bin"):
        if (Path(folder) / tool).exists():
            return str(Path(folder) / tool)
    found = shutil.which(tool)
    if found is None or ".venv" in found:
        raise SystemExit(f"{tool} not found: install dcmtk (apt-get install dcmtk)")
    return found


def echo(port: int, called: str) -> bool:
    command = [dcmtk("echoscu"), "-aet", CALLING_AE, "-aec", called, LOCALHOST, str(port)]
    try:
        return (
            subprocess.run(command, env=nodelay_env(), capture_output=True, timeout=10).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


# ---------------------------------------------------------------------------------------------
# Clients: each returns (answers, seconds) for one query.


class NoDelayAE(AE):
    """pynetdicom's AE with TCP_NODELAY on its sockets, as dcmtk's TCP_NODELAY=1: a C-FIND
    request goes out as two writes (command, identifier), and Nagle would hold the second
    until the peer's delayed ACK (~40 ms)."""

    def _create_socket(
        self,
        assoc: Association,
        address: AddressInformation,
        tls_args: tuple[SSLContext, str] | None,
    ) -> AssociationSocket:
        sock = super()._create_socket(assoc, address, tls_args)
        if sock.socket is not None:
            sock.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def _client() -> AE:
    ae = NoDelayAE(ae_title=CALLING_AE)
    ae.add_requested_context(MWL_FIND)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = QUERY_TIMEOUT_S
    return ae


def _associate(ae: AE, port: int, called: str) -> Association:
    assoc = ae.associate(LOCALHOST, port, ae_title=called)
    if not assoc.is_established:
        raise ServerError(f"association to {called} on port {port} not accepted")
    _responses_only_to_requests(assoc)
    return assoc


def _responses_only_to_requests(assoc: Association) -> None:
    """Keep pynetdicom's reactor thread off the responses.

    Between requests that thread takes whatever message is queued, to serve it as a request
    from the peer; `send_c_find` pauses it by waiting for a flag the thread may not have
    cleared yet, and about one query in 300 on a used association then loses a pending
    response ("Received unexpected C-FIND service message"). This client serves nothing, so
    the thread's non-blocking reads find nothing; the request methods block and get all."""
    get_msg = assoc.dimse.get_msg

    def blocking_only(block: bool = False) -> tuple[int | None, object]:
        return get_msg(block=True) if block else (None, None)

    setattr(assoc.dimse, "get_msg", blocking_only)  # noqa: B010


def _find(assoc: Association, identifier: Dataset) -> int:
    answers = 0
    for status, _ in assoc.send_c_find(identifier, MWL_FIND):
        code = getattr(status, "Status", None)
        if code is None:
            raise ServerError("C-FIND: no response (association aborted or timed out)")
        if code in (0xFF00, 0xFF01):
            answers += 1
        elif code != 0x0000:
            raise ServerError(f"C-FIND failed with status 0x{code:04X}")
    return answers


class EngineClient:
    """openpacs' own DIMSE engine as the SCU over one association: a blocking socket, no
    reactor thread, answers counted but not decoded, so what it times is the server and the
    loopback (pynetdicom adds ~0.65 ms per answer on this machine; see bench/find.py)."""

    def __init__(self, port: int, called: str) -> None:
        identifiers = (codecs.EXPLICIT_VR_LE,)
        self.link = engine.request_association(
            LOCALHOST,
            port,
            calling_ae=CALLING_AE,
            called_ae=called,
            proposals=[engine.Proposal(MWL_FIND, identifiers)],
            log=logging.getLogger("bench.worklist"),
            timeout=QUERY_TIMEOUT_S,
        )
        self.context = min(self.link.contexts)

    def find(self, identifier: Dataset) -> int:
        message_id = self.link.next_message_id()
        command = engine.encode_command(
            {
                engine.AFFECTED_SOP_CLASS: engine.ui(MWL_FIND),
                engine.COMMAND_FIELD: engine.us(engine.C_FIND_RQ),
                engine.MESSAGE_ID: engine.us(message_id),
                engine.PRIORITY: engine.us(0),
                engine.DATASET_TYPE: engine.us(engine.DATASET_PRESENT),
            }
        )
        data = encode_identifier(identifier, codecs.EXPLICIT_VR_LE)
        self.link.sock.sendall(self.link.frames(self.context, command, data))
        answers = 0
        while True:
            status = self.link.next_response().status
            if status in (0xFF00, 0xFF01):
                answers += 1
            elif status == 0x0000:
                return answers
            else:
                raise ServerError(f"C-FIND failed with status {status!r}")

    def close(self) -> None:
        self.link.release(10)


class Client:
    """Queries one system in one mode."""

    def __init__(self, mode: str, port: int, called: str) -> None:
        self.mode = mode
        self.port = port
        self.called = called
        self.ae = _client()
        self.assoc: Association | None = None
        self.engine: EngineClient | None = None

    def __enter__(self) -> Client:
        if self.mode == "one":
            self.assoc = _associate(self.ae, self.port, self.called)
        if self.mode == "engine":
            self.engine = EngineClient(self.port, self.called)
        return self

    def __exit__(self, *_: object) -> None:
        if self.assoc is not None:
            self.assoc.release()
            self.assoc = None
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        self.ae.shutdown()

    def query(self, query: Query) -> tuple[int, float]:
        identifier = query.dataset()
        if self.mode == "findscu":
            return self._findscu(query)
        started = time.perf_counter()
        if self.engine is not None:
            answers = self.engine.find(identifier)
        elif self.assoc is not None:
            answers = _find(self.assoc, identifier)
        else:
            assoc = _associate(self.ae, self.port, self.called)
            try:
                answers = _find(assoc, identifier)
            finally:
                assoc.release()
        return answers, time.perf_counter() - started

    def _findscu(self, query: Query) -> tuple[int, float]:
        # -v prints "Find Response: N (Pending)" per answer, then the final response.
        command = [dcmtk("findscu"), "-v", "-W", "-aet", CALLING_AE, "-aec", self.called]
        command += [*query.findscu_keys(), LOCALHOST, str(self.port)]
        started = time.perf_counter()
        result = subprocess.run(
            command, env=nodelay_env(), capture_output=True, text=True, timeout=QUERY_TIMEOUT_S
        )
        seconds = time.perf_counter() - started
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise ServerError(f"findscu exit {result.returncode}:\n{output[-1500:]}")
        pending = sum(
            "Find Response:" in line and "(Pending" in line for line in output.splitlines()
        )
        return pending, seconds


# ---------------------------------------------------------------------------------------------
# Runs and results.


@dataclass
class Series:
    """One system in one mode: every timed query's seconds, answer count and kind, over all
    runs."""

    seconds: list[float] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    def only(self, kind: str) -> Series:
        chosen = [i for i, k in enumerate(self.kinds) if k == kind]
        return Series(
            [self.seconds[i] for i in chosen],
            [self.answers[i] for i in chosen],
            [kind] * len(chosen),
        )

    def median_ms(self) -> float | None:
        return statistics.median(self.seconds) * 1000 if self.seconds else None

    def p95_ms(self) -> float | None:
        if not self.seconds:
            return None
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000


@dataclass
class SystemResult:
    name: str
    version: str = "?"
    load_seconds: float = 0.0
    modes: dict[str, Series] = field(default_factory=dict)
    error: str | None = None


def one_run(
    result: SystemResult, mode: str, port: int, called: str, queries: Sequence[Query]
) -> None:
    series = result.modes.setdefault(mode, Series())
    with Client(mode, port, called) as client:
        for query in queries:
            answers, seconds = client.query(query)
            if answers != query.expected:
                raise ServerError(
                    f"{result.name} ({mode}): {answers} answers to {query}, "
                    f"the items hold {query.expected}"
                )
            series.seconds.append(seconds)
            series.answers.append(answers)
            series.kinds.append(query.kind)
    run = series.seconds[-len(queries) :]
    print(
        f"    {mode}: {len(queries)} queries, median {statistics.median(run) * 1000:.1f} ms, "
        f"max {max(run) * 1000:.1f} ms",
        flush=True,
    )


@contextmanager
def serving(server: WorklistOpenpacs | Wlmscpfs) -> Iterator[None]:
    server.start()
    try:
        yield
    finally:
        server.stop()


def table(results: Sequence[SystemResult], modes: Sequence[str]) -> str:
    """Median and p95 per mode: all queries, then each kind; openpacs/wlmscpfs below each."""
    headers = ["queries", "system"]
    for mode in modes:
        headers += [f"{mode} median ms", f"{mode} p95 ms"]
    rows = []
    for kind in ("all", *KINDS):
        cells: dict[str, list[float | None]] = {}
        for r in results:
            values: list[float | None] = []
            for mode in modes:
                series = r.modes.get(mode, Series())
                series = series if kind == "all" else series.only(kind)
                values += [series.median_ms(), series.p95_ms()]
            cells[r.name] = values
            rows.append([kind, r.name, *(_cell(v) for v in values)])
        if {"openpacs", "wlmscpfs"} <= set(cells):
            ratios = [
                a / b if a is not None and b else None
                for a, b in zip(cells["openpacs"], cells["wlmscpfs"], strict=True)
            ]
            rows.append([kind, "openpacs/wlmscpfs", *(_cell(v, 2) for v in ratios)])
    widths = [max(len(line[i]) for line in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    )


def _cell(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# ---------------------------------------------------------------------------------------------
# Command line.


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.worklist", description=__doc__)
    parser.add_argument("--items", type=int, default=10_000, help="worklist items generated")
    parser.add_argument(
        "--queries", type=int, default=60, help="timed queries per system, mode and run"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs; systems take turns run by run")
    parser.add_argument(
        "--modes",
        default="fresh,one",
        help="comma-separated, from: fresh (an association per query), one (one association "
        "for all), findscu (a dcmtk findscu process per query)",
    )
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    parser.add_argument("--warmup", type=int, default=5, help="untimed queries per system first")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated items")
    parser.add_argument("--tmp", type=Path, default=None, help="parent folder for temporary data")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    return parser.parse_args(argv)


def _choose(text: str, allowed: Sequence[str], option: str) -> list[str]:
    chosen = [name.strip() for name in text.split(",") if name.strip()]
    if not chosen or set(chosen) - set(allowed):
        raise SystemExit(f"{option}: choose from {', '.join(allowed)} (got {text!r})")
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    systems = _choose(args.systems, SYSTEMS, "--systems")
    modes = _choose(args.modes, MODES, "--modes")
    if min(args.items, args.queries, args.repeat) < 1:
        raise SystemExit("--items, --queries and --repeat must be at least 1")
    for tool in ("wlmscpfs", "echoscu", "findscu"):
        dcmtk(tool)
    machine = machine_info()
    for key, value in machine:
        print(f"{key:>7}: {value}")
    items = generate_items(args.items, args.seed)
    queries = make_queries(items, args.queries * args.repeat + args.warmup)
    warmup, timed = queries[: args.warmup], queries[args.warmup :]
    answers = [q.expected for q in timed]
    print(
        f"{len(items)} items; {len(timed)} timed queries per system and mode, "
        f"{statistics.median(answers):.0f} answers each (median, max {max(answers)})",
        flush=True,
    )
    results = {name: SystemResult(name) for name in systems}
    with tempfile.TemporaryDirectory(prefix="openpacs-bench-", dir=args.tmp) as tmp:
        work = Path(tmp)
        servers: dict[str, WorklistOpenpacs | Wlmscpfs] = {
            "openpacs": WorklistOpenpacs(work / "openpacs", items),
            "wlmscpfs": Wlmscpfs(work / "wlmscpfs", items),
        }
        endpoints: dict[str, tuple[int, str]] = {}
        with _all_serving([servers[name] for name in systems]):
            for name in systems:
                server, result = servers[name], results[name]
                result.version = server.version()
                if isinstance(server, WorklistOpenpacs):
                    result.load_seconds = server.load_seconds
                    endpoints[name] = (server.worklist_port, server.worklist_ae)
                else:
                    result.load_seconds = server.write_seconds
                    endpoints[name] = (server.port, WLMSCPFS_AE)
                print(f"{name}: {len(items)} items loaded in {result.load_seconds:.1f} s")
                try:
                    one_run(SystemResult(name), "fresh", *endpoints[name], warmup)
                except ServerError as error:
                    result.error = f"warm-up: {error}"
            for attempt in range(args.repeat):
                batch = timed[attempt * args.queries : (attempt + 1) * args.queries]
                for name in systems:  # systems take turns run by run
                    result = results[name]
                    if result.error is not None:
                        continue
                    print(f"{name}: run {attempt + 1}/{args.repeat} ...", flush=True)
                    try:
                        for mode in modes:
                            one_run(result, mode, *endpoints[name], batch)
                    except (ServerError, subprocess.TimeoutExpired) as error:
                        result.error = str(error)
                        print(f"    FAILED: {error}", flush=True)
    print()
    print(table(list(results.values()), modes))
    print(
        f"ms per query (association, C-FIND, every answer; release for 'fresh'), median and "
        f"95th percentile over {len(timed)} queries; lower is better."
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": dict(machine),
            "items": args.items,
            "queries": [asdict(q) for q in timed],
            "results": [asdict(r) for r in results.values()],
        }
        args.json.write_text(json.dumps(payload, indent=2))
    failed = [r for r in results.values() if r.error]
    for result in failed:
        print(f"\n{result.name} failed: {result.error}", file=sys.stderr)
    return 1 if failed else 0


@contextmanager
def _all_serving(servers: Sequence[WorklistOpenpacs | Wlmscpfs]) -> Iterator[None]:
    if not servers:
        yield
        return
    with serving(servers[0]), _all_serving(servers[1:]):
        yield


if __name__ == "__main__":
    sys.exit(main())
