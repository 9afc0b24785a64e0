"""Answers of the Agent Server door: JSON that every SDK parses. Stored text may hold an
unpaired surrogate (written by Studio, a tool, or an older version); the app's other routes
send it as a `\\udXXX` escape, which strict parsers (orjson in `langgraph_sdk`, RFC 8259)
refuse, so here it is sent as U+FFFD, the replacement character, instead."""

from __future__ import annotations

import re
from typing import Any

from src.api.errors import SafeJSONResponse

# In a Python string an unpaired surrogate is a code point of its own (a valid pair read
# from JSON is one astral character), so this finds exactly the unpaired ones.
UNPAIRED_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_unpaired_surrogates(value: Any) -> Any:
    """`value` with each unpaired surrogate of its strings (and keys) made U+FFFD."""
    if isinstance(value, str):
        return UNPAIRED_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {
            replace_unpaired_surrogates(k): replace_unpaired_surrogates(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [replace_unpaired_surrogates(item) for item in value]
    return value


class AgentServerJSONResponse(SafeJSONResponse):
    """JSON with only Unicode text (see the module's docstring)."""

    def render(self, content: Any) -> bytes:
        try:
            return super(SafeJSONResponse, self).render(content)
        except UnicodeEncodeError:
            return super(SafeJSONResponse, self).render(replace_unpaired_surrogates(content))
