"""OHIF under /ohif/: the subpath rewrite, its configuration, and serving with SPA fallback."""

from __future__ import annotations

import asyncio
import io
import tarfile
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from openpacs.web import ohif

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
    assert '__webpack_require__.p = "/ohif/"' in (dist / "app.bundle.js").read_text()
    assert (dist / "other.js").read_text() == "const untouched = 1;"
    assert "url(/ohif/font.woff2)" in (dist / "app.bundle.css").read_text()


def test_app_config_uses_this_servers_dicomweb() -> None:
    config = ohif.app_config()
    assert 'routerBasename: "/ohif"' in config
    assert 'window.location.origin + "/dicomweb"' in config
    assert "qidoRoot: root, wadoRoot: root" in config
    assert '"supportsFuzzyMatching": true' in config


@pytest.fixture
def served(tmp_path: Path) -> Path:
    return _dist(tmp_path / "ohif")


async def _get(folder: Path, path: str) -> httpx.Response:
    app = FastAPI()
    app.include_router(ohif.router(folder))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


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


def test_install_without_npm_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda _name: None)
    with pytest.raises(ohif.InstallError, match=r"install Node\.js 20"):
        ohif.install(tmp_path / "ohif")


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
