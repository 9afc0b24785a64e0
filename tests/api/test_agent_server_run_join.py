"""Joining and cancelling Agent Server runs (`run_join.py`), driven by `langgraph_sdk`'s
runs client: `join` answers a run's final values once it ended, `join_stream` replays
its events from the turn event log after a `Last-Event-ID` and follows it live, from
another worker too; `cancel` stops it from any worker."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.errors import NotFoundError

from src.api.app import create_app
from tests.api_harness import chat, serve, settings_for
from tests.fakes import FakeModel

KEY = "join-key-0123456789abcdefghijklmnopqrs"
OTHER = "other-key-0123456789abcdefghijklmnopq"
QUESTION = "What's the weather in Montevideo and the price of AAPL?"


def user(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


async def test_join_waits_for_the_run_and_answers_the_threads_final_values(
    database_dsn: str,
) -> None:
    model = FakeModel(gate=asyncio.Event(), started=asyncio.Event())
    settings = settings_for(database_dsn, api_key=KEY, api_keys=f"other:{OTHER}")
    async with serve(create_app(settings, model=model)) as url:
        sdk = get_client(url=url, api_key=KEY)
        tid = (await sdk.threads.create())["thread_id"]
        run = await sdk.runs.create(tid, "vera", input=user("Hello"))
        assert model.started is not None and model.gate is not None
        await model.started.wait()
        joining = asyncio.create_task(sdk.runs.join(tid, run["run_id"]))
        model.gate.set()
        values = await joining
        assert [m["type"] for m in values["messages"]] == ["human", "ai"]
        assert (await sdk.runs.get(tid, run["run_id"]))["status"] == "success"
        # A run that already ended: its values at once, the thread's own.
        assert await sdk.runs.join(tid, run["run_id"]) == values
        assert (await sdk.threads.get_state(tid))["values"] == values
        with pytest.raises(httpx.HTTPStatusError) as unknown:  # join's error is httpx's
            await sdk.runs.join(tid, str(uuid.uuid4()))
        assert unknown.value.response.status_code == 404
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": OTHER}) as other:
            path = f"/threads/{tid}/runs/{run['run_id']}"
            answers = [
                await other.get(f"{path}/join"),
                await other.get(f"{path}/stream"),
                await other.post(f"{path}/cancel"),
            ]
        assert [a.status_code for a in answers] == [404] * 3
        assert {a.json()["code"] for a in answers} == {"not_found"}
        await sdk.http.client.aclose()


async def test_join_stream_resumes_after_last_event_id_on_another_worker(
    database_dsn: str,
) -> None:
    # The run's second model call (after its tools) waits: the stream is read part-way.
    model = FakeModel(gate=asyncio.Event(), started=asyncio.Event(), gate_from_call=2)
    settings = settings_for(database_dsn, api_key=KEY)
    async with (
        serve(create_app(settings, model=model)) as url,
        serve(create_app(settings, model=FakeModel())) as other_url,
    ):
        sdk = get_client(url=url, api_key=KEY)
        elsewhere = get_client(url=other_url, api_key=KEY)
        tid = (await sdk.threads.create())["thread_id"]
        run = await sdk.runs.create(
            tid, "vera", input=user(QUESTION), stream_mode=["values", "updates"]
        )
        run_id = run["run_id"]
        assert model.started is not None and model.gate is not None
        await model.started.wait()
        first: list = []
        async for part in elsewhere.runs.join_stream(tid, run_id):
            first.append(part)
            if len(first) == 3:
                break  # the connection is dropped mid-run
        assert first[0].event == "metadata" and first[0].data["run_id"] == run_id
        model.gate.set()
        rest = [
            p async for p in elsewhere.runs.join_stream(tid, run_id, last_event_id=first[-1].id)
        ]
        whole = [p async for p in sdk.runs.join_stream(tid, run_id)]  # the run ended: replayed
        assert [(p.event, p.id) for p in first + rest] == [(p.event, p.id) for p in whole]
        assert [p.data for p in first + rest] == [p.data for p in whole]
        assert [p.id for p in whole] == [f"{run_id}:{n}" for n in range(1, len(whole) + 1)]
        assert whole[-1].event == "values" and len(whole[-1].data["messages"]) == 5
        bad = await elsewhere.http.client.get(
            f"/threads/{tid}/runs/{run_id}/stream", headers={"Last-Event-ID": "x:1"}
        )
        assert bad.status_code == 422 and bad.json()["details"][0]["field"] == "Last-Event-ID"
        await sdk.http.client.aclose()
        await elsewhere.http.client.aclose()


async def test_cancel_interrupts_the_run_from_another_worker_and_keeps_what_it_stored(
    database_dsn: str, db: asyncpg.Connection
) -> None:
    model = FakeModel(gate=asyncio.Event(), started=asyncio.Event(), gate_from_call=2)
    settings = settings_for(database_dsn, api_key=KEY)
    async with (
        serve(create_app(settings, model=model)) as url,
        serve(create_app(settings, model=FakeModel())) as other_url,
    ):
        sdk = get_client(url=url, api_key=KEY)
        elsewhere = get_client(url=other_url, api_key=KEY)
        tid = (await sdk.threads.create())["thread_id"]
        run = await sdk.runs.create(tid, "vera", input=user(QUESTION))
        run_id = run["run_id"]
        assert model.started is not None
        await model.started.wait()  # the tools ran; the second model call waits
        path = f"/threads/{tid}/runs/{run_id}/cancel"
        refused = [
            await elsewhere.http.client.post(path, params={"action": "undo"}),
            await elsewhere.http.client.post(path, params={"wait": "perhaps"}),
        ]
        assert [r.status_code for r in refused] == [422] * 2
        assert (await sdk.runs.get(tid, run_id))["status"] == "running"
        values = await elsewhere.runs.cancel(tid, run_id, wait=True)
        assert (await sdk.runs.get(tid, run_id))["status"] == "interrupted"
        stored = (await sdk.threads.get_state(tid))["values"]
        # What the run stored stays: the question, the tool calls and their results.
        assert [m["type"] for m in stored["messages"]] == ["human", "ai", "tool", "tool"]
        # The answer is the run's end, as `langgraph dev`'s: its `error` event.
        assert values == {
            "__error__": {"error": "UserInterrupt", "message": "The run was cancelled."}
        }
        parts = [p async for p in sdk.runs.join_stream(tid, run_id)]
        assert parts[-1].event == "error" and parts[-1].data["error"] == "UserInterrupt"
        with pytest.raises(NotFoundError):  # already ended, as `langgraph dev` answers
            await elsewhere.runs.cancel(tid, run_id)
        # The thread is free again: the next run runs.
        assert model.gate is not None
        model.gate.set()
        again = await sdk.runs.wait(tid, "vera", input=user("Hello"))
        assert again["messages"][-1]["type"] == "ai"
        await sdk.http.client.aclose()
        await elsewhere.http.client.aclose()


async def test_enqueued_runs_wait_for_the_thread_and_run_one_at_a_time_in_order(
    database_dsn: str, db: asyncpg.Connection
) -> None:
    model = FakeModel(gate=asyncio.Event(), started=asyncio.Event())
    settings = settings_for(database_dsn, api_key=KEY)
    async with serve(create_app(settings, model=model)) as url:
        sdk = get_client(url=url, api_key=KEY)
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": KEY}, timeout=30) as c:
            sid = str(uuid.uuid4())
            turn = asyncio.create_task(chat(c, sid, "Hello"))
            assert model.started is not None and model.gate is not None
            await model.started.wait()  # the /chat turn holds the thread's lease
            queued = [
                await sdk.runs.create(sid, "vera", input=user(text), multitask_strategy="enqueue")
                for text in ("First", "Second", "Third")
            ]
            first, second, third = (run["run_id"] for run in queued)
            assert [run["status"] for run in queued] == ["pending"] * 3
            assert (await sdk.runs.get(sid, first))["status"] == "pending"
            await sdk.runs.cancel(sid, third)  # cancelled while queued: it never runs
            assert (await sdk.runs.get(sid, third))["status"] == "interrupted"
            model.gate.set()
            assert (await turn)[-1].event == "done"
            values = await sdk.runs.join(sid, second)
            assert [(await sdk.runs.get(sid, r))["status"] for r in (first, second)] == [
                "success"
            ] * 2
        humans = [m["content"] for m in values["messages"] if m["type"] == "human"]
        assert humans == ["Hello", "First", "Second"]
        # On a free thread, a queued run starts at once; stream and wait follow it.
        parts = [
            p
            async for p in sdk.runs.stream(
                sid, "vera", input=user("Fourth"), multitask_strategy="enqueue"
            )
        ]
        assert parts[0].event == "metadata" and parts[-1].event == "values"
        assert parts[-1].data["messages"][-2]["content"] == "Fourth"
        waited = await sdk.runs.wait(sid, "vera", input=user("Fifth"), multitask_strategy="enqueue")
        assert [m["content"] for m in waited["messages"] if m["type"] == "human"][-2:] == [
            "Fourth",
            "Fifth",
        ]
        # Each run's events are its own, in one sequence each.
        for run_id in (first, second):
            parts = [p async for p in sdk.runs.join_stream(sid, run_id)]
            assert parts[0].event == "metadata" and parts[0].data["run_id"] == run_id
        await sdk.http.client.aclose()


async def checkpoints_of(db: asyncpg.Connection, tid: str) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM checkpoints WHERE session_id = $1", uuid.UUID(tid)
    )


async def test_rollback_stops_the_run_and_puts_the_thread_back_as_before_it(
    database_dsn: str, db: asyncpg.Connection
) -> None:
    model = FakeModel(gate=asyncio.Event(), started=asyncio.Event(), gate_from_call=3)
    settings = settings_for(database_dsn, api_key=KEY)
    async with (
        serve(create_app(settings, model=model)) as url,
        serve(create_app(settings, model=FakeModel())) as other_url,
    ):
        sdk = get_client(url=url, api_key=KEY)
        elsewhere = get_client(url=other_url, api_key=KEY)
        tid = (await sdk.threads.create())["thread_id"]
        await sdk.runs.wait(tid, "vera", input=user("Hello"))  # model call 1
        before = (await sdk.threads.get_state(tid))["values"]
        stored = await checkpoints_of(db, tid)
        run = await sdk.runs.create(tid, "vera", input=user(QUESTION))
        assert model.started is not None and model.gate is not None
        await model.started.wait()  # its tools ran and were stored; its next call waits
        assert await checkpoints_of(db, tid) > stored
        values = await elsewhere.runs.cancel(tid, run["run_id"], wait=True, action="rollback")
        assert values == before
        assert (await sdk.threads.get_state(tid))["values"] == before
        assert await checkpoints_of(db, tid) == stored
        raw = await db.fetchval(
            "SELECT messages::text FROM conversations WHERE session_id = $1", uuid.UUID(tid)
        )
        assert [m["content"] for m in json.loads(raw)] == [m["content"] for m in before["messages"]]
        with pytest.raises(NotFoundError):  # the run is gone
            await sdk.runs.get(tid, run["run_id"])
        assert len(await sdk.runs.list(tid)) == 1
        model.gate.set()
        again = await sdk.runs.wait(tid, "vera", input=user("Hello again"))
        assert [m["content"] for m in again["messages"] if m["type"] == "human"] == [
            "Hello",
            "Hello again",
        ]
        await sdk.http.client.aclose()
        await elsewhere.http.client.aclose()
