"""Debian's nginx in front of `openpacs serve` with deploy/nginx.conf, at the root of a host
and under /pacs/: health, sign-in with the session cookie, DICOMweb URLs that point at the
public address, and a 100 MB STOW-RS request passing through."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread

from openpacs.web import console
from tests.conftest import free_port, need
from tests.e2e.ohif_checks import require_ohif, viewports_drawn
from tests.e2e.serve import (
    Server,
    chromium,
    require_built,
    screenshot,
    serve,
    signed_in_page,
    store_files,
)
from tests.e2e.test_viewer import CANVAS_PIXELS
from tests.generators import ct_series

pytestmark = [pytest.mark.peer]

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD = "proxy-admin", "proxy-admin-password"


def _site(openpacs_port: int, listen: int) -> str:
    """The shipped server block, pointed at this test's openpacs and port."""
    text = (REPO / "deploy" / "nginx.conf").read_text()
    text = text.replace("127.0.0.1:5000", f"127.0.0.1:{openpacs_port}")
    return text.replace("listen 80;", f"listen 127.0.0.1:{listen};")


@contextlib.contextmanager
def nginx(work: Path, openpacs_port: int) -> Iterator[str]:
    binary = need("nginx")
    listen = free_port()
    work.mkdir(parents=True, exist_ok=True)
    for folder in ("logs", "tmp"):
        (work / folder).mkdir(exist_ok=True)
    (work / "nginx.conf").write_text(
        "daemon off;\nworker_processes 1;\npid nginx.pid;\nerror_log logs/error.log warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n  access_log logs/access.log;\n  client_body_temp_path tmp/body;\n"
        "  proxy_temp_path tmp/proxy;\n" + _site(openpacs_port, listen) + "\n}\n"
    )
    output = (work / "logs" / "stderr.log").open("w")
    process = subprocess.Popen(
        [binary, "-p", str(work), "-c", str(work / "nginx.conf")],
        stdout=output,
        stderr=output,
    )
    public = f"http://127.0.0.1:{listen}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"nginx exited: {process.stderr.read().decode() if process.stderr else ''}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{public}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise AssertionError("nginx did not answer in 20 s")
            time.sleep(0.1)
        yield public
    finally:
        process.terminate()
        process.wait(10)
        output.close()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    work = tmp_path_factory.mktemp("nginx")
    with (
        serve(work / "openpacs", users=[(USER, "admin", PASSWORD)]) as server,
        nginx(work / "nginx", int(server.base.rsplit(":", 1)[1])) as public,
    ):
        yield server, public


@pytest.mark.parametrize("prefix", ["", "/pacs"])
def test_sign_in_and_dicomweb_urls_through_the_proxy(
    proxied: tuple[Server, str], prefix: str, tmp_path: Path
) -> None:
    server, public = proxied
    base = public + prefix
    assert httpx.get(f"{base}/health").status_code == 200
    with httpx.Client(base_url=base) as browser:
        signed = browser.post("/api/auth/login", json={"username": USER, "password": PASSWORD})
        assert signed.status_code == 200, signed.text
        assert browser.get("/api/auth/me").json()["username"] == USER
    files = ct_series(tmp_path / "ct", 2, rows=32, columns=32, seed=len(prefix))
    store_files(need("storescu"), server, files)
    study = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    auth = (USER, PASSWORD)
    found = httpx.get(f"{base}/dicomweb/studies", params={"StudyInstanceUID": study}, auth=auth)
    assert found.status_code == 200, found.text
    (answer,) = found.json()
    assert answer["00081190"]["Value"] == [f"{base}/dicomweb/studies/{study}"]
    metadata = httpx.get(f"{base}/dicomweb/studies/{study}/metadata", auth=auth).json()
    bulk = metadata[0]["7FE00010"]["BulkDataURI"]
    assert bulk.startswith(f"{base}/dicomweb/studies/{study}/")
    assert httpx.get(bulk, auth=auth).status_code == 200


def test_a_100_mb_stow_passes_through_the_proxy(
    proxied: tuple[Server, str], tmp_path: Path
) -> None:
    _, public = proxied
    files = ct_series(tmp_path / "big", 100, rows=724, columns=724, seed=3)
    boundary = "openpacs-stow-boundary"
    parts = bytearray()
    for path in files:
        parts += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        parts += path.read_bytes() + b"\r\n"
    parts += f"--{boundary}--\r\n".encode()
    assert len(parts) > 100 * 1024 * 1024
    answer = httpx.post(
        f"{public}/pacs/dicomweb/studies",
        content=bytes(parts),
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        },
        auth=(USER, PASSWORD),
        timeout=300,
    )
    assert answer.status_code == 200, answer.text[:500]
    stored = answer.json()["00081199"]["Value"]
    assert len(stored) == 100
    assert "00081198" not in answer.json()


