"""The HTTP API when things go wrong: model timeouts and errors, busy sessions, crashed
workers, many slow sessions on a small pool, disconnecting clients."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from tests.api_harness import (
    api_client,
    chat,
    hundred_turns_wait_on_the_model_at_once,
    parse_sse,
    settings_for,
    wait_until,
)
from tests.fakes import FakeModel, ProviderError
from tests.pgbouncer import Pooler


async def transcript(client: httpx.AsyncClient, sid: str) -> list[dict]:
    response = await client.get(f"/sessions/{sid}/messages")
    assert response.status_code == 200, response.text
    return response.json()["messages"]


async def test_model_timeout_keeps_the_message_and_a_retry_completes_the_turn(
    database_dsn: str,
) -> None:
    gate = asyncio.Event()
    model = FakeModel(gate=gate)
    settings = settings_for(database_dsn, agent_timeout_seconds=0.3)
    async with api_client(settings, model) as client:
        sid = str(uuid.uuid4())
        events = await chat(client, sid, "What is my name?")
        assert [e.event for e in events] == ["session", "error"]
        assert events[-1].data["code"] == "llm_timeout"
        assert [m["role"] for m in await transcript(client, sid)] == ["user"]
        complete = await client.post(
            "/chat/complete", json={"session_id": sid, "message": "What is my name?"}
        )
        assert complete.status_code == 504 and complete.json()["code"] == "llm_timeout"
        gate.set()  # the model answers again: sending the same message retries the turn
        retried = await chat(client, sid, "What is my name?")
        assert retried[-1].event == "done"
        roles = [(m["role"], m["content"]) for m in await transcript(client, sid)]
        assert roles[0] == ("user", "What is my name?")
        assert [r for r, _ in roles] == ["user", "assistant"]  # the message was not doubled


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (ProviderError(503), "llm_unavailable", 503),
        (ProviderError(429), "llm_unavailable", 503),
        (RuntimeError("bug with secret detail"), "internal", 500),
    ],
)
async def test_model_errors_have_stable_codes(database_dsn: str, error, code, status) -> None:
    async with api_client(settings_for(database_dsn), FakeModel(error=error)) as client:
        sid = str(uuid.uuid4())
        events = await chat(client, sid, "Hello there")
        assert [e.event for e in events] == ["session", "error"]
        assert events[-1].data["code"] == code
        assert "secret" not in events[-1].data["message"]
        assert "Traceback" not in events[-1].data["message"]
        complete = await client.post("/chat/complete", json={"session_id": sid, "message": "Hi"})
        assert complete.status_code == status and complete.json()["code"] == code
        # Both user messages were kept, and nothing else was invented.
        assert [m["content"] for m in await transcript(client, sid)] == ["Hello there", "Hi"]


async def test_two_concurrent_turns_on_one_session_never_fork(
    database_dsn: str, db: asyncpg.Connection, pooler: Pooler
) -> None:
    gate, started = asyncio.Event(), asyncio.Event()
    model = FakeModel(gate=gate, started=started)
    settings = pooler.settings(database_dsn)
    sid = str(uuid.uuid4())
    async with api_client(settings, model) as first, api_client(settings) as other_worker:
        running = asyncio.create_task(chat(first, sid, "My name is Ana"))
        await started.wait()  # turn 1 holds the session and waits on the model
        for client in (first, other_worker):  # same process, and another "worker"
            for path in ("/chat", "/chat/complete"):
                busy = await client.post(path, json={"session_id": sid, "message": "Hi"})
                assert busy.status_code == 409, busy.text
                assert busy.json()["code"] == "session_busy"
        busy_delete = await other_worker.delete(f"/sessions/{sid}")
        assert busy_delete.status_code == 409
        gate.set()
        assert (await running)[-1].event == "done"
        after = await other_worker.post(
            "/chat/complete", json={"session_id": sid, "message": "What is my name?"}
        )
        assert after.status_code == 200 and "Ana" in after.json()["response"]
        contents = [m["content"] for m in await transcript(first, sid)]
        assert contents[0] == "My name is Ana" and contents[2] == "What is my name?"
        assert len(contents) == 4 and "Hi" not in contents
    rows = await db.fetch(
        "SELECT checkpoint_id, parent_checkpoint_id FROM checkpoints "
        "WHERE session_id = $1 AND checkpoint_ns = '' ORDER BY checkpoint_id",
        uuid.UUID(sid),
    )
    parents = [r["parent_checkpoint_id"] for r in rows]
    assert parents == [None] + [r["checkpoint_id"] for r in rows[:-1]]  # one linear chain


async def test_a_crashed_workers_lease_expires(
    database_dsn: str, db: asyncpg.Connection, pooler: Pooler
) -> None:
    sid = uuid.uuid4()
    insert = "INSERT INTO turn_leases VALUES ($1, $2, now() + make_interval(secs => $3))"
    async with api_client(pooler.settings(database_dsn)) as client:
        body = {"session_id": str(sid), "message": "Hello"}
        await db.execute(insert, sid, uuid.uuid4(), 60.0)  # a live holder elsewhere
        assert (await client.post("/chat/complete", json=body)).status_code == 409
        await db.execute("DELETE FROM turn_leases WHERE session_id = $1", sid)
        await db.execute(insert, sid, uuid.uuid4(), -1.0)  # its worker died: lease ran out
        assert (await client.post("/chat/complete", json=body)).status_code == 200
    assert await db.fetchval("SELECT count(*) FROM turn_leases WHERE session_id = $1", sid) == 0


async def test_hundred_slow_sessions_complete_on_a_pool_of_twenty(
    database_dsn: str, db: asyncpg.Connection, pooler: Pooler
) -> None:
    """A turn holds no pooled connection while the model works: 100 turns wait in the model
    at once on a pool of 20. The wait for a pooled connection is long (the turns' writes
    queue up on a slow machine): what is checked is who holds connections, not speed."""
    settings = pooler.settings(
        database_dsn,
        postgres_memory_pool_max=20,
        postgres_memory_connect_timeout=120.0,
        rate_limit_per_minute=1000,
    )
    await hundred_turns_wait_on_the_model_at_once(settings, db)


async def test_client_disconnect_mid_stream_still_stores_a_whole_turn(
    database_dsn: str, db: asyncpg.Connection, pooler: Pooler
) -> None:
    gate = asyncio.Event()
    model = FakeModel(gate=gate, gate_from_call=2)  # the answer after the tool waits
    sid = str(uuid.uuid4())
    async with api_client(pooler.settings(database_dsn), model, timeout=30) as client:
        seen = []
        async with client.stream(
            "POST", "/chat", json={"session_id": sid, "message": "What is the price of AAPL?"}
        ) as response:
            async for line in response.aiter_lines():
                seen.append(line)
                if line == "event: tool_result":
                    break  # the client goes away here
        assert "event: tool_call" in seen
        gate.set()

        async def finished() -> bool:
            return not await db.fetchval(
                "SELECT count(*) FROM turn_leases WHERE session_id = $1", uuid.UUID(sid)
            )

        await wait_until(finished)
        messages = await transcript(client, sid)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"][0]["id"] == messages[2]["tool_call_id"]
    assert "AAPL" in messages[-1]["content"]


async def test_keep_alive_pings_while_the_model_is_slow(database_dsn: str) -> None:
    settings = settings_for(database_dsn, sse_ping_seconds=0.1)
    async with (
        api_client(settings, FakeModel(delay=1.0)) as client,
        client.stream(
            "POST", "/chat", json={"session_id": str(uuid.uuid4()), "message": "Hi"}
        ) as response,
    ):
        body = (await response.aread()).decode()
    events, pings = parse_sse(body)
    assert events[-1].event == "done"
    assert pings >= 2
