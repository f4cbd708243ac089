"""Side-by-side C-FIND latency benchmark: STUDY-level queries by PatientName wildcard against
openpacs and Orthanc, each holding the same generated studies.

Run from the repository root: `.venv/bin/python -m bench.find --help`. Both servers start fresh
and receive the same studies (one small image each) from dcmtk's storescu, untimed. Then, timed,
the same queries go to both, the systems taking turns query by query, measured three ways:

- `assoc`: an in-process pynetdicom SCU keeps one association per system open; each C-FIND is
  timed from the request to the final response;
- `fresh`: a new association per query; timed from the A-ASSOCIATE-RQ to the final response
  (the release afterwards is not timed);
- `findscu`: one dcmtk `findscu` process per query, timed from its start to its exit (process
  start-up and association included: what a script calling findscu sees; noisy).

Every query must get the same number of matches from both systems, and a final Success; if not,
the run fails (exit code 1) listing the queries that differ.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage
from pynetdicom import AE, evt

from bench.ingest import OpenpacsServer, machine_info, send, split
from bench.orthanc import (
    CALLING_AE,
    LOCALHOST,
    OrthancServer,
    ServerError,
    nodelay_env,
)
from openpacs.dicom import codecs
from openpacs.dimse import engine
from openpacs.dimse.identifier import encode_identifier

SYSTEMS = ("orthanc", "openpacs")
MODES = ("engine", "assoc", "fresh", "findscu")
FINDSCU_TIMEOUT_S = 60.0
PENDING = (0xFF00, 0xFF01)
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"

# Keys a workstation's study list asks for (returned; only PatientName is matched on).
RETURN_KEYS = (
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyInstanceUID",
    "StudyDate",
    "StudyTime",
    "AccessionNumber",
    "StudyID",
    "StudyDescription",
    "ReferringPhysicianName",
    "ModalitiesInStudy",
    "NumberOfStudyRelatedSeries",
    "NumberOfStudyRelatedInstances",
)
CHARSET = "ISO_IR 192"  # every query declares UTF-8, so the ideographic ones need nothing else


# ---------------------------------------------------------------------------------------------
# Generated studies: varied names (a fifth Chinese), dates over many years.


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_COMMON = _words(
    "SMITH JOHNSON WILLIAMS BROWN JONES MILLER DAVIS WILSON ANDERSON TAYLOR THOMAS MOORE "
    "MARTIN JACKSON THOMPSON WHITE HARRIS CLARK LEWIS ROBINSON WALKER YOUNG ALLEN KING WRIGHT "
    "SCOTT HILL GREEN ADAMS BAKER NELSON CARTER MITCHELL ROBERTS TURNER PHILLIPS CAMPBELL "
    "PARKER EVANS EDWARDS COLLINS STEWART MORRIS MURPHY COOK ROGERS MORGAN PETERSON COOPER "
    "REED DUBOIS MARTINEZ GARCIA ROSSI FERRARI MULLER SCHMIDT SCHNEIDER FISCHER WEBER NOVAK "
    "KOWALSKI"
)
_STEMS = _words(
    "AL BER CAR DAL EV FER GAR HAL IN JO KEL LAN MAR NOR OL PER QUIN ROS SAN TOR VAL WIL"
)
_ENDINGS = _words("SON MANN BERG TON LEY DEZ OVA SKI RI ELLI ARD ING")
_GIVEN = _words(
    "JAMES MARY JOHN PATRICIA ROBERT JENNIFER MICHAEL LINDA WILLIAM ELIZABETH DAVID BARBARA "
    "RICHARD SUSAN JOSEPH JESSICA THOMAS SARAH CHARLES KAREN DANIEL NANCY MATTHEW LISA "
    "ANTHONY BETTY MARK MARGARET PAUL SANDRA STEVEN ASHLEY ANDREW KIMBERLY KENNETH EMILY "
    "JOSHUA DONNA KEVIN MICHELLE BRIAN CAROL GEORGE AMANDA EDWARD MELISSA RONALD DEBORAH ANNA "
    "PIERRE HANS"
)
# Pinyin and characters: the commonest Chinese surnames and given names.
_CHINESE_SURNAMES = (
    ("ZHANG", "张"),
    ("WANG", "王"),
    ("LI", "李"),
    ("LIU", "刘"),
    ("CHEN", "陈"),
    ("YANG", "杨"),
    ("HUANG", "黄"),
    ("ZHAO", "赵"),
    ("WU", "吴"),
    ("ZHOU", "周"),
    ("XU", "徐"),
    ("SUN", "孙"),
    ("MA", "马"),
    ("ZHU", "朱"),
    ("HU", "胡"),
    ("GUO", "郭"),
    ("HE", "何"),
    ("GAO", "高"),
    ("LIN", "林"),
    ("LUO", "罗"),
)
_CHINESE_GIVEN = (
    ("WEI", "伟"),
    ("FANG", "芳"),
    ("NA", "娜"),
    ("MIN", "敏"),
    ("JING", "静"),
    ("LI", "丽"),
    ("QIANG", "强"),
    ("LEI", "磊"),
    ("JUN", "军"),
    ("YANG", "洋"),
    ("YONG", "勇"),
    ("YAN", "艳"),
    ("JIE", "杰"),
    ("JUAN", "娟"),
    ("TAO", "涛"),
    ("MING", "明"),
    ("CHAO", "超"),
    ("XIU", "秀"),
    ("XIA", "霞"),
    ("PING", "平"),
)
SURNAMES = _COMMON + tuple(s + e for s in _STEMS for e in _ENDINGS)
MODALITIES = ("CT", "MR", "CR", "DX", "US", "MG", "PT", "NM", "XA")
DESCRIPTIONS = ("CHEST", "ABDOMEN", "HEAD", "KNEE LEFT", "SPINE", "PELVIS", "HAND", "THORAX")
STUDIES_PER_PATIENT = 1.4  # 10,000 studies: about 7,000 patients
SIDE = 64  # pixels: 64x64, 8 bits


# The commonest Chinese surnames are written in pinyin with an ideographic group, the others in
# characters only in the first group (as many devices in China write them): openpacs matches a
# value without '=' against every component group and Orthanc against the whole stored value, so
# '徐*' would find 'XU^TAO=徐^涛' in openpacs only. Keeping the two sets of surnames apart keeps
# the match counts comparable.
PINYIN_SURNAMES = 12


def patient_name(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.8:
        return f"{rng.choice(SURNAMES)}^{rng.choice(_GIVEN)}"
    given, han_given = rng.choice(_CHINESE_GIVEN)
    if roll < 0.9:
        surname, han_surname = rng.choice(_CHINESE_SURNAMES[:PINYIN_SURNAMES])
        return f"{surname}^{given}={han_surname}^{han_given}"
    _, han_surname = rng.choice(_CHINESE_SURNAMES[PINYIN_SURNAMES:])
    return f"{han_surname}^{han_given}"


def _uid(rng: random.Random) -> str:
    return f"2.25.{rng.getrandbits(126)}"


def _date(rng: random.Random, first_year: int = 2008, days: int = 19 * 365) -> str:
    day = dt.date(first_year, 1, 1) + dt.timedelta(days=rng.randrange(days))
    return day.strftime("%Y%m%d")


def generate_studies(folder: Path, count: int, seed: int = 0) -> tuple[list[Path], list[str]]:
    """`count` one-instance studies as files in `folder`, and the distinct patient names."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    patients = [
        (f"P{index:07d}", patient_name(rng), _date(rng, 1930, 90 * 365), rng.choice("MFO"))
        for index in range(max(1, round(count / STUDIES_PER_PATIENT)))
    ]
    pixels = bytes(range(256)) * (SIDE * SIDE // 256)
    paths = []
    for index in range(count):
        # Every patient has a study; the rest go to patients drawn at random.
        patient_id, name, birth, sex = (
            patients[index] if index < len(patients) else (rng.choice(patients))
        )
        sop_uid = UID(_uid(rng))
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SpecificCharacterSet = "ISO_IR 100" if name.isascii() else CHARSET
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.PatientName = name
        ds.PatientID = patient_id
        ds.PatientBirthDate = birth
        ds.PatientSex = sex
        ds.StudyInstanceUID = _uid(rng)
        ds.StudyDate = _date(rng)
        ds.StudyTime = f"{rng.randrange(7, 20):02d}{rng.randrange(60):02d}{rng.randrange(60):02d}"
        ds.AccessionNumber = f"A{index:08d}"
        ds.StudyID = f"{index % 100000}"
        ds.StudyDescription = rng.choice(DESCRIPTIONS)
        ds.ReferringPhysicianName = f"{rng.choice(SURNAMES)}^{rng.choice(_GIVEN)}"
        ds.SeriesInstanceUID = _uid(rng)
        ds.SeriesNumber = 1
        ds.Modality = rng.choice(MODALITIES)
        ds.ConversionType = "WSD"
        ds.InstanceNumber = 1
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = ds.Columns = SIDE
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        ds.PixelRepresentation = 0
        ds.PixelData = pixels
        path = folder / f"{index:06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths, sorted({name for _, name, _, _ in patients})


# ---------------------------------------------------------------------------------------------
# Queries: PatientName wildcards of several shapes, drawn from the names present.


@dataclass(frozen=True)
class Query:
    kind: str
    pattern: str


def _parts(value: str, group: int = 0) -> tuple[str, str]:
    surname, _, given = value.split("=")[group].partition("^")
    return surname, given


def _query(kind: str, rng: random.Random, names: Sequence[str]) -> Query:
    if kind == "han*":  # characters in the first group
        surname, given = _parts(rng.choice([n for n in names if not n.isascii() and "=" not in n]))
        return Query(kind, f"{surname}*" if rng.random() < 0.5 else f"{surname}^{given}*")
    if kind == "*=han*":  # the ideographic group of a pinyin name
        surname, given = _parts(rng.choice([n for n in names if "=" in n]), 1)
        return Query(kind, f"*={surname}*" if rng.random() < 0.5 else f"*={surname}^{given}*")
    surname, given = _parts(rng.choice([n for n in names if n.isascii() or "=" in n]))
    if kind == "surname*":
        return Query(kind, f"{surname}*")
    if kind == "surname^given*":
        return Query(kind, f"{surname}^{given}*")
    if kind == "abc*":
        return Query(kind, f"{surname[:3]}*")
    if kind == "*infix*":
        start = rng.randrange(max(1, len(surname) - 3))
        return Query(kind, f"*{surname[start : start + 4]}*")
    if kind == "s?rname*":
        at = rng.randrange(1, len(surname)) if len(surname) > 1 else 0
        return Query(kind, f"{surname[:at]}?{surname[at + 1 :]}*")
    if kind == "lowercase*":
        return Query(kind, f"{surname.lower()}^{given[:1].lower()}*")
    raise ValueError(kind)


QUERY_KINDS = (
    "surname*",
    "surname*",
    "surname^given*",
    "surname^given*",
    "abc*",
    "*infix*",
    "s?rname*",
    "lowercase*",
    "han*",
    "*=han*",
)


def make_queries(names: Sequence[str], count: int, seed: int) -> list[Query]:
    """`count` queries: every pattern ends in '*' (or starts and ends with it), so the whole
    stored value and the component-group matching of either system agree."""
    rng = random.Random(seed)
    has_han = any(not n.isascii() and "=" not in n for n in names)
    has_pinyin = any("=" in n for n in names)
    kinds = [k for k in QUERY_KINDS if (has_han or k != "han*") and (has_pinyin or k != "*=han*")]
    return [_query(kinds[index % len(kinds)], rng, names) for index in range(count)]


def identifier(query: Query) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = CHARSET
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientName = query.pattern
    for keyword in RETURN_KEYS:
        setattr(ds, keyword, None)
    return ds


# ---------------------------------------------------------------------------------------------
# Clients: pynetdicom in process (one association, or a fresh one per query) and findscu.


@dataclass(frozen=True)
class Target:
    name: str
    ae_title: str
    port: int


@dataclass(frozen=True)
class Outcome:
    seconds: float
    matches: int
    status: int  # final status; -1: findscu did not report one


class PynetdicomClient:
    """One pynetdicom AE; `find` over a kept association, `fresh_find` over a new one."""

    def __init__(self) -> None:
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
        self.ae = AE(ae_title=CALLING_AE)
        self.ae.add_requested_context(STUDY_ROOT_FIND)
        self.ae.acse_timeout = self.ae.dimse_timeout = self.ae.network_timeout = 60
        self._kept: dict[str, Any] = {}

    def _associate(self, target: Target) -> Any:
        handlers: list[Any] = [(evt.EVT_CONN_OPEN, _nodelay)]
        assoc = self.ae.associate(
            LOCALHOST, target.port, ae_title=target.ae_title, evt_handlers=handlers
        )
        if not assoc.is_established:
            raise ServerError(f"{target.name}: association to {target.ae_title} refused")
        return assoc

    def find(self, target: Target, query: Query) -> Outcome:
        assoc = self._kept.get(target.name)
        if assoc is None or not assoc.is_established:
            assoc = self._kept[target.name] = self._associate(target)
        ds = identifier(query)
        started = time.perf_counter()
        matches, status = _consume(assoc, ds)
        return Outcome(time.perf_counter() - started, matches, status)

    def fresh_find(self, target: Target, query: Query) -> Outcome:
        ds = identifier(query)
        started = time.perf_counter()
        assoc = self._associate(target)
        try:
            matches, status = _consume(assoc, ds)
            seconds = time.perf_counter() - started
        finally:
            assoc.release()
        return Outcome(seconds, matches, status)

    def close(self) -> None:
        for assoc in self._kept.values():
            if assoc.is_established:
                assoc.release()
        self._kept.clear()
        self.ae.shutdown()


def _nodelay(event: Any) -> None:
    """pynetdicom sends a command and its identifier as separate small writes; without
    TCP_NODELAY the second waits for the peer's delayed ACK (~40 ms), which would swamp what
    is measured (dcmtk's tools read TCP_NODELAY=1 from the environment for the same reason)."""
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _consume(assoc: Any, ds: Dataset) -> tuple[int, int]:
    matches = 0
    for status, _answer in assoc.send_c_find(ds, STUDY_ROOT_FIND):
        if status is None or "Status" not in status:
            raise ServerError("C-FIND: no response (timeout or aborted association)")
        code = int(status.Status)
        if code in PENDING:
            matches += 1
        else:
            return matches, code
    raise ServerError("C-FIND: the responses ended without a final status")


class EngineClient:
    """openpacs' own DIMSE engine as the SCU, one association per system kept open: the leanest
    client at hand (blocking socket, no reactor thread polling every millisecond, answers
    counted, not decoded), so what it times is the server and the loopback."""

    def __init__(self) -> None:
        self._links: dict[str, engine.Link] = {}
        self._log = logging.getLogger("bench.find")
        self._message_id = 0

    def _link(self, target: Target) -> engine.Link:
        link = self._links.get(target.name)
        if link is None:
            proposals = [engine.Proposal(STUDY_ROOT_FIND, (codecs.EXPLICIT_VR_LE,))]
            link = engine.request_association(
                LOCALHOST,
                target.port,
                calling_ae=CALLING_AE,
                called_ae=target.ae_title,
                proposals=proposals,
                log=self._log,
                timeout=60,
            )
            self._links[target.name] = link
        return link

    def find(self, target: Target, query: Query) -> Outcome:
        link = self._link(target)
        self._message_id = self._message_id % 0xFFFF + 1
        command = engine.encode_command(
            {
                engine.AFFECTED_SOP_CLASS: engine.ui(STUDY_ROOT_FIND),
                engine.COMMAND_FIELD: engine.us(engine.C_FIND_RQ),
                engine.MESSAGE_ID: engine.us(self._message_id),
                engine.PRIORITY: engine.us(0),
                engine.DATASET_TYPE: engine.us(engine.DATASET_PRESENT),
            }
        )
        data = encode_identifier(identifier(query), codecs.EXPLICIT_VR_LE)
        started = time.perf_counter()
        link.sock.sendall(link.frames(min(link.contexts), command, data))
        matches = 0
        while True:
            status = link.next_response().status
            if status is None:
                raise ServerError(f"{target.name}: a C-FIND response without a status")
            if status not in PENDING:
                return Outcome(time.perf_counter() - started, matches, status)
            matches += 1

    def close(self) -> None:
        for link in self._links.values():
            link.release(10)
        self._links.clear()


def findscu(target: Target, query: Query) -> Outcome:
    """One findscu process; `-v` logs one line per response, which is how matches are counted."""
    command = ["findscu", "-v", "-S", "-aet", CALLING_AE, "-aec", target.ae_title]
    command += ["-k", f"SpecificCharacterSet={CHARSET}", "-k", "QueryRetrieveLevel=STUDY"]
    command += ["-k", f"PatientName={query.pattern}"]
    for keyword in RETURN_KEYS:
        command += ["-k", keyword]
    command += [LOCALHOST, str(target.port)]
    started = time.perf_counter()
    result = subprocess.run(
        command, env=nodelay_env(), capture_output=True, timeout=FINDSCU_TIMEOUT_S, check=False
    )
    seconds = time.perf_counter() - started
    output = (result.stdout + result.stderr).decode("utf-8", "replace")
    if result.returncode != 0:
        raise ServerError(
            f"findscu exit {result.returncode} on {query.pattern!r}:\n{output[-2000:]}"
        )
    lines = output.splitlines()
    matches = sum("Received Find Response" in line and "(Pending" in line for line in lines)
    final = [line for line in lines if "Received Final Find Response" in line]
    status = 0 if final and "(Success)" in final[-1] else -1
    return Outcome(seconds, matches, status)


# ---------------------------------------------------------------------------------------------
# The timed part.


@dataclass
class Sample:
    round: int
    kind: str
    pattern: str
    mode: str
    system: str
    seconds: float
    matches: int


@dataclass
class Results:
    samples: list[Sample] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    def seconds(self, mode: str, system: str, kind: str | None = None) -> list[float]:
        return [
            s.seconds
            for s in self.samples
            if s.round > 0
            and s.mode == mode
            and s.system == system
            and (kind is None or s.kind == kind)
        ]


def runners(
    client: PynetdicomClient, lean: EngineClient
) -> dict[str, Callable[[Target, Query], Outcome]]:
    return {
        "engine": lean.find,
        "assoc": client.find,
        "fresh": client.fresh_find,
        "findscu": findscu,
    }


def run_queries(
    targets: Sequence[Target],
    queries: Sequence[Query],
    modes: Sequence[str],
    run: Callable[[str, Target, Query], Outcome],
    results: Results,
    round_number: int,
) -> None:
    """Each query on every system in turn (the first system alternating), every mode. Round 0
    is the warm-up: checked and kept in the JSON, left out of the figures."""
    for index, query in enumerate(queries):
        for mode in modes:
            order = targets if index % 2 == 0 else list(reversed(targets))
            outcomes = {t.name: run(mode, t, query) for t in order}
            _check(query, mode, outcomes, results)
            for name, outcome in outcomes.items():
                results.samples.append(
                    Sample(
                        round_number,
                        query.kind,
                        query.pattern,
                        mode,
                        name,
                        outcome.seconds,
                        outcome.matches,
                    )
                )


def _check(query: Query, mode: str, outcomes: dict[str, Outcome], results: Results) -> None:
    problems = [f"{name} final status {o.status:#06x}" for name, o in outcomes.items() if o.status]
    if len({o.matches for o in outcomes.values()}) > 1:
        counts = ", ".join(f"{name} {o.matches}" for name, o in outcomes.items())
        problems.append(f"matches differ: {counts}")
    if not problems:
        return
    text = f"{mode} PatientName={query.pattern!r}: {'; '.join(problems)}"
    print(f"    MISMATCH {text}", flush=True)
    results.mismatches.append(text)


# ---------------------------------------------------------------------------------------------
# Servers.


class FindOpenpacs(OpenpacsServer):
    """openpacs with its Q/R SCP on a known port, optionally on another database."""

    def __init__(self, work_dir: Path, database_url: str | None) -> None:
        super().__init__(work_dir, workers=0)
        self.database_url = database_url

    @property
    def qr_ae(self) -> str:
        return "QRSCP"

    def environment(self) -> dict[str, str]:
        env = super().environment()
        if self.database_url:
            env["OPENPACS_DATABASE__URL"] = self.database_url
        return env


def orthanc(work_dir: Path) -> OrthancServer:
    return OrthancServer(
        work_dir,
        {
            "DicomModalities": {"bench": [CALLING_AE, LOCALHOST, 104]},  # never called
            "DicomAlwaysAllowFind": True,
        },
    )


def target_of(server: OrthancServer | FindOpenpacs) -> Target:
    if isinstance(server, FindOpenpacs):
        return Target(server.name, server.qr_ae, server.qr_port)
    return Target(server.name, server.ae_title, server.dicom_port)


# ---------------------------------------------------------------------------------------------
# Output.


def p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.1f}"


