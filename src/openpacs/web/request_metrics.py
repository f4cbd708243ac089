"""Every HTTP request timed into the `openpacs_http_request_seconds` histogram, labelled by
route template (never the raw path: UIDs in paths would make a series per study), method and
status class. A plain ASGI middleware: it sees streamed answers to their last byte and adds
no task or buffering of its own."""

from __future__ import annotations

import time
from collections import defaultdict

import fastapi.routing
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openpacs.monitoring import metrics

UNMATCHED = "unmatched"  # no route: one label for every unknown path


def route_templates(app: FastAPI) -> dict[int, list[str]]:
    """Route object → its full path templates. FastAPI keeps an included router's routes with
    their own relative paths; one router included twice (DICOMweb at /dicomweb and
    /dicom-web) gives one route two templates."""
    found: dict[int, list[str]] = defaultdict(list)
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:  # older FastAPI: included routes are copies with the full path
        for route in app.routes:
            found[id(route)].append(str(getattr(route, "path", UNMATCHED)))
        return dict(found)
    for context in contexts(app.routes):
        found[id(context.original_route)].append(context.path or UNMATCHED)
    return dict(found)


class RequestMetrics:
    def __init__(self, app: ASGIApp, owner: FastAPI) -> None:
        self.app = app
        self.owner = owner
        self._templates: dict[int, list[str]] | None = None

    def template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED
        if self._templates is None:  # routes are all added by the first request
            self._templates = route_templates(self.owner)
        candidates = self._templates.get(id(route))
        if not candidates:
            return str(getattr(route, "path", UNMATCHED))
        if len(candidates) == 1:
            return candidates[0]
        path = str(scope.get("path", ""))
        return max(candidates, key=lambda t: (path.startswith(t.split("{")[0]), len(t)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless an answer starts: an exception that escapes is a server error

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            metrics.http_request(
                self.template(scope), scope["method"], status, time.perf_counter() - started
            )


def install(app: FastAPI) -> None:
    app.add_middleware(RequestMetrics, owner=app)
