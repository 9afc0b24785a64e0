"""Run the app under an in-process uvicorn on a free port, and read its event streams."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import uvicorn
from fastapi import FastAPI
from langchain_core.language_models import BaseChatModel
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from prometheus_client.parser import text_string_to_metric_families

from src.api.app import create_app
from src.config.settings import Settings, load_settings
from tests.fakes import FakeModel
from tests.support import memory_settings, transcript_lengths


def settings_values(dsn: str) -> dict[str, Any]:
    """Setting values pointing the memory store at `dsn` (TCP or Unix-socket URL), with
    offline tools and model, no embedded fallback and no API key."""
    return {
        **memory_settings(dsn),
        "postgres_memory_pool_min": 1,
        "environment": "test",
        "weather_provider": "offline",
        "stock_provider": "offline",
        "openai_api_key": None,
        "api_key": None,
    }


def settings_for(dsn: str, **overrides: Any) -> Settings:
    """`Settings` from `settings_values(dsn)` and `overrides`."""
    return load_settings(**{**settings_values(dsn), **overrides})


def every_endpoint(sid: str, body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, request kwargs) of every endpoint but /health, for one session."""
    return [
        ("POST", "/chat", {"json": body}),
        ("POST", "/chat/complete", {"json": body}),
        ("GET", f"/sessions/{sid}/messages", {}),
        ("DELETE", f"/sessions/{sid}", {}),
    ]


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve `app` on 127.0.0.1 (a free port) for the block; yields its base URL."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", proxy_headers=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # start-up failed: raise its error
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class GatedApp:
    """The app served with a model whose second call (the answer after the tools ran)
    waits until `gate` is set (`started` is set once it waits): its URL, an SDK client and
    a new thread."""

    model: FakeModel
    url: str
    sdk: LangGraphClient
    tid: str
    gate: asyncio.Event
    started: asyncio.Event


@asynccontextmanager
async def gated_app(dsn: str, api_key: str) -> AsyncIterator[GatedApp]:
    """A `GatedApp` for the block; the gate is set when it ends (no call outlives it)."""
    gate, started = asyncio.Event(), asyncio.Event()
    model = FakeModel(gate=gate, started=started, gate_from_call=2)
    async with serve(create_app(settings_for(dsn, api_key=api_key), model=model)) as url:
        sdk = get_client(url=url, api_key=api_key)
        try:
            tid = (await sdk.threads.create())["thread_id"]
            yield GatedApp(model, url, sdk, tid, gate, started)
        finally:
            gate.set()
            await sdk.http.client.aclose()


@dataclass
class Event:
    id: str | None
    event: str
    data: dict[str, Any]


def parse_sse(text: str) -> tuple[list[Event], int]:
    """The events of an SSE body, and how many comment (ping) lines it held."""
    events, pings = [], 0
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                pings += 1
            elif line:
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
        if "event" in fields:
            events.append(Event(fields.get("id"), fields["event"], json.loads(fields["data"])))
    return events, pings


async def chat(client: httpx.AsyncClient, session_id: str, message: str) -> list[Event]:
    """POST /chat and read the whole stream; raises on an HTTP error status."""
    async with client.stream(
        "POST", "/chat", json={"session_id": session_id, "message": message}
    ) as response:
        body = (await response.aread()).decode()
        if response.status_code != 200:
            raise httpx.HTTPStatusError(body, request=response.request, response=response)
        assert response.headers["content-type"].startswith("text/event-stream")
    return parse_sse(body)[0]


@asynccontextmanager
async def api_client(
    settings: Settings, model: BaseChatModel | None = None, **client_options: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app built from `settings` (and `model`), served by uvicorn."""
    app = create_app(settings, model=model or FakeModel())
    async with serve(app) as url, httpx.AsyncClient(base_url=url, **client_options) as client:
        yield client


async def wait_until(condition: Callable[[], Awaitable[bool]], limit: float = 20.0) -> None:
    """Poll `condition` (database state: nothing to await) until it holds, for at most
    `limit` seconds."""
    async with asyncio.timeout(limit):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def hundred_turns_wait_on_the_model_at_once(
    settings: Settings, db: asyncpg.Connection
) -> None:
    """100 new sessions send a turn at once to a model that answers only when all 100 are
    waiting in it, on a pool of `POSTGRES_MEMORY_POOL_MAX` connections (fewer than 100):
    they can all get there only if no turn holds a pooled connection while the model works.
    Then every turn ends `done` and stores its two messages. Bound by what it proves (all
    100 in the model at once), not by how fast the machine gets them there."""
    assert settings.postgres_memory_pool_max < 100
    gate = asyncio.Event()
    model = FakeModel(gate=gate)
    sids = [str(uuid.uuid4()) for _ in range(100)]
    limits = httpx.Limits(max_connections=100)
    async with api_client(settings, model, timeout=None, limits=limits) as client:
        turns = [asyncio.create_task(chat(client, sid, "Hello")) for sid in sids]
        try:
            # A turn that ends before the gate opens has failed: stop waiting, show it.
            while model.calls < len(sids) and not any(t.done() for t in turns):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            waiting = model.calls
        finally:
            gate.set()
        results = await asyncio.gather(*turns)
    assert waiting == len(sids), f"only {waiting} of 100 turns reached the model together"
    assert all(events[-1].event == "done" for events in results)
    assert await transcript_lengths(db, sids) == [2] * 100


QUESTION = "What's the weather in Montevideo and the price of AAPL?"


@asynccontextmanager
async def worker(settings: Any, model: FakeModel) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """One API worker (app + client); the app gives the test its store and runner."""
    app = create_app(settings, model=model)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        yield app, client


async def send(
    client: httpx.AsyncClient,
    sid: str,
    message: str,
    turn_id: str | None = None,
    path: str = "/chat",
) -> httpx.Response | list[Event]:
    body: dict[str, Any] = {"session_id": sid, "message": message}
    if turn_id is not None:
        body["turn_id"] = turn_id
    if path != "/chat":
        return await client.post(path, json=body)
    async with client.stream("POST", "/chat", json=body) as response:
        text = (await response.aread()).decode()
    assert response.status_code == 200, text
    return parse_sse(text)[0]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((name, frozenset(labels.items())), 0.0)