def table(results: Results, systems: Sequence[str], modes: Sequence[str]) -> str:
    lines = [f"{'mode':<8} {'system':<9} {'n':>4} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}"]
    for mode in modes:
        stats: dict[str, tuple[float, float]] = {}
        for name in systems:
            values = results.seconds(mode, name)
            if not values:
                continue
            stats[name] = (statistics.median(values), p95(values))
            lines.append(
                f"{mode:<8} {name:<9} {len(values):>4} {_ms(stats[name][0]):>10} "
                f"{_ms(stats[name][1]):>8} {_ms(max(values)):>8}"
            )
        if {"openpacs", "orthanc"} <= set(stats):
            a, b = stats["openpacs"], stats["orthanc"]
            lines.append(f"{mode:<8} {'ratio':<9} {'':>4} {a[0] / b[0]:>10.2f} {a[1] / b[1]:>8.2f}")
    return "\n".join(lines)


def kind_table(results: Results, systems: Sequence[str], mode: str) -> str:
    kinds = sorted({s.kind for s in results.samples if s.mode == mode})
    header = f"{'query shape':<16} {'matches':>9}" + "".join(
        f" {name + ' med':>13} {name + ' p95':>13}" for name in systems
    )
    lines = [header]
    for kind in kinds:
        matches = [
            s.matches for s in results.samples if s.round and s.mode == mode and s.kind == kind
        ] or [0]
        row = f"{kind:<16} {statistics.median(matches):>9.0f}"
        for name in systems:
            values = results.seconds(mode, name, kind)
            row += f" {_ms(statistics.median(values)):>13} {_ms(p95(values)):>13}"
        lines.append(row)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Command line.


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.find", description=__doc__)
    parser.add_argument("--studies", type=int, default=10_000, help="studies in each index")
    parser.add_argument("--queries", type=int, default=50, help="distinct queries per round")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds, each with new queries")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma-separated, from " + ", ".join(MODES)
    )
    parser.add_argument(
        "--parallel", type=int, default=4, help="storescu processes loading each system"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="openpacs index database (an empty PostgreSQL database, say); default: SQLite",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the queries")
    parser.add_argument("--tmp", type=Path, default=None, help="parent folder for temporary data")
    parser.add_argument("--json", type=Path, default=None, help="also write every sample here")
    return parser.parse_args(argv)


def _choose(text: str, allowed: Sequence[str], option: str) -> list[str]:
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    if not chosen or set(chosen) - set(allowed):
        raise SystemExit(f"{option}: choose from {', '.join(allowed)} (got {text!r})")
    return chosen


@dataclass(frozen=True)
class Options:
    studies: int
    queries: int
    repeat: int
    systems: list[str]
    modes: list[str]
    parallel: int
    database_url: str | None
    seed: int
    work_dir: Path


def load(options: Options, stack: ExitStack) -> tuple[list[Target], list[str]]:
    started = time.perf_counter()
    files, names = generate_studies(options.work_dir / "studies", options.studies, options.seed)
    print(
        f"generated {len(files)} studies ({len(names)} distinct patient names) in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    targets = []
    for name in options.systems:
        folder = options.work_dir / "runs" / name
        server: OrthancServer | FindOpenpacs = (
            orthanc(folder) if name == "orthanc" else FindOpenpacs(folder, options.database_url)
        )
        server.start()
        stack.callback(server.stop)
        started = time.perf_counter()
        run = send(server, split(files, options.parallel), folder)
        print(
            f"{name} {server.version()}: loaded {run.indexed} studies in "
            f"{time.perf_counter() - started:.1f} s ({run.rate:.0f}/s, untimed)",
            flush=True,
        )
        targets.append(target_of(server))
    return targets, names


def measure(options: Options, targets: list[Target], names: list[str]) -> Results:
    results = Results()
    client, lean = PynetdicomClient(), EngineClient()
    try:
        table_of = runners(client, lean)

        def run(mode: str, target: Target, query: Query) -> Outcome:
            return table_of[mode](target, query)

        warmup = make_queries(names, min(options.queries, 20), options.seed + 1000)
        print(f"warm-up: {len(warmup)} queries, untimed ...", flush=True)
        run_queries(targets, warmup, options.modes, run, results, 0)
        for number in range(1, options.repeat + 1):
            queries = make_queries(names, options.queries, options.seed + number)
            print(f"round {number}/{options.repeat}: {len(queries)} queries ...", flush=True)
            run_queries(targets, queries, options.modes, run, results, number)
    finally:
        lean.close()
        client.close()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("storescu", "findscu", "echoscu"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install dcmtk (apt-get install dcmtk)")
    if min(args.studies, args.queries, args.repeat, args.parallel) < 1:
        raise SystemExit("--studies, --queries, --repeat and --parallel must be at least 1")
    machine = machine_info()
    for key, value in machine:
        print(f"{key:>7}: {value}")
    with tempfile.TemporaryDirectory(prefix="openpacs-bench-", dir=args.tmp) as tmp:
        options = Options(
            studies=args.studies,
            queries=args.queries,
            repeat=args.repeat,
            systems=_choose(args.systems, SYSTEMS, "--systems"),
            modes=_choose(args.modes, MODES, "--modes"),
            parallel=args.parallel,
            database_url=args.database_url,
            seed=args.seed,
            work_dir=Path(tmp),
        )
        try:
            with ExitStack() as stack:
                targets, names = load(options, stack)
                results = measure(options, targets, names)
        except (ServerError, subprocess.TimeoutExpired) as error:
            print(f"\nFAILED: {error}", file=sys.stderr)
            return 1
    print()
    print(f"C-FIND STUDY by PatientName, {options.studies} studies, latency per query:")
    print(table(results, options.systems, options.modes))
    print("ratio: openpacs/orthanc, below 1 is better")
    print()
    print(f"by query shape ({options.modes[0]}, ms):")
    print(kind_table(results, options.systems, options.modes[0]))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "machine": dict(machine),
            "options": {k: str(v) for k, v in asdict(options).items()},
            "samples": [asdict(s) for s in results.samples],
            "mismatches": results.mismatches,
        }
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    for text in results.mismatches:
        print(f"MISMATCH {text}", file=sys.stderr)
    return 1 if results.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
