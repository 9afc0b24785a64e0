"""The context window: which stored messages the model sees on a turn.

The transcript keeps every message; the model gets at most `max_messages` recent ones,
never starting with a tool result and never splitting an assistant tool call from its
results. Tool calls left without results (a turn cut short) get a stand-in result so that
OpenAI-compatible APIs accept the history.
"""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

INTERRUPTED_RESULT = "This tool call was interrupted before it returned a result."


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
        repaired.append(message)
        if not (isinstance(message, AIMessage) and message.tool_calls):
            continue
        call_ids = {call["id"] for call in message.tool_calls}
        answered = set()
        while i < len(messages) and isinstance(messages[i], ToolMessage):
            result = messages[i]
            i += 1
            if result.tool_call_id in call_ids:
                answered.add(result.tool_call_id)
                repaired.append(result)
        for call in message.tool_calls:
            if call["id"] not in answered:
                repaired.append(
                    ToolMessage(
                        INTERRUPTED_RESULT,
                        tool_call_id=call["id"],
                        name=call["name"],
                        status="error",
                    )
                )
    return repaired


def select_window(messages: list[BaseMessage], max_messages: int) -> list[BaseMessage]:
    """The recent messages the model sees: at most `max_messages` stored ones, cut at a
    turn boundary that keeps tool calls with their results, then repaired."""
    start = max(0, len(messages) - max_messages)
    while start < len(messages) and isinstance(messages[start], ToolMessage):
        start += 1  # never open on a tool result whose call was cut off
    if start == len(messages) and messages:
        # The whole budget is one tool group: keep its call with every result.
        start = max(
            (i for i, m in enumerate(messages) if isinstance(m, AIMessage) and m.tool_calls),
            default=start,
        )
    return repair_tool_calls(list(messages[start:]))
