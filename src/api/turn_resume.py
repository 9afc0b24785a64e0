"""Resuming a turn that paused for approval: what `POST .../turns/{turn_id}/resume` means,
given what the session holds, and how a turn ends (`done` or `interrupt`).

A resume request is one of:

- **resume** with the answer: the session's last turn is `turn_id` and it waits at an
  `interrupt()`; the graph goes on with `Command(resume=answer)`.
- **resume** without it: the answer was taken (the approval step is stored) but the turn
  stopped before its end (its worker died); it goes on from its last checkpoint, and the
  calls that finished do not run again.
- **replay**: the turn was answered and ended; its stored messages are sent again and
  nothing runs (a retried resume never runs a tool twice).

Anything else (an unknown turn, a turn that never paused, another turn waiting) is
refused with 409 `nothing_to_resume`, and ids in the answer that name no call awaiting
approval with 422.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command

from src.api import metrics
from src.api.approval_schemas import InterruptEvent, ResumeRequest
from src.api.errors import ApiError
from src.api.schemas import DoneEvent, Usage
from src.api.turn_identity import TURN_ID_KEY, TurnPlan, replay_of, turn_history
from src.api.turn_messages import TurnRecord

WAITING = "needs_approval"  # the status of a turn that ended paused at an interrupt


def _nothing(turn_id: str, detail: str) -> ApiError:
    return ApiError(
        409, "nothing_to_resume", f"Turn {turn_id!r} is not waiting for an approval: {detail}."
    )


def asked_ids(value: Any) -> list[str]:
    """The ids of the tool calls an interrupt's value asks to approve."""
    calls = value.get("tool_calls", []) if isinstance(value, dict) else []
    return [str(call.get("id")) for call in calls if isinstance(call, dict)]


def check_answer(answer: ResumeRequest, value: Any) -> None:
    """Refuse (422) approved ids that name no call awaiting approval."""
    if isinstance(answer.approved, list):
        unknown = sorted(set(answer.approved) - set(asked_ids(value)))
        if unknown:
            raise ApiError(
                422,
                "invalid_request",
                f"approved: {', '.join(map(repr, unknown))} names no tool call awaiting "
                f"approval (those are: {', '.join(map(repr, asked_ids(value)))}).",
            )


async def plan_resume(
    graph: CompiledStateGraph, config: RunnableConfig, turn_id: str, answer: ResumeRequest
) -> TurnPlan:
    """Decide how a resume request runs (see the module doc)."""
    state = await graph.aget_state(config)
    last_turn = (state.metadata or {}).get(TURN_ID_KEY)
    if state.interrupts:
        if last_turn != turn_id:
            raise _nothing(turn_id, f"turn {last_turn!r} is the one waiting")
        value = state.interrupts[0].value
        check_answer(answer, value)
        metrics.resumed(answer.decision(asked_ids(value)))
        return TurnPlan("resume", turn_id, command=Command(resume=answer.model_dump()))
    history = await turn_history(graph, config, turn_id)
    if not history:
        raise _nothing(turn_id, "no such turn in this session")
    if not any(snapshot.interrupts for snapshot in history):
        raise _nothing(turn_id, "it never paused for one")
    if (state.next or state.tasks) and last_turn == turn_id:
        return TurnPlan("resume", turn_id)
    return replay_of(turn_id, history)


def final_event(record: TurnRecord) -> InterruptEvent | DoneEvent:
    """The last event of a turn that did not fail: `interrupt` when it paused."""
    if record.interrupt is not None:
        metrics.interrupted()
        return InterruptEvent(id=record.interrupt.id, value=record.interrupt.value)
    return DoneEvent(message_id=record.message_id, usage=Usage(**record.usage))
