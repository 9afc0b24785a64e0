"""A turn's messages reach the client once they are stored.

LangGraph's "updates" stream yields a task's messages as soon as the task returns, before
the superstep's writes and checkpoint are in the database: a `tool_result` sent then could
be one the record does not hold (a crash, an outage, a lost lease would leave the retry to
run the tool again). `StoredMessages` holds each update's messages until the next
"checkpoints" event: with `durability="sync"`, LangGraph emits a checkpoint only after its
save returned, and that checkpoint holds every message of the steps before it. So a
message's events (`tool_call`, `tool_result`, the answer's id) are sent after the
checkpoint that holds it is stored, and not at all when that save fails; a retry with the
same `turn_id` then resumes from that checkpoint and does not run the tool again.
"""

from __future__ import annotations

from typing import Any

from langgraph.types import StreamMode

STREAM_MODES: list[StreamMode] = ["messages", "updates", "checkpoints"]


class StoredMessages:
    """The messages of graph updates, released once a checkpoint after them is stored."""

    def __init__(self) -> None:
        self._held: list[Any] = []

    def hold(self, update: Any) -> None:
        """Keep the messages of one "updates" chunk (`{node: {"messages": [...]}}`)."""
        if not isinstance(update, dict):
            return
        for written in update.values():
            if isinstance(written, dict):
                self._held.extend(written.get("messages") or [])

    def stored(self) -> list[Any]:
        """At a "checkpoints" event: the messages held so far, which it holds, in order."""
        released, self._held = self._held, []
        return released
