"""Checkpoint retention in the workers (issue 27, point 1): a pass prunes every session
changed since the last one to its latest checkpoints, never one a turn is running on, and
the transcript the API serves is unchanged; the sweep loop of `make dev`'s checkpointer
prunes with langgraph.json's `checkpointer.retention`."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid

import asyncpg
import httpx
import pytest
from langchain_core.messages import HumanMessage

from src.api.app import create_app
from tests.api_harness import chat, serve, settings_for
from tests.fakes import FakeModel
from tests.support import chat_graph, memory_env

QUESTION = "What's the weather in Montevideo?"  # a tool turn: 4 messages, 5 checkpoints


async def roots(db: asyncpg.Connection, sid: str) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM checkpoints WHERE session_id = $1 AND checkpoint_ns = ''",
        uuid.UUID(sid),
    )


async def messages(client: httpx.AsyncClient, sid: str) -> list[dict]:
    response = await client.get(f"/sessions/{sid}/messages")
    assert response.status_code == 200, response.text
    return response.json()["messages"]


async def test_a_pass_prunes_idle_sessions_never_one_with_a_turn_running(
    empty_dsn: str, fresh_db: asyncpg.Connection
) -> None:
    settings = settings_for(
        empty_dsn,
        checkpoint_retention_keep_latest=10,
        checkpoint_retention_sweep_batch=1,
        session_ttl_sweep_interval_minutes=1440,  # the pass is run by the test
        rate_limit_per_minute=100_000,
    )
    gate, started = asyncio.Event(), asyncio.Event()
    model = FakeModel(gate=gate, started=started, gate_from_call=10**9)
    app = create_app(settings, model=model)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        idle, busy = [str(uuid.uuid4()) for _ in range(2)], str(uuid.uuid4())
        for sid in (*idle, busy):
            for _ in range(4):
                await chat(client, sid, QUESTION)
        shown = {sid: await messages(client, sid) for sid in (*idle, busy)}
        model.gate_from_call = model.calls + 1
        running = asyncio.create_task(chat(client, busy, "And the price of AAPL?"))
        await asyncio.wait_for(started.wait(), 30)
        busy_roots = await roots(fresh_db, busy)
        assert await roots(fresh_db, idle[0]) == 20

        done = await app.state.retention.run_pass()

        assert done.sessions == 2 and done.checkpoints > 0 and done.bytes > 0
        for sid in idle:
            assert await roots(fresh_db, sid) == 10
            assert await messages(client, sid) == shown[sid]  # the transcript as it was
        assert await roots(fresh_db, busy) == busy_roots  # its turn is running: left alone
        gate.set()
        assert (await running)[-1].event == "done"
        after_turn = await messages(client, busy)
        assert after_turn[: len(shown[busy])] == shown[busy]
        assert (await app.state.retention.run_pass()).sessions == 1  # now it is pruned
        assert await roots(fresh_db, busy) == 10
        assert await messages(client, busy) == after_turn
        # The next turn goes on from the pruned session as from any other.
        await chat(client, idle[0], "And in Lima?")
        now = await messages(client, idle[0])
        assert now[: len(shown[idle[0]])] == shown[idle[0]]
        assert [m["content"] for m in now[len(shown[idle[0]]) :] if m["role"] == "user"] == [
            "And in Lima?"
        ]


async def test_make_devs_checkpointer_prunes_with_langgraph_json_retention(
    empty_dsn: str,
    fresh_db: asyncpg.Connection,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`langgraph dev` hands its CLI's `checkpointer` object to the server as JSON; our
    checkpointer reads `retention` from it and prunes after each sweep of its loop."""
    from graphs import checkpointer as studio

    caplog.set_level(logging.INFO, logger="src.api.checkpoint_retention")
    for name, value in memory_env(empty_dsn).items():
        monkeypatch.setenv(name, value)
    ttl = {"strategy": "delete", "sweep_interval_minutes": 0.02}
    monkeypatch.setattr(studio, "thread_ttl", lambda: ttl)
    monkeypatch.setenv(
        "LANGGRAPH_CHECKPOINTER",
        json.dumps(
            {"path": "./graphs/checkpointer.py:checkpointer", "retention": {"keep_latest": 3}}
        ),
    )
    async with studio.checkpointer() as saver:
        graph = chat_graph(saver)
        thread = str(uuid.uuid4())
        for i in range(4):
            await graph.ainvoke(
                {"messages": [HumanMessage(f"hi {i}")]}, {"configurable": {"thread_id": thread}}
            )
        transcript = await saver.store.get_messages(uuid.UUID(thread))
        async with asyncio.timeout(30):
            while await roots(fresh_db, thread) > 3:  # noqa: ASYNC110 (database state)
                await asyncio.sleep(0.2)
        assert await saver.store.get_messages(uuid.UUID(thread)) == transcript
    assert any(r.getMessage().startswith("checkpoint retention: pruned") for r in caplog.records)
