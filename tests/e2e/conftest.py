"""What the console page tests share: one headless Chromium a module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.serve import chromium, require_console


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    require_console()
    with chromium() as launched:
        yield launched
