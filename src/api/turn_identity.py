"""Turn identity: what a request means, given what the session already holds.

Every turn has a `turn_id` (the client's idempotency key, or one made up for it), stored in
the metadata of every checkpoint the turn writes. A request is then one of:

- **replay**: its `turn_id` names a turn that completed, or was stopped (its checkpoints
  from the stop carry `STOPPED_KEY`, `turn_stop`); its stored answer is sent again, ending
  as it ended (`cancelled` for a stopped turn), and nothing runs or is stored.
- **resume**: its `turn_id` names the session's unfinished last run, or it has no
  `turn_id` and repeats the user message of that unfinished run; the run goes on from its
  last checkpoint (the user message is not stored again, finished tool calls do not run
  again).
- **new**: anything else.

Reusing a `turn_id` for a different message is refused (`TurnConflictError`), and so is
a new turn while the last one waits for the user's approval (`ApprovalPendingError`; it is
answered through `turn_resume`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, StateSnapshot

from src.api.state_reads import readable_state

TURN_ID_KEY = "turn_id"
STOPPED_KEY = "vera_stopped"  # in the metadata of the checkpoints a stop writes


class TurnConflictError(ValueError):
    """The `turn_id` was already used for a different message in this session."""


class ApprovalPendingError(ValueError):
    """The session's last turn waits at an `interrupt()` for the user's answer."""

    def __init__(self, turn_id: str | None, value: Any) -> None:
        calls = value.get("tool_calls", []) if isinstance(value, dict) else []
        tools = ", ".join(str(call.get("tool")) for call in calls if isinstance(call, dict))
        of = f" of {tools}" if tools else ""
        super().__init__(
            f"Turn {turn_id!r} of this session waits for your approval{of}: answer it "
            f"(POST /sessions/<session_id>/turns/{turn_id}/resume) before sending a new message."
            if turn_id
            else f"This session's last run (not started through the API) waits for an "
            f"approval{of}: answer it where it was started (LangGraph Studio) first."
        )
        self.turn_id = turn_id


@dataclass(frozen=True)
class TurnPlan:
    """How a request's turn runs."""

    kind: Literal["new", "resume", "replay"]
    turn_id: str
    stored: list[BaseMessage] = field(default_factory=list)  # replay: the turn's messages
    command: Command | None = None  # the graph's input instead (an interrupt's answer)
    # A fork (`turn_forks.py`): the checkpoint the new turn runs from, and its user message.
    start_from: str | None = None
    message: HumanMessage | None = None
    stopped: bool = False  # replay: the turn was stopped, so it ends `cancelled`


def _text(message: BaseMessage) -> Any:
    return message.content


async def turn_history(
    graph: CompiledStateGraph, config: RunnableConfig, turn_id: str
) -> list[StateSnapshot]:
    """The checkpoints a turn wrote, newest first."""
    return [s async for s in graph.aget_state_history(config, filter={TURN_ID_KEY: turn_id})]


def replay_of(turn_id: str, history: list[StateSnapshot]) -> TurnPlan:
    """The replay of a stored turn (`history` not empty): the messages it added."""
    before = len(history[-1].values.get("messages") or [])  # its input checkpoint
    stored = list((history[0].values.get("messages") or [])[before:])
    stopped = bool((history[0].metadata or {}).get(STOPPED_KEY))
    return TurnPlan("replay", turn_id, stored, stopped=stopped)


def _new(state: StateSnapshot, turn_id: str) -> TurnPlan:
    if state.interrupts:
        last_turn = (state.metadata or {}).get(TURN_ID_KEY)
        raise ApprovalPendingError(str(last_turn) if last_turn else None, state.interrupts[0].value)
    return TurnPlan("new", turn_id)


async def plan_turn(
    graph: CompiledStateGraph, config: RunnableConfig, message: str, turn_id: str | None
) -> TurnPlan:
    """Decide whether a request starts, resumes or replays a turn (see the module doc)."""
    state, _ = await readable_state(graph, config)
    messages = state.values.get("messages") or []
    # A run is unfinished while its last checkpoint has tasks: to run (`next`), or done but
    # not yet followed by a checkpoint (their writes are stored as pending writes).
    unfinished = bool(state.next or state.tasks)
    last_turn = (state.metadata or {}).get(TURN_ID_KEY)
    if turn_id is not None:
        history = await turn_history(graph, config, turn_id)
        if not history:
            return _new(state, turn_id)
        plan = replay_of(turn_id, history)
        stored = plan.stored
        first = next((m for m in stored if isinstance(m, HumanMessage)), None)
        if first is not None and _text(first) != message:
            raise TurnConflictError(f"turn_id {turn_id!r} was used for another message")
        if unfinished and last_turn == turn_id:
            return TurnPlan("resume", turn_id)
        if first is None:  # stored before its input: it never really started
            return _new(state, turn_id)
        return plan
    if unfinished:
        last_human = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
        if last_human is not None and _text(last_human) == message:
            return TurnPlan("resume", str(last_turn or uuid.uuid4()))
    return _new(state, str(uuid.uuid4()))
