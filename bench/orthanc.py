"""A throwaway Orthanc (the reference system) for benchmarks, plus the process helpers it shares
with the openpacs launcher in `bench.ingest`.

Each `OrthancServer` lives in its own folder with its own index, so a fresh instance is also the
cheapest way to reset one between runs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

ORTHANC = "Orthanc"
PLUGIN_DIR = Path("/usr/share/orthanc/plugins")
PLUGINS = ("libOrthancDicomWeb.so", "libOrthancGdcm.so")
AE_TITLE = "ORTHANC"
CALLING_AE = "BENCH"
LOCALHOST = "127.0.0.1"

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
_POLL_S = 0.05


class ServerError(RuntimeError):
    """A server under test did not start, answer or stop as expected."""


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it; a race is possible but rare)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


def nodelay_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for dcmtk-based processes: without TCP_NODELAY=1 every C-STORE round trip
    stalls ~45 ms on Nagle + delayed ACK, and the benchmark would measure that instead."""
    return {**os.environ, "TCP_NODELAY": "1", **(extra or {})}


def http_client(auth: tuple[str, str] | None = None) -> httpx.Client:
    """`auth`: HTTP Basic user name and password, for a server that wants them (openpacs)."""
    # trust_env=False: a proxy from the environment must never see traffic meant for 127.0.0.1.
    return httpx.Client(timeout=10.0, trust_env=False, auth=auth)


def get_json(client: httpx.Client, url: str, *keys: str) -> object:
    """The value at `keys` in the JSON that `url` returns; any failure is a ServerError."""
    try:
        response = client.get(url)
        response.raise_for_status()
        value: object = response.json()
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                raise ServerError(f"GET {url}: no {'.'.join(keys)} in {response.text[:300]}")
            value = value[key]
    except (httpx.HTTPError, ValueError) as error:
        raise ServerError(f"GET {url}: {error}") from error
    return value


def get_count(client: httpx.Client, url: str, *keys: str) -> int:
    value = get_json(client, url, *keys)
    if not isinstance(value, int):
        raise ServerError(f"GET {url}: {'.'.join(keys)} is {value!r}, not a count")
    return value


def log_tail(path: Path, lines: int = 25) -> str:
    if not path.exists():
        return "(no output)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(no output)"


@dataclass(frozen=True)
class ReadyProbe:
    """What must answer before a server counts as ready."""

    url: str
    """Answers 200 once the HTTP side is up."""
    ae_title: str
    dicom_port: int


def _echo_ok(probe: ReadyProbe) -> bool:
    # A real C-ECHO rather than a bare TCP connect: a connection that never sends an
    # A-ASSOCIATE-RQ can hold a server's shutdown until its ACSE timeout.
    command = [
        "echoscu",
        "-aet",
        CALLING_AE,
        "-aec",
        probe.ae_title,
        LOCALHOST,
        str(probe.dicom_port),
    ]
    try:
        result = subprocess.run(command, env=nodelay_env(), capture_output=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return result.returncode == 0


class ServerProcess:
    """A server child process whose output goes to a log file (a pipe nobody reads would fill
    up and stall it)."""

    def __init__(self, name: str, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = cwd / f"{name}.log"
        with self.log.open("wb") as log:
            self.popen = subprocess.Popen(
                command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    def wait_until_ready(self, client: httpx.Client, probe: ReadyProbe) -> None:
        """Block until the HTTP probe answers 200 and the DICOM port answers a C-ECHO.

        A process that exits or never gets there raises ServerError carrying the tail of its
        log, so the reason shows in the benchmark output rather than in a file nobody opens.
        """
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise ServerError(
                    f"{self.name} exited with code {self.popen.returncode} while starting; "
                    f"last output:\n{log_tail(self.log)}"
                )
            if _answers_ok(client, probe.url) and _echo_ok(probe):
                return
            time.sleep(_POLL_S)
        raise ServerError(
            f"{self.name} not ready after {START_TIMEOUT_S:.0f} s ({probe.url}); "
            f"last output:\n{log_tail(self.log)}"
        )

    def stop(self, sig: signal.Signals, grace: float) -> None:
        """Send `sig`, wait up to `grace` seconds, then SIGKILL; always reaps the process."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        self.popen.wait()


def _answers_ok(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url).status_code == 200
    except httpx.HTTPError:
        return False


def orthanc_config(work_dir: Path, http_port: int, dicom_port: int) -> dict[str, object]:
    return {
        "Name": "openpacs-bench",
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": AE_TITLE,
        "StorageDirectory": str(work_dir / "storage"),
        "IndexDirectory": str(work_dir / "index"),
        "Plugins": [str(PLUGIN_DIR / name) for name in PLUGINS],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        # Compression would cost Orthanc CPU that openpacs does not spend; compare like for like.
        "StorageCompression": False,
    }


class OrthancServer:
    """Orthanc with a generated configuration in `work_dir`, on free ports."""

    name = "orthanc"
    ae_title = AE_TITLE
    credentials: tuple[str, str] | None = None  # its REST API and DICOMweb are open here

    def __init__(self, work_dir: Path, extra_config: dict[str, object] | None = None) -> None:
        self.work_dir = work_dir
        self.extra_config = extra_config or {}  # e.g. DicomModalities for C-MOVE
        self.http_port = free_port()
        self.dicom_port = free_port()
        self._process: ServerProcess | None = None
        # One client for the server's lifetime: building one costs ~40 ms, which would show up
        # in every timed index check.
        self._http = http_client()

    @property
    def base_url(self) -> str:
        return f"http://{LOCALHOST}:{self.http_port}"

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServerError("orthanc is not running")
        return self._process.popen.pid

    def start(self) -> None:
        if shutil.which(ORTHANC) is None:
            raise ServerError(f"{ORTHANC} not found: install it (apt-get install orthanc)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "orthanc.json"
        settings = orthanc_config(self.work_dir, self.http_port, self.dicom_port)
        config.write_text(json.dumps({**settings, **self.extra_config}))
        self._process = ServerProcess(
            self.name, [ORTHANC, str(config)], self.work_dir, nodelay_env()
        )
        try:
            probe = ReadyProbe(f"{self.base_url}/system", self.ae_title, self.dicom_port)
            self._process.wait_until_ready(self._http, probe)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        # Orthanc must be gone before another one opens an index: SQLite keeps it locked.
        if self._process is not None:
            self._process.stop(signal.SIGTERM, STOP_TIMEOUT_S)
            self._process = None
        self._http.close()

    def version(self) -> str:
        return str(get_json(self._http, f"{self.base_url}/system", "Version"))

    def instance_count(self) -> int:
        return get_count(self._http, f"{self.base_url}/statistics", "CountInstances")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
