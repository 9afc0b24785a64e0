"""Stopping a running turn (issue 25, point 1): `POST /sessions/{id}/turns/{turn_id}/cancel`
on another worker than the one running it, mid-answer and mid-tool, with the real
`ChatOpenAI` against the fake OpenAI server; a lost notification; a finished turn."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from langchain_core.tools import BaseTool, tool

from src.agent.model import build_chat_model
from src.api.app import create_app
from src.api.turn_cancel import CHANNEL
from tests.api_harness import Event, samples, serve, settings_for, value, wait_until
from tests.fake_openai import KEY, MODEL, FakeOpenAI, Reply, answer, transcript

LONG = "".join(f"word{i} " for i in range(400))


@asynccontextmanager
async def two_workers(
    dsn: str, fake: FakeOpenAI, tools: list[BaseTool] | None = None
) -> AsyncIterator[tuple[list[Any], list[httpx.AsyncClient]]]:
    """Two API workers on one database (the real ChatOpenAI talking to `fake`)."""
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(fake.serve())
        settings = settings_for(dsn, openai_api_key=KEY, openai_base_url=url, agent_model=MODEL)
        apps, clients = [], []
        for _ in range(2):
            app = create_app(settings, model=build_chat_model(settings), tools=tools)
            base = await stack.enter_async_context(serve(app))
            apps.append(app)
            clients.append(
                await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=30))
            )
        yield apps, clients


async def stream_until(
    client: httpx.AsyncClient, body: dict[str, Any], ready: asyncio.Event, when: str
) -> list[Event]:
    """POST /chat and read the whole stream; `ready` is set at the first `when` event."""
    events: list[Event] = []
    async with client.stream("POST", "/chat", json=body) as response:
        assert response.status_code == 200
        name = ""
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append(Event(None, name, json.loads(line[6:])))
                if name == when:
                    ready.set()
    return events


async def test_a_turn_stopped_mid_answer_from_another_worker_keeps_what_was_streamed(
    database_dsn: str,
) -> None:
    fake = FakeOpenAI(Reply(text=LONG, pieces=400, every=0.02), Reply(text="Sure."))
    async with two_workers(database_dsn, fake) as (_, (running_on, other)):
        sid, turn_id = str(uuid.uuid4()), "stop-1"
        body = {"session_id": sid, "message": "Tell me a long story", "turn_id": turn_id}
        tokens = asyncio.Event()
        streaming = asyncio.create_task(stream_until(running_on, body, tokens, "token"))
        await asyncio.wait_for(tokens.wait(), 20)

        before = samples((await other.get("/metrics")).text)
        stopped = await other.post(f"/sessions/{sid}/turns/{turn_id}/cancel")
        events = await streaming
        assert stopped.status_code == 200, stopped.text
        status = stopped.json()
        assert status["status"] == "cancelled"
        assert events[-1].event == "cancelled"
        seen = answer(events)
        assert 0 < len(seen) < len(LONG) and LONG.startswith(seen)
        assert status["answer"] == seen

        messages = await transcript(other, sid)
        assert [m["role"] for m in messages] == ["user", "assistant"]
        kept = messages[-1]
        assert kept["content"] == seen and kept["id"] == events[-1].data["message_id"]
        assert kept["data"]["response_metadata"]["stopped"] is True
        turn = (await running_on.get(f"/sessions/{sid}/turns/{turn_id}")).json()
        assert turn["status"] == "cancelled" and turn["answer"] == seen

        # The session is free, and the next turn sends the model what the user saw.
        body = {"session_id": sid, "message": "Shorter, please"}
        follow_up = await stream_until(other, body, asyncio.Event(), "done")
        assert follow_up[-1].event == "done"
        sent = fake.received[-1].body["messages"]
        assert [m["role"] for m in sent[-3:]] == ["user", "assistant", "user"]
        assert sent[-2]["content"] == seen
        assert fake.rejected == []

        # (Both workers count in this process's registry.)
        after = samples((await other.get("/metrics")).text)
        for name, outcome in (
            ("vera_turn_cancels_total", "requested"),
            ("vera_turns_total", "cancelled"),
        ):
            assert value(after, name, outcome=outcome) - value(before, name, outcome=outcome) == 1


CHECKPOINT_TABLES = ("checkpoints", "checkpoint_blobs", "checkpoint_writes", "transcript_heads")


async def stored_rows(dsn: str, sid: str) -> list[int]:
    """How many rows of each checkpoint table the session has."""
    conn = await asyncpg.connect(dsn)
    try:
        return [
            await conn.fetchval(f"SELECT count(*) FROM {t} WHERE session_id = $1", uuid.UUID(sid))
            for t in CHECKPOINT_TABLES
        ]
    finally:
        await conn.close()


async def test_a_retry_of_a_stopped_turn_replays_what_was_stored_and_ends_cancelled(
    database_dsn: str,
) -> None:
    """The README's retry advice (the same session, message and turn_id) after a stop: the
    stored partial answer again, ending `cancelled`; nothing runs or is stored again."""
    fake = FakeOpenAI(Reply(text=LONG, pieces=400, every=0.02), Reply(text="Ran again."))
    async with two_workers(database_dsn, fake) as (_, (running_on, other)):
        sid, turn_id = str(uuid.uuid4()), "stop-retry"
        body = {"session_id": sid, "message": "Tell me a long story", "turn_id": turn_id}
        tokens = asyncio.Event()
        streaming = asyncio.create_task(stream_until(running_on, body, tokens, "token"))
        await asyncio.wait_for(tokens.wait(), 20)
        stopped = await other.post(f"/sessions/{sid}/turns/{turn_id}/cancel")
        events = await streaming
        assert stopped.status_code == 200 and events[-1].event == "cancelled"
        seen, before = answer(events), await transcript(other, sid)
        rows, requests = await stored_rows(database_dsn, sid), len(fake.received)

        retried = await stream_until(other, body, asyncio.Event(), "x")
        assert [e.event for e in retried if e.event != "token"] == ["session", "cancelled"]
        assert retried[0].data["resumed"] is True
        assert answer(retried) == seen
        assert retried[-1].data["message_id"] == events[-1].data["message_id"]
        assert len(fake.received) == requests  # the model was not called again
        assert await transcript(other, sid) == before
        assert await stored_rows(database_dsn, sid) == rows
        turn = (await running_on.get(f"/sessions/{sid}/turns/{turn_id}")).json()
        assert turn["status"] == "cancelled" and turn["answer"] == seen


async def test_a_turn_stopped_mid_tool_answers_the_call_and_the_history_stays_valid(
    database_dsn: str,
) -> None:
    started = asyncio.Event()

    @tool
    async def get_weather(city: str) -> str:
        """Current weather of a city."""
        started.set()
        await asyncio.Event().wait()  # a tool that never finishes by itself
        return city

    fake = FakeOpenAI(
        Reply(text="Let me look. ", tool_calls=[("call_1", "get_weather", '{"city": "Paris"}')]),
        Reply(text="As you wish."),
    )
    async with two_workers(database_dsn, fake, tools=[get_weather]) as (_, (running_on, other)):
        sid, turn_id = str(uuid.uuid4()), "stop-tool"
        body = {"session_id": sid, "message": "Weather in Paris?", "turn_id": turn_id}
        streaming = asyncio.create_task(stream_until(running_on, body, asyncio.Event(), "x"))
        await asyncio.wait_for(started.wait(), 20)
        stopped = await other.post(f"/sessions/{sid}/turns/{turn_id}/cancel")
        events = await streaming
        assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled"
        assert [e.event for e in events if e.event != "token"] == [
            "session",
            "tool_call",
            "cancelled",
        ]
        assert events[-1].data["message_id"] is None  # the answer was stored whole before
        messages = await transcript(other, sid)
        assert [m["role"] for m in messages] == ["user", "assistant", "tool"]
        result = messages[-1]
        assert result["tool_call_id"] == "call_1" and "Cancelled" in result["content"]
        assert result["data"]["status"] == "error"
        assert result["data"]["response_metadata"]["stopped"] is True

        # A retry replays the cancelled result; the tool does not start again.
        started.clear()
        retried = await stream_until(running_on, body, asyncio.Event(), "x")
        assert [e.event for e in retried if e.event != "token"] == [
            "session",
            "tool_call",
            "tool_result",
            "cancelled",
        ]
        assert retried[-1].data["message_id"] is None and not started.is_set()
        assert await transcript(other, sid) == messages and len(fake.received) == 1

        follow_up = await stream_until(
            running_on, {"session_id": sid, "message": "Never mind"}, asyncio.Event(), "done"
        )
        assert follow_up[-1].event == "done", follow_up
        assert fake.rejected == []
        assert [m["tool_call_id"] for m in fake.tool_results(-1)] == ["call_1"]


async def test_a_lost_notification_still_stops_the_turn(
    database_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The LISTEN connections are cut, and the running worker's can't come back, before
    the request: its stored row stops the turn; then the listener comes back."""
    fake = FakeOpenAI(Reply(text=LONG, pieces=400, every=0.02))
    async with two_workers(database_dsn, fake) as (apps, (running_on, other)):
        cancels = apps[0].state.runner.cancels
        await asyncio.wait_for(cancels.listening.wait(), 10)
        back, connect = asyncio.Event(), cancels.store.connect

        async def connect_when_back() -> asyncpg.Connection:
            await back.wait()
            return await connect()

        async def dropped() -> bool:
            return not cancels.listening.is_set()

        monkeypatch.setattr(cancels.store, "connect", connect_when_back)
        sid, turn_id = str(uuid.uuid4()), "stop-lost"
        body = {"session_id": sid, "message": "Tell me a long story", "turn_id": turn_id}
        tokens = asyncio.Event()
        streaming = asyncio.create_task(stream_until(running_on, body, tokens, "token"))
        await asyncio.wait_for(tokens.wait(), 20)
        conn = await asyncpg.connect(database_dsn)
        try:
            cut = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query = $1",
                f'LISTEN "{CHANNEL}"',
            )
            assert cut == 2
            await wait_until(dropped)
            stopped = await other.post(f"/sessions/{sid}/turns/{turn_id}/cancel")
            assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled"
            assert (await streaming)[-1].event == "cancelled"
            assert not cancels.listening.is_set()
            back.set()
            await asyncio.wait_for(cancels.listening.wait(), 10)
            assert not await conn.fetchval("SELECT count(*) FROM turn_cancels")
        finally:
            await conn.close()


async def test_cancelling_a_finished_turn_changes_nothing(database_dsn: str) -> None:
    fake = FakeOpenAI(Reply(text="All done."))
    async with two_workers(database_dsn, fake) as (_, (client, other)):
        sid, turn_id = str(uuid.uuid4()), "over"
        body = {"session_id": sid, "message": "Hi", "turn_id": turn_id}
        events = await stream_until(client, body, asyncio.Event(), "done")
        before = await transcript(client, sid)
        counted = samples((await client.get("/metrics")).text)
        for worker in (client, other, client):
            answered = await worker.post(f"/sessions/{sid}/turns/{turn_id}/cancel")
            assert answered.status_code == 200, answered.text
            assert answered.json()["status"] == "done"
            assert answered.json()["message_id"] == events[-1].data["message_id"]
        assert await transcript(other, sid) == before
        unknown = await other.post(f"/sessions/{sid}/turns/nope/cancel")
        assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
        scrape = samples((await client.get("/metrics")).text)
        name = "vera_turn_cancels_total"
        assert (
            value(scrape, name, outcome="finished") - value(counted, name, outcome="finished") == 3
        )
