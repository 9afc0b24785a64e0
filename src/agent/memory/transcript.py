"""The transcript format of `conversations.messages`.

Each LangChain message becomes one readable JSON object (`role`, `content`, `tool_calls`,
`tool_call_id`, `timestamp`, `id`, ...) holding everything needed to rebuild exactly the
same message. (Turning such values into JSON text PostgreSQL accepts is `jsonb.py`.)
`MessageSnapshot` is the copy of a stored message the cache compares messages with.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from src.agent.memory.plain_messages import BUILDERS

_MESSAGE_CLASSES: dict[str, type[BaseMessage]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        AIMessage,
        AIMessageChunk,
        ChatMessage,
        ChatMessageChunk,
        FunctionMessage,
        FunctionMessageChunk,
        HumanMessage,
        HumanMessageChunk,
        SystemMessage,
        SystemMessageChunk,
        ToolMessage,
        ToolMessageChunk,
    )
}
_ROLES = {
    "human": "user",
    "ai": "assistant",
    "tool": "tool",
    "system": "system",
    "function": "tool",
}
_READABLE = ("content", "id", "name", "tool_calls", "tool_call_id", "type")


def is_message_list(value: Any) -> bool:
    """True for a list whose items are all plain LangChain messages (the transcript kind)."""
    return isinstance(value, list) and all(
        type(item) in _MESSAGE_CLASSES.values() for item in value
    )


def role_of(message: BaseMessage) -> str:
    """The transcript role: user, assistant, tool or system."""
    if isinstance(message, ChatMessage | ChatMessageChunk):
        return message.role
    return _ROLES[message.type.removesuffix("MessageChunk").lower()]


def message_to_element(
    message: BaseMessage, serde: SerializerProtocol, timestamp: float | None = None
) -> dict[str, Any]:
    """The transcript element of `message`; `element_to_message` rebuilds it exactly."""
    tool_calls = getattr(message, "tool_calls", None) or None
    element: dict[str, Any] = {
        "id": message.id,
        "role": role_of(message),
        "content": message.content,
        "tool_calls": tool_calls,
        "tool_call_id": getattr(message, "tool_call_id", None),
        "timestamp": round(time.time() if timestamp is None else timestamp, 3),
        "type": message.type,
        "name": message.name,
    }
    rest = message.model_dump(exclude_defaults=True, exclude=set(_READABLE))
    if rest:
        element["data"] = rest
    try:
        json.dumps(element, allow_nan=False)
        exact = element_to_message(element, serde) == message
    except (TypeError, ValueError):
        exact = False
    if not exact:
        # Values JSON cannot carry (bytes, datetimes, NaN, ...): keep the readable fields
        # and the exact message in LangGraph's own serialization.
        element.pop("data", None)
        kind, payload = serde.dumps_typed(message)
        element["serde"] = [kind, base64.b64encode(payload).decode("ascii")]
        element["content"] = _readable(message.content)
        element["tool_calls"] = _readable(tool_calls)
    return element


def _readable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def element_to_message(element: dict[str, Any], serde: SerializerProtocol) -> BaseMessage:
    """Rebuild the message a transcript element was made from."""
    if "serde" in element:
        kind, payload = element["serde"]
        message: BaseMessage = serde.loads_typed((kind, base64.b64decode(payload)))
        return message
    cls = _MESSAGE_CLASSES[element["type"]]
    plain = BUILDERS.get(cls)
    if plain is not None and (built := plain.from_element(element)) is not None:
        return built
    kwargs: dict[str, Any] = dict(element.get("data") or {})
    kwargs["content"] = element["content"]
    for key in ("id", "name", "tool_call_id", "tool_calls"):
        if element.get(key) is not None:
            kwargs[key] = element[key]
    return cls(**kwargs)


def copy_value(value: Any) -> Any:
    """A deep copy of a field value: JSON-like values by hand, anything else by `deepcopy`."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if kind is dict:
        return {k: copy_value(v) for k, v in value.items()}
    if kind is list:
        return [copy_value(v) for v in value]
    return copy.deepcopy(value)


# A stored copy's empty values, shared: a copy is never given out, so nothing changes them.
_EMPTY_DICT: dict[Any, Any] = {}
_EMPTY_LIST: list[Any] = []


class MessageSnapshot:
    """A message as it was stored, for comparisons only: its class and a deep copy of its
    field values (a few us, where building a message costs ~10 us and a deep model copy
    more). Equal to a message exactly when pydantic would find the message equal to the
    stored one (or stricter, should the message hold values that are not fields)."""

    __slots__ = ("cls", "extra", "fields", "id", "private")

    def __init__(self, message: BaseMessage) -> None:
        self.cls = type(message)
        fields: dict[str, Any] = {}
        for key, value in message.__dict__.items():  # the common values without a call
            kind = type(value)
            if value is None or kind is str:
                fields[key] = value
            elif not value and kind is dict:
                fields[key] = _EMPTY_DICT
            elif not value and kind is list:
                fields[key] = _EMPTY_LIST
            else:
                fields[key] = copy_value(value)
        self.fields = fields
        extra = message.__pydantic_extra__
        self.extra = copy_value(extra) if extra else {}  # None and {} alike, as pydantic
        private = getattr(message, "__pydantic_private__", None)
        self.private = None if private is None else copy.deepcopy(private)
        self.id: str | None = message.id

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is self.cls
            and other.__dict__ == self.fields
            and (other.__pydantic_extra__ or {}) == self.extra
            and getattr(other, "__pydantic_private__", None) == self.private
        )

    __hash__ = None  # type: ignore[assignment]
