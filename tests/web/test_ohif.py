"""OHIF under /ohif/: the subpath rewrite, its configuration, and serving with SPA fallback."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.server
import io
import json
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from openpacs import cli
from openpacs.web import ohif
from tests.conftest import free_port

INDEX = (
    '<html><head><link rel="manifest" href="/manifest.json"><script>window.PUBLIC_URL="/"'
    '</script><script defer src="/app.bundle.js"></script></head></html>'
)


def _dist(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "index.html").write_text(INDEX)
    (folder / "app.bundle.js").write_text('(() => { __webpack_require__.p = "/"; })();')
    (folder / "other.js").write_text("const untouched = 1;")
    (folder / "app.bundle.css").write_text("@font-face{src:url(/font.woff2)}")
    (folder / "codec.wasm").write_bytes(b"\0asm")
    return folder


def test_rewrite_points_absolute_paths_at_the_subpath(tmp_path: Path) -> None:
    dist = _dist(tmp_path / "dist")
    ohif.rewrite_for_subpath(dist)
    html = (dist / "index.html").read_text()
    assert 'href="/ohif/manifest.json"' in html and 'src="/ohif/app.bundle.js"' in html
    assert 'window.PUBLIC_URL="/ohif/"' in html
    # Chunks load from where the page says it is published (or, in a worker, its own URL).
    bundle = (dist / "app.bundle.js").read_text()
    assert f"__webpack_require__.p = ({ohif.PUBLIC_PATH})" in bundle
    assert (dist / "other.js").read_text() == "const untouched = 1;"
    assert "url(./font.woff2)" in (dist / "app.bundle.css").read_text()


def test_app_config_uses_this_servers_dicomweb_where_the_page_is_published() -> None:
    config = ohif.app_config()
    assert 'const site = (window.PUBLIC_URL || "/ohif/").slice(0, -6);' in config
    assert 'routerBasename: site + "/ohif"' in config
    assert 'window.location.origin + site + "/dicomweb"' in config
    assert "qidoRoot: root, wadoRoot: root" in config
    assert '"supportsFuzzyMatching": true' in config


def test_index_names_a_proxys_prefix(tmp_path: Path) -> None:
    dist = _dist(tmp_path / "ohif")
    ohif.rewrite_for_subpath(dist)
    headers = {"X-Forwarded-Prefix": "/pacs"}
    page = asyncio.run(_get(dist, "/ohif/viewer?StudyInstanceUIDs=1.2", headers))
    assert 'window.PUBLIC_URL="/pacs/ohif/"' in page.text
    assert 'src="/pacs/ohif/app.bundle.js"' in page.text and '="/ohif/' not in page.text
    assert asyncio.run(_get(dist, "/ohif/index.html", headers)).text == page.text
    plain = asyncio.run(_get(dist, "/ohif/"))
    assert 'window.PUBLIC_URL="/ohif/"' in plain.text
    moved = asyncio.run(_get(dist, "/ohif", headers))
    assert moved.headers["location"] == "/pacs/ohif/"


@pytest.fixture
def served(tmp_path: Path) -> Path:
    return _dist(tmp_path / "ohif")


async def _get(folder: Path, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    app = FastAPI()
    app.include_router(ohif.router(folder))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path, headers=headers)


@pytest.mark.parametrize(
    ("path", "status", "kind", "body"),
    [
        ("/ohif/app.bundle.js", 200, "text/javascript", "__webpack_require__"),
        ("/ohif/codec.wasm", 200, "application/wasm", "\0asm"),
        ("/ohif/viewer", 200, "text/html", "PUBLIC_URL"),  # the app's own route: index.html
        ("/ohif/", 200, "text/html", "PUBLIC_URL"),
        ("/ohif/..%2Fsecret.txt", 200, "text/html", "PUBLIC_URL"),  # never outside
    ],
)
def test_files_and_app_routes(served: Path, path: str, status: int, kind: str, body: str) -> None:
    (served.parent / "secret.txt").write_text("secret")
    response = asyncio.run(_get(served, path))
    assert response.status_code == status
    assert response.headers["content-type"].startswith(kind)
    assert body in response.text


def test_not_installed_says_how(tmp_path: Path) -> None:
    response = asyncio.run(_get(tmp_path / "missing", "/ohif/"))
    assert response.status_code == 404
    assert "openpacs ohif install" in response.text


class Registry:
    """An npm registry on loopback serving one @ohif/app version (never the network in tests)."""

    def __init__(self, tarball: bytes, version: str = "9.9.9", integrity: str = "") -> None:
        digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
        self.tarball, self.version = tarball, version
        self.integrity = integrity or f"sha512-{digest}"
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                base = registry.url.rstrip("/")
                if self.path == f"/@ohif%2fapp/{registry.version}":
                    body = json.dumps(
                        {"dist": {"tarball": f"{base}/app.tgz", "integrity": registry.integrity}}
                    ).encode()
                elif self.path == "/app.tgz":
                    body = registry.tarball
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _package(dist: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(dist.iterdir()):
            archive.add(path, arcname=f"package/dist/{path.name}")
    return buffer.getvalue()


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    served = Registry(_package(_dist(tmp_path / "published")))
    yield served
    served.close()


def test_install_fetches_from_the_registry_without_node(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "")  # no npm, no node
    seen: list[tuple[int, int]] = []
    folder = ohif.install(
        tmp_path / "ohif", "9.9.9", registry.url, lambda done, total: seen.append((done, total))
    )
    assert ohif.installed_version(folder) == "9.9.9"
    assert 'PUBLIC_URL="/ohif/"' in (folder / "index.html").read_text()
    assert "dicomweb" in (folder / "app-config.js").read_text()
    assert seen[-1] == (len(registry.tarball), len(registry.tarball))


def test_install_uses_npms_registry_setting(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("npm_config_registry", registry.url)
    assert ohif.default_registry() == registry.url
    assert ohif.installed_version(ohif.install(tmp_path / "ohif", "9.9.9")) == "9.9.9"


def test_a_tampered_download_is_refused_and_the_installed_viewer_kept(tmp_path: Path) -> None:
    good = Registry(_package(_dist(tmp_path / "published")))
    try:
        folder = ohif.install(tmp_path / "ohif", "9.9.9", good.url)
    finally:
        good.close()
    tampered = Registry(b"not the published bytes", integrity=good.integrity)
    try:
        with pytest.raises(ohif.InstallError, match="integrity"):
            ohif.install(folder, "9.9.9", tampered.url)
    finally:
        tampered.close()
    assert ohif.installed_version(folder) == "9.9.9"
    assert (folder / "index.html").is_file()


def test_unknown_version_and_unreachable_registry_name_the_fix(
    registry: Registry, tmp_path: Path
) -> None:
    with pytest.raises(ohif.InstallError, match=r"@ohif/app@0\.0\.1 is not in the registry"):
        ohif.install(tmp_path / "a", "0.0.1", registry.url)
    closed = free_port()
    with pytest.raises(ohif.InstallError, match=r"cannot reach the npm registry.*--registry"):
        ohif.install(tmp_path / "b", "9.9.9", f"http://127.0.0.1:{closed}/")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_installs_with_a_registry_option(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "ohif"
    monkeypatch.setattr(ohif, "DEFAULT_DIR", target)
    result = CliRunner().invoke(
        cli.app, ["ohif", "install", "--version", "9.9.9", "--registry", registry.url]
    )
    assert result.exit_code == 0, result.output
    assert "OHIF 9.9.9 installed" in result.output
    assert ohif.installed_version(target) == "9.9.9"


def test_unpack_takes_only_the_dist_and_refuses_other_packages(tmp_path: Path) -> None:
    def tarball(names: list[str]) -> Path:
        path = tmp_path / f"pkg{len(names)}.tgz"
        with tarfile.open(path, "w:gz") as archive:
            for name in names:
                data = b"x"
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return path

    target = tmp_path / "out"
    ohif._unpack_dist(tarball(["package/dist/index.html", "package/README.md"]), target)
    assert [p.name for p in target.iterdir()] == ["index.html"]
    with pytest.raises(ohif.InstallError, match="not OHIF"):
        ohif._unpack_dist(tarball(["package/index.js"]), tmp_path / "other")
