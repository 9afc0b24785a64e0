"""Defects an outside test found with the real SDKs (issue 26): a run's input is checked
before anything is stored and no thread makes a reader fail; `on_disconnect: "cancel"`
(what `useStream` sends) stops the run when its stream is dropped; `history`'s `before` in
the shapes the JS and Python SDKs send; the tools an SDK run calls are counted and logged
as a `/chat` turn's; a resume with nothing to resume is refused."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from langgraph_sdk.client import LangGraphClient

from tests.agent_server_runs import KEY, QUESTION, runs_of, transcript, user
from tests.api_harness import GatedApp, chat, samples, value, wait_until

BAD_INPUTS = [
    {"messages": 5},
    {"messages": [42]},
    {"messages": [{"type": "alien", "content": "x"}]},
    {"messages": [{"role": "user"}]},
    {"messages": {"content": 3}, "other": 1},
    {"messages": [{"role": "user", "content": 5}]},
    {"messages": [{"role": "user", "content": "x"}, {"type": "human", "content": {"a": 1}}]},
]


@pytest.fixture
def api_keys() -> None:
    """No other principals."""
    return None


async def readers_answer(http: httpx.AsyncClient, tid: str) -> None:
    """Every reader of the thread answers 200."""
    for path in (f"/threads/{tid}", f"/threads/{tid}/state", f"/sessions/{tid}/messages"):
        assert (await http.get(path)).status_code == 200, path
    assert (await http.post("/threads/search", json={"limit": 1000})).status_code == 200
    assert (await http.post(f"/threads/{tid}/history", json={})).status_code == 200


@pytest.mark.parametrize("bad", BAD_INPUTS)
async def test_a_malformed_input_is_422_naming_the_field_and_stores_nothing(
    sdk: LangGraphClient, http: httpx.AsyncClient, db: asyncpg.Connection, bad: dict[str, Any]
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    for path in ("runs/wait", "runs/stream", "runs"):
        answer = await http.post(
            f"/threads/{tid}/{path}", json={"assistant_id": "vera", "input": bad}
        )
        assert answer.status_code == 422, answer.text
        assert [d["field"] for d in answer.json()["details"]] == ["input.messages"]
    command = {"assistant_id": "vera", "command": {"update": bad}}
    answer = await http.post(f"/threads/{tid}/runs/wait", json=command)
    assert answer.status_code == 422, answer.text
    assert [d["field"] for d in answer.json()["details"]] == ["command.update.messages"]
    answer = await http.post(f"/threads/{tid}/state", json={"values": bad})
    assert answer.status_code == 422, answer.text
    assert [d["field"] for d in answer.json()["details"]] == ["values.messages"]
    # A new thread (`if_not_exists`) is not made for a refused run either.
    fresh = str(uuid.uuid4())
    body = {"assistant_id": "vera", "input": bad, "if_not_exists": "create"}
    assert (await http.post(f"/threads/{fresh}/runs/wait", json=body)).status_code == 422
    assert (await http.get(f"/threads/{fresh}")).status_code == 404
    assert await runs_of(db, tid) == 0
    assert (await sdk.threads.get_state(tid))["checkpoint"] is None
    values = await sdk.runs.wait(tid, "vera", input=user("Hello"))
    assert [m["type"] for m in values["messages"]] == ["human", "ai"]
    await readers_answer(http, tid)
    assert (await chat(http, tid, "And now?"))[-1].event == "done"
    assert [t for t, _ in await transcript(db, tid)] == ["human", "ai"] * 2


async def test_a_thread_whose_state_can_not_be_read_fails_no_reader(
    app: FastAPI, sdk: LangGraphClient, http: httpx.AsyncClient
) -> None:
    """A checkpoint holding writes its channel refuses (stored before inputs were checked)
    answers as the thread before them, with status `error`."""
    tid = (await sdk.threads.create())["thread_id"]
    await sdk.runs.wait(tid, "vera", input=user("Hello"))
    graph = app.state.runner.graph  # as a run did before its input was checked
    with pytest.raises(NotImplementedError):
        await graph.ainvoke({"messages": 5}, {"configurable": {"thread_id": tid}})
    thread = await sdk.threads.get(tid)
    assert thread["status"] == "error" and "refuses" in (thread["error"] or "")
    await readers_answer(http, tid)
    assert len((await sdk.threads.get_state(tid))["values"]["messages"]) == 2


def _before(shape: str, state: dict[str, Any]) -> Any:
    """`before` naming `state`'s checkpoint as each SDK may send it."""
    checkpoint = state["checkpoint"]
    if shape == "id":  # Python `get_history(before="<id>")`
        return checkpoint["checkpoint_id"]
    if shape == "checkpoint":  # Python `before=state["checkpoint"]`
        return checkpoint
    return {"configurable": checkpoint}  # JS `getHistory(id, { before: config })`


