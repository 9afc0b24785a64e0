"""A run's events as the Agent Server API streams them: LangGraph's stream parts, named and
shaped as `langgraph_sdk` parses them (`values`, `updates`, `messages`, `custom`, ...; a
subgraph's part as `<mode>|<namespace>` when the run asked for subgraphs).

This is the graph side of a run only: the run's own events (`metadata` first, `error` at
a failure) and where the events go (the turn event log, the client's stream) belong to
the run, not here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, cast, get_args

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StreamMode

from src.api.agent_server.run_shapes import StreamMode as RunStreamMode
from src.api.agent_server.snapshots import as_json

# The modes a run may ask for: the request's `stream_mode` values (`run_shapes`).
RUN_MODES = frozenset(get_args(RunStreamMode))


@dataclass(frozen=True)
class RunEvent:
    """One event of a run: its SSE name and its JSON data."""

    event: str
    data: Any


def graph_modes(requested: Sequence[str]) -> list[StreamMode]:
    """The LangGraph stream modes that make the requested Agent Server modes."""
    modes = {"messages" if mode == "messages-tuple" else mode for mode in requested}
    return cast(list[StreamMode], sorted(modes - {"events"}))


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
    stream = cast(
        AsyncIterator[tuple[tuple[str, ...], str, Any]],
        graph.astream(
            graph_input,
            config,
            stream_mode=graph_modes(stream_modes),
            subgraphs=True,
            **astream_kwargs,
        ),
    )
    async for namespace, mode, chunk in stream:
        if namespace and not subgraphs:
            continue
        name = "messages" if mode == "messages" else mode
        if namespace:
            name = f"{name}|{'|'.join(namespace)}"
        yield RunEvent(name, as_json(chunk))
