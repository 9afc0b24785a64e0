"""`GET /metrics` (issue 15, point 1): Prometheus counters and histograms move with a tool
turn, a busy session, a lease takeover, rate limits and storage errors; the endpoint is
authenticated like the others."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from src.agent.memory.store import StorageUnavailableError
from src.api.app import create_app
from tests.api_harness import api_client, chat, samples, settings_for, value
from tests.fakes import FakeModel
from tests.support import free_port, plant_expired_lease

KEY = "metrics-key-0123456789abcdefghijklmnop"


async def scrape(client: httpx.AsyncClient, **headers: str) -> dict:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def test_a_tool_turn_moves_the_turn_model_tool_and_pool_metrics(database_dsn: str) -> None:
    settings = settings_for(database_dsn, postgres_memory_pool_max=7)
    async with api_client(settings, timeout=30) as client:
        before = await scrape(client)
        events = await chat(client, str(uuid.uuid4()), "Weather in Montevideo and AAPL price?")
        assert events[-1].event == "done"
        after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("vera_turns_total", outcome="ok") == 1
    assert moved("vera_turn_duration_seconds_count") == 1
    assert moved("vera_turn_duration_seconds_sum") > 0
    assert moved("vera_turn_first_token_seconds_count") == 1
    assert moved("vera_model_calls_total", outcome="ok") == 2  # tool calls, then the answer
    assert moved("vera_model_tokens_total", kind="input") > 0
    assert moved("vera_model_tokens_total", kind="output") > 0
    assert moved("vera_tool_calls_total", tool="get_weather", status="ok") == 1
    assert moved("vera_tool_calls_total", tool="get_stock_price", status="ok") == 1
    # Pool gauges come from the store's asyncpg pool.
    assert value(after, "vera_db_pool_max_connections") == 7
    assert 1 <= value(after, "vera_db_pool_connections") <= 7
    assert value(after, "vera_db_pool_in_use") >= 0
    assert value(after, "vera_db_pool_waiting") == 0


async def test_busy_sessions_and_lease_takeovers_are_counted(database_dsn: str) -> None:
    gate, started = asyncio.Event(), asyncio.Event()
    settings = settings_for(database_dsn)
    sid, stale = str(uuid.uuid4()), str(uuid.uuid4())
    async with api_client(settings, FakeModel(gate=gate, started=started), timeout=30) as client:
        before = await scrape(client)
        running = asyncio.create_task(chat(client, sid, "My name is Ana"))
        await started.wait()
        busy = await client.post("/chat", json={"session_id": sid, "message": "Hi"})
        assert busy.status_code == 409
        gate.set()
        await running
        # A worker that died mid-turn left an expired lease: the next turn takes it over.
        conn = await asyncpg.connect(database_dsn)
        try:
            await plant_expired_lease(conn, stale)
        finally:
            await conn.close()
        assert (await chat(client, stale, "Hello again"))[-1].event == "done"
        after = await scrape(client)
    assert value(after, "vera_session_busy_total") - value(before, "vera_session_busy_total") == 1
    takeovers = "vera_lease_takeovers_total"
    assert value(after, takeovers) - value(before, takeovers) == 1


async def test_metrics_need_the_key_and_rate_limits_are_counted(database_dsn: str) -> None:
    settings = settings_for(
        database_dsn, api_key=KEY, rate_limit_per_minute=3, auth_failures_per_minute=2
    )
    async with api_client(settings, timeout=30) as client:
        assert (await client.get("/metrics")).status_code == 401
        before = await scrape(client, **{"X-API-Key": KEY})
        statuses = [
            (await client.get("/sessions", headers={"X-API-Key": KEY})).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]  # the scrape above was the first of three
        failures = [(await client.get("/sessions")).status_code for _ in range(3)]
        assert failures == [401, 429, 429]  # one failure before this test's block, then 2
    async with api_client(settings_for(database_dsn), timeout=30) as client:
        after = await scrape(client)  # the same process's registry, another app
    for limit, moved in [("requests", 1), ("auth_failures", 2)]:
        assert (
            value(after, "vera_rate_limited_total", limit=limit)
            - value(before, "vera_rate_limited_total", limit=limit)
            == moved
        ), limit


async def test_a_metrics_port_serves_them_without_the_key(database_dsn: str) -> None:
    port = free_port()
    settings = settings_for(database_dsn, api_key=KEY, metrics_port=port)
    async with api_client(settings, timeout=30) as client:
        assert (await client.get("/metrics")).status_code == 401  # the API port: key needed
        async with httpx.AsyncClient(timeout=10) as plain:
            response = await plain.get(f"http://127.0.0.1:{port}/metrics")
        assert response.status_code == 200
        assert "vera_turns_total" in response.text
        assert value(samples(response.text), "vera_db_pool_max_connections") == 20
    with pytest.raises(httpx.ConnectError):  # closed with the app
        async with httpx.AsyncClient(timeout=2) as plain:
            await plain.get(f"http://127.0.0.1:{port}/metrics")


async def test_requests_stopped_by_an_unavailable_database_are_counted() -> None:
    app = create_app(settings_for("postgresql://postgres@127.0.0.1:1/none"), model=FakeModel())
    handler = app.exception_handlers[StorageUnavailableError]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        before = samples((await client.get("/metrics")).text)
        response = await handler(None, StorageUnavailableError("down"))  # type: ignore[arg-type]
        assert response.status_code == 503
        after = samples((await client.get("/metrics")).text)
    name = "vera_storage_errors_total"
    assert value(after, name, where="request") - value(before, name, where="request") == 1
