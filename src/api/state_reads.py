"""A thread's state that always reads: a checkpoint holding writes the graph refuses (a
message LangChain can not build, stored before inputs were checked) makes LangGraph's
`aget_state` raise in every reader, the next turn's planning included."""

from __future__ import annotations

import logging

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import StateSnapshot

logger = logging.getLogger("vera.threads")


async def readable_state(
    graph: CompiledStateGraph, config: RunnableConfig, subgraphs: bool = False
) -> tuple[StateSnapshot, Exception | None]:
    """The state at `config`, or, when its checkpoint holds writes the graph refuses, the
    nearest ancestor's that reads, with the error: no thread makes a reader fail. Before
    any checkpoint: the empty state."""
    try:
        return await graph.aget_state(config, subgraphs=subgraphs), None
    except Exception as exc:
        error = exc
    logger.warning("unreadable checkpoint %s (%s)", config["configurable"], type(error).__name__)
    saver = graph.checkpointer
    found = await saver.aget_tuple(config)  # type: ignore[union-attr]
    while found is not None and found.parent_config is not None:
        try:
            return await graph.aget_state(found.parent_config, subgraphs=subgraphs), error
        except Exception:  # an ancestor as unreadable: its parent, then
            found = await saver.aget_tuple(found.parent_config)  # type: ignore[union-attr]
    return StateSnapshot({}, (), config, None, None, None, (), ()), error