@pytest.mark.e2e
def test_the_console_works_under_the_proxys_path(
    proxied: tuple[Server, str], tmp_path: Path
) -> None:
    """Published under /pacs/, the console signs in, lists a study and shows its thumbnail,
    its Logs page follows a file live, and every request it makes stays under /pacs/ (a site
    that publishes only that path)."""
    from playwright.sync_api import Page, expect

    server, public = proxied
    need("chromium")
    require_built(
        (console.DEFAULT_DIR / "index.html").is_file(),
        "the web console is not built: run `make setup` (needs npm)",
    )
    files = ct_series(tmp_path / "ct", 1, rows=32, columns=32, patient_id="PROXY01", seed=9)
    store_files(need("storescu"), server, files)
    with chromium() as browser:
        page = browser.new_page()  # type: ignore[attr-defined]
        assert isinstance(page, Page)
        asked: list[str] = []
        page.on("request", lambda request: asked.append(request.url))
        page.goto(f"{public}/pacs/", timeout=60_000)
        page.wait_for_url("**/pacs/sign-in**", timeout=30_000)
        page.fill("input[name=username]", USER)
        page.fill("input[name=password]", PASSWORD)
        page.click("[data-test=sign-in]")
        page.wait_for_url("**/pacs/studies**", timeout=30_000)
        page.fill("input[name=patient_id]", "PROXY01")
        page.click("[data-test=search]")
        row = page.locator("[data-test=studies] .el-table__row", has_text="PROXY01")
        expect(row).to_have_count(1, timeout=30_000)
        link = row.locator("[data-test=open-ohif]").get_attribute("href") or ""
        assert link.startswith("/pacs/ohif/viewer?")
        row.locator(".el-table__expand-icon").click()
        thumbnail = page.locator("[data-test=series] img")
        expect(thumbnail).to_have_count(1, timeout=30_000)
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=thumbnail.element_handle()
        )
        screenshot(page, "console-behind-nginx")
        # The built-in viewer draws it: frames, worker and codecs all come from under /pacs/.
        row.locator("[data-test=open-viewer]").click()
        expect(page.locator("[data-test=image-position]")).to_contain_text("1 / 1")
        drawn = f"() => ({CANVAS_PIXELS})(document.querySelector('[data-test=viewport]'))"
        page.wait_for_function(f"() => ({drawn})().distinct > 16", timeout=30_000)
        # The Logs page follows a file through the proxy (Server-Sent Events under /pacs/).
        page.click("[data-test=nav-logs]")
        page.locator("[data-service=storescp] [data-test=log-file]").first.click()
        lines = page.locator("[data-test=log-lines]")
        expect(lines).to_contain_text("association accepted", timeout=30_000)
        with page.expect_response(lambda response: "/follow" in response.url, timeout=30_000):
            page.click("[data-test=follow]")
        echo = [need("echoscu"), "-aet", "PROXYFOLLOW", "-aec", "STORESCP", "127.0.0.1"]
        subprocess.run([*echo, str(server.store_port)], check=True, capture_output=True)
        expect(lines).to_contain_text("PROXYFOLLOW", timeout=30_000)
        download = page.locator("[data-test=download]").get_attribute("href") or ""
        assert download.startswith("/pacs/api/logs/storescp/"), download
    local = ("blob:", "data:")  # made in the page (the viewer's workers), not asked of a server
    outside = [url for url in asked if not url.startswith((f"{public}/pacs/", *local))]
    assert not outside, outside


@pytest.mark.e2e
@pytest.mark.parametrize("prefix", ["", "/pacs"])
def test_ohif_draws_a_study_through_the_proxy(
    proxied: tuple[Server, str], prefix: str, tmp_path: Path
) -> None:
    """OHIF, published at the root or under /pacs/, lists and draws a study; under /pacs/
    every request it makes (chunks, workers, fonts, DICOMweb) stays under /pacs/."""
    from playwright.sync_api import Page

    server, public = proxied
    need("chromium")
    require_ohif()
    files = ct_series(tmp_path / "ct", 20, rows=128, columns=128, seed=20 + len(prefix))
    store_files(need("storescu"), server, files)
    study = str(dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    base = public + prefix
    with chromium() as browser:
        page = signed_in_page(browser, base, USER, PASSWORD)
        assert isinstance(page, Page)
        asked: list[str] = []
        page.on("request", lambda request: asked.append(request.url))
        page.goto(f"{base}/ohif/viewer?StudyInstanceUIDs={study}", timeout=60_000)
        name = f"ohif-behind-nginx{prefix.replace('/', '-')}"
        assert viewports_drawn(page, name, 1) >= 1, f"not drawn; see test-artifacts/{name}.png"
    outside = [url for url in asked if not url.startswith(f"{base}/")]
    assert not outside, outside


@pytest.mark.e2e
def test_swagger_ui_works_under_the_proxys_path(proxied: tuple[Server, str]) -> None:
    """/pacs/docs draws the API from this machine's files (no CDN) and "Try it out" calls the
    API under /pacs/."""
    from playwright.sync_api import Page, expect

    _, public = proxied
    need("chromium")
    require_built(
        (console.DEFAULT_DIR / "swagger" / "swagger-ui-bundle.js").is_file(),
        "the web console (with Swagger UI) is not built: run `make setup` (needs npm)",
    )
    with chromium() as browser:
        page = signed_in_page(browser, f"{public}/pacs", USER, PASSWORD)
        assert isinstance(page, Page)
        asked: list[str] = []
        page.on("request", lambda request: asked.append(request.url))
        page.goto(f"{public}/pacs/docs", timeout=60_000)
        operation = page.locator(".opblock", has=page.locator("[data-path='/api/system']"))
        expect(operation).to_be_visible(timeout=30_000)
        operation.locator(".opblock-summary").click()
        page.get_by_role("button", name="Try it out").click()
        with page.expect_response(f"{public}/pacs/api/system") as answer:
            page.get_by_role("button", name="Execute").click()
        assert answer.value.status == 200
        screenshot(page, "swagger-behind-nginx")
    outside = [url for url in asked if not url.startswith(f"{public}/pacs/")]
    assert not outside, outside
