"""The `messages` stream mode as `langgraph-api` makes it from LangGraph's (message, metadata)
parts: a message's `messages/metadata` when it first appears, then at each part the message
so far, `messages/partial` while it streams in chunks, `messages/complete` for a whole one.
(`messages-tuple` sends LangGraph's parts as they are, as `messages` events.)"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import (
    BaseMessage,
    BaseMessageChunk,
    convert_to_messages,
    message_chunk_to_message,
)


class MessagesSoFar:
    """The messages of one run so far, by id."""

    def __init__(self) -> None:
        self._so_far: dict[str | None, BaseMessage] = {}

    def events(
        self, part: tuple[BaseMessage | dict[str, Any], dict[str, Any]]
    ) -> list[tuple[str, Any]]:
        """The (event name, data) pairs one LangGraph `messages` part makes."""
        found, metadata = part
        message = found if isinstance(found, BaseMessage) else convert_to_messages([found])[0]
        events: list[tuple[str, Any]] = []
        if message.id in self._so_far:
            self._so_far[message.id] += message  # type: ignore[assignment]
        else:
            self._so_far[message.id] = message
            events.append(("messages/metadata", {message.id: {"metadata": metadata}}))
        name = "messages/partial" if isinstance(message, BaseMessageChunk) else "messages/complete"
        events.append((name, [message_chunk_to_message(self._so_far[message.id])]))
        return events
