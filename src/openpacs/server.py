"""Composition root: build the core, start the listeners, shut down cleanly.

One process serves HTTP, the Store SCP, the Q/R SCP, the worklist SCP and the Print SCP. With
`storescp.workers > 1`, more receiver processes accept on the same listening socket so ingest
can use more than one core; each has its own connection to the index and all share the
storage root.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import faulthandler
import functools
import multiprocessing
import multiprocessing.process
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from pydicom import Dataset

from openpacs import config_edit, logs, nodes
from openpacs.archive import db
from openpacs.archive.core import Core, open_core
from openpacs.config import Settings
from openpacs.config_edit import SettingsReport
from openpacs.dimse import qr_scu, scu
from openpacs.dimse.engine import Listener
from openpacs.dimse.mwl_scp import make_worklist_listener
from openpacs.dimse.print_job import KIND as PRINT_JOB
from openpacs.dimse.print_job import make_print_handler
from openpacs.dimse.print_scp import make_print_listener
from openpacs.dimse.qr_scp import make_qr_listener
from openpacs.dimse.retrieve_job import GET, MOVE, make_get_handler, make_move_handler
from openpacs.dimse.shared_socket import SharedSocket
from openpacs.dimse.store_job import KIND as STORE_JOB
from openpacs.dimse.store_job import make_store_handler
from openpacs.dimse.store_scp import make_store_listener
from openpacs.jobs import JobRunner
from openpacs.monitoring import metrics
from openpacs.monitoring.associations import Associations, SharedCounts
from openpacs.printing import jobs as print_jobs
from openpacs.printing.films import FilmKeeper
from openpacs.web.api.deps import Services
from openpacs.web.app import create_app
from openpacs.worklist.arrival import CompleteOnArrival

log = logs.get_logger("storescp")


def _start(listener: Listener, monitor: Associations | None) -> Listener:
    if monitor is not None:
        listener.monitor = monitor  # one per process: the status page's view of them all
    listener.start()
    return listener


def start_qr(core: Core, monitor: Associations | None = None) -> Listener:
    """The Query/Retrieve SCP, in the main process only (C-FIND and retrieves are light on CPU
    next to ingest; C-MOVE and C-GET send from here)."""
    directory = nodes.NodeDirectory(core.sessions)

    def resolve(ae_title: str) -> tuple[str, int] | None:
        node = directory.destination(ae_title)
        return (node.host, node.port) if node is not None else None

    listener = make_qr_listener(core.settings.qrscp, core.sessions, core.storage, resolve)
    return _start(listener, monitor)


def start_worklist(core: Core, monitor: Associations | None = None) -> Listener:
    """The Modality Worklist and MPPS SCP, in the main process."""
    settings = core.settings
    listener = make_worklist_listener(settings.worklist, core.sessions, settings.worklist_stations)
    return _start(listener, monitor)


def start_print(core: Core, monitor: Associations | None = None) -> Listener:
    """The Print SCP, in the main process: films go through Archive.store like any object."""
    settings = core.settings.printscp
    with core.writing() as session:
        left = print_jobs.interrupted(session)
    if left:
        logs.get_logger("printscp").warning("%d print job(s) left open by the last run", left)
    listener = make_print_listener(settings, FilmKeeper(core, settings), core.sessions)
    return _start(listener, monitor)


def start_store(
    core: Core,
    *,
    shared_socket: SharedSocket | None = None,
    monitor: Associations | None = None,
) -> Listener:
    if core.settings.worklist.complete_on_arrival:
        core.archive.subscribe(CompleteOnArrival(core.writing))
    return _store_listener(core, shared_socket, monitor)


def _store_listener(
    core: Core, shared_socket: SharedSocket | None = None, monitor: Associations | None = None
) -> Listener:
    listener = make_store_listener(
        core.settings.storescp, core.archive, shared_socket=shared_socket
    )
    return _start(listener, monitor)


LISTENER_SECTIONS = ("storescp", "qrscp", "worklist", "printscp")
# Keys applied by the running server without a restart (besides the listeners' own sections,
# restarted in place, and the nodes, seeded into the registry again).
LIVE_KEYS = frozenset({"logging.levels", "logging.console_level"})


class Listeners:
    """The main process's DICOM listeners, each restartable in place with new settings
    (Settings page: AE titles, ports, on/off, policies) without stopping the others."""

    def __init__(
        self,
        core: Core,
        shared: SharedSocket | None,
        receivers: int,
        monitor: Associations | None = None,
    ) -> None:
        self.core = core
        self.shared = shared
        self.monitor = monitor
        self.receivers = receivers  # extra Store SCP processes: storescp cannot restart alone
        self.running: dict[str, Listener] = {}
        self._lock = threading.Lock()

    def start_all(self) -> None:
        if self.core.settings.worklist.complete_on_arrival:
            self.core.archive.subscribe(CompleteOnArrival(self.core.writing))
        for name in LISTENER_SECTIONS:
            self._start(name)

    def _start(self, name: str) -> None:
        if not getattr(self.core.settings, name).enabled:
            log.info("%s is disabled (%s.enabled = false)", name, name)
            return
        starters = {
            "storescp": lambda core, monitor: _store_listener(core, self.shared, monitor),
            "qrscp": start_qr,
            "worklist": start_worklist,
            "printscp": start_print,
        }
        self.running[name] = starters[name](self.core, self.monitor)

    def _stop(self, name: str, settings: Settings) -> None:
        listener = self.running.pop(name, None)
        if listener is not None:
            listener.stop(getattr(settings, name).shutdown_grace)

    def stop_all(self) -> None:
        for name in LISTENER_SECTIONS:
            self._stop(name, self.core.settings)

    def apply(self, new: Settings) -> SettingsReport:
        """Take `new` settings: what can change live does (listeners restart in place, log
        levels, nodes); the rest waits for a restart. A listener that cannot start with its
        new values (a port in use) keeps running with the old ones, and the report says why."""
        with self._lock:
            old = self.core.settings
            report = SettingsReport()
            changed = config_edit.changed_keys(old, new)
            self.core.settings = new
            touched = {key.partition(".")[0] for key in changed}
            if "worklist_stations" in touched:
                touched.add("worklist")
            for key in changed:
                section = key.partition(".")[0]
                if key in LIVE_KEYS or section in ("nodes", "worklist_stations"):
                    report.applied.append(key)
                elif section not in LISTENER_SECTIONS:
                    report.restart_required.append(key)
            if any(key in LIVE_KEYS for key in changed):
                logs.apply_levels(new.logging)
            if "nodes" in touched:
                seed_nodes(self.core)
            for name in LISTENER_SECTIONS:
                if name in touched:
                    keys = [key for key in changed if key.partition(".")[0] == name]
                    self._restart(name, old, keys, report)
            return report

    def _restart(self, name: str, old: Settings, keys: list[str], report: SettingsReport) -> None:
        if name == "storescp" and self.receivers:
            report.restart_required += keys  # the receiver processes share its socket
            return
        self._stop(name, old)
        try:
            self._start(name)
        except OSError as exc:
            reason = f"{name} could not start with the new values ({exc}); kept the old ones"
            log.error("%s", reason)
            self.core.settings = self.core.settings.model_copy(update={name: getattr(old, name)})
            self._start(name)
            report.failed += [(key, reason) for key in keys]
            return
        report.applied += keys


ECHO_TIMEOUT = 10
FIND_TIMEOUT = 30


@contextlib.contextmanager
def _reaching(address: nodes.Address) -> Iterator[scu.Peer]:
    """The node as a DIMSE peer; association failures come out in the nodes domain's terms
    (which the REST API maps to 502/504)."""
    if address.tls:
        raise nodes.ServiceUnavailable(
            f"node {address.name!r} has tls = true, and openpacs cannot connect over TLS yet"
        )
    try:
        yield scu.Peer(address.ae_title, address.host, address.port)
    except scu.NoAnswer as exc:
        raise nodes.PeerSilent(str(exc)) from exc
    except scu.AssociationFailed as exc:
        raise nodes.PeerRefused(str(exc)) from exc


def echo_node(
    address: nodes.Address, *, calling_ae: str, timeout: float = ECHO_TIMEOUT
) -> nodes.EchoResult:
    """C-ECHO a registered node (for the REST API)."""
    with _reaching(address) as peer:
        result = scu.echo(peer, calling_ae=calling_ae, timeout=timeout)
    return nodes.EchoResult(result.status, result.seconds)


def find_node(
    address: nodes.Address,
    identifier: Dataset,
    model: str,
    *,
    calling_ae: str,
    timeout: float = FIND_TIMEOUT,
) -> nodes.FindResult:
    """C-FIND a registered node (for the REST API)."""
    with _reaching(address) as peer:
        result = qr_scu.find(peer, identifier, model=model, calling_ae=calling_ae, timeout=timeout)
    return nodes.FindResult(result.answers, result.status, result.comment)


def seed_nodes(core: Core) -> None:
    """Add the nodes of openpacs.toml to the registry; the file wins for the names it holds."""
    with core.writing() as session:
        report = nodes.seed(session, core.settings.nodes)
    for verb, names in (("added", report.added), ("updated", report.updated)):
        if names:
            logs.get_logger("api").info(
                "nodes %s from the configuration: %s", verb, ", ".join(names)
            )


def start_jobs(core: Core) -> JobRunner:
    runner = JobRunner(core.sessions, core.write_lock, core.settings.jobs)
    # Job kinds register here, before start.
    runner.register(STORE_JOB, make_store_handler(core))
    runner.register(MOVE, make_move_handler(core))
    runner.register(GET, make_get_handler(core))
    runner.register(PRINT_JOB, make_print_handler(core))
    runner.start()
    return runner


def web_services(
    core: Core,
    runner: JobRunner,
    monitor: Associations | None = None,
    receivers: list[multiprocessing.process.BaseProcess] | None = None,
    receiver_metrics: Path | None = None,
) -> Services:
    """What the HTTP side may ask of the DIMSE side; we call peers with our Store SCP's AE
    title, the one they know us by."""
    calling_ae = core.settings.storescp.ae_title
    started = list(receivers or [])

    def receiver_pids() -> list[int]:
        return [p.pid for p in started if p.pid is not None and p.is_alive()]

    return Services(
        echo=functools.partial(echo_node, calling_ae=calling_ae),
        find=functools.partial(find_node, calling_ae=calling_ae),
        wake_jobs=runner.wake,
        associations=monitor,
        receivers=receiver_pids,
        receiver_metrics=receiver_metrics,
    )


def serve(settings: Settings, config_file: Path | None = None) -> None:
    """Run until SIGINT/SIGTERM; associations in flight get `shutdown_grace` seconds.
    `config_file`: where the Settings page saves changes (None: ./openpacs.toml)."""
    logs.setup(settings.logging)
    _dump_stacks_on_sigusr1()
    core = open_core(settings)
    checkpointer = db.Checkpointer(core.engine).start() if db.is_sqlite(core.engine) else None
    seed_nodes(core)
    removed = core.storage.clean_temp(older_than=0)
    if removed:
        log.info("removed %d temporary files left by an earlier run", removed)
    workers = settings.storescp.receiver_processes()
    shared = None
    context = multiprocessing.get_context("spawn")
    counts = SharedCounts(context)
    receiver_metrics: Path | None = None
    if workers > 1:
        listening = socket.create_server(
            (settings.storescp.host, settings.storescp.port), backlog=LISTEN_BACKLOG
        )
        shared = SharedSocket(listening, context, workers)
        receiver_metrics = Path(tempfile.mkdtemp(prefix="openpacs-metrics-"))
    children = _start_workers(settings, workers - 1, shared, counts, receiver_metrics)
    monitor = Associations(shared=counts)
    listeners = Listeners(core, shared, len(children), monitor)
    listeners.start_all()
    runner = start_jobs(core)
    services = dataclasses.replace(
        web_services(core, runner, monitor, children, receiver_metrics),
        apply_settings=listeners.apply,
        settings_file=config_edit.target_file(config_file),
    )
    app = create_app(core, services)
    config = uvicorn.Config(
        app,
        host=settings.http.host,
        port=settings.http.port,
        log_config=None,
        access_log=True,
        timeout_graceful_shutdown=5,
    )
    # uvicorn re-raises the stop signal once it has shut down; as KeyboardInterrupt (for SIGTERM
    # too, instead of the default handler that would kill the process before the cleanup below)
    # it ends run(), the listeners are stopped gracefully, and serve() returns normally.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        uvicorn.Server(config).run()
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            child.terminate()
        # Running jobs stop at their next item and resume at the next start.
        runner.stop(settings.storescp.shutdown_grace)
        listeners.stop_all()
        for child in children:
            child.join(settings.storescp.shutdown_grace + 5)
        if receiver_metrics is not None:
            shutil.rmtree(receiver_metrics, ignore_errors=True)
        if checkpointer is not None:
            checkpointer.stop()
        core.close()
        logs.get_logger("api").info("openpacs stopped")


def _dump_stacks_on_sigusr1() -> None:
    """`kill -USR1 PID` prints every thread's stack on stderr: where a hung server or receiver
    is stuck, without stopping it."""
    if hasattr(faulthandler, "register"):  # not on Windows
        faulthandler.register(signal.SIGUSR1, all_threads=True)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


WORKER_START_TIMEOUT = 60
LISTEN_BACKLOG = 64
PR_SET_PDEATHSIG = 1


def _stop_with_parent() -> None:
    """Ask Linux to send us SIGTERM if the main process dies (even by SIGKILL), so a receiver
    never outlives its server holding the port."""
    if sys.platform.startswith("linux"):
        # The process's own symbols hold libc's: find_library("c") would run ldconfig or a
        # compiler on every receiver start.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    # The request covers a parent dying from now on; one that died while this process was
    # still starting (spawn imports for a while on a loaded machine) sends nothing, and we
    # would serve on without a server. We were re-parented then: stop now.
    parent = multiprocessing.parent_process()
    if parent is not None and os.getppid() != parent.pid:
        raise SystemExit("the openpacs server stopped while this receiver was starting")


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Variables a spawned child inherits (it copies the environment when it starts)."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _start_workers(
    settings: Settings,
    count: int,
    shared: SharedSocket | None,
    counts: SharedCounts | None = None,
    metrics_folder: Path | None = None,
) -> list[multiprocessing.process.BaseProcess]:
    """Start receiver processes on the shared listening socket and wait until each accepts, so
    that when the server says it is ready (/health), every receiver takes associations. Each
    writes its metrics into `metrics_folder` (prometheus-client's multiprocess mode, chosen by
    the environment it imports prometheus-client with) and its association counts to
    `counts`."""
    context = multiprocessing.get_context("spawn")
    data = settings.model_dump(mode="json")
    started = []
    environment = metrics.receiver_environment(metrics_folder) if metrics_folder else {}
    for number in range(1, count + 1):
        ready = context.Event()
        process = context.Process(
            target=run_store_worker,
            args=(data, ready, shared.for_slot(number) if shared else None, counts),
            name=f"storescp-{number}",
            daemon=False,
        )
        with _environment(environment):
            process.start()
        started.append((process, ready))
    for process, ready in started:
        if not ready.wait(WORKER_START_TIMEOUT):
            for other, _ in started:
                other.terminate()
            raise RuntimeError(f"receiver process {process.name} did not start; see the logs")
    return [process for process, _ in started]


def run_store_worker(
    settings_data: dict[str, Any],
    ready: Any,
    shared: SharedSocket | None,
    counts: SharedCounts | None = None,
) -> None:
    """A receiver process: a Store SCP accepting on the shared socket, until SIGTERM/SIGINT or
    until the main process is gone."""
    _stop_with_parent()
    _dump_stacks_on_sigusr1()
    settings = Settings.model_validate(settings_data)
    logs.setup(settings.logging)
    core = open_core(settings, migrate=False)
    monitor = Associations(shared=counts, publish=True)
    listener = start_store(core, shared_socket=shared, monitor=monitor)
    ready.set()
    why = _wait_for_stop()
    log = logs.get_logger("storescp")
    log.info("receiver %d stopping: %s", os.getpid(), why)
    # Whatever stopping hangs on, the process ends, with every thread's stack on stderr (the
    # server's output) to show where it hung; a receiver left behind would hold the port.
    grace = settings.storescp.shutdown_grace
    faulthandler.dump_traceback_later(grace + STOP_MARGIN, exit=True)
    listener.stop(grace)
    core.close()


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOP_MARGIN = 30  # seconds a receiver may take beyond shutdown_grace to close its index


def _wait_for_stop() -> str:
    """Wait until a stop signal arrives or the main process dies; say which."""
    received: list[int] = []
    for number in STOP_SIGNALS:
        # Only a list append: a handler runs between any two bytecodes of the main thread, and
        # one that took a lock (threading.Event.set) could deadlock on a lock that thread holds.
        signal.signal(number, lambda signum, _frame: received.append(signum))
    parent = multiprocessing.parent_process()
    while not received:
        # The parent's death also sends SIGTERM (PR_SET_PDEATHSIG, Linux); checking for it too
        # covers other platforms and a signal lost on the way.
        if parent is not None and os.getppid() != parent.pid:
            return "the openpacs server is gone"
        # Short sleeps: the kernel may hand the signal to another thread (an acceptor blocked
        # in accept()), and Python runs the handler only when the main thread next wakes.
        time.sleep(0.5)
    return signal.Signals(received[0]).name
