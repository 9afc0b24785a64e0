"""Every stream mode of the Agent Server door's runs (issue 26), driven by `langgraph_sdk`
against the app served by uvicorn: a tool turn streamed in each mode has the events
`langgraph-api` sends for it (names as `langgraph_api/stream.py` makes them; the exact
shapes against `langgraph dev`: `tests/deployment/test_agent_server_conformance.py`), and a
background run's event log replays them as they were."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient
from langgraph_sdk.schema import StreamPart

from src.agent.tool_guard import TOOL_GUARD_KEY
from src.api.app import create_app
from tests.agent_runs import streaks
from tests.agent_server_runs import KEY, transcript, user
from tests.api_harness import GatedApp, serve, settings_for
from tests.fakes import FakeModel

QUESTION = "What's the weather in Paris?"


@pytest.fixture
async def sdk(database_dsn: str) -> AsyncIterator[LangGraphClient]:
    settings = settings_for(database_dsn, api_key=KEY)
    async with serve(create_app(settings, model=FakeModel())) as url:
        client = get_client(url=url, api_key=KEY)
        yield client
        await client.http.client.aclose()


async def streamed(sdk: LangGraphClient, modes: list[str], subgraphs: bool = False) -> list:
    tid = (await sdk.threads.create())["thread_id"]
    parts = sdk.runs.stream(
        tid, "vera", input=user(QUESTION), stream_mode=modes, stream_subgraphs=subgraphs
    )
    found: list[StreamPart] = [p async for p in parts]
    assert found[0].event == "metadata"
    assert "error" not in [p.event for p in found], found[-1].data
    return found[1:]


async def test_debug_and_checkpoints_stream_each_checkpoint(sdk: LangGraphClient) -> None:
    debug = await streamed(sdk, ["debug"])
    kinds = [p.data["type"] for p in debug]
    assert kinds == ["checkpoint"] + ["checkpoint", "task", "task_result"] * 3 + ["checkpoint"]
    checkpoints = [p.data["payload"] for p in debug if p.data["type"] == "checkpoint"]
    assert [c["next"] for c in checkpoints] == [["__start__"], ["model"], ["tools"], ["model"], []]
    for payload in checkpoints:
        assert (
            payload["checkpoint"]["checkpoint_id"]
            == (payload["config"]["configurable"]["checkpoint_id"])
        )
        assert TOOL_GUARD_KEY not in payload["config"]["configurable"]
    assert checkpoints[1]["parent_checkpoint"] == checkpoints[0]["checkpoint"]
    stored = await streamed(sdk, ["checkpoints"])
    assert {p.event for p in stored} == {"checkpoints"}
    assert [p.data["next"] for p in stored] == [c["next"] for c in checkpoints]
    assert [m["type"] for m in stored[-1].data["values"]["messages"]] == [
        *("human", "ai", "tool", "ai")
    ]


async def test_events_stream_astream_events_of_the_turn(sdk: LangGraphClient) -> None:
    events = await streamed(sdk, ["events"])
    assert {p.event for p in events} == {"events"}
    kinds = [(p.data["event"], p.data["name"]) for p in events]
    assert kinds[0] == ("on_chain_start", "vera") and kinds[-1] == ("on_chain_end", "vera")
    assert ("on_tool_start", "get_weather") in kinds and ("on_tool_end", "get_weather") in kinds
    assert [k for k in kinds if k[0] == "on_chat_model_start"] == [
        ("on_chat_model_start", "FakeModel")
    ] * 2
    answer = events[-1].data["data"]["output"]["messages"][-1]["content"]
    tokens = [
        p.data["data"]["chunk"]["content"]
        for p in events
        if p.data["event"] == "on_chat_model_stream"
    ]
    assert "Paris" in answer and "".join(tokens).endswith(answer)


async def test_messages_stream_each_message_so_far(sdk: LangGraphClient) -> None:
    parts = await streamed(sdk, ["messages"])
    assert streaks(p.event for p in parts) == [
        *("messages/metadata", "messages/partial"),  # the model's tool call
        *("messages/metadata", "messages/complete"),  # the tool's answer
        *("messages/metadata", "messages/partial"),  # the answer, token by token
    ]
    metadata = [p.data for p in parts if p.event == "messages/metadata"]
    nodes = [meta["metadata"]["langgraph_node"] for m in metadata for meta in m.values()]
    assert nodes == ["model", "tools", "model"]
    answer_id = next(iter(metadata[-1]))
    so_far = [p.data[0] for p in parts if p.event == "messages/partial"]
    answer = [m["content"] for m in so_far if m["id"] == answer_id]
    assert len(answer) > 3 and all(answer[-1].startswith(text) for text in answer)
    assert {m["type"] for m in so_far} == {"ai"}
    [tool] = [p.data[0] for p in parts if p.event == "messages/complete"]
    assert tool["type"] == "tool" and tool["name"] == "get_weather"


async def test_tasks_custom_and_subgraphs_stream_as_langgraph_api(sdk: LangGraphClient) -> None:
    tasks = await streamed(sdk, ["tasks"])
    assert [(p.data["name"], "result" in p.data) for p in tasks] == [
        (node, ended) for node in ("model", "tools", "model") for ended in (False, True)
    ]
    assert await streamed(sdk, ["custom"]) == []  # Vera's graph writes no custom data
    # Vera's graph has no subgraph: the same events with subgraphs, none namespaced.
    both = await streamed(sdk, ["updates", "messages-tuple"], subgraphs=True)
    assert streaks(p.event for p in both) == ["messages", "updates"] * 3


async def test_a_background_runs_event_log_replays_every_mode(sdk: LangGraphClient) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    modes = ["messages", "events", "debug", "updates"]
    run = await sdk.runs.create(tid, "vera", input=user(QUESTION), stream_mode=modes)
    joined = [p async for p in sdk.runs.join_stream(tid, run["run_id"])]
    names = {p.event for p in joined}
    assert names == {"metadata", "events", "debug", "updates"} | {
        f"messages/{kind}" for kind in ("metadata", "partial", "complete")
    }
    again = [p async for p in sdk.runs.join_stream(tid, run["run_id"])]
    assert [(p.event, p.data) for p in again] == [(p.event, p.data) for p in joined]


async def test_a_join_stream_filters_by_stream_mode(sdk: LangGraphClient) -> None:
    tid = (await sdk.threads.create())["thread_id"]
    modes = ["messages", "values", "updates"]
    run = await sdk.runs.create(tid, "vera", input=user(QUESTION), stream_mode=modes)
    whole = [p async for p in sdk.runs.join_stream(tid, run["run_id"])]

    async def joined(stream_mode: str | list[str]) -> list[StreamPart]:
        parts = sdk.runs.join_stream(tid, run["run_id"], stream_mode=stream_mode)  # type: ignore[arg-type]
        return [p async for p in parts]

    # As langgraph-api filters a join: `messages` (or `messages-tuple`) its messages/* events.
    for asked in ("messages", "messages-tuple"):
        messages = await joined(asked)
        assert [p.id for p in messages] == [p.id for p in whole if p.event.startswith("messages/")]
    both = await joined(["values", "updates"])
    assert [p.id for p in both] == [p.id for p in whole if p.event in ("values", "updates")]
    assert {p.event for p in both} == {"values", "updates"}
    after = await sdk.runs.join_stream(
        tid, run["run_id"], stream_mode="updates", last_event_id=both[0].id
    ).__anext__()
    assert after.event == "updates" and after.id == both[1].id
    with pytest.raises(httpx.HTTPStatusError) as refused:
        await joined("nonsense")
    assert refused.value.response.status_code == 422
    assert "stream_mode" in refused.value.response.text


async def test_a_run_streaming_events_stops_when_cancelled(gated: GatedApp) -> None:
    sdk, tid = gated.sdk, gated.tid
    run = await sdk.runs.create(
        tid, "vera", input=user(QUESTION), stream_mode=["events", "messages"]
    )
    await gated.started.wait()  # inside astream_events: the second model call waits
    await sdk.runs.cancel(tid, run["run_id"], wait=True)
    assert (await sdk.runs.get(tid, run["run_id"]))["status"] == "interrupted"
    parts = [p async for p in sdk.runs.join_stream(tid, run["run_id"])]
    assert parts[-1].event == "error" and parts[-1].data["error"] == "UserInterrupt"
    assert "on_tool_end" in {p.data["event"] for p in parts if p.event == "events"}
    gated.gate.set()
    again = await sdk.runs.wait(tid, "vera", input=user("Hello"))  # the thread is free
    assert again["messages"][-1]["type"] == "ai"


@pytest.mark.parametrize("modes", [["values"], ["events"], ["messages-tuple", "updates"]])
async def test_a_cancelled_runs_messages_are_in_the_transcript_whatever_its_modes(
    gated: GatedApp, db: asyncpg.Connection, modes: list[str]
) -> None:
    sdk, tid = gated.sdk, gated.tid
    run = await sdk.runs.create(tid, "vera", input=user(QUESTION), stream_mode=modes)  # type: ignore[arg-type]
    try:
        await gated.started.wait()  # the tools ran; the model's second call waits
        await sdk.runs.cancel(tid, run["run_id"], wait=True)
    finally:
        gated.gate.set()
    stored = (await sdk.threads.get_state(tid))["values"]["messages"]
    kinds = [m["type"] for m in stored]
    assert kinds[0] == "human" and kinds[-1] == "tool"
    # GET /sessions's transcript shows what the state holds (main lost it: a run
    # streamed without subgraphs left LangGraph's cancelled-task write unstored).
    assert [kind for kind, _ in await transcript(db, tid)] == kinds
