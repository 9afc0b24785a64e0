"""A run's events as the Agent Server API streams them: LangGraph's stream parts, named and
shaped as `langgraph-api` sends them (`langgraph_api/stream.py`) and `langgraph_sdk` parses
them: `values`, `updates`, `custom`, `tasks`, `checkpoints`, `debug` (its checkpoints with
`checkpoint` and `parent_checkpoint`), `messages-tuple` as `messages` events of [chunk,
metadata], `messages` as `messages/metadata`, `messages/partial` and `messages/complete`
(`run_messages`), `events` as `astream_events` v2's events; a subgraph's part as
`<mode>|<namespace>` when the run asked for subgraphs (`messages/*` carry none).

This is the graph side of a run only: the run's own events (`metadata` first, `error` at
a failure) and where the events go (the turn event log, the client's stream) belong to
the run, not here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, cast, get_args

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StreamMode

from src.agent.memory.fencing import LEASE_CONFIG_KEY
from src.agent.tool_guard import TOOL_GUARD_KEY, TOOL_TURN_KEY
from src.api.agent_server.run_messages import MessagesSoFar
from src.api.agent_server.run_shapes import StreamMode as RunStreamMode
from src.api.agent_server.snapshots import as_json

# The modes a run may ask for: the request's `stream_mode` values (`run_shapes`).
RUN_MODES = frozenset(get_args(RunStreamMode))
# The turn runner's own configurable keys (lease, tool guard): not the client's to see.
RUNNER_KEYS = frozenset({LEASE_CONFIG_KEY, TOOL_GUARD_KEY, TOOL_TURN_KEY})
# astream_events' events a tracer hides.
HIDDEN_TAG = "langsmith:hidden"

# A stream part: its namespace (empty: the run's graph), LangGraph mode and chunk.
Part = tuple[tuple[str, ...], str, Any]


@dataclass(frozen=True)
class RunEvent:
    """One event of a run: its SSE name and its JSON data."""

    event: str
    data: Any


def graph_modes(requested: Sequence[str]) -> list[StreamMode]:
    """The LangGraph stream modes that make the requested Agent Server modes (`events`
    alone: the graph's own stream is not sent, `values` keeps it going)."""
    modes = {"messages" if mode == "messages-tuple" else mode for mode in requested}
    return cast(list[StreamMode], sorted(modes - {"events"}) or ["values"])


def public_config(config: RunnableConfig | None) -> dict[str, Any] | None:
    """A checkpoint's config without the turn runner's keys."""
    if config is None:
        return None
    configurable = config.get("configurable") or {}
    return {"configurable": {k: v for k, v in configurable.items() if k not in RUNNER_KEYS}}


def checkpoint_ref(config: RunnableConfig | None) -> dict[str, Any] | None:
    """The `checkpoint` a config names, as `langgraph-api` reads it (its
    `runnable_config_to_checkpoint`); None when it names none."""
    configurable = (config or {}).get("configurable") or {}
    if not configurable.get("thread_id") or not configurable.get("checkpoint_id"):
        return None
    found = {"checkpoint_id": configurable["checkpoint_id"], "thread_id": configurable["thread_id"]}
    if "checkpoint_ns" in configurable:
        found["checkpoint_ns"] = configurable["checkpoint_ns"] or ""
    if "checkpoint_map" in configurable:
        found["checkpoint_map"] = configurable["checkpoint_map"]
    return found


def checkpoint_payload(payload: dict[str, Any], debug: bool) -> dict[str, Any]:
    """A `checkpoints` part (or a `debug` checkpoint's payload, which `langgraph-api` gives
    its `checkpoint`, `parent_checkpoint` and each subgraph task's `checkpoint`)."""
    config, parent = public_config(payload["config"]), public_config(payload["parent_config"])
    shown = {**payload, "config": config, "parent_config": parent}
    if not debug:
        return shown
    tasks = []
    for task in payload["tasks"]:
        state = task.get("state")
        if isinstance(state, dict) and state.get("configurable"):
            task = {k: v for k, v in task.items() if k != "state"}
            task["checkpoint"] = state["configurable"]
        tasks.append(task)
    return shown | {
        "checkpoint": checkpoint_ref(config),  # type: ignore[arg-type]
        "parent_checkpoint": checkpoint_ref(parent),  # type: ignore[arg-type]
        "tasks": tasks,
    }


def joined(event: str, modes: frozenset[str]) -> bool:
    """Whether a join asking for `modes` gets a run's event of this name, as
    `langgraph-api` filters a join: by its mode (a subgraph's `<mode>|<ns>` too), any
    `messages*` event for `messages` or `messages-tuple`; every event without modes."""
    if not modes or event in modes or event.split("|", 1)[0] in modes:
        return True
    return event.startswith("messages") and bool({"messages", "messages-tuple"} & modes)


async def graph_parts(
    graph: CompiledStateGraph,
    graph_input: Any,
    config: RunnableConfig,
    stream_modes: Sequence[str],
    subgraphs: bool,
    **astream_kwargs: Any,
) -> AsyncIterator[Part]:
    """The graph's stream parts; with `events` asked for, from `astream_events` v2, whose
    every event but the run's own stream (the parts) is a part of mode `events`."""
    modes = graph_modes(stream_modes)
    if not graph.stream_eager:
        # Eager streaming runs each step's tasks apart from this generator, so a run stopped
        # mid-step has LangGraph store each cancelled task's error, which ends the run's
        # turn in the transcript; it is on by itself for messages/custom/subgraphs only.
        graph = graph.copy({"stream_eager": True})
    if "events" not in stream_modes:
        parts = cast(
            AsyncGenerator[Any, None],
            graph.astream(
                graph_input, config, stream_mode=modes, subgraphs=subgraphs, **astream_kwargs
            ),
        )
        async with aclosing(parts):  # a run stopped mid-stream closes the graph's at once
            async for part in parts:
                yield part if subgraphs else ((), *part)
        return
    run_id = str(config["run_id"])
    events = cast(
        AsyncGenerator[dict[str, Any], None],
        graph.astream_events(
            graph_input,
            config,
            version="v2",
            stream_mode=modes,
            subgraphs=subgraphs,
            **astream_kwargs,
        ),
    )
    async with aclosing(events):
        async for event in events:
            if HIDDEN_TAG in (event.get("tags") or ()):
                continue
            if event["event"] == "on_chain_stream" and event["run_id"] == run_id:
                chunk = event["data"]["chunk"]
                yield chunk if subgraphs else ((), *chunk)
            else:
                yield (), "events", event


async def run_events(
    graph: CompiledStateGraph,
    graph_input: Any,
    config: RunnableConfig,
    stream_modes: Sequence[str],
    subgraphs: bool,
    **astream_kwargs: Any,
) -> AsyncIterator[RunEvent]:
    """Run the graph on `graph_input` and yield its parts as the requested modes' events
    (`astream_kwargs` go to `graph.astream`: `durability`, `interrupt_before`, ...)."""
    messages = MessagesSoFar()
    parts = graph_parts(graph, graph_input, config, stream_modes, subgraphs, **astream_kwargs)
    async for namespace, mode, chunk in parts:
        name = f"{mode}|{'|'.join(namespace)}" if namespace else mode
        if mode == "messages" and "messages-tuple" not in stream_modes:
            for event, data in messages.events(chunk):
                yield RunEvent(event, as_json(data))
        elif mode == "events" or mode == "messages" or mode in stream_modes:
            if mode == "debug" and chunk["type"] == "checkpoint":
                chunk = {**chunk, "payload": checkpoint_payload(chunk["payload"], debug=True)}
            elif mode == "checkpoints":
                chunk = checkpoint_payload(chunk, debug=False)
            yield RunEvent(name, as_json(chunk))
