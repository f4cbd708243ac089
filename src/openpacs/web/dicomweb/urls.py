"""Absolute URLs as the client sees the server: scheme, host and port, and a proxy's prefix.

Behind a reverse proxy the request says http://127.0.0.1:5000 while the client used
https://pacs.site/imaging; X-Forwarded-Proto, X-Forwarded-Host (with its port, or
X-Forwarded-Port) and X-Forwarded-Prefix say so. Without them, a Host header that lacks a port
gets the port the connection arrived on (a port mapped by a container runtime without a proxy
would then be wrong: such set-ups should send X-Forwarded-Host). A client could send these
headers itself, but they only shape the URLs in the answers that client gets.
"""

from __future__ import annotations

import re

from fastapi import Request

ROOTS = ("/dicomweb", "/dicom-web")
_HOST = re.compile(r"[A-Za-z0-9.\-_~%!$&'()*+;=:\[\]]+")
_PREFIX = re.compile(r"(/[A-Za-z0-9.\-_~%!$&'()*+,;=:@]+)*")


def _first(request: Request, name: str) -> str | None:
    value = request.headers.get(name)
    if not value:
        return None
    first = value.split(",")[0].strip()
    return first or None


def origin(request: Request) -> str:
    """scheme://host[:port] as the client reached us."""
    scheme = (_first(request, "x-forwarded-proto") or request.url.scheme).lower()
    if scheme not in ("http", "https"):
        scheme = request.url.scheme
    forwarded_host = _first(request, "x-forwarded-host")
    host = forwarded_host or request.headers.get("host") or ""
    if not _HOST.fullmatch(host):
        host = request.url.netloc
    port = _first(request, "x-forwarded-port")
    if port is None and forwarded_host is None and request.scope.get("server"):
        # Some clients (dicomweb-client) send Host without the port they connected to; the
        # port the connection came in on is then the one the URLs need.
        port = str(request.scope["server"][1])
    default = {"http": "80", "https": "443"}[scheme]
    if port and port.isdigit() and port != default and not _has_port(host):
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def _has_port(host: str) -> bool:
    return bool(re.search(r":\d+$", host)) and not host.endswith("]")


def prefix(request: Request) -> str:
    value = (_first(request, "x-forwarded-prefix") or "").rstrip("/")
    if value and not value.startswith("/"):
        value = "/" + value
    return value if _PREFIX.fullmatch(value) else ""


def service_root(request: Request) -> str:
    """The absolute DICOMweb root the request came through (/dicomweb or /dicom-web)."""
    path = request.url.path
    root = next((r for r in ROOTS if path == r or path.startswith(r + "/")), ROOTS[0])
    return origin(request) + prefix(request) + root


def study_url(root: str, study: str) -> str:
    return f"{root}/studies/{study}"


def series_url(root: str, study: str, series: str) -> str:
    return f"{root}/studies/{study}/series/{series}"


def instance_url(root: str, study: str, series: str, sop: str) -> str:
    return f"{root}/studies/{study}/series/{series}/instances/{sop}"
