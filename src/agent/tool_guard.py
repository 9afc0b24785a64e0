"""What a tool call checks before it starts, and the key it runs under.

A run that may act (an API turn holding its session's lease) puts a `ToolGuard` in its
config (`configurable[TOOL_GUARD_KEY]`); the tool wrapper awaits its `confirm()` right
before each tool starts, and a guard that raises means the tool does not start: the run
may no longer be the session's (its lease is lost, or cannot be confirmed), and the turn
ends with that error instead of the tool's result. The graph only knows this protocol;
the API hands in the memory library's lease guard.

Each call runs under an idempotency key derived from the turn (`configurable[TOOL_TURN_KEY]`,
else the thread) and the model's tool call id, so every attempt at one call has one key.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

TOOL_GUARD_KEY = "vera_tool_guard"
TOOL_TURN_KEY = "vera_turn_id"

# Fixed: the keys of one call must not change across releases.
_KEY_NAMESPACE = uuid.UUID("5b0d6f0e-2f7a-4c1e-9b8a-3c6f1e0a7d42")


class ToolGuard(Protocol):
    """Raises when the run may no longer act (and so must start no tool)."""

    async def confirm(self) -> None: ...


class ToolNotStartedError(Exception):
    """A tool call that was not started because its guard refused; `cause`: why."""

    def __init__(self, tool: str, cause: Exception) -> None:
        super().__init__(f"the {tool} tool was not started: {type(cause).__name__}")
        self.cause = cause


def idempotency_key(turn_id: str, tool_call_id: str) -> str:
    """The key of one tool call of one turn: the same on every attempt at it."""
    return str(uuid.uuid5(_KEY_NAMESPACE, f"{turn_id}\x00{tool_call_id}"))


def call_key(configurable: dict[str, Any], tool_call_id: str) -> str:
    """The key of a tool call in a run with this `configurable`: by turn, else by thread."""
    scope = configurable.get(TOOL_TURN_KEY) or f"thread:{configurable.get('thread_id', '')}"
    return idempotency_key(str(scope), tool_call_id)


def guard_of(configurable: dict[str, Any]) -> ToolGuard | None:
    """The run's guard, if it has one (Studio and scripts do not)."""
    guard = configurable.get(TOOL_GUARD_KEY)
    return guard if guard is not None and hasattr(guard, "confirm") else None
