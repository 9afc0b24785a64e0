"""The API tier: the app under an in-process uvicorn (`tests/api_harness.py`) on the run's
database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.api_harness import api_client
from tests.pgbouncer import Pooler


@pytest.fixture
async def pooled_client(pooler: Pooler, database_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app (fake model, offline tools) whose store goes through the test's
    pooler."""
    async with api_client(pooler.settings(database_dsn), timeout=30) as client:
        yield client
