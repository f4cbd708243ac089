"""The worklist SCP against dcmtk: the items shipped with dcmtk, written through the REST API,
queried with `findscu -W` and each shipped query, answer the same as dcmtk's own `wlmscpfs` on
the same items; Chinese names in the character set the modality reads; MPPS from pynetdicom."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset, dcmread
from pydicom.dataelem import DataElement
from pydicom.uid import generate_uid
from pynetdicom import AE

from openpacs.archive.core import Core, open_core
from openpacs.config import WorklistStation
from openpacs.dicom import json as dicom_json
from openpacs.dimse.engine import Listener
from openpacs.dimse.mwl_scp import MPPS, make_worklist_listener
from openpacs.server import start_store
from openpacs.web.app import create_app
from tests.conftest import REQUIRE_PEERS, make_settings, need
from tests.generators import ct_series
from tests.integration.conftest import run
from tests.integration.dcmtk_peers import Listening
from tests.web.client import Client

pytestmark = pytest.mark.peer

EXAMPLES = Path("/usr/share/doc/dcmtk/examples")
ITEMS = sorted((EXAMPLES / "wlistdb" / "OFFIS").glob("wklist*.dump"))
QUERIES = sorted((EXAMPLES / "wlistqry").glob("wlistqry*.dump"))


def dump2dcm(dump: Path, out: Path) -> Path:
    run(need("dump2dcm"), "-q", dump, out)
    return out


def item_body(ds: Dataset) -> dict[str, Any]:
    """A dcmtk example item as the REST API takes it: the required fields named, everything
    else as DICOM JSON attributes (top level and in the scheduled step)."""
    top = Dataset()
    for element in ds:
        if element.keyword not in ("SpecificCharacterSet", "ScheduledProcedureStepSequence"):
            top.add(element)
    step = ds.ScheduledProcedureStepSequence[0]
    return {
        "patient_id": str(ds.PatientID),
        "study_instance_uid": str(ds.StudyInstanceUID),
        "step": {
            "modality": str(step.Modality),
            "start_date": str(step.ScheduledProcedureStepStartDate),
            "attributes": dicom_json.to_json(step),
        },
        "attributes": dicom_json.to_json(top),
    }


@pytest.fixture
def worklist_scp(core: Core) -> Iterator[Listener]:
    stations = [WorklistStation(ae_title="UTF8ONLY", charset="ISO_IR 192", names="native")]
    listener = make_worklist_listener(core.settings.worklist, core.sessions, stations)
    listener.start()
    try:
        yield listener
    finally:
        listener.stop(grace=2)


@pytest.fixture
def api(core: Core) -> Client:
    return Client(create_app(core))


class Wlmscpfs(Listening):
    """dcmtk's file-based worklist SCP over a folder of items (a subfolder per called AE)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        super().__init__(folder.parent, "wlmscpfs", "OFFIS")

    def command(self) -> list[str]:
        return [need("wlmscpfs"), "-dfp", str(self.folder), str(self.port)]


