"""Turns that fork the transcript: regenerate the last answer (`Regenerate`), or edit an
earlier user message and go on from there (`Edit`).

Both run from the checkpoint of the branch shown just before that user message (the
memory's `afork_point`) with a user message: the same one for a regenerate (stored once,
both branches share it, so the alternatives are the answers), a new one for an edit. The
run is an ordinary turn of the turn runner (lease, fenced writes, events); its checkpoints
carry its `turn_id`, so a retry with the same `turn_id` resumes or replays that turn
(`plan_turn`) instead of forking again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from src.agent.memory import ConversationCheckpointer
from src.api.errors import ApiError
from src.api.state_reads import readable_state
from src.api.turn_identity import TurnPlan, plan_turn


@dataclass(frozen=True)
class Regenerate:
    """Answer the transcript's last user message again."""


@dataclass(frozen=True)
class Edit:
    """Replace the user message `message_id` of the transcript with `text` and go on."""

    message_id: str
    text: str


Fork = Regenerate | Edit


def _last_user(messages: list[BaseMessage]) -> int | None:
    return next(
        (i for i in range(len(messages) - 1, -1, -1) if isinstance(messages[i], HumanMessage)),
        None,
    )


def fork_target(messages: list[BaseMessage], fork: Fork) -> tuple[int, HumanMessage]:
    """The position the fork replaces the transcript from, and the user message it sends
    there; `ApiError` when the transcript has no such message."""
    if isinstance(fork, Regenerate):
        position = _last_user(messages)
        if position is None:
            raise ApiError(409, "nothing_to_regenerate", "This session has no answer yet.")
        return position, cast(HumanMessage, messages[position])
    position = next((i for i, m in enumerate(messages) if m.id == fork.message_id), None)
    if position is None:
        raise ApiError(
            404,
            "message_not_found",
            f"No message {fork.message_id!r} in the branch shown of this session.",
        )
    if not isinstance(messages[position], HumanMessage):
        raise ApiError(
            422, "not_a_user_message", f"Message {fork.message_id!r} is not a user message."
        )
    return position, HumanMessage(fork.text, id=str(uuid.uuid4()))


def _retry_text(messages: list[BaseMessage], fork: Fork) -> Any:
    """The user message a retry of this fork's turn was sent with."""
    if isinstance(fork, Edit):
        return fork.text
    position = _last_user(messages)
    return None if position is None else messages[position].content


async def plan_fork(
    graph: CompiledStateGraph, config: RunnableConfig, fork: Fork, turn_id: str | None
) -> TurnPlan:
    """A fork's plan: the turn `turn_id` already names when it is one (a retry: resumed or
    replayed, never forked twice), else a new turn from the fork point."""
    state, _ = await readable_state(graph, config)
    messages: list[BaseMessage] = state.values.get("messages") or []
    if turn_id is not None:
        text = _retry_text(messages, fork)
        if text is not None:
            plan = await plan_turn(graph, config, text, turn_id)
            if plan.kind != "new":
                return plan
    position, message = fork_target(messages, fork)
    saver = cast(ConversationCheckpointer, graph.checkpointer)
    point = await saver.afork_point(config["configurable"]["thread_id"], position)
    if point is None:  # the transcript shows no checkpoint's messages (mid-run)
        raise ApiError(409, "session_busy", "This session's last turn is still being stored.")
    return TurnPlan("new", turn_id or str(uuid.uuid4()), start_from=point, message=message)
