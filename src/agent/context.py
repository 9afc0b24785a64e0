"""The context window: which stored messages the model sees on a turn.

The transcript keeps every message; the model gets at most `max_messages` recent ones,
never starting with a tool result and never splitting an assistant tool call from its
results. Tool calls left without results (a turn cut short) get a stand-in result so that
OpenAI-compatible APIs accept the history; so do invalid tool calls (arguments that were not
JSON, kept by older versions or edited in): the model sees them as calls with no arguments,
answered by an `invalid` explanation.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.messages.tool import tool_call

INTERRUPTED_RESULT = "This tool call was interrupted before it returned a result."
INVALID_RESULT = (
    "Error: this tool call was invalid and was not run: its arguments were not valid JSON "
    "({arguments}). Call the tool again with complete JSON arguments if it is still needed."
)


def _has_calls(message: BaseMessage) -> bool:
    return isinstance(message, AIMessage) and bool(message.tool_calls or message.invalid_tool_calls)


def _without_invalid_calls(message: AIMessage) -> tuple[AIMessage, dict[str, str]]:
    """`message` with its invalid tool calls as calls without arguments (calls without an
    id are dropped: nothing can answer them), and the stand-in result of each by id."""
    if not message.invalid_tool_calls:
        return message, {}
    calls = list(message.tool_calls)
    results: dict[str, str] = {}
    for call in message.invalid_tool_calls:
        call_id = call.get("id")
        if call_id:
            calls.append(tool_call(name=call.get("name") or "unknown_tool", args={}, id=call_id))
            shown = str(call.get("args") or "")
            shown = shown if len(shown) <= 200 else shown[:200] + "…"
            results[call_id] = INVALID_RESULT.format(arguments=repr(shown))
    fixed = message.model_copy(update={"tool_calls": calls, "invalid_tool_calls": []})
    return fixed, results


def repair_tool_calls(messages: list[BaseMessage]) -> list[BaseMessage]:
    """Give every assistant tool call a result right after it (stand-ins where missing),
    and drop tool results whose call is not in `messages`."""
    repaired: list[BaseMessage] = []
    i = 0
    while i < len(messages):
        message = messages[i]
        i += 1
        if isinstance(message, ToolMessage):
            continue  # a result not right after its call: orphaned
        if not (isinstance(message, AIMessage) and _has_calls(message)):
            repaired.append(message)
            continue
        message, invalid = _without_invalid_calls(message)
        repaired.append(message)
        call_ids = {call["id"] for call in message.tool_calls}
        answered = set()
        while i < len(messages):
            result = messages[i]
            if not isinstance(result, ToolMessage):
                break
            i += 1
            if result.tool_call_id in call_ids:
                answered.add(result.tool_call_id)
                repaired.append(result)
        for call in message.tool_calls:
            if call["id"] not in answered:
                repaired.append(
                    ToolMessage(
                        invalid.get(call["id"] or "", INTERRUPTED_RESULT),
                        tool_call_id=call["id"],
                        name=call["name"],
                        status="error",
                    )
                )
    return repaired


def select_window(messages: Sequence[BaseMessage], max_messages: int) -> list[BaseMessage]:
    """The recent messages the model sees: at most `max_messages` stored ones, cut at a
    turn boundary that keeps tool calls with their results, then repaired."""
    start = max(0, len(messages) - max_messages)
    while start < len(messages) and isinstance(messages[start], ToolMessage):
        start += 1  # never open on a tool result whose call was cut off
    if start == len(messages) and messages:
        # The whole budget is one tool group: keep its call with every result.
        start = max(
            (i for i, m in enumerate(messages) if _has_calls(m)),
            default=start,
        )
    return repair_tool_calls(list(messages[start:]))
