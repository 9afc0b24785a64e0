"""Several worker processes (issue 15, point 3): `API_WORKERS=2 python -m src.api` serves
sessions, leases, metrics and the rate limit as one service, and start-up refuses more
connections than the server has."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from src.api.workers import connection_budget
from src.config.settings import SettingsError
from tests.api_harness import parse_sse, samples, settings_for, settings_values, value
from tests.fake_openai import KEY as OPENAI_KEY
from tests.fake_openai import MODEL, FakeOpenAI, Reply
from tests.processes import redis_url, server_processes
from tests.support import as_environment, free_port, plant_expired_lease

ROOT = Path(__file__).resolve().parents[2]
POOL_MAX = 4


async def fresh(url: str, method: str, path: str, **kwargs: object) -> httpx.Response:
    """One request on a connection of its own (so the workers' accept race spreads them)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


async def chat_done(url: str, sid: str, message: str) -> None:
    response = await fresh(url, "POST", "/chat", json={"session_id": sid, "message": message})
    assert response.status_code == 200, response.text
    assert parse_sse(response.text)[0][-1].event == "done", response.text


def turn_pids(log: Path) -> set[str]:
    """The worker pids of the turn log lines (`[pid] vera.turns [request=.. turn=..]: turn`)."""
    return set(re.findall(r"\[(\d+)\] vera\.turns \[[^\]]*\]: turn ", log.read_text()))


async def test_two_workers_share_sessions_leases_and_metrics(
    database_dsn: str, tmp_path: Path
) -> None:
    fake = FakeOpenAI()
    log = tmp_path / "server.log"
    metrics_port = free_port()
    async with fake.serve() as openai_url:
        env = {
            "API_WORKERS": "2",
            "METRICS_PORT": str(metrics_port),
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
            "POSTGRES_MEMORY_POOL_MAX": str(POOL_MAX),
            "RATE_LIMIT_PER_MINUTE": "10000",
            "OPENAI_API_KEY": OPENAI_KEY,
            "OPENAI_BASE_URL": openai_url,
            "AGENT_MODEL": MODEL,
        }
        with server_processes(database_dsn, [log], **env) as [url]:
            # Sessions: turns land on both workers; every session reads back from any.
            sids: list[str] = []
            while len(sids) < 8 or (len(turn_pids(log)) < 2 and len(sids) < 60):
                sids.append(str(uuid.uuid4()))
                await chat_done(url, sids[-1], f"Hello {len(sids)}")
            assert len(turn_pids(log)) == 2, "every turn ran on one worker"
            for sid in sids:
                messages = (await fresh(url, "GET", f"/sessions/{sid}/messages")).json()
                assert [m["role"] for m in messages["messages"]] == ["user", "assistant"]
            listed = (await fresh(url, "GET", "/sessions", params={"limit": 100})).json()
            assert set(sids) <= {s["session_id"] for s in listed["sessions"]}

            # Leases: a running turn makes its session busy on every worker.
            fake.add(Reply(text="a slow answer " * 10, pieces=20, every=0.1))
            busy_sid = str(uuid.uuid4())
            running = asyncio.create_task(chat_done(url, busy_sid, "Take your time"))
            conn = await asyncpg.connect(database_dsn)
            try:
                while not await conn.fetchval(  # noqa: ASYNC110 (database state: polled)
                    "SELECT count(*) FROM turn_leases WHERE session_id = $1", uuid.UUID(busy_sid)
                ):
                    await asyncio.sleep(0.02)
                for _ in range(6):
                    busy = await fresh(
                        url, "POST", "/chat", json={"session_id": busy_sid, "message": "Hi"}
                    )
                    assert busy.status_code == 409, busy.text
                    assert busy.json()["code"] == "session_busy"
                await running
                # ... and a lease its worker let expire is taken over by any worker.
                stale = str(uuid.uuid4())
                await plant_expired_lease(conn, stale)
            finally:
                await conn.close()
            await chat_done(url, stale, "Anyone there?")

            # Metrics: whichever worker answers the scrape, it reports both workers' sums.
            turns = len(sids) + 2
            await asyncio.sleep(2.5)  # the other worker's pool gauges refresh every 2 s
            for _ in range(6):
                scrape = samples((await fresh(url, "GET", "/metrics")).text)
                assert value(scrape, "vera_turns_total", outcome="ok") == turns
                assert value(scrape, "vera_turn_duration_seconds_count") == turns
                assert value(scrape, "vera_turn_first_token_seconds_count") == turns
                assert value(scrape, "vera_model_calls_total", outcome="ok") == turns
                assert value(scrape, "vera_model_tokens_total", kind="input") == 11 * turns
                assert value(scrape, "vera_session_busy_total") == 6
                assert value(scrape, "vera_lease_takeovers_total") == 1
                assert value(scrape, "vera_db_pool_max_connections") == 2 * POOL_MAX
            # METRICS_PORT: one port for all workers, served by their supervisor.
            async with httpx.AsyncClient(timeout=10) as plain:
                port_text = (await plain.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
            assert value(samples(port_text), "vera_turns_total", outcome="ok") == turns
    assert not list((tmp_path / "metrics").glob("gauge_live*")), "a dead worker's gauges stay"


async def test_two_workers_share_one_rate_limit_in_redis(database_dsn: str, tmp_path: Path) -> None:
    redis = redis_url()
    if redis is None:
        pytest.skip("no Redis server on 127.0.0.1:6379")
    name = "w" + uuid.uuid4().hex[:12]  # a principal of its own: no count from other runs
    key = "workers-budget-key-0123456789abcdefghij"
    env = {
        "API_WORKERS": "2",
        "RATE_LIMIT_STORAGE_URI": redis,
        "RATE_LIMIT_PER_MINUTE": "30",
        "API_KEYS": f"{name}:{key},{name}s:{key}-scraper",
    }
    log = tmp_path / "server.log"
    with server_processes(database_dsn, [log], **env) as [url]:
        statuses = [
            (await fresh(url, "GET", "/sessions", headers={"X-API-Key": key})).status_code
            for _ in range(40)
        ]
        scraper = {"X-API-Key": f"{key}-scraper"}  # another principal: its own budget
        scrape = samples((await fresh(url, "GET", "/metrics", headers=scraper)).text)
    # One budget of 30 for both workers (each process would allow 30 with memory://).
    assert statuses == [200] * 30 + [429] * 10
    assert value(scrape, "vera_rate_limited_total", limit="requests") == 10


async def test_the_connection_budget_is_checked_against_max_connections(
    database_dsn: str,
) -> None:
    conn = await asyncpg.connect(database_dsn)
    try:
        usable = int(await conn.fetchval("SHOW max_connections")) - int(
            await conn.fetchval("SHOW superuser_reserved_connections")
        )
        if await conn.fetchval("SELECT current_setting('server_version_num')::int >= 160000"):
            usable -= int(await conn.fetchval("SHOW reserved_connections"))
    finally:
        await conn.close()
    fits = settings_for(database_dsn, postgres_memory_pool_max=usable // 2 - 1)
    assert "API_WORKERS=2 x" in await connection_budget(fits, 2)
    over = settings_for(database_dsn, postgres_memory_pool_max=usable // 2)
    with pytest.raises(SettingsError, match=r"API_WORKERS=2 x \(POSTGRES_MEMORY_POOL_MAX="):
        await connection_budget(over, 2)


def test_start_up_stops_when_the_workers_would_exhaust_the_server(database_dsn: str) -> None:
    environ = {k: v for k, v in os.environ.items() if k not in {"OPENAI_API_KEY", "API_KEY"}}
    environ.update(as_environment(settings_values(database_dsn)))
    environ.update(PYTHONPATH=str(ROOT), API_WORKERS="50", POSTGRES_MEMORY_POOL_MAX="100")
    done = subprocess.run(
        [sys.executable, "-m", "src.api"],
        env=environ,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert (
        "Invalid configuration: API_WORKERS=50 x (POSTGRES_MEMORY_POOL_MAX=100 + 1 LISTEN)"
        " = 5050 connections" in done.stderr
    ), done.stderr
    assert "max_connections" in done.stderr
