"""The Agent Server door's runs (issue 26, second half), driven by `langgraph_sdk`'s runs
client against the app served by uvicorn: a run is a turn of the thread's session on the
turn runner (its lease, event log, transcript), streamed, waited for or run in the
background; a busy thread refuses a run, another principal's thread is unknown (what a
run's body asks: `test_agent_server_run_fields.py`)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.errors import ConflictError, NotFoundError

from src.api.agent_server.graphs import assistant_id_of
from src.api.app import create_app
from tests.agent_server_runs import KEY, OTHER, QUESTION, runs_of, transcript, user
from tests.api_harness import chat, parse_sse, serve, settings_for, wait_until
from tests.fakes import FakeModel


async def test_a_tool_turn_streams_in_values_updates_and_messages_tuple(
    sdk: LangGraphClient, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    modes = ["values", "updates", "messages-tuple"]
    parts = [p async for p in sdk.runs.stream(tid, "vera", input=user(QUESTION), stream_mode=modes)]
    first = parts[0]
    assert first.event == "metadata" and first.data["attempt"] == 1
    run_id = first.data["run_id"]
    assert [p.id for p in parts] == [f"{run_id}:{n}" for n in range(1, len(parts) + 1)]
    assert {p.event for p in parts[1:]} == {"values", "updates", "messages"}
    updates = [next(iter(p.data)) for p in parts if p.event == "updates"]
    assert updates == ["model", "tools", "model"]
    tools = {
        c["name"]
        for p in parts
        if p.event == "updates" and "model" in p.data
        for m in p.data["model"]["messages"]
        for c in m.get("tool_calls", [])
    }
    assert tools == {"get_weather", "get_stock_price"}
    pieces = [p.data for p in parts if p.event == "messages"]
    assert all(len(piece) == 2 and "langgraph_node" in piece[1] for piece in pieces)
    streamed = "".join(m["content"] for m, meta in pieces if meta["langgraph_node"] == "model")
    final = parts[-1]
    assert final.event == "values"
    answer = final.data["messages"][-1]["content"]
    assert "Montevideo" in answer and "AAPL" in answer and streamed.endswith(answer)

    # The run is a Vera session: listed, its transcript stored, the run recorded.
    listed = (await http.get("/sessions")).json()["sessions"]
    assert tid in [s["session_id"] for s in listed]
    stored = await transcript(db, tid)
    assert [t for t, _ in stored] == ["human", "ai", "tool", "tool", "ai"]
    assert stored[0][1] == QUESTION and stored[-1][1] == answer
    run = await sdk.runs.get(tid, run_id)
    assert (run["status"], run["thread_id"], run["multitask_strategy"]) == (
        "success",
        tid,
        "enqueue",  # langgraph-api's default
    )
    assert run["kwargs"]["stream_mode"] == modes
    # Its events are the turn events of turn run_id: replayed after a Last-Event-ID.
    again = await http.get(
        f"/sessions/{tid}/turns/{run_id}/events", headers={"Last-Event-ID": f"{run_id}:2"}
    )
    replayed = parse_sse(again.text)[0]
    assert [e.id for e in replayed] == [p.id for p in parts[2:]]
    assert replayed[-1].data == final.data


async def test_wait_answers_the_final_values_and_background_runs_on(
    sdk: LangGraphClient, http: httpx.AsyncClient
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    values = await sdk.runs.wait(tid, "vera", input=user("Hello"), metadata={"k": "v"})
    assert [m["type"] for m in values["messages"]] == ["human", "ai"]

    created = await sdk.runs.create(tid, str(assistant_id_of("vera")), input=user(QUESTION))
    assert created["status"] == "pending" and created["thread_id"] == tid
    run_id = created["run_id"]

    async def ended() -> bool:
        return (await sdk.runs.get(tid, run_id))["status"] == "success"

    await wait_until(ended)
    runs = await sdk.runs.list(tid)
    assert runs[0]["run_id"] == run_id  # newest first
    # The metadata as langgraph dev merges it: the assistant's, the graph's, the request's.
    vera = {
        "created_by": "system",
        "graph_id": "vera",
        "assistant_id": str(assistant_id_of("vera")),
    }
    assert len(runs) == 2 and runs[1]["metadata"] == {**vera, "k": "v"}
    assert [r["run_id"] for r in await sdk.runs.list(tid, limit=1, offset=1)] == [runs[1]["run_id"]]
    assert await sdk.runs.list(tid, status="error") == []
    state = await sdk.threads.get_state(tid)
    assert len(state["values"]["messages"]) == 2 + 5
    # The run's config metadata is its checkpoints' (as langgraph dev's).
    expected = {**vera, "k": "v", "run_id": run_id} | {"k": None}  # the last run's
    assert {key: state["metadata"].get(key) for key in expected} == expected
    thread = await sdk.threads.get(tid)
    assert thread["status"] == "idle"


async def test_a_busy_thread_refuses_a_run_with_409(
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
            await model.started.wait()  # the /chat turn holds the session's lease
            before = await runs_of(db, sid)
            with pytest.raises(ConflictError) as refused:
                await sdk.runs.create(sid, "vera", input=user("Hi"), multitask_strategy="reject")
            assert refused.value.response.json()["code"] == "session_busy"
            with pytest.raises(httpx.HTTPStatusError) as waited:  # wait's error is httpx's
                await sdk.runs.wait(sid, "vera", input=user("Hi"), multitask_strategy="reject")
            assert waited.value.response.status_code == 409
            reject = {"assistant_id": "vera", "multitask_strategy": "reject"}
            streamed = await c.post(f"/threads/{sid}/runs/stream", json=reject)
            assert streamed.status_code == 409
            assert await runs_of(db, sid) == before
            model.gate.set()
            assert (await turn)[-1].event == "done"
            # ... and a run holds it as a turn does: /chat is refused while it runs.
            model.gate.clear()
            model.started.clear()
            run = await sdk.runs.create(sid, "vera", input=user("Again"))
            await model.started.wait()
            busy = await c.post("/chat", json={"session_id": sid, "message": "Hi"})
            assert busy.status_code == 409 and busy.json()["code"] == "session_busy"
            assert (await sdk.threads.get(sid))["status"] == "busy"
            with pytest.raises(ConflictError):
                await sdk.runs.create(sid, "vera", input=user("Hi"), multitask_strategy="reject")
            model.gate.set()

            async def ended() -> bool:
                return (await sdk.runs.get(sid, run["run_id"]))["status"] == "success"

            await wait_until(ended)
        await sdk.http.client.aclose()


async def test_another_principals_thread_is_unknown_to_every_run_route(
    sdk: LangGraphClient, server: str, db: asyncpg.Connection
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    run = await sdk.runs.wait(tid, "vera", input=user("Hello"))
    assert run["messages"]
    [mine] = await sdk.runs.list(tid)
    body = {"assistant_id": "vera", "input": user("Hi")}
    async with httpx.AsyncClient(base_url=server, headers={"X-API-Key": OTHER}) as other:
        answers = [
            await other.post(f"/threads/{tid}/runs/stream", json=body),
            await other.post(f"/threads/{tid}/runs/wait", json=body),
            await other.post(f"/threads/{tid}/runs", json=body),
            await other.post(f"/threads/{tid}/runs", json={**body, "if_not_exists": "create"}),
            await other.get(f"/threads/{tid}/runs"),
            await other.get(f"/threads/{tid}/runs/{mine['run_id']}"),
        ]
    assert [a.status_code for a in answers] == [404] * 6
    assert {a.json()["code"] for a in answers} == {"not_found"}
    assert await runs_of(db, tid) == 1
    with pytest.raises(NotFoundError):
        await sdk.runs.get(tid, str(uuid.uuid4()))
    with pytest.raises(NotFoundError):
        await sdk.runs.create(str(uuid.uuid4()), "vera", input=user("Hi"))  # no such thread
