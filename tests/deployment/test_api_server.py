"""The service as deployed: a real uvicorn process read by a plain HTTP client, and a
PostgreSQL that goes away and comes back under a running server."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from src.agent.memory.embedded import EmbeddedPostgres
from tests.api_harness import (
    api_client,
    chat,
    every_endpoint,
    settings_for,
    settings_values,
    wait_until,
)
from tests.fakes import FakeModel
from tests.support import as_environment, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(database_dsn: str, tmp_path: Path) -> Iterator[int]:
    """`python -m src.api` on a free port, configured through its environment only."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"OPENAI_API_KEY", "API_KEY"}}
    env.update(as_environment(settings_values(database_dsn)))
    env.update(
        PYTHONPATH=str(ROOT),
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        SSE_PING_SECONDS="5",
        ENVIRONMENT="development",
    )
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "src.api"], cwd=tmp_path, env=env, stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_uvicorn_process_streams_to_a_plain_http_client(server: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server, timeout=30)
    sid = str(uuid.uuid4())
    body = json.dumps({"session_id": sid, "message": "What is the weather in Lima?"})
    conn.request(
        "POST",
        "/chat",
        body=body,
        headers={"Content-Type": "application/json", "Accept": "text/event-stream"},
    )
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/event-stream")
    assert response.getheader("Cache-Control") == "no-store"
    events, current = [], {}
    while True:  # read line by line, as an EventSource does
        line = response.readline().decode().rstrip("\r\n")
        if line == "":
            if current:
                events.append(current)
                if current["event"] in {"done", "error"}:
                    break
            current = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            current[name] = json.loads(value) if name == "data" else value
    conn.close()
    names = [e["event"] for e in events]
    assert names[0] == "session" and names[-1] == "done"
    assert "tool_call" in names and "tool_result" in names and "token" in names
    assert all("id" in e for e in events)
    answer = "".join(e["data"]["content"] for e in events if e["event"] == "token")
    transcript = httpx.get(f"http://127.0.0.1:{server}/sessions/{sid}/messages").json()
    assert transcript["messages"][-1]["content"] == answer


async def test_database_outage_fails_fast_and_recovers_without_restart(pg_dir: Path) -> None:
    postgres = EmbeddedPostgres(pg_dir)
    dsn = postgres.start()
    try:
        settings = settings_for(dsn, postgres_memory_connect_timeout=2.0)
        # A hang would trip the client's timeout and fail the test.
        async with api_client(settings, timeout=15) as client:
            sid = str(uuid.uuid4())
            assert (await chat(client, sid, "My name is Ana"))[-1].event == "done"
            postgres.stop()
            health = await client.get("/health")
            assert health.status_code == 503 and health.json()["database"] == "unreachable"
            body = {"session_id": sid, "message": "What is my name?"}
            for method, path, kwargs in every_endpoint(sid, body):
                response = await client.request(method, path, **kwargs)
                assert response.status_code == 503, (path, response.text)
                assert response.json()["code"] == "storage_unavailable"
            assert postgres.start() == dsn
            assert (await client.get("/health")).status_code == 200
            events = await chat(client, sid, "What is my name?")
            assert events[-1].event == "done"
            messages = (await client.get(f"/sessions/{sid}/messages")).json()["messages"]
            assert messages[0]["content"] == "My name is Ana"
            assert "Ana" in messages[-1]["content"] and len(messages) == 4
    finally:
        postgres.stop()


async def test_database_lost_mid_turn_ends_the_stream_with_storage_unavailable(
    pg_dir: Path,
) -> None:
    postgres = EmbeddedPostgres(pg_dir)
    dsn = postgres.start()
    gate, started = asyncio.Event(), asyncio.Event()
    model = FakeModel(gate=gate, started=started)
    try:
        settings = settings_for(dsn, postgres_memory_connect_timeout=2.0)
        async with api_client(settings, model, timeout=15) as client:
            sid = str(uuid.uuid4())
            running = asyncio.create_task(chat(client, sid, "My name is Ana"))
            await started.wait()  # the user message is stored; the model is thinking
            postgres.stop()
            gate.set()
            events = await running
            assert events[-1].event == "error"
            assert events[-1].data["code"] == "storage_unavailable"
            postgres.start()
            response = await client.get(f"/sessions/{sid}/messages")
            assert response.status_code == 200, response.text
            assert [m["content"] for m in response.json()["messages"]] == ["My name is Ana"]

            async def lease_released() -> bool:
                conn = await asyncpg.connect(dsn)
                try:
                    return not await conn.fetchval("SELECT count(*) FROM turn_leases")
                finally:
                    await conn.close()

            await wait_until(lease_released)  # released once the database is back
            retried = await chat(client, sid, "My name is Ana")
            assert retried[-1].event == "done"
            messages = (await client.get(f"/sessions/{sid}/messages")).json()["messages"]
            assert [m["role"] for m in messages] == ["user", "assistant"]  # not stored twice
    finally:
        postgres.stop()
