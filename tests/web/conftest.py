"""The app with services that count job wake-ups, for the job routes' tests."""

from __future__ import annotations

import pytest

from openpacs.archive.core import Core
from openpacs.web.api.deps import Services
from openpacs.web.app import create_app
from tests.web.client import Client


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
def wakes() -> Wakes:
    return Wakes()


@pytest.fixture
def client(core: Core, wakes: Wakes) -> Client:
    return Client(create_app(core, Services(wake_jobs=wakes)))
