"""A run's events in each stream mode, as `langgraph-api` (`langgraph_api/stream.py`) names
and shapes them, made by `run_events` from small graphs (in memory, no database): a chat
model's tokens, a subgraph's parts, a custom writer's data, a config holding an object
that has no JSON form (as the turn runner's tool guard)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_stream_writer
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph

from src.agent.tool_guard import TOOL_GUARD_KEY
from src.api.agent_server.run_events import RunEvent, run_events

ANSWER = "It is sunny in Paris today"


class Guard:
    """An object of the runner's config with no JSON form (the tool guard holds a pool)."""


def chat_graph() -> CompiledStateGraph:
    """model (a fake chat model, a token per word) -> done."""
    model = GenericFakeChatModel(messages=iter([AIMessage(ANSWER)]))

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_edge(START, "model")
    return graph.compile(checkpointer=InMemorySaver())


def nested_graph() -> CompiledStateGraph:
    """outer: a node writing custom data, then the subgraph `inner` (which writes its own)."""

    def inner_step(state: MessagesState) -> dict[str, Any]:
        get_stream_writer()({"from": "inner"})
        return {"messages": [AIMessage("inner", id="inner-1")]}

    inner = StateGraph(MessagesState)
    inner.add_node("inner_step", inner_step)
    inner.add_edge(START, "inner_step")

    def outer_step(state: MessagesState) -> dict[str, Any]:
        get_stream_writer()({"from": "outer"})
        return {"messages": [AIMessage("outer", id="outer-1")]}

    outer = StateGraph(MessagesState)
    outer.add_node("outer_step", outer_step)
    outer.add_node("inner", inner.compile())
    outer.add_edge(START, "outer_step")
    outer.add_edge("outer_step", "inner")
    return outer.compile(checkpointer=InMemorySaver())


async def events_of(
    graph: CompiledStateGraph, modes: list[str], subgraphs: bool = False
) -> list[RunEvent]:
    run_id = uuid.uuid4()
    config: RunnableConfig = {
        "configurable": {"thread_id": str(uuid.uuid4()), TOOL_GUARD_KEY: Guard()},
        "run_id": run_id,
    }
    graph_input = {"messages": [HumanMessage("Weather in Paris?", id="human-1")]}
    found = [e async for e in run_events(graph, graph_input, config, modes, subgraphs)]
    json.dumps([e.data for e in found])  # every event's data is JSON as it is
    return found


async def test_messages_are_each_messages_metadata_then_the_message_so_far() -> None:
    found = await events_of(chat_graph(), ["messages"])
    names = [e.event for e in found]
    assert names[0] == "messages/metadata" and set(names[1:]) == {"messages/partial"}
    [(message_id, meta)] = found[0].data.items()
    assert meta["metadata"]["langgraph_node"] == "model"
    words = ANSWER.split(" ")
    assert len(found) == 1 + len(words) * 2 - 1  # a chunk per word and per space
    contents = [e.data[0]["content"] for e in found[1:]]
    assert contents[-1] == ANSWER and contents[0] == words[0]
    assert all(ANSWER.startswith(c) for c in contents)  # each the message so far
    assert {e.data[0]["id"] for e in found[1:]} == {message_id}
    assert {e.data[0]["type"] for e in found[1:]} == {"ai"}  # a message, not a chunk


async def test_messages_tuple_is_each_chunk_with_its_metadata() -> None:
    found = await events_of(chat_graph(), ["messages-tuple"])
    assert {e.event for e in found} == {"messages"}
    assert "".join(e.data[0]["content"] for e in found) == ANSWER
    assert {e.data[0]["type"] for e in found} == {"AIMessageChunk"}
    assert {e.data[1]["langgraph_node"] for e in found} == {"model"}


async def test_a_whole_message_is_messages_complete() -> None:
    for subgraphs, inner_node in ((False, "inner"), (True, "inner_step")):
        found = await events_of(nested_graph(), ["messages"], subgraphs)
        assert [e.event for e in found] == ["messages/metadata", "messages/complete"] * 2
        assert [e.data[0]["content"] for e in found[1::2]] == ["outer", "inner"]
        # The subgraph's message: from inside it with subgraphs, else as its node's output.
        assert found[2].data["inner-1"]["metadata"]["langgraph_node"] == inner_node


