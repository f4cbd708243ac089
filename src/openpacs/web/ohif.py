"""OHIF Viewer under `/ohif/`: installed from the npm registry at setup, served from disk.

OHIF's prebuilt `dist/` assumes it is served at `/`. Installing rewrites it once for the
`/ohif/` subpath (absolute `="/…"` links and PUBLIC_URL in index.html, webpack's public path in
the JS chunks, `url(/…)` in the CSS) and writes an `app-config.js` whose DICOMweb data source is
this server's `/dicomweb` on the same origin (no CORS). Nothing of OHIF is committed: the files
come from the npm registry's tarball of `@ohif/app@<OHIF_VERSION>`, checked against the
registry's integrity (`openpacs ohif install`, run by `make run`; no Node.js needed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from openpacs.web.dicomweb.urls import prefix

OHIF_VERSION = "3.13.2"
PREFIX = "/ohif/"
DEFAULT_DIR = Path(__file__).resolve().parent / "static" / "ohif"
VERSION_FILE = ".openpacs-ohif-version"
NPM_REGISTRY = "https://registry.npmjs.org/"
REGISTRY_TIMEOUT = 60
MEDIA_TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript"}

_NOT_INSTALLED = """<!doctype html><meta charset="utf-8"><title>OHIF not installed</title>
<h1>OHIF Viewer is not installed</h1>
<p>Run <code>make run</code> (it installs it), or <code>openpacs ohif install</code>.
It needs access to the npm registry (or a mirror: <code>--registry URL</code>).</p>"""


class InstallError(RuntimeError):
    """OHIF could not be fetched or unpacked; the message says what to do."""


def installed_version(folder: Path = DEFAULT_DIR) -> str | None:
    marker = folder / VERSION_FILE
    return marker.read_text().strip() if marker.is_file() else None


def install(
    folder: Path = DEFAULT_DIR,
    version: str = OHIF_VERSION,
    registry: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Fetch `@ohif/app@version` from the npm registry (no Node.js needed) and unpack it into
    `folder`, rewritten for /ohif/. `progress(done, total)` follows the download."""
    with tempfile.TemporaryDirectory(prefix="openpacs-ohif-") as tmp:
        work = Path(tmp)
        tarball = fetch(version, work / "app.tgz", registry or default_registry(), progress)
        staging = work / "dist"
        _unpack_dist(tarball, staging)
        rewrite_for_subpath(staging)
        (staging / "app-config.js").write_text(app_config())
        (staging / VERSION_FILE).write_text(version + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staging), folder)
    return folder


def default_registry() -> str:
    """npm's own setting when there is one (a mirror, e.g. registry.npmmirror.com), as npm
    itself would take it from the environment; else the public registry."""
    for name in ("npm_config_registry", "NPM_CONFIG_REGISTRY"):
        if os.environ.get(name):
            return os.environ[name]
    return NPM_REGISTRY


