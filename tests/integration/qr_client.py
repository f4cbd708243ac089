"""Helpers for the Q/R SCP tests: data in the archive, dcmtk's findscu, and a minimal in-process
Q/R SCU on our engine for what dcmtk cannot time (a C-CANCEL before the first answer)."""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import Dataset, dcmread

from openpacs.archive.core import Core
from openpacs.archive.importer import import_paths
from openpacs.dicom import codecs
from openpacs.dimse import engine
from openpacs.dimse.identifier import decode_identifier, encode_identifier
from openpacs.dimse.sop import STORE_TRANSFER_SYNTAXES, storage_sop_classes
from tests.conftest import need
from tests.integration.conftest import PEER_ENV

_FINAL = re.compile(r"Received Final (?:Find|Move) Response(?: \d+)? \(([^)]*)\)")
_GET = re.compile(r"Received C-GET Response \(([^)]*)\)")


def load(core: Core, files: list[Path]) -> None:
    report = import_paths(core.archive, files)
    assert not report.rejected, report.rejected


@dataclass
class Found:
    final: str  # dcmtk's name of the final status, e.g. "Success"
    answers: list[Dataset]
    output: str


def findscu(port: int, model: str, keys: Sequence[str | bytes], out_dir: Path) -> Found:
    """findscu -X: every answer as a file, read back in order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("rsp*.dcm"):
        old.unlink()
    args: list[str | bytes] = [need("findscu"), "-v", "-X", "-od", str(out_dir), "-aec", "QRSCP"]
    args += [model, "127.0.0.1", str(port)]
    for key in keys:
        args += ["-k", key]
    result = subprocess.run(args, capture_output=True, env=PEER_ENV, timeout=60, check=False)
    output = result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace")
    final = _FINAL.search(output)
    assert final is not None, output
    answers: list[Dataset] = [dcmread(path) for path in sorted(out_dir.glob("rsp*.dcm"))]
    return Found(final[1], answers, output)


@dataclass
class Responses:
    statuses: list[int] = field(default_factory=list)
    identifiers: list[Dataset | None] = field(default_factory=list)
    commands: list[engine.Message] = field(default_factory=list)
    stored: list[engine.Message] = field(default_factory=list)  # C-GET's C-STORE requests


def exchange(
    port: int,
    sop_class: str,
    command_field: int,
    identifier: Dataset,
    *,
    cancel_at_once: bool = False,
    move_destination: str | None = None,
    store_classes: Sequence[str] = (),
    store_status: Callable[[str], int] = lambda _uid: 0,
) -> Responses:
    """One Q/R request over our own engine, optionally followed at once by its C-CANCEL-RQ;
    every response until the final one. With `store_classes` we take the SCP role for them and
    answer C-GET's C-STORE sub-operations with `store_status(sop_instance_uid)`."""
    proposals = [engine.Proposal(sop_class, (codecs.EXPLICIT_VR_LE,))]
    proposals += [engine.Proposal(uid, (codecs.EXPLICIT_VR_LE,)) for uid in store_classes]
    link = engine.request_association(
        "127.0.0.1",
        port,
        calling_ae="TESTSCU",
        called_ae="QRSCP",
        proposals=proposals,
        log=logging.getLogger("test"),
        timeout=30,
        scp_roles=store_classes,
    )
    context_id = min(link.contexts)
    elements = {
        engine.AFFECTED_SOP_CLASS: engine.ui(sop_class),
        engine.COMMAND_FIELD: engine.us(command_field),
        engine.MESSAGE_ID: engine.us(7),
        engine.PRIORITY: engine.us(0),
        engine.DATASET_TYPE: engine.us(engine.DATASET_PRESENT),
    }
    if move_destination is not None:
        elements[engine.MOVE_DESTINATION] = engine.ae(move_destination)
    data = encode_identifier(identifier, codecs.EXPLICIT_VR_LE)
    out = link.frames(context_id, engine.encode_command(elements), data)
    if cancel_at_once:
        # In the same write: the SCP must find it waiting when it looks, before any answer.
        cancel = {
            engine.COMMAND_FIELD: engine.us(engine.C_CANCEL_RQ),
            engine.RESPONDED_TO: engine.us(7),
            engine.DATASET_TYPE: engine.us(engine.NO_DATASET),
        }
        out += link.frames(context_id, engine.encode_command(cancel))
    link.sock.sendall(out)
    responses = Responses()
    try:
        while True:
            message = link.next_response()
            if message.command_field == engine.C_STORE_RQ:
                responses.stored.append(message)
                uid = message.sop_instance_uid
                answer = store_status(uid)
                link.respond(message, engine.C_STORE_RSP, answer, sop_instance_uid=uid)
                continue
            status = message.status
            assert status is not None and message.responded_to == 7
            responses.statuses.append(status)
            responses.commands.append(message)
            responses.identifiers.append(
                decode_identifier(message.dataset, codecs.EXPLICIT_VR_LE)
                if message.dataset is not None
                else None
            )
            if status not in (0xFF00, 0xFF01):
                return responses
    finally:
        link.release(10)


class Destination:
    """An in-process C-STORE acceptor on our engine: records each request, answers the status
    `answer(sop_instance_uid)` gives, and can hold every request until `release` is set."""

    def __init__(self, temp_dir: Path, answer: Callable[[str], int] = lambda _uid: 0) -> None:
        self.answer = answer
        self.seen: list[engine.Message] = []
        self.release = threading.Event()
        self.release.set()
        policy = engine.Policy(
            ae_title="DEST",
            require_called_ae=True,
            allowed_calling_aes=frozenset(),
            sop_classes=frozenset(storage_sop_classes()),
            transfer_syntaxes=frozenset(STORE_TRANSFER_SYNTAXES),
            acse_timeout=10,
            network_timeout=30,
        )
        handlers = {engine.C_STORE_RQ: self._store}
        self.listener = engine.Listener(policy, handlers, "127.0.0.1", 0, temp_dir, "storescp")

    def _store(self, assoc: engine.Association, message: engine.Message) -> None:
        self.release.wait(30)
        self.seen.append(message)
        if message.path is not None:
            message.path.unlink()
        status = self.answer(message.sop_instance_uid)
        assoc.respond(
            message, engine.C_STORE_RSP, status, sop_instance_uid=message.sop_instance_uid
        )

    def __enter__(self) -> Destination:
        self.listener.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.listener.stop(grace=2)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.listener.port)


def retrieve_tool(tool: str, port: int, args: Sequence[str], keys: Sequence[str]) -> Found:
    """movescu or getscu with `args` (model, -aem, -od...) and `keys`; its final status."""
    command: list[str] = [need(tool), "-v", "-aec", "QRSCP", *args, "127.0.0.1", str(port)]
    for key in keys:
        command += ["-k", key]
    result = subprocess.run(command, capture_output=True, env=PEER_ENV, timeout=120, check=False)
    output = result.stdout.decode("utf-8", "replace") + result.stderr.decode("utf-8", "replace")
    finals = (_GET if tool == "getscu" else _FINAL).findall(output)
    assert finals, output
    return Found(finals[-1], [], output)