async def test_debug_and_checkpoints_are_the_checkpoints_without_the_runners_keys() -> None:
    for mode in ("debug", "checkpoints"):
        found = await events_of(chat_graph(), [mode])
        assert {e.event for e in found} == {mode}
        payloads = [e.data["payload"] if mode == "debug" else e.data for e in found]
        if mode == "debug":
            assert [e.data["type"] for e in found] == [
                *("checkpoint", "checkpoint", "task", "task_result", "checkpoint")
            ]
            payloads = [e.data["payload"] for e in found if e.data["type"] == "checkpoint"]
        assert [p["next"] for p in payloads] == [["__start__"], ["model"], []]
        for payload in payloads:
            assert TOOL_GUARD_KEY not in payload["config"]["configurable"]
            if mode == "debug":  # as langgraph-api preprocesses them
                assert (
                    payload["checkpoint"]["checkpoint_id"]
                    == (payload["config"]["configurable"]["checkpoint_id"])
                )
            else:
                assert "checkpoint" not in payload
        assert payloads[-1]["values"]["messages"][-1]["content"] == ANSWER
        assert payloads[0]["parent_config"] is None


async def test_events_are_astream_events_v2_but_the_graphs_own_stream() -> None:
    found = await events_of(chat_graph(), ["events"])
    assert {e.event for e in found} == {"events"}
    kinds = [(e.data["event"], e.data["name"]) for e in found]
    assert kinds[0] == ("on_chain_start", "LangGraph")
    assert kinds[-1] == ("on_chain_end", "LangGraph")
    assert ("on_chat_model_stream", "GenericFakeChatModel") in kinds
    root = found[0].data["run_id"]
    assert not [
        k for e, k in zip(found, kinds) if k[0] == "on_chain_stream" and e.data["run_id"] == root
    ]
    streamed = [
        e.data["data"]["chunk"]["content"]
        for e in found
        if e.data["event"] == "on_chat_model_stream"
    ]
    assert "".join(streamed) == ANSWER


async def test_events_with_other_modes_carry_those_modes_too() -> None:
    found = await events_of(chat_graph(), ["events", "updates", "values"])
    names = [e.event for e in found]
    assert {"events", "updates", "values"} == set(names)
    assert [next(iter(e.data)) for e in found if e.event == "updates"] == ["model"]
    assert found[-1].event == "events" and found[-1].data["event"] == "on_chain_end"


async def test_subgraph_parts_are_named_by_namespace_only_when_asked() -> None:
    flat = await events_of(nested_graph(), ["updates", "custom"])
    assert [(e.event, e.data) for e in flat if e.event == "custom"] == [
        ("custom", {"from": "outer"})
    ]
    assert [next(iter(e.data)) for e in flat if e.event == "updates"] == ["outer_step", "inner"]
    nested = await events_of(nested_graph(), ["updates", "custom", "messages"], subgraphs=True)
    names = [e.event for e in nested]
    inner = [n for n in names if "|" in n]
    assert inner and all(n.split("|")[1].startswith("inner:") for n in inner)
    assert {n.split("|")[0] for n in inner} == {"updates", "custom"}
    assert ("custom", {"from": "outer"}) in [(e.event, e.data) for e in nested]
    assert {"from": "inner"} in [e.data for e in nested if e.event.startswith("custom|")]
    # `messages` events carry no namespace: the message's metadata says where it was made.
    assert names.count("messages/complete") == 2


async def test_tasks_are_each_task_started_then_its_result() -> None:
    found = await events_of(chat_graph(), ["tasks"])
    assert {e.event for e in found} == {"tasks"}
    started, ended = (e.data for e in found)
    assert started["name"] == ended["name"] == "model" and started["id"] == ended["id"]
    assert {"id", "name", "input", "triggers"} <= set(started)
    assert set(ended) == {"id", "name", "error", "result", "interrupts"}
