"""What routes get injected: one session per request, and the services of the DIMSE side."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from openpacs.archive.core import Core
from openpacs.config import Settings
from openpacs.config_edit import SettingsReport
from openpacs.monitoring.associations import Associations
from openpacs.nodes import Echo, Find


def _nothing() -> None:
    return None


def _no_processes() -> list[int]:
    return []


@dataclass(frozen=True)
class Services:
    """What HTTP may ask of the DIMSE side. The composition root (server.py) builds it from
    openpacs.dimse, so openpacs.web never imports it; missing ones answer 501."""

    echo: Echo | None = None
    find: Find | None = None
    # Called after a job is queued again, so an idle worker starts it now, not at its next poll.
    wake_jobs: Callable[[], None] = _nothing
    # Takes new settings in the running server (listeners restart in place); None: nothing
    # is applied live, every change waits for a restart.
    apply_settings: Callable[[Settings], SettingsReport] | None = None
    settings_file: Path | None = None  # where the Settings page saves (None: not allowed)
    # The associations of this process's listeners (and the receivers' counts), for /api/status
    # and /metrics; None: no listeners run beside this app.
    associations: Associations | None = None
    # Process ids of the receiver processes (storescp.workers), for their CPU and memory.
    receivers: Callable[[], list[int]] = _no_processes
    # Where the receivers write their metrics (prometheus-client multiprocess mode), if any.
    receiver_metrics: Path | None = None


def core_of(request: Request) -> Core:
    return request.app.state.core  # type: ignore[no-any-return]


def services_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def _read(request: Request) -> Iterator[Session]:
    with core_of(request).sessions() as session:
        yield session


def _write(request: Request) -> Iterator[Session]:
    # Committed when the route returns, before the answer leaves (scope="function" below), so a
    # failed commit is an error response, never a success that did not happen.
    with core_of(request).writing() as session:
        yield session


ReadSession = Annotated[Session, Depends(_read, scope="function")]
WriteSession = Annotated[Session, Depends(_write, scope="function")]
ServicesDep = Annotated[Services, Depends(services_of)]
