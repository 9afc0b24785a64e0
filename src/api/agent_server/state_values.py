"""What a request writes to a thread's state, checked before anything is stored. State
values (a run's `input`, a command's `update`, `update_state`'s `values`): each value goes
through its channel's own reducer on an empty channel (for `messages`, LangGraph's
`add_messages`, which refuses what it can not turn into messages). Unchecked, a refused
value is stored as a pending write of the thread's checkpoint, and every later read of the
thread fails on it. Keys that are no channel of the graph are left to LangGraph (which
ignores them). A command's `resume` needs a paused thread (`check_resumable`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.channels.base import BaseChannel
from langgraph.graph.state import CompiledStateGraph

from src.api.errors import ApiError
from src.api.state_reads import readable_state

MESSAGE_CHARS = 300  # of a reducer's error, in the answer


def _pairs(values: Any) -> Iterable[tuple[str, Any]]:
    """The (key, value) writes of state values: a dict, or a list of pairs (a command's)."""
    if isinstance(values, dict):
        return values.items()
    if isinstance(values, list):
        return [
            (item[0], item[1])
            for item in values
            if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[0], str)
        ]
    return []


def refused(graph: CompiledStateGraph, where: str, values: Any) -> list[dict[str, str]]:
    """The writes of `values` their channel refuses, as error details (`<where>.<key>`)."""
    found = []
    for key, value in _pairs(values):
        channel = graph.channels.get(key)
        if not isinstance(channel, BaseChannel) or key.startswith(("__", "branch:")):
            continue
        try:
            channel.copy().update([value])
        except Exception as exc:  # whatever the reducer raises, it refuses the value
            text = str(exc).split("\n", 1)[0][:MESSAGE_CHARS]
            found.append({"field": f"{where}.{key}", "message": f"{type(exc).__name__}: {text}"})
    return found


def check_values(graph: CompiledStateGraph, where: str, values: Any) -> None:
    """`ApiError` 422 naming each write of `values` its channel refuses."""
    details = refused(graph, where, values)
    if details:
        names = ", ".join(detail["field"] for detail in details)
        raise ApiError(
            422,
            "invalid_request",
            f"The state can not take {names}: {details[0]['message']}",
            details=details,
        )


async def check_resumable(
    graph: CompiledStateGraph, thread_id: uuid.UUID, config: RunnableConfig
) -> None:
    """409 `nothing_to_resume` unless the thread, at the run's checkpoint, has steps left
    (an interrupt, or a pause at `interrupt_before`/`after`): else LangGraph would start the
    graph on no input and store an empty answer."""
    configurable = {**config["configurable"], "thread_id": str(thread_id)}
    snapshot, _ = await readable_state(graph, {"configurable": configurable})
    if not snapshot.next:
        raise ApiError(
            409,
            "nothing_to_resume",
            f"Thread {thread_id} has nothing to resume: no run of it is interrupted. "
            "Send the message as input instead of command.resume.",
        )
