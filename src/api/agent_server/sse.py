"""The data of a run's Server-Sent Events, as `langgraph_sdk` reads them."""

from __future__ import annotations

import json
from typing import Any

from src.api.agent_server.responses import replace_unpaired_surrogates


def sse_data(data: Any) -> str:
    """An event's data as one line of JSON that `langgraph_sdk` (orjson) parses: only
    Unicode text (an unpaired surrogate is sent as U+FFFD, as the door's answers)."""
    text = json.dumps(data, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(replace_unpaired_surrogates(data), ensure_ascii=False)
    return text
