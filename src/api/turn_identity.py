"""Turn identity: what a request means, given what the session already holds.

Every turn has a `turn_id` (the client's idempotency key, or one made up for it), stored in
the metadata of every checkpoint the turn writes. A request is then one of:

- **replay**: its `turn_id` names a turn that completed; its stored answer is sent again
  and nothing runs or is stored.
- **resume**: its `turn_id` names the session's unfinished last run, or it has no
  `turn_id` and repeats the user message of that unfinished run; the run goes on from its
  last checkpoint (the user message is not stored again, finished tool calls do not run
  again).
- **new**: anything else.

Reusing a `turn_id` for a different message is refused (`TurnConflictError`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

TURN_ID_KEY = "turn_id"


class TurnConflictError(ValueError):
    """The `turn_id` was already used for a different message in this session."""


@dataclass(frozen=True)
class TurnPlan:
    """How a request's turn runs."""

    kind: Literal["new", "resume", "replay"]
    turn_id: str
    stored: list[BaseMessage] = field(default_factory=list)  # replay: the turn's messages
    # A fork (`turn_forks.py`): the checkpoint the new turn runs from, and its user message.
    start_from: str | None = None
    message: HumanMessage | None = None


def _text(message: BaseMessage) -> Any:
    return message.content


async def _turn_messages(
    graph: CompiledStateGraph, config: RunnableConfig, turn_id: str
) -> list[BaseMessage] | None:
    """The messages a stored turn added (its user message first), or None if unknown."""
    snapshots = [s async for s in graph.aget_state_history(config, filter={TURN_ID_KEY: turn_id})]
    if not snapshots:
        return None
    before = len(snapshots[-1].values.get("messages") or [])  # its input checkpoint
    return list((snapshots[0].values.get("messages") or [])[before:])


async def plan_turn(
    graph: CompiledStateGraph, config: RunnableConfig, message: str, turn_id: str | None
) -> TurnPlan:
    """Decide whether a request starts, resumes or replays a turn (see the module doc)."""
    state = await graph.aget_state(config)
    messages = state.values.get("messages") or []
    # A run is unfinished while its last checkpoint has tasks: to run (`next`), or done but
    # not yet followed by a checkpoint (their writes are stored as pending writes).
    unfinished = bool(state.next or state.tasks)
    last_turn = (state.metadata or {}).get(TURN_ID_KEY)
    if turn_id is not None:
        stored = await _turn_messages(graph, config, turn_id)
        if stored is None:
            return TurnPlan("new", turn_id)
        first = next((m for m in stored if isinstance(m, HumanMessage)), None)
        if first is not None and _text(first) != message:
            raise TurnConflictError(f"turn_id {turn_id!r} was used for another message")
        if unfinished and last_turn == turn_id:
            return TurnPlan("resume", turn_id)
        if first is None:  # stored before its input: it never really started
            return TurnPlan("resume" if unfinished and last_turn == turn_id else "new", turn_id)
        return TurnPlan("replay", turn_id, stored)
    if unfinished:
        last_human = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        if last_human is not None and _text(last_human) == message:
            return TurnPlan("resume", str(last_turn or uuid.uuid4()))
    return TurnPlan("new", str(uuid.uuid4()))