@pytest.mark.parametrize("shape", ["id", "checkpoint", "config"])
async def test_history_pages_with_before_in_each_sdks_shape(
    sdk: LangGraphClient, shape: str
) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    await sdk.runs.wait(tid, "vera", input=user("Hello"))
    await sdk.runs.wait(tid, "vera", input=user("Again"))
    every = await sdk.threads.get_history(tid, limit=100)
    assert len(every) >= 6
    pages, before = [], None
    while True:
        page = await sdk.threads.get_history(tid, limit=2, before=before)
        if not page:
            break
        assert len(page) <= 2
        pages.extend(page)
        before = _before(shape, page[-1])
    assert [s["checkpoint_id"] for s in pages] == [s["checkpoint_id"] for s in every]


async def test_a_resume_with_nothing_to_resume_is_409_and_stores_nothing(
    sdk: LangGraphClient, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    resume = {"assistant_id": "vera", "command": {"resume": "yes"}}
    fresh = str(uuid.uuid4())
    answer = await http.post(
        f"/threads/{fresh}/runs/wait", json=resume | {"if_not_exists": "create"}
    )
    assert answer.status_code == 409, answer.text
    assert answer.json()["code"] == "nothing_to_resume"
    assert (await http.get(f"/threads/{fresh}")).status_code == 404
    tid = (await sdk.threads.create())["thread_id"]
    for path in ("runs/wait", "runs/stream", "runs"):
        answer = await http.post(f"/threads/{tid}/{path}", json=resume)
        assert answer.status_code == 409, answer.text
    assert await runs_of(db, tid) == 0
    assert (await sdk.threads.get_state(tid))["checkpoint"] is None
    await sdk.runs.wait(tid, "vera", input=user("Hello"))
    answer = await http.post(f"/threads/{tid}/runs/wait", json=resume)
    assert answer.status_code == 409, answer.text
    assert [t for t, _ in await transcript(db, tid)] == ["human", "ai"]
    assert await runs_of(db, tid) == 1


async def _drop_mid_run(url: str, tid: str, started: asyncio.Event, on_disconnect: str) -> str:
    """Stream a tool run, and drop the connection once its second model call waits."""
    body = {
        "assistant_id": "vera",
        "input": user(QUESTION),
        "stream_mode": ["values"],
        "on_disconnect": on_disconnect,
    }
    headers = {"X-API-Key": KEY}
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client,
        client.stream("POST", f"/threads/{tid}/runs/stream", json=body) as response,
    ):
        assert response.status_code == 200
        # Read with `anext`: leaving an `async for` would close the stream at once.
        lines = response.aiter_lines()
        line = ""
        while not line.startswith("data: ") or '"run_id"' not in line:
            line = await anext(lines)
        run_id = json.loads(line[6:])["run_id"]
        await started.wait()  # the tools ran; the model's second call waits
    return run_id  # the connection is closed here, mid-run


@pytest.mark.parametrize("on_disconnect", ["cancel", "continue"])
async def test_a_dropped_stream_cancels_the_run_only_when_asked(
    gated: GatedApp, db: asyncpg.Connection, on_disconnect: str
) -> None:
    sdk, tid = gated.sdk, gated.tid
    run_id = await _drop_mid_run(gated.url, tid, gated.started, on_disconnect)
    if on_disconnect == "cancel":

        async def stopped() -> bool:
            return (await sdk.runs.get(tid, run_id))["status"] == "interrupted"

        await wait_until(stopped)
        parts = [p async for p in sdk.runs.join_stream(tid, run_id)]
        assert parts[-1].event == "error" and parts[-1].data["error"] == "UserInterrupt"
        # What the run stored stays, whole: the question, the tool calls, their results.
        kinds = ["human", "ai", "tool", "tool"]
        # Steps left, as `langgraph dev` says of a cancelled run's thread (not `busy`).
        assert (await sdk.threads.get(tid))["status"] == "interrupted"
        gated.gate.set()
    else:
        gated.gate.set()
        assert (await sdk.runs.join(tid, run_id))["messages"][-1]["type"] == "ai"
        assert (await sdk.runs.get(tid, run_id))["status"] == "success"
        kinds = ["human", "ai", "tool", "tool", "ai"]
    stored = (await sdk.threads.get_state(tid))["values"]["messages"]
    assert [m["type"] for m in stored] == kinds
    assert [t for t, _ in await transcript(db, tid)] == kinds
    again = await sdk.runs.wait(tid, "vera", input=user("Hello"))  # the thread is free
    assert [m["type"] for m in again["messages"]] == [*kinds, "human", "ai"]
    assert await runs_of(db, tid) == 2


