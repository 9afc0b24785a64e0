"""What a stopped turn leaves in the conversation: `store_stop`.

The turn's graph run was cancelled mid-step, so its last checkpoint still has a step to
run. That step is written as if it had ended, so that the history says what the user saw
and stays valid for the model:

- the model was answering: the text streamed so far becomes the assistant's answer,
  marked `response_metadata.stopped` (nothing, when no text had come yet);
- tools were running: each call with no result gets a tool message saying it was
  cancelled (`status` "error", `response_metadata.stopped`), as providers require an
  answer to every tool call.

Then the run's remaining tasks are cleared (LangGraph's `update_state(None, END)`), so the
next message starts a new turn instead of resuming this one. The writes carry the turn's
lease and `turn_id` like the run's own, and `STOPPED_KEY` in their metadata: a retry of the
turn replays it as stopped (`turn_identity`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, ToolCall, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END
from langgraph.graph.state import CompiledStateGraph

from src.api.turn_identity import STOPPED_KEY

STOPPED = {"stopped": True}
CANCELLED_TOOL_RESULT = "Cancelled: the user stopped this turn before the tool finished."


def unanswered_calls(messages: list[AnyMessage]) -> list[ToolCall]:
    """The tool calls of the last assistant message that no tool message answers."""
    last = next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)
    if last is None:
        return []
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    return [call for call in last.tool_calls if call["id"] not in answered]


def stopped_answer_id(messages: Sequence[BaseMessage]) -> str | None:
    """The id of the partial answer a stop stored last in `messages`, if any."""
    last = messages[-1] if messages else None
    if isinstance(last, AIMessage) and last.response_metadata.get("stopped"):
        return last.id
    return None


def cancelled_results(calls: list[ToolCall]) -> list[ToolMessage]:
    return [
        ToolMessage(
            CANCELLED_TOOL_RESULT,
            tool_call_id=call["id"],
            name=call["name"],
            status="error",
            response_metadata=dict(STOPPED),
            id=str(uuid.uuid4()),
        )
        for call in calls
    ]


async def store_stop(
    graph: CompiledStateGraph, config: RunnableConfig, streamed: str
) -> str | None:
    """Store the stopped turn's end (see the module doc); `streamed` is the answer's text
    the user got since the last stored message. Returns the partial answer's id, if any.
    Each write is on the latest checkpoint with `config` itself (the config an update
    returns names its checkpoint but not the lease)."""
    # LangGraph's checkpointers store a config's metadata in the checkpoint's.
    config = {**config, "metadata": {**config.get("metadata", {}), STOPPED_KEY: True}}
    state = await graph.aget_state(config)
    if not state.next:
        return None  # the run had ended just before it was stopped
    message_id: str | None = None
    if "tools" in state.next:
        calls = unanswered_calls(state.values.get("messages") or [])
        if calls:
            await graph.aupdate_state(
                config, {"messages": cancelled_results(calls)}, as_node="tools"
            )
    elif "model" in state.next and streamed:
        message_id = str(uuid.uuid4())
        partial = AIMessage(streamed, id=message_id, response_metadata=dict(STOPPED))
        await graph.aupdate_state(config, {"messages": [partial]}, as_node="model")
    if (await graph.aget_state(config)).next:
        await graph.aupdate_state(config, None, as_node=END)
    return message_id
