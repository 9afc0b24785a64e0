"""The API tier: the app under an in-process uvicorn (`tests/api_harness.py`) on the run's
database. The Agent Server tests' app, server and clients are fixtures here; a module
overrides `model`, `api_key` or `api_keys` by name where it needs another."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from src.api.app import create_app
from tests.agent_server_runs import KEY, OTHER
from tests.api_harness import GatedApp, api_client, gated_app, serve, settings_for
from tests.fakes import FakeModel
from tests.pgbouncer import Pooler


@pytest.fixture
async def pooled_client(pooler: Pooler, database_dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app (fake model, offline tools) whose store goes through the test's
    pooler."""
    async with api_client(pooler.settings(database_dsn), timeout=30) as client:
        yield client


@pytest.fixture
def model() -> FakeModel:
    return FakeModel()


@pytest.fixture
def api_key() -> str:
    """The key of the principal the tests' clients call as."""
    return KEY


@pytest.fixture
def api_keys() -> str | None:
    """The other principals' `name:key` entries."""
    return f"other:{OTHER}"


@pytest.fixture
def app(database_dsn: str, model: FakeModel, api_key: str, api_keys: str | None) -> FastAPI:
    return create_app(settings_for(database_dsn, api_key=api_key, api_keys=api_keys), model=model)


@pytest.fixture
async def server(app: FastAPI) -> AsyncIterator[str]:
    async with serve(app) as url:
        yield url


@pytest.fixture
async def sdk(server: str, api_key: str) -> AsyncIterator[LangGraphClient]:
    client = get_client(url=server, api_key=api_key)
    yield client
    await client.http.client.aclose()


@pytest.fixture
async def http(server: str, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"X-API-Key": api_key}
    async with httpx.AsyncClient(base_url=server, headers=headers, timeout=30) as c:
        yield c


@pytest.fixture
async def gated(database_dsn: str) -> AsyncIterator[GatedApp]:
    """The app served with a model whose answer after the tools waits (`GatedApp`), for
    a test that stops a run there."""
    async with gated_app(database_dsn, KEY) as served:
        yield served