async def test_an_sdk_runs_tools_are_counted_and_logged_as_a_chat_turns(
    sdk: LangGraphClient, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vera.turns")
    tools = ("get_weather", "get_stock_price")

    async def counted() -> list[float]:
        scrape = samples((await http.get("/metrics")).text)
        return [value(scrape, "vera_tool_calls_total", tool=t, status="ok") for t in tools]

    def turn_line(run_id: str) -> str:
        [line] = [
            r.getMessage()
            for r in caplog.records
            if r.name == "vera.turns" and f"run_id={run_id}" in r.getMessage()
        ]
        return line

    lines, counts = [], [await counted()]
    events = await chat(http, str(uuid.uuid4()), QUESTION)
    lines.append(turn_line(events[0].data["run_id"]))
    counts.append(await counted())
    tid = (await sdk.threads.create())["thread_id"]
    parts = [p async for p in sdk.runs.stream(tid, "vera", input=user(QUESTION))]
    lines.append(turn_line(parts[0].data["run_id"]))
    counts.append(await counted())
    assert [after - before for before, after in zip(counts[0], counts[1], strict=True)] == [1, 1]
    assert [after - before for before, after in zip(counts[1], counts[2], strict=True)] == [1, 1]
    for line in lines:
        assert "tool_calls=get_weather,get_stock_price" in line and "tool_errors=0" in line
        assert "output_tokens=0" not in line


@pytest.mark.parametrize("first", [False, True], ids=["after a run", "first write"])
async def test_a_thread_holding_a_message_langchain_can_not_build_fails_no_reader(
    app: FastAPI, sdk: LangGraphClient, http: httpx.AsyncClient, first: bool
) -> None:
    """A pending input whose message has a non-string content (F1: `convert_to_messages`
    raises in every reader of it): the thread reads as before it, and the caller's thread
    search lists it."""
    probe = {"probe": str(uuid.uuid4())}
    tid = (await sdk.threads.create(metadata=probe))["thread_id"]
    if not first:
        await sdk.runs.wait(tid, "vera", input=user("Hello"))
    graph = app.state.runner.graph  # as a run did before its input was checked
    bad = {"messages": [{"role": "user", "content": 5}]}
    with pytest.raises(ValueError, match="content"):
        await graph.ainvoke(bad, {"configurable": {"thread_id": tid}})
    await readers_answer(http, tid)
    found = await http.post("/threads/search", json={"metadata": probe})
    assert [t["thread_id"] for t in found.json()] == [tid]
    state = await sdk.threads.get_state(tid)
    assert len(state["values"].get("messages", [])) == (0 if first else 2)
    values = await sdk.runs.wait(tid, "vera", input=user("Again"))
    assert values["messages"][-2]["content"] == "Again"
    assert (await chat(http, tid, "And now?"))[-1].event == "done"


async def test_a_chat_turn_on_a_thread_holding_an_unbuildable_message_answers(
    app: FastAPI, sdk: LangGraphClient, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """`/chat` plans its turn from the thread's state: as before the refused write."""
    tid = (await sdk.threads.create())["thread_id"]
    graph = app.state.runner.graph  # as a run did before its input was checked
    with pytest.raises(ValueError, match="content"):
        await graph.ainvoke(
            {"messages": [{"role": "user", "content": 5}]}, {"configurable": {"thread_id": tid}}
        )
    assert (await chat(http, tid, "And now?"))[-1].event == "done"
    assert [t for t, _ in await transcript(db, tid)] == ["human", "ai"]


@pytest.mark.parametrize("path", ["/threads/{tid}/runs/wait", "/runs/wait"])
async def test_a_waited_run_whose_client_disconnects_is_cancelled_when_asked(
    gated: GatedApp, db: asyncpg.Connection, path: str
) -> None:
    # schemathesis found `on_disconnect: "cancel"` refused (422) on `runs/wait`, which the
    # schema allows; langgraph-api serves it there too.
    sdk, tid = gated.sdk, gated.tid
    body = {"assistant_id": "vera", "input": user(QUESTION), "on_disconnect": "cancel"}
    if path == "/runs/wait":
        body["on_completion"] = "keep"
    client = httpx.AsyncClient(base_url=gated.url, headers={"X-API-Key": KEY}, timeout=30)
    waiting = asyncio.create_task(client.post(path.format(tid=tid), json=body))
    try:
        started = asyncio.create_task(gated.started.wait())  # the model's second call
        await asyncio.wait({waiting, started}, return_when=asyncio.FIRST_COMPLETED)
        assert not waiting.done(), waiting.result().text  # answered before the run went on
        waiting.cancel()  # the client goes: its connection closes mid-run
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
        await client.aclose()
        ran = "SELECT session_id, run_id FROM thread_runs ORDER BY created_at DESC LIMIT 1"
        thread, run_id = await db.fetchrow(ran)

        async def stopped() -> bool:
            found = await sdk.runs.get(str(thread), str(run_id))
            return found["status"] == "interrupted"

        await wait_until(stopped)
    finally:
        gated.gate.set()
    if path != "/runs/wait":
        assert str(thread) == tid
