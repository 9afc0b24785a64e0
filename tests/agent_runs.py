"""What the runs half of the Agent Server API is, for the tests that check it: its routes
(as `langgraph_sdk` calls them), whether a server serves one yet, and a stream's event
names with each streak of one name (a token per `messages` event) counted once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Each run call of the SDK: its name, method and path (`{thread_id}`, `{run_id}` filled in).
RUN_ROUTES: dict[str, tuple[str, str]] = {
    "runs.stream": ("POST", "/threads/{thread_id}/runs/stream"),
    "runs.wait": ("POST", "/threads/{thread_id}/runs/wait"),
    "runs.create": ("POST", "/threads/{thread_id}/runs"),
    "runs.list": ("GET", "/threads/{thread_id}/runs"),
    "runs.get": ("GET", "/threads/{thread_id}/runs/{run_id}"),
    "runs.delete": ("DELETE", "/threads/{thread_id}/runs/{run_id}"),
    "runs.join": ("GET", "/threads/{thread_id}/runs/{run_id}/join"),
    "runs.join_stream": ("GET", "/threads/{thread_id}/runs/{run_id}/stream"),
    "runs.cancel": ("POST", "/threads/{thread_id}/runs/{run_id}/cancel"),
}

# The tool turn every runs scenario plays (the offline model calls get_weather on it).
TOOL_TURN = {"messages": [{"role": "user", "content": "What's the weather in Paris?"}]}
STREAM_MODES = ["values", "messages-tuple", "updates"]
# Every stream mode of the Agent Server API (`langgraph_sdk.schema.StreamMode`).
EVERY_STREAM_MODE = [
    *("values", "updates", "messages", "messages-tuple", "events"),
    *("debug", "checkpoints", "tasks", "custom"),
]
# Its events with each streak counted once, as `langgraph dev` streams them: the run's
# metadata, the input, then per step (model, tools, model) its messages, its update and
# the state after it.
TOOL_TURN_EVENTS = ["metadata", "values"] + ["messages", "updates", "values"] * 3


def serves(openapi: dict[str, Any], call: str) -> bool:
    """Whether a server's OpenAPI document has the route of the SDK call `call`."""
    method, path = RUN_ROUTES[call]
    return method.lower() in openapi.get("paths", {}).get(path, {})


def streaks(names: Iterable[str]) -> list[str]:
    """`names` with each run of one name kept once: ["a", "a", "b", "a"] -> ["a", "b", "a"]."""
    kept: list[str] = []
    for name in names:
        if not kept or kept[-1] != name:
            kept.append(name)
    return kept
