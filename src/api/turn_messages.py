"""From the graph's messages to a turn's events: `emit_message` turns an assistant
message into `tool_call` events and a tool message into a `tool_result` event, and
tallies what the turn produced (tools called, failures, token usage, last message id) in
its `TurnRecord`, for the turn's log line and `done` event. `text_of` and `tool_result`
decode message content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import AIMessage, ToolMessage
from langgraph.types import Interrupt

from src.agent.approval import is_declined
from src.api import metrics
from src.api.schemas import ToolCallEvent, ToolResultEvent
from src.api.turn_stream import Turn


def tool_result(content: Any) -> Any:
    """A tool message's content, decoded when the tool returned JSON text."""
    if isinstance(content, str):
        try:
            return json.loads(content)
        except ValueError:
            return content
    return content


def text_of(content: Any) -> str:
    """The text of a message chunk's content (a string, or a list of content blocks)."""
    if isinstance(content, str):
        return content
    return "".join(
        block.get("text", "") if isinstance(block, dict) else str(block) for block in content
    )


@dataclass
class TurnRecord:
    """What a turn produced, for its log line."""

    tool_calls: list[str] = field(default_factory=list)
    tool_errors: int = 0  # tool calls that failed (their result has status "error")
    usage: dict[str, int] = field(
        default_factory=lambda: {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    )
    message_id: str | None = None
    interrupt: Interrupt | None = None  # the turn paused here, waiting for the user

    def add_usage(self, message: AIMessage) -> None:
        for key, value in (message.usage_metadata or {}).items():
            if key in self.usage and isinstance(value, int):
                self.usage[key] += value


def tool_status(message: ToolMessage) -> str:
    """A tool result's status: `ok`, `error` or `declined` (by the user's approval)."""
    if is_declined(message):
        return "declined"
    return "error" if message.status == "error" else "ok"


def tally(message: Any, record: TurnRecord, replayed: bool = False) -> None:
    """Add one message the graph stored to `record` (usage, tools called, failures, the
    last answer's id) and count a tool result in the metrics, unless `replayed` (it ran
    in an earlier attempt). Both doors' turns are counted by it: `/chat`'s through
    `emit_message`, an Agent Server run's (`run_play`) from the messages it stored."""
    if isinstance(message, AIMessage):
        record.add_usage(message)
        record.message_id = message.id
        record.tool_calls.extend(call["name"] for call in message.tool_calls)
    elif isinstance(message, ToolMessage):
        status = tool_status(message)
        record.tool_errors += status == "error"
        if not replayed:
            metrics.tool_call(message.name, status)


def emit_message(turn: Turn, message: Any, record: TurnRecord) -> None:
    """Emit the events of one message the graph stored (or a replay found stored) and add
    it to `record` (`tally`); other kinds of message (the user's) emit nothing."""
    tally(message, record, replayed=turn.plan.kind == "replay")
    if isinstance(message, AIMessage):
        turn.answer = text_of(message.content)
        turn.streamed = ""
        for call in message.tool_calls:
            turn.emit(ToolCallEvent(id=call["id"] or "", tool=call["name"], args=call["args"]))
    elif isinstance(message, ToolMessage):
        turn.emit(
            ToolResultEvent(
                id=message.tool_call_id,
                tool=message.name or "",
                status=tool_status(message),
                result=tool_result(message.content),
            )
        )
