"""What the browser tests share: `openpacs serve` as a subprocess on free ports, and Debian's
Chromium driven by Playwright (never `playwright install`, which would download a browser)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REQUIRE_PEERS, free_port, need

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
OPENPACS = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "openpacs"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                 "--enable-unsafe-swiftshader", "--disable-dev-shm-usage"]  # fmt: skip


def require_built(built: bool, message: str) -> None:
    """Skip when what `make setup` builds with npm (OHIF, the console) is missing; fail when
    peers are required (CI), where npm is."""
    if built:
        return
    if REQUIRE_PEERS:
        pytest.fail(message)
    pytest.skip(message)


def require_console() -> None:
    """Skip (fail in CI) when the web console is not built, and when Chromium is missing."""
    from openpacs.web import console

    require_built(
        (console.DEFAULT_DIR / "index.html").is_file(),
        "the web console is not built: run `make setup` (needs npm)",
    )
    need("chromium")


@dataclass(frozen=True)
class Server:
    base: str  # http://127.0.0.1:PORT
    store_port: int  # the Store SCP's (AE STORESCP)
    worklist_port: int  # the Worklist SCP's (AE WORKLISTSCP)
    qr_port: int  # the Q/R SCP's (AE QRSCP)
    print_port: int  # the Print SCP's (AE PRINTSCP)


@contextlib.contextmanager
def serve(
    work: Path,
    users: Sequence[tuple[str, str, str]] = (),
    settings: Mapping[str, str] | None = None,
    openpacs: Path = OPENPACS,
    path: str | None = None,
) -> Iterator[Server]:
    """`openpacs serve` with its index, storage and logs in `work`, every listener on a free
    port of 127.0.0.1, healthy before this yields; stopped afterwards. `users` (name, role,
    password) are added first with `openpacs user add`, their passwords final; `settings` are
    further OPENPACS_* environment variables. Its settings file is `work`/openpacs.toml (empty
    at first), where the Settings page saves. `openpacs`: the command (another install's);
    `path`: its PATH (default: this one's)."""
    http, dicom = free_port(), free_port()
    worklist, qr, printer = free_port(), free_port(), free_port()
    work.mkdir(parents=True, exist_ok=True)
    settings_file = work / "openpacs.toml"
    if not settings_file.exists():
        settings_file.write_text("", encoding="utf-8")
    env = {
        **os.environ,
        "OPENPACS_CONFIG": str(settings_file),
        "OPENPACS_HTTP__HOST": "127.0.0.1",
        "OPENPACS_HTTP__PORT": str(http),
        "OPENPACS_STORESCP__HOST": "127.0.0.1",
        "OPENPACS_STORESCP__PORT": str(dicom),
        "OPENPACS_STORESCP__WORKERS": "1",
        "OPENPACS_QRSCP__HOST": "127.0.0.1",
        "OPENPACS_QRSCP__PORT": str(qr),
        "OPENPACS_WORKLIST__HOST": "127.0.0.1",
        "OPENPACS_WORKLIST__PORT": str(worklist),
        "OPENPACS_PRINTSCP__HOST": "127.0.0.1",
        "OPENPACS_PRINTSCP__PORT": str(printer),
        "OPENPACS_STORAGE__ROOT": str(work / "storage"),
        "OPENPACS_DATABASE__URL": f"sqlite:///{work / 'index.db'}",
        "OPENPACS_LOGGING__DIR": str(work / "logs"),
        "OPENPACS_LOGGING__CONSOLE": "false",
        **(settings or {}),
    }
    if path is not None:
        env["PATH"] = path
    for name, role, password in users:
        add = ["user", "add", name, "--role", role, "--password", password, "--no-must-change"]
        subprocess.run([str(openpacs), *add], env=env, check=True, capture_output=True)
    log = (work / "serve.log").open("w")
    process = subprocess.Popen([str(openpacs), "serve"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{http}"
    try:
        _wait_healthy(base, process)
        yield Server(base, dicom, worklist, qr, printer)
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def api_client(server: Server, username: str, password: str) -> httpx.Client:
    """The server's REST API as a script calls it: HTTP Basic, no CSRF token needed."""
    return httpx.Client(
        base_url=server.base, auth=(username, password), timeout=30, trust_env=False
    )


def _wait_healthy(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"openpacs serve exited with {process.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError("openpacs serve did not become healthy in 60 s")


def store_files(storescu: str, server: Server, files: list[Path]) -> None:
    """C-STORE the files to the server with dcmtk's storescu (one association)."""
    subprocess.run(
        [storescu, "-aec", "STORESCP", "127.0.0.1", str(server.store_port), *map(str, files)],
        env={**os.environ, "TCP_NODELAY": "1"},
        check=True,
        capture_output=True,
    )


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A headless Debian Chromium under Playwright (a playwright Browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def screenshot(page: object, name: str) -> None:
    """Save the page as test-artifacts/NAME.png for a person to look at."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def script_errors(page: object) -> list[str]:
    """The script errors the page meets from now on (uncaught exceptions, console.error; not
    Chromium's note of each 4xx answer, which the app handles: a 401 from /api/auth/me is how
    it learns to show the sign-in)."""
    from playwright.sync_api import ConsoleMessage, Page

    assert isinstance(page, Page)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    page.on("console", on_console)
    return errors


def signed_in_page(
    browser: object, base: str, username: str, password: str, locale: str = "en-US"
) -> object:
    """A page (playwright Page) of a fresh browser context whose language is `locale`, signed in
    through the API: its requests carry the session cookie, as after the console's sign-in."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(locale=locale, viewport={"width": 1400, "height": 900})
    signed = context.request.post(
        f"{base}/api/auth/login", data={"username": username, "password": password}
    )
    assert signed.ok, signed.text()
    return context.new_page()
