"""The transcript format of `conversations.messages`, and JSON that PostgreSQL accepts.

Each LangChain message becomes one readable JSON object (`role`, `content`, `tool_calls`,
`tool_call_id`, `timestamp`, `id`, ...) holding everything needed to rebuild exactly the
same message. JSONB rejects NUL characters and lone surrogates, so strings holding them
are escaped reversibly with a private-use character (`pg_encode` / `pg_decode`).
"""

from __future__ import annotations

import base64
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

_ESC = "\ue000"
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


def _needs_escape(text: str) -> bool:
    if "\x00" in text or _ESC in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _escape(text: str) -> str:
    out = []
    for ch in text:
        if ch == "\x00":
            out.append(_ESC + "0")
        elif ch == _ESC:
            out.append(_ESC + _ESC)
        elif "\ud800" <= ch <= "\udfff":
            out.append(f"{_ESC}s{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


def _unescape(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != _ESC:
            out.append(ch)
            i += 1
            continue
        code = text[i + 1]
        if code == "0":
            out.append("\x00")
            i += 2
        elif code == _ESC:
            out.append(_ESC)
            i += 2
        else:  # "s" + 4 hex digits: a lone surrogate
            out.append(chr(int(text[i + 2 : i + 6], 16)))
            i += 6
    return "".join(out)


def pg_encode(value: Any) -> Any:
    """Return `value` with every string made storable in JSONB (reversible)."""
    if isinstance(value, str):
        return _escape(value) if _needs_escape(value) else value
    if isinstance(value, dict):
        return {pg_encode(k): pg_encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [pg_encode(v) for v in value]
    return value


def pg_decode(value: Any) -> Any:
    """Inverse of `pg_encode`."""
    if isinstance(value, str):
        return _unescape(value) if _ESC in value else value
    if isinstance(value, dict):
        return {pg_decode(k): pg_decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pg_decode(v) for v in value]
    return value


def dumps_jsonb(value: Any) -> str:
    """JSON text for a JSONB parameter; NaN/Infinity and non-JSON types raise ValueError.

    Plain text is dumped as is; only when the dump shows a NUL escape, the escape character
    or a lone surrogate (rare; false alarms are harmless) is the value walked and escaped.
    """
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    if "\\u0000" not in text and not _needs_escape(text):
        return text
    return json.dumps(pg_encode(value), ensure_ascii=False, allow_nan=False)


def loads_jsonb(text: str) -> Any:
    """Decode JSON text read from a JSONB column."""
    return pg_decode(json.loads(text))


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
        return serde.loads_typed((kind, base64.b64decode(payload)))
    cls = _MESSAGE_CLASSES[element["type"]]
    kwargs: dict[str, Any] = dict(element.get("data") or {})
    kwargs["content"] = element["content"]
    for key in ("id", "name", "tool_call_id", "tool_calls"):
        if element.get(key) is not None:
            kwargs[key] = element[key]
    return cls(**kwargs)