def findscu(port: int, called: str, query: Path | None, out: Path, *keys: str) -> list[Dataset]:
    """findscu -W: every answer, read back in order."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("rsp*.dcm"):
        old.unlink()
    args: list[str] = [need("findscu"), "-W", "-X", "-od", str(out), "-aec", called]
    args += ["-aet", "MODALITY", "127.0.0.1", str(port)]
    for key in keys:
        args += ["-k", key]
    if query is not None:
        args.append(str(query))
    result = run(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return [dcmread(path) for path in sorted(out.glob("rsp*.dcm"))]


def canonical(ds: Dataset) -> tuple[tuple[str, str], ...]:
    """An answer as comparable text: each element by tag path with its value, padding and the
    character set aside; an empty value counts as absent (wlmscpfs leaves out a requested
    sequence the item lacks, which the standard lets it answer empty too)."""
    found: list[tuple[str, str]] = []

    def walk(data: Dataset, prefix: str) -> None:
        for element in data:
            # The character set, and the step status openpacs keeps (the dcmtk items have none;
            # a modality that asks for it gets it), are not part of the comparison.
            if element.tag in (0x00080005, 0x00400020):
                continue
            path = f"{prefix}{element.tag:08X}"
            if element.value in (None, "") or (element.VR == "SQ" and not element.value):
                continue
            if element.VR == "SQ":
                found.append((path, f"{len(element.value)} item(s)"))
                for index, item in enumerate(element.value):
                    walk(item, f"{path}[{index}].")
            else:
                found.append((path, _text(element)))

    walk(ds, "")
    return tuple(found)


def _text(element: DataElement) -> str:
    value = element.value
    if value is None:
        return ""
    if isinstance(value, list | tuple) or element.VM > 1:
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


@pytest.mark.parametrize("query", QUERIES, ids=lambda p: p.stem)
def test_dcmtk_queries_answer_as_wlmscpfs_does(
    core: Core, api: Client, worklist_scp: Listener, tmp_path: Path, query: Path
) -> None:
    if not ITEMS or not QUERIES:
        message = (
            "dcmtk's worklist examples are missing (/usr/share/doc/dcmtk/examples): install "
            "dcmtk without excluding /usr/share/doc (dpkg path-exclude)"
        )
        if REQUIRE_PEERS:
            pytest.fail(message + " (OPENPACS_REQUIRE_PEERS=1)")
        pytest.skip(message)
    folder = tmp_path / "wlm" / "OFFIS"
    folder.mkdir(parents=True)
    (folder / "lockfile").touch()
    for dump in ITEMS:
        item = dump2dcm(dump, folder / f"{dump.stem}.wl")
        response = api.post("/api/worklist", json=item_body(dcmread(item)))
        assert response.status_code == 201, response.text
    request = dump2dcm(query, tmp_path / "query.dcm")
    with Wlmscpfs(tmp_path / "wlm") as dcmtk:
        theirs = findscu(dcmtk.port, "OFFIS", request, tmp_path / "theirs")
    ours = findscu(worklist_scp.port, "WORKLISTSCP", request, tmp_path / "ours")
    mine, dcmtk_answers = sorted(map(canonical, ours)), sorted(map(canonical, theirs))
    only_ours = {pair for answer in mine for pair in answer} - {p for a in dcmtk_answers for p in a}
    only_theirs = {pair for answer in dcmtk_answers for pair in answer} - {
        pair for answer in mine for pair in answer
    }
    assert mine == dcmtk_answers, f"only ours: {only_ours}; only wlmscpfs: {only_theirs}"


# --- character sets ------------------------------------------------------------------------


CHINESE: dict[str, Any] = {
    "patient_id": "CN001",
    "patient_name": "张^三",
    "requested_procedure_description": "胸部CT平扫",
    "step": {"modality": "CT", "start_date": "20261126", "station_ae_titles": ["CT01"]},
}


def test_chinese_names_in_the_charset_the_modality_reads(
    api: Client, worklist_scp: Listener, tmp_path: Path
) -> None:
    assert api.post("/api/worklist", json=CHINESE).status_code == 201
    port = worklist_scp.port
    keys = ("PatientName", "PatientID=CN001", "RequestedProcedureDescription")

    [ascii_answer] = findscu(port, "WORKLISTSCP", None, tmp_path / "a", *keys)
    assert str(ascii_answer.PatientName) == "Zhang^San"
    assert ascii_answer.RequestedProcedureDescription == "Xiong Bu CT Ping Sao"
    assert "SpecificCharacterSet" not in ascii_answer or not ascii_answer.SpecificCharacterSet

    [latin1] = findscu(
        port, "WORKLISTSCP", None, tmp_path / "b", *keys, "SpecificCharacterSet=ISO_IR 100"
    )
    assert str(latin1.PatientName) == "Zhang^San"

    for charset in ("GB18030", "ISO_IR 192", "\\ISO 2022 IR 58"):
        out = tmp_path / charset.replace(" ", "_").replace("\\", "")
        [native] = findscu(port, "WORKLISTSCP", None, out, *keys, f"SpecificCharacterSet={charset}")
        written = native.SpecificCharacterSet
        assert (written if isinstance(written, str) else "\\".join(written)) == charset
        assert str(native.PatientName) == "张^三"
        assert native.RequestedProcedureDescription == "胸部CT平扫"
        # dcmtk reads it the same way (for ISO 2022 IR 58: the escapes of PS3.5 K.2).
        dumped = run(need("dcmdump"), "+U8", out / "rsp0001.dcm").stdout
        assert "张^三" in dumped and "胸部CT平扫" in dumped, dumped


def test_a_station_rule_overrides_the_query(
    core: Core, api: Client, worklist_scp: Listener, tmp_path: Path
) -> None:
    assert api.post("/api/worklist", json=CHINESE).status_code == 201
    args = [need("findscu"), "-W", "-X", "-od", str(tmp_path), "-aec", "WORKLISTSCP"]
    args += ["-aet", "UTF8ONLY", "127.0.0.1", str(worklist_scp.port), "-k", "PatientName"]
    result = run(*args)
    [answer] = [dcmread(p) for p in tmp_path.glob("rsp*.dcm")]
    assert answer.SpecificCharacterSet == "ISO_IR 192", result.stdout
    assert str(answer.PatientName) == "张^三"


def test_a_malformed_date_range_is_refused_and_the_scp_stays_up(
    api: Client, worklist_scp: Listener, tmp_path: Path
) -> None:
    assert api.post("/api/worklist", json=CHINESE).status_code == 201
    args = [need("findscu"), "-v", "-W", "-aec", "WORKLISTSCP", "127.0.0.1"]
    args.append(str(worklist_scp.port))
    bad = run(
        *args,
        "-k",
        "ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate=20261345-20261401",
        check=False,
    )
    output = bad.stdout + bad.stderr
    assert "Final Find Response (Error: DataSetDoesNotMatchSOPClass)" in output, output
    [still] = findscu(worklist_scp.port, "WORKLISTSCP", None, tmp_path / "ok", "PatientID=CN001")
    assert still.PatientID == "CN001"


# --- MPPS ----------------------------------------------------------------------------------


def _mpps_create(study_uid: str, step_id: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    scheduled = Dataset()
    scheduled.StudyInstanceUID = study_uid
    scheduled.ScheduledProcedureStepID = step_id
    scheduled.AccessionNumber = ""
    ds.ScheduledStepAttributesSequence = [scheduled]
    ds.PatientName = "张^三"
    ds.PatientID = "CN001"
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedStationAETitle = "CT01"
    ds.PerformedProcedureStepStartDate = "20261126"
    ds.PerformedProcedureStepStartTime = "093000"
    ds.PerformedProcedureStepStatus = "IN PROGRESS"
    ds.Modality = "CT"
    ds.PerformedSeriesSequence = []
    return ds


def test_mpps_moves_the_item_along(core: Core, api: Client, worklist_scp: Listener) -> None:
    created = api.post("/api/worklist", json={**CHINESE, "step": {**CHINESE["step"], "id": "SPS1"}})
    item = created.json()
    ae = AE(ae_title="CT01")
    ae.add_requested_context(MPPS)
    assoc = ae.associate("127.0.0.1", worklist_scp.port, ae_title="WORKLISTSCP")
    assert assoc.is_established
    try:
        uid = generate_uid()
        status, _ = assoc.send_n_create(_mpps_create(item["study_instance_uid"], "SPS1"), MPPS, uid)
        assert status.Status == 0x0000
        assert api.get(f"/api/worklist/{item['id']}").json()["status"] == "IN PROGRESS"

        done = Dataset()
        done.PerformedProcedureStepStatus = "COMPLETED"
        done.PerformedProcedureStepEndDate = "20261126"
        done.PerformedProcedureStepEndTime = "094500"
        series = Dataset()
        series.SeriesInstanceUID = "1.2.3.4.5"
        series.SeriesDescription = "Thorax"
        image = Dataset()
        image.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        image.ReferencedSOPInstanceUID = "1.2.3.4.5.1"
        series.ReferencedImageSequence = [image]
        done.PerformedSeriesSequence = [series]
        status, _ = assoc.send_n_set(done, MPPS, uid)
        assert status.Status == 0x0000
        shown = api.get(f"/api/worklist/{item['id']}").json()
        assert shown["status"] == "COMPLETED"
        [performed] = shown["performed"]
        assert performed["status"] == "COMPLETED"
        assert performed["series"][0]["instances"] == ["1.2.3.4.5.1"]

        again, _ = assoc.send_n_set(done, MPPS, uid)
        assert again.Status != 0x0000  # a completed step may not change
        unknown, _ = assoc.send_n_set(done, MPPS, generate_uid())
        assert unknown.Status == 0x0112
    finally:
        assoc.release()
    # Completed items are no longer offered to modalities.
    assert api.get("/api/worklist", params={"status": "SCHEDULED"}).json()["total"] == 0


def test_a_study_arriving_completes_its_item(tmp_path: Path, sqlite_url: str) -> None:
    """worklist.complete_on_arrival: the item is found by the study's accession number and
    takes the study's UID."""
    settings = make_settings(tmp_path, sqlite_url, worklist={"complete_on_arrival": True})
    core = open_core(settings)
    store = start_store(core)
    try:
        api = Client(create_app(core))
        item = api.post("/api/worklist", json={**CHINESE, "accession_number": "ACC9"}).json()
        files = ct_series(tmp_path / "ct", 2, rows=16, columns=16)
        for path in files:
            ds = dcmread(path)
            ds.AccessionNumber = "ACC9"
            ds.save_as(path)
        run(need("storescu"), "-aec", "STORESCP", "127.0.0.1", str(store.port), *files)
        shown = api.get(f"/api/worklist/{item['id']}").json()
        assert shown["status"] == "COMPLETED"
        assert shown["study_instance_uid"] == str(dcmread(files[0]).StudyInstanceUID)
    finally:
        store.stop(grace=2)
        core.close()
