"""The idempotency key of the tool call that is running, for tools with side effects.

The graph's tool wrapper (`src.agent.tool_errors.track_tool_call`) sets it around each call:
the same key for every attempt at one tool call of one turn (a retried or resumed turn, a
worker taking a turn over), another for any other call. A tool reads it with
`idempotency_key()`; the HTTP helper (`src.tools.http.get_json`) sends it as the
`Idempotency-Key` header, so an API that honours the header acts once per key.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

IDEMPOTENCY_HEADER = "Idempotency-Key"

_key: ContextVar[str | None] = ContextVar("vera_tool_idempotency_key", default=None)


def idempotency_key() -> str | None:
    """The running tool call's key; None outside a tool call of the graph."""
    return _key.get()


@contextmanager
def keyed(key: str) -> Iterator[None]:
    """Run the block as the tool call whose key is `key`."""
    token = _key.set(key)
    try:
        yield
    finally:
        _key.reset(token)
