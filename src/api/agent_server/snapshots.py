"""LangGraph's `StateSnapshot` as the Agent Server API sends it (`ThreadState`): values as
JSON (messages as their `model_dump()`), checkpoints named by thread, namespace and id."""

from __future__ import annotations

import dataclasses
from collections import deque
from enum import Enum
from pathlib import PurePath
from typing import Any

from fastapi.encoders import ENCODERS_BY_TYPE, jsonable_encoder
from langchain_core.runnables import RunnableConfig
from langgraph.errors import EmptyInputError, GraphBubbleUp, InvalidUpdateError
from langgraph.types import Interrupt, Send, StateSnapshot

# Errors whose text `langgraph-api` sends as they are (others: a fixed message).
TOLD_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    RuntimeError,
    RecursionError,
    TimeoutError,
    InvalidUpdateError,
    GraphBubbleUp,
    EmptyInputError,
)
# Values with a JSON form of their own (dates, UUIDs, decimals, enums, paths, ...).
SCALARS = (str, int, float, bool, Enum, PurePath, *ENCODERS_BY_TYPE)


def as_json(value: Any) -> Any:
    """A value of the graph's as JSON, as `langgraph-api`'s serde sends it: models by
    `model_dump()` (a message's every field), a `Send` as its node and argument, a
    dataclass by its fields, an error by its type and (if told) message; a value with no
    JSON form (a pool, a lock) as null, never the object's insides."""
    if isinstance(value, Send):
        return {"node": value.node, "args": as_json(value.arg)}
    if isinstance(value, dict):
        return {str(key): as_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset | deque):
        return [as_json(item) for item in value]
    if isinstance(value, type):
        return None
    if hasattr(value, "model_dump"):
        return as_json(value.model_dump())
    if dataclasses.is_dataclass(value):
        return {f.name: as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, BaseException):
        told = isinstance(value, TOLD_ERRORS)
        return {
            "error": type(value).__name__,
            "message": str(value) if told else "An internal error occurred",
        }
    if value is None or isinstance(value, SCALARS):
        return jsonable_encoder(value)
    return None


def checkpoint_of(config: RunnableConfig | None) -> dict[str, str] | None:
    """The checkpoint a config points at; None when it names none."""
    configurable = (config or {}).get("configurable") or {}
    if not configurable.get("thread_id") or not configurable.get("checkpoint_id"):
        return None
    return {
        "checkpoint_id": str(configurable["checkpoint_id"]),
        "thread_id": str(configurable["thread_id"]),
        "checkpoint_ns": str(configurable.get("checkpoint_ns") or ""),
    }


def interrupt_of(interrupt: Interrupt | dict[str, Any]) -> dict[str, Any]:
    if isinstance(interrupt, dict):
        return {"id": interrupt.get("id"), "value": as_json(interrupt.get("value"))}
    return {"id": interrupt.id, "value": as_json(interrupt.value)}


def _error_text(error: Exception | None) -> str | None:
    return None if error is None else f"{type(error).__name__}: {error}"


def thread_state(snapshot: StateSnapshot) -> dict[str, Any]:
    """The `ThreadState` of a snapshot (its subgraph tasks' states nested)."""
    here = checkpoint_of(snapshot.config)
    parent = checkpoint_of(snapshot.parent_config)
    tasks = []
    for task in snapshot.tasks:
        nested = task.state
        tasks.append(
            {
                "id": task.id,
                "name": task.name,
                "path": as_json(list(task.path)),
                "error": _error_text(task.error),
                "interrupts": [interrupt_of(i) for i in task.interrupts],
                "checkpoint": (nested or {}).get("configurable")
                if nested is not None and not isinstance(nested, StateSnapshot)
                else None,
                "state": thread_state(nested) if isinstance(nested, StateSnapshot) else None,
                "result": as_json(task.result),
            }
        )
    return {
        "values": as_json(snapshot.values),
        "next": list(snapshot.next),
        "tasks": tasks,
        "metadata": as_json(snapshot.metadata) if snapshot.metadata is not None else None,
        "created_at": snapshot.created_at,
        "checkpoint": here,
        "parent_checkpoint": parent,
        "interrupts": [interrupt_of(i) for i in snapshot.interrupts],
        "checkpoint_id": here["checkpoint_id"] if here else None,
        "parent_checkpoint_id": parent["checkpoint_id"] if parent else None,
    }


def thread_interrupts(snapshot: StateSnapshot) -> dict[str, list[dict[str, Any]]]:
    """The pending interrupts of a thread, by the id of the task that raised them."""
    return {
        task.id: [interrupt_of(i) for i in task.interrupts]
        for task in snapshot.tasks
        if task.interrupts
    }
