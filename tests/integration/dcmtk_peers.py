"""dcmtk's storescp as a C-STORE destination in its own process, on a free port."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from pydicom import dcmread

from tests.conftest import free_port, need
from tests.integration.conftest import PEER_ENV, run

START_TIMEOUT = 10.0


class Listening:
    """A dcmtk program listening on a free port from `with` until its end; `command()` says
    how to start it. Ready once it answers a C-ECHO."""

    def __init__(self, log_dir: Path, name: str, ae_title: str) -> None:
        self.ae_title = ae_title
        self.port = free_port()
        self.log = log_dir / f"{name}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def __enter__(self) -> Self:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.command(), env=PEER_ENV, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            address = ("127.0.0.1", str(self.port))
            echo = run(need("echoscu"), "-aec", self.ae_title, *address, check=False)
            if echo.returncode == 0:
                return self
            time.sleep(0.05)
        self.__exit__(None, None, None)
        raise AssertionError(f"{self.command()[0]} did not start: {self.log.read_text()}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


class StoreScp(Listening):
    """`storescp` writing what it receives into `out_dir`; extra options as given (e.g. `+B`
    to keep the received bytes, `+xa` to accept compressed syntaxes)."""

    def __init__(self, out_dir: Path, *options: str, ae_title: str = "DEST") -> None:
        self.out_dir = out_dir
        self.options = options
        super().__init__(out_dir.parent, "storescp", ae_title)

    def command(self) -> list[str]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        command = [need("storescp"), "-aet", self.ae_title, "-od", str(self.out_dir)]
        return [*command, *self.options, str(self.port)]

    def received(self) -> dict[str, Path]:
        """SOP Instance UID → the file storescp wrote."""
        files = {}
        for path in sorted(self.out_dir.iterdir()):
            if path.is_file():
                files[str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path
        return files


class DcmQrScp(Listening):
    """dcmtk's `dcmqrscp` (a Q/R SCP with its own little database) on a free port, knowing the
    C-MOVE destinations `hosts` (AE title → port on 127.0.0.1); `store` loads files into it."""

    def __init__(self, work_dir: Path, hosts: dict[str, int], ae_title: str = "DCMQR") -> None:
        self.work_dir = work_dir
        self.hosts = hosts
        work_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(work_dir, "dcmqrscp", ae_title)

    def command(self) -> list[str]:
        return [need("dcmqrscp"), "-c", str(self._config())]

    def _config(self) -> Path:
        database = self.work_dir / "db"
        database.mkdir(parents=True, exist_ok=True)
        hosts = "\n".join(
            f"{ae.lower()} = ({ae}, 127.0.0.1, {port})" for ae, port in self.hosts.items()
        )
        text = f"""NetworkTCPPort = {self.port}
MaxPDUSize = 16384
MaxAssociations = 16
HostTable BEGIN
{hosts}
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
{self.ae_title} {database} RW (200, 1024mb) ANY
AETable END
"""
        path = self.work_dir / "dcmqrscp.cfg"
        path.write_text(text)
        return path

    def store(self, files: list[Path]) -> None:
        run(need("storescu"), "-aec", self.ae_title, "127.0.0.1", str(self.port), *files)
