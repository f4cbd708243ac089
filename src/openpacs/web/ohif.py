"""OHIF Viewer under `/ohif/`: installed from the npm registry at setup, served from disk.

OHIF's prebuilt `dist/` assumes it is served at `/`. Installing rewrites it once for the
`/ohif/` subpath (absolute `="/…"` links and PUBLIC_URL in index.html, webpack's public path in
the JS chunks, `url(/…)` in the CSS) and writes an `app-config.js` whose DICOMweb data source is
this server's `/dicomweb` on the same origin (no CORS). Nothing of OHIF is committed: the files
come from `npm pack @ohif/app@<OHIF_VERSION>` (`openpacs ohif install`, run by `make run`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

OHIF_VERSION = "3.13.2"
PREFIX = "/ohif/"
DEFAULT_DIR = Path(__file__).resolve().parent / "static" / "ohif"
VERSION_FILE = ".openpacs-ohif-version"
MEDIA_TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript"}

_NOT_INSTALLED = """<!doctype html><meta charset="utf-8"><title>OHIF not installed</title>
<h1>OHIF Viewer is not installed</h1>
<p>Run <code>make run</code> (it installs it), or <code>openpacs ohif install</code>.
It needs Node.js 20+ with npm and access to the npm registry.</p>"""


class InstallError(RuntimeError):
    """OHIF could not be fetched or unpacked; the message says what to do."""


def installed_version(folder: Path = DEFAULT_DIR) -> str | None:
    marker = folder / VERSION_FILE
    return marker.read_text().strip() if marker.is_file() else None


def install(folder: Path = DEFAULT_DIR, version: str = OHIF_VERSION) -> Path:
    """Fetch `@ohif/app@version` with npm and unpack it into `folder`, rewritten for /ohif/."""
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError("npm not found: install Node.js 20+ (it brings npm), then run again")
    with tempfile.TemporaryDirectory(prefix="openpacs-ohif-") as tmp:
        work = Path(tmp)
        result = subprocess.run(
            [npm, "pack", f"@ohif/app@{version}", "--pack-destination", str(work)],
            capture_output=True,
            text=True,
            check=False,
            cwd=work,
        )
        tarballs = list(work.glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no tarball"]
            raise InstallError(f"npm pack @ohif/app@{version} failed: {detail[0]}")
        staging = work / "dist"
        _unpack_dist(tarballs[0], staging)
        rewrite_for_subpath(staging)
        (staging / "app-config.js").write_text(app_config())
        (staging / VERSION_FILE).write_text(version + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), folder)
    return folder


def _unpack_dist(tarball: Path, target: Path) -> None:
    """Only `package/dist/…` members, and none that would land outside `target`."""
    with tarfile.open(tarball) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("package/dist/")]
        if not members:
            raise InstallError(f"{tarball.name} holds no package/dist: not OHIF's app package")
        for member in members:
            member.name = member.name.removeprefix("package/dist/")
        archive.extractall(target, members=members, filter="data")


def rewrite_for_subpath(dist: Path, prefix: str = PREFIX) -> None:
    """Point OHIF's absolute paths at `prefix` instead of the site root."""
    index = dist / "index.html"
    html = index.read_text(encoding="utf-8")
    html = html.replace('="/', f'="{prefix}').replace('PUBLIC_URL="/"', f'PUBLIC_URL="{prefix}"')
    index.write_text(html, encoding="utf-8")
    for script in dist.glob("*.js"):
        text = script.read_text(encoding="utf-8")
        rewritten = text.replace(
            '__webpack_require__.p = "/"', f'__webpack_require__.p = "{prefix}"'
        )
        if rewritten != text:
            script.write_text(rewritten, encoding="utf-8")
    for sheet in dist.glob("*.css"):
        text = sheet.read_text(encoding="utf-8")
        if "url(/" in text:
            sheet.write_text(text.replace("url(/", f"url({prefix}"), encoding="utf-8")


def app_config(dicomweb_path: str = "/dicomweb") -> str:
    """OHIF's configuration: one DICOMweb data source, this server, same origin."""
    source = {
        "friendlyName": "openpacs",
        "name": "openpacs",
        "qidoSupportsIncludeField": True,
        "supportsFuzzyMatching": True,
        "supportsWildcard": True,
        "imageRendering": "wadors",
        "thumbnailRendering": "wadors",
        "enableStudyLazyLoad": True,
        "omitQuotationForMultipartRequest": True,
        "bulkDataURI": {"enabled": True},
    }
    roots = json.dumps(dicomweb_path)
    return (
        "/* Written by openpacs (openpacs ohif install); rewritten on every install. */\n"
        f"const root = window.location.origin + {roots};\n"
        "window.config = {\n"
        f"  routerBasename: {json.dumps(PREFIX.rstrip('/'))},\n"
        "  showStudyList: true,\n"
        "  extensions: [],\n"
        "  modes: [],\n"
        "  defaultDataSourceName: 'openpacs',\n"
        "  dataSources: [{\n"
        "    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',\n"
        "    sourceName: 'openpacs',\n"
        f"    configuration: Object.assign({json.dumps(source)},\n"
        "      {qidoRoot: root, wadoRoot: root, wadoUriRoot: window.location.origin + '/wado'}),\n"
        "  }],\n"
        "};\n"
    )


def router(folder: Path = DEFAULT_DIR) -> APIRouter:
    """`/ohif/…`: files of the installed dist; any other path is the app's (index.html)."""
    routes = APIRouter(tags=["viewer"])
    root = folder.resolve()

    @routes.get("/ohif", include_in_schema=False)
    def ohif_root() -> RedirectResponse:
        return RedirectResponse(PREFIX)

    @routes.get("/ohif/{path:path}", include_in_schema=False)
    def ohif_file(path: str) -> Response:
        index = root / "index.html"
        if not index.is_file():
            return HTMLResponse(_NOT_INSTALLED, status_code=404)
        wanted = (root / path).resolve()
        if path and wanted.is_file() and wanted.is_relative_to(root):
            media = MEDIA_TYPES.get(wanted.suffix)
            return FileResponse(wanted, media_type=media)
        return FileResponse(index, media_type="text/html")

    return routes
