"""What the model (and so the user) sees when a tool fails, and the log line it leaves.

`ToolNode` calls `describe_tool_error` for every exception a tool raises and sends the text
back as the tool's (error) result. The text is short and human, never an exception repr:
the tools' own `ToolError`s carry their message, bad arguments name what was wrong, and
anything else is an unexpected failure whose detail stays out of the conversation.
Each failure is logged at WARNING with the tool's name and the error's class only (the
arguments and messages may hold user text). `track_tool_call` tells the handler which
tool is running: the handler itself only receives the exception.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from langgraph.prebuilt.tool_node import ToolCallRequest, ToolInvocationError

from src.tools.http import ToolError

logger = logging.getLogger("vera.tools")

_running_tool: ContextVar[str] = ContextVar("vera_running_tool", default="unknown")


async def track_tool_call(
    request: ToolCallRequest, execute: Callable[[ToolCallRequest], Awaitable[Any]]
) -> Any:
    """`ToolNode`'s `awrap_tool_call`: run the call with its tool's name in context."""
    token = _running_tool.set(request.tool_call["name"])
    try:
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
    """`ToolNode`'s `handle_tool_errors`: log the failure and return the text to show."""
    tool = exc.tool_name if isinstance(exc, ToolInvocationError) else _running_tool.get()
    logger.warning("tool failed tool=%s error=%s", tool, type(exc).__name__)
    if isinstance(exc, ToolError):
        return exc.user_message
    if isinstance(exc, ToolInvocationError):
        return _invalid_arguments(exc)
    return f"The {tool} tool failed unexpectedly; try again later."
