"""Approve before acting: the graph's `approve` node, between the model and the tools.

When the model calls a tool named in `AGENT_CONFIRM_TOOLS`, the turn pauses at LangGraph's
`interrupt()` with `approval_request` as its value: the calls awaiting approval (id, tool,
arguments). The run goes on once it is resumed with `Command(resume=...)`:
`{"approved": true}` runs them all, `{"approved": false}` none, `{"approved": [ids]}` the
calls named. Anything else approves nothing: a tool that needs consent never runs without
it. A declined call is not run; it is answered with `declined_result`, so the history
stays valid for the model. The other calls of the reply run as usual, each as a task of
its own (`Send`), so a call that finished is never run again when a step is retried.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.messages.tool import ToolCall
from langgraph.prebuilt.tool_node import ToolCallWithContext
from langgraph.types import Command, Send, interrupt

APPROVAL_KIND = "tool_approval"
DECLINED = "The user declined this call of {tool}, so it was not run."
# Marks a declined call's result (the artifact is never sent to the model).
DECLINED_ARTIFACT = {"declined": True}


def last_reply(messages: Sequence[BaseMessage]) -> AIMessage | None:
    """The last message, when it is an assistant reply."""
    last = messages[-1] if messages else None
    return last if isinstance(last, AIMessage) else None


def calls_to_confirm(reply: AIMessage | None, confirm: Collection[str]) -> list[ToolCall]:
    """The tool calls of `reply` that wait for the user's approval."""
    return [call for call in (reply.tool_calls if reply else []) if call["name"] in confirm]


def approval_request(calls: Sequence[ToolCall]) -> dict[str, Any]:
    """The interrupt's value: what the user is asked to approve."""
    return {
        "kind": APPROVAL_KIND,
        "question": "Run " + (calls[0]["name"] if len(calls) == 1 else "these tools") + "?",
        "tool_calls": [
            {"id": call["id"], "tool": call["name"], "args": call["args"]} for call in calls
        ],
    }


def approved_ids(answer: Any, asked: Sequence[ToolCall]) -> set[str]:
    """The ids of the asked calls that `answer` (the resume value) approves."""
    approved = answer.get("approved") if isinstance(answer, dict) else None
    ids = [call["id"] or "" for call in asked]
    if approved is True:
        return set(ids)
    if isinstance(approved, list):
        return {i for i in ids if i in approved}
    return set()


def is_declined(message: BaseMessage) -> bool:
    """Whether a tool message is the answer to a call the user declined."""
    return isinstance(message, ToolMessage) and message.artifact == DECLINED_ARTIFACT


def declined_result(call: ToolCall) -> ToolMessage:
    return ToolMessage(
        DECLINED.format(tool=call["name"]),
        tool_call_id=call["id"] or "",
        name=call["name"],
        status="error",
        artifact=dict(DECLINED_ARTIFACT),
    )


def make_approve_node(confirm: Collection[str]) -> Any:
    """The `approve` node: ask (interrupt), then send the approved calls to `tools` and
    answer the declined ones."""

    def approve(state: dict[str, Any]) -> Command:
        reply = last_reply(state["messages"])
        asked = calls_to_confirm(reply, confirm)
        # Before interrupt() nothing has effects: the node runs again on resume.
        answer = interrupt(approval_request(asked)) if asked else None
        ok = approved_ids(answer, asked)
        skipped = {call["id"] for call in asked} - ok
        run = [call for call in (reply.tool_calls if reply else []) if call["id"] not in skipped]
        # Each Send is stored with the step's writes: it carries its call only (no tool of
        # Vera reads the graph's state), not a copy of the conversation.
        sends = [
            Send(
                "tools",
                ToolCallWithContext(__type="tool_call_with_context", tool_call=call, state={}),
            )
            for call in run
        ]
        declined = [declined_result(call) for call in asked if call["id"] in skipped]
        return Command(update={"messages": declined}, goto=sends or "model")

    return approve


def route_after_model(confirm: Collection[str]) -> Any:
    """The model's outgoing edge: `approve` when a call needs consent, else `tools` for
    any tool call, else the end."""

    def route(state: dict[str, Any]) -> str:
        reply = last_reply(state["messages"])
        if reply is None or not reply.tool_calls:
            return "__end__"
        return "approve" if calls_to_confirm(reply, confirm) else "tools"

    return route