def fetch(
    version: str,
    target: Path,
    registry: str,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Download the package tarball the registry lists for `version` and check it against the
    integrity (SHA-512) the registry gives for it."""
    where = f"{registry.rstrip('/')}/@ohif%2fapp/{urllib.parse.quote(version)}"
    try:
        with urllib.request.urlopen(where, timeout=REGISTRY_TIMEOUT) as answer:
            dist = json.load(answer)["dist"]
        url, integrity = dist["tarball"], dist["integrity"]
        algorithm, _, expected = integrity.partition("-")
        if algorithm != "sha512":
            raise InstallError(f"the registry gives a {algorithm} integrity; sha512 expected")
        digest = hashlib.sha512()
        with urllib.request.urlopen(url, timeout=REGISTRY_TIMEOUT) as answer:
            total = int(answer.headers.get("Content-Length") or 0)
            with target.open("wb") as out:
                while chunk := answer.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    if progress is not None:
                        progress(out.tell(), total)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise InstallError(f"@ohif/app@{version} is not in the registry {registry}") from exc
        raise InstallError(f"the npm registry {registry} answered {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InstallError(
            f"cannot reach the npm registry {registry} ({reason}); check the network or proxy "
            "(https_proxy), or name a mirror with --registry"
        ) from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise InstallError(f"{registry} did not answer as an npm registry: {exc}") from exc
    if base64.b64encode(digest.digest()).decode() != expected:
        raise InstallError(f"{url} does not match the registry's integrity: download it again")
    return target


def _unpack_dist(tarball: Path, target: Path) -> None:
    """Only `package/dist/…` members, and none that would land outside `target`."""
    with tarfile.open(tarball) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("package/dist/")]
        if not members:
            raise InstallError(f"{tarball.name} holds no package/dist: not OHIF's app package")
        for member in members:
            member.name = member.name.removeprefix("package/dist/")
        archive.extractall(target, members=members, filter="data")


# Where webpack loads chunks from, worked out in the page (PUBLIC_URL, which index.html sets
# per request) or in a worker (its own URL up to /ohif/), so one install serves at "/ohif/" and
# under a proxy's prefix ("/pacs/ohif/") alike.
PUBLIC_PATH = (
    '(typeof window !== "undefined" && window.PUBLIC_URL) || '
    'self.location.pathname.replace(/\\/ohif\\/.*$/, "/ohif/")'
)


def rewrite_for_subpath(dist: Path, prefix: str = PREFIX) -> None:
    """Point OHIF's absolute paths at `prefix` instead of the site root."""
    index = dist / "index.html"
    html = index.read_text(encoding="utf-8")
    html = html.replace('="/', f'="{prefix}').replace('PUBLIC_URL="/"', f'PUBLIC_URL="{prefix}"')
    index.write_text(html, encoding="utf-8")
    for script in dist.glob("*.js"):
        text = script.read_text(encoding="utf-8")
        rewritten = text.replace(
            '__webpack_require__.p = "/"', f"__webpack_require__.p = ({PUBLIC_PATH})"
        )
        if rewritten != text:
            script.write_text(rewritten, encoding="utf-8")
    for sheet in dist.glob("*.css"):
        # Relative to the style sheet, which sits in the dist's root: right under any prefix.
        text = sheet.read_text(encoding="utf-8")
        if "url(/" in text:
            sheet.write_text(text.replace("url(/", "url(./"), encoding="utf-8")


def published_index(index: Path, public_prefix: str) -> str:
    """index.html for a page published under `public_prefix` ("" or a proxy's "/pacs")."""
    html = index.read_text(encoding="utf-8")
    if not public_prefix:
        return html
    return html.replace(f'="{PREFIX}', f'="{public_prefix}{PREFIX}')


def app_config(dicomweb_path: str = "/dicomweb") -> str:
    """OHIF's configuration: one DICOMweb data source, this server, same origin; where it is
    published (a proxy's prefix before /ohif/) is read from PUBLIC_URL, set by index.html."""
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
    return (
        "/* Written by openpacs (openpacs ohif install); rewritten on every install. */\n"
        f"const site = (window.PUBLIC_URL || {json.dumps(PREFIX)}).slice(0, -{len(PREFIX)});\n"
        f"const root = window.location.origin + site + {json.dumps(dicomweb_path)};\n"
        "window.config = {\n"
        f"  routerBasename: site + {json.dumps(PREFIX.rstrip('/'))},\n"
        "  showStudyList: true,\n"
        "  extensions: [],\n"
        "  modes: [],\n"
        "  defaultDataSourceName: 'openpacs',\n"
        "  dataSources: [{\n"
        "    namespace: '@ohif/extension-default.dataSourcesModule.dicomweb',\n"
        "    sourceName: 'openpacs',\n"
        f"    configuration: Object.assign({json.dumps(source)},\n"
        "      {qidoRoot: root, wadoRoot: root,\n"
        "       wadoUriRoot: window.location.origin + site + '/wado'}),\n"
        "  }],\n"
        "};\n"
    )


def router(folder: Path = DEFAULT_DIR) -> APIRouter:
    """`/ohif/…`: files of the installed dist; any other path is the app's (index.html)."""
    routes = APIRouter(tags=["viewer"])
    root = folder.resolve()

    @routes.get("/ohif", include_in_schema=False)
    def ohif_root(request: Request) -> RedirectResponse:
        return RedirectResponse(prefix(request) + PREFIX)

    @routes.get("/ohif/{path:path}", include_in_schema=False)
    def ohif_file(path: str, request: Request) -> Response:
        index = root / "index.html"
        if not index.is_file():
            return HTMLResponse(_NOT_INSTALLED, status_code=404)
        wanted = (root / path).resolve()
        if path and path != "index.html" and wanted.is_file() and wanted.is_relative_to(root):
            media = MEDIA_TYPES.get(wanted.suffix)
            return FileResponse(wanted, media_type=media)
        return HTMLResponse(
            published_index(index, prefix(request)), headers={"Cache-Control": "no-cache"}
        )

    return routes
