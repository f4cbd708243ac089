"""The web console at `/`: the Vue app built from `console/` (by `make`, with npm) into
`static/console/`, served as a history-mode single-page app.

A file of the build is served as it is (hashed assets cached for good, index.html never); any
other path outside the server's own prefixes is a page of the app, so it gets index.html and the
app's router draws it. Paths under the server's prefixes (/api, /dicomweb, /wado, /ohif, /docs,
/health...) that no route answered stay 404s: a mistyped API call must not come back as HTML.
Include this router last, after every other route.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.convertors import Convertor, register_url_convertor

from openpacs.web import auth
from openpacs.web.dicomweb.urls import prefix

DEFAULT_DIR = Path(__file__).resolve().parent / "static" / "console"
# First path segments that belong to the server, never to the console's router.
SERVER_PREFIXES = frozenset(
    {
        "api", "dicomweb", "dicom-web", "wado", "ohif", "docs", "openapi.json",
        "health", "metrics",
    }
)  # fmt: skip


class ConsolePath(Convertor[str]):
    """Any path but the server's own: a request under /api (any method) that no route takes
    must not reach the console's route, whose GET-only match would turn a 404 into a 405."""

    regex = "(?!(?:" + "|".join(re.escape(p) for p in sorted(SERVER_PREFIXES)) + ")(?:/|$)).*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("console", ConsolePath())
IMMUTABLE = "public, max-age=31536000, immutable"

_NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>openpacs console not built</title>
<h1>The openpacs web console is not built</h1>
<p>Install Node.js 20.19 or newer (it brings npm), then run <code>make run</code>: it builds the
console from <code>console/</code>. The REST API (<a href="/docs">/docs</a>) and DICOMweb work
without it.</p>"""


def router(folder: Path = DEFAULT_DIR) -> APIRouter:
    routes = APIRouter(include_in_schema=False)
    root = folder.resolve()

    # Public: the app's files hold no data; the sign-in page is one of them.
    @routes.get("/{path:console}", openapi_extra=auth.PUBLIC)
    def console_file(path: str, request: Request) -> Response:
        index = root / "index.html"
        if not index.is_file():
            return HTMLResponse(_NOT_BUILT, status_code=503)
        wanted = (root / path).resolve()
        if path and wanted.is_file() and wanted.is_relative_to(root):
            cache = IMMUTABLE if wanted.parent.name == "assets" else "no-cache"
            return FileResponse(wanted, headers={"Cache-Control": cache})
        # A page of the app (its router draws it), or an asset of an older build: a stale page
        # asking for it must not cache index.html under the asset's name.
        if path.startswith("assets/"):
            raise HTTPException(status_code=404, detail="Not Found")
        return HTMLResponse(
            _with_base(index, prefix(request)), headers={"Cache-Control": "no-cache"}
        )

    return routes


def _with_base(index: Path, public_prefix: str) -> str:
    """index.html with <base href> naming where the console is published ("/", or a proxy's
    X-Forwarded-Prefix such as "/pacs/"): the build's relative asset URLs, the app's routes
    and its API calls all start from it."""
    text = index.read_text(encoding="utf-8")
    base = f'<base href="{html.escape(public_prefix + "/", quote=True)}">'
    return text.replace("<head>", f"<head>\n    {base}", 1)
