"""The log set-up of `python -m src.api` (`logs.configure`): what a person reads."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from src.api import logs


@pytest.fixture
def restored() -> Iterator[None]:
    root, httpx = logging.getLogger(), logging.getLogger("httpx")
    handlers, level, httpx_level = root.handlers[:], root.level, httpx.level
    yield
    root.handlers[:], root.level = handlers, level
    httpx.setLevel(httpx_level)


def test_httpx_request_lines_are_for_debug_only(restored: None) -> None:
    """httpx logs every request at INFO: one line per model and tool call (83 of 226 lines
    of a short session)."""
    logs.configure("INFO")
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("httpx").isEnabledFor(logging.WARNING)
    assert logging.getLogger("src.api.turns").isEnabledFor(logging.INFO)
    logs.configure("DEBUG")
    assert logging.getLogger("httpx").isEnabledFor(logging.DEBUG)
