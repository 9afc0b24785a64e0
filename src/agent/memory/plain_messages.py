"""Messages rebuilt from plain transcript elements without pydantic's validation.

A cold read rebuilds every message of a conversation; most elements are plain (a string
`content`, string `id` / `name` / `tool_call_id`, nothing else), and for those pydantic's
validation (~3 us a human message, ~8 us an AI one, its validators included) only copies
the strings into the class's defaults. `PlainBuilder` gives the very same instance in
~1 us: the defaults as validation leaves them (a fresh empty dict or list where the field
has a factory), the given strings, the same set fields. Each class's builder is checked at
import against validation on a probe with every field given, and is not used for a class
it does not reproduce exactly (another langchain-core, say).
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

# The string fields a plain element may give (besides `content`).
PLAIN_FIELDS = ("id", "name", "tool_call_id")


class PlainBuilder:
    """Builds a `cls` message from string fields exactly as `cls(**fields)` does."""

    __slots__ = ("cls", "defaults", "fresh", "required")

    def __init__(self, cls: type[BaseMessage], probe: BaseMessage, required: set[str]) -> None:
        self.cls = cls
        self.required = required
        self.defaults: dict[str, Any] = {}
        fresh: list[tuple[str, type[dict[Any, Any]] | type[list[Any]]]] = []
        for key, value in probe.__dict__.items():
            if type(value) in (dict, list) and not value:
                fresh.append((key, type(value)))  # a new empty one per message
            elif value is not None and type(value) not in (str, int, bool):
                raise TypeError(f"{cls.__name__}.{key}: a default that is not plain")
            self.defaults[key] = value
        self.fresh = tuple(fresh)

    def from_element(self, element: dict[str, Any]) -> BaseMessage | None:
        """The message of a plain transcript element (a string `content`, any of
        `PLAIN_FIELDS` as strings, every required one given, no other value), else None:
        validation would keep another key as an extra, or refuse the message."""
        content = element["content"]
        if type(content) is not str or "data" in element or element.get("tool_calls") is not None:
            return None
        values = self.defaults.copy()  # in the field order of validation
        for key, empty in self.fresh:
            values[key] = empty()
        values["content"] = content
        given = {"content"}
        for key in PLAIN_FIELDS:
            value = element.get(key)
            if value is not None:
                if type(value) is not str or key not in values:
                    return None
                values[key] = value
                given.add(key)
        if not self.required <= given:
            return None
        message = self.cls.__new__(self.cls)
        object.__setattr__(message, "__dict__", values)
        object.__setattr__(message, "__pydantic_fields_set__", given)
        object.__setattr__(message, "__pydantic_extra__", {})
        object.__setattr__(message, "__pydantic_private__", None)
        return message


def same_instance(a: BaseMessage, b: BaseMessage) -> bool:
    """Equal as pydantic compares, and in the set fields and the order of the fields."""
    return (
        type(a) is type(b)
        and a == b
        and list(a.__dict__) == list(b.__dict__)
        and a.model_fields_set == b.model_fields_set
        and a.__pydantic_extra__ == b.__pydantic_extra__
        and a.__pydantic_private__ == b.__pydantic_private__
    )


def _checked(cls: type[BaseMessage]) -> PlainBuilder | None:
    """The builder of `cls`, if it rebuilds probes exactly as validation does."""
    least = {"content": ""} | ({"tool_call_id": ""} if "tool_call_id" in cls.model_fields else {})
    every = least | {"content": "probe", "id": "probe-id", "name": "probe-name"}
    try:
        builder = PlainBuilder(cls, cls(**least), set(least))
    except (TypeError, ValueError):  # a default that is not plain; a refused probe
        return None
    for fields in (least, every):
        built = builder.from_element(fields | {"type": cls.model_fields["type"].default})
        if built is None or not same_instance(built, cls(**fields)):
            return None
    return builder


BUILDERS: dict[type[BaseMessage], PlainBuilder] = {
    cls: builder
    for cls in (AIMessage, HumanMessage, SystemMessage, ToolMessage)
    if (builder := _checked(cls)) is not None
}
