"""What the model (and so the user) sees when a tool fails, and the log line it leaves.

`ToolNode` calls `describe_tool_error` for every exception a tool raises and sends the text
back as the tool's (error) result. The text is short and human, never an exception repr:
the tools' own `ToolError`s carry their message, bad arguments name what was wrong, and
anything else is an unexpected failure whose detail stays out of the conversation.
Each failure is logged at WARNING with the tool's name and the error's class only (the
arguments and messages may hold user text). `track_tool_call` tells the handler which
tool is running (the handler itself only receives the exception), and before the tool
starts it confirms the run's guard and sets the call's idempotency key (`tool_guard`): a
refusal is no tool failure, so the handler re-raises it and the turn ends with its cause.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from langgraph.prebuilt.tool_node import ToolCallRequest, ToolInvocationError

from src.agent.tool_guard import ToolNotStartedError, call_key, guard_of
from src.tools.http import ToolError
from src.tools.idempotency import keyed

logger = logging.getLogger("vera.tools")

_running_tool: ContextVar[str] = ContextVar("vera_running_tool", default="unknown")


async def track_tool_call(
    request: ToolCallRequest, execute: Callable[[ToolCallRequest], Awaitable[Any]]
) -> Any:
    """`ToolNode`'s `awrap_tool_call`: confirm the run's guard, then run the call with its
    tool's name and idempotency key in context."""
    name = request.tool_call["name"]
    configurable = (request.runtime.config if request.runtime else {}).get("configurable", {})
    guard = guard_of(configurable)
    if guard is not None:
        try:
            await guard.confirm()
        except Exception as exc:
            raise ToolNotStartedError(name, exc) from exc
    token = _running_tool.set(name)
    try:
        with keyed(call_key(configurable, request.tool_call["id"] or "")):
            return await execute(request)
    finally:
        _running_tool.reset(token)


def _invalid_arguments(exc: ToolInvocationError) -> str:
    problems = [
        f"{'.'.join(str(part) for part in error.get('loc', ())) or 'arguments'}: "
        f"{error.get('msg', 'invalid value')}"
        for error in exc.filtered_errors or ()
    ]
    detail = "; ".join(problems) or "the arguments did not match the tool's schema"
    return f"The {exc.tool_name} tool was called with invalid arguments: {detail}."


def describe_tool_error(exc: Exception) -> str:
    """`ToolNode`'s `handle_tool_errors`: log the failure and return the text to show
    (a call its guard refused is not a failure of the tool: its cause is raised)."""
    if isinstance(exc, ToolNotStartedError):
        logger.warning("tool not started: %s", exc)
        raise exc.cause
    tool = exc.tool_name if isinstance(exc, ToolInvocationError) else _running_tool.get()
    logger.warning("tool failed tool=%s error=%s", tool, type(exc).__name__)
    if isinstance(exc, ToolError):
        return exc.user_message
    if isinstance(exc, ToolInvocationError):
        return _invalid_arguments(exc)
    return f"The {tool} tool failed unexpectedly; try again later."
