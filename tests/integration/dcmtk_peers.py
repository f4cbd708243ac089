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


class StoreScp:
    """`storescp` writing what it receives into `out_dir`; extra options as given (e.g. `+B`
    to keep the received bytes, `+xa` to accept compressed syntaxes)."""

    def __init__(self, out_dir: Path, *options: str, ae_title: str = "DEST") -> None:
        self.out_dir = out_dir
        self.options = options
        self.ae_title = ae_title
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = out_dir.parent / f"storescp-{self.port}.log"

    def __enter__(self) -> Self:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        command = [need("storescp"), "-aet", self.ae_title, "-od", str(self.out_dir)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*command, *self.options, str(self.port)],
                env=PEER_ENV,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            address = ("127.0.0.1", str(self.port))
            echo = run(need("echoscu"), "-aec", self.ae_title, *address, check=False)
            if echo.returncode == 0:
                return self
            time.sleep(0.05)
        self.__exit__(None, None, None)
        raise AssertionError(f"storescp did not start: {self.log.read_text()}")

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

    def received(self) -> dict[str, Path]:
        """SOP Instance UID → the file storescp wrote."""
        files = {}
        for path in sorted(self.out_dir.iterdir()):
            if path.is_file():
                files[str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = path
        return files
