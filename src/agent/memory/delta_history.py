"""A `DeltaChannel`'s history (`get_delta_channel_history`) as the official Postgres saver
reads it: walking a checkpoint's ancestors, each channel collects its writes until the
nearest ancestor that stores a value for it, its seed.

The walk is LangGraph's default one but for what counts as a stored value: an inline
JSON `null` is none (the official saver can't tell it from a missing key), so the walk
goes on past it, and a channel whose walk reaches the root has no seed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple, DeltaChannelHistory, PendingWrite

Fetch = Callable[[RunnableConfig], Awaitable[CheckpointTuple | None]]


async def channel_history(
    fetch: Fetch, config: RunnableConfig, channels: Sequence[str]
) -> dict[str, DeltaChannelHistory]:
    """Per channel: the writes oldest first from its seed's checkpoint up to the parent of
    the checkpoint of `config` (whose own writes are pending), and the seed if one was
    found. `fetch` reads one checkpoint (`aget_tuple`)."""
    writes: dict[str, list[PendingWrite]] = {ch: [] for ch in channels}
    seeds: dict[str, object] = {}
    walking = set(channels)
    target = await fetch(config) if walking else None
    parent = target.parent_config if target else None
    while parent is not None and walking:
        ancestor = await fetch(parent)
        if ancestor is None:
            break
        for write in reversed(ancestor.pending_writes or ()):
            if write[1] in walking:
                writes[write[1]].append(write)
        values = ancestor.checkpoint["channel_values"]
        for ch in [ch for ch in walking if values.get(ch) is not None]:
            seeds[ch] = values[ch]
            walking.discard(ch)
        parent = ancestor.parent_config
    history: dict[str, DeltaChannelHistory] = {}
    for ch in channels:
        history[ch] = {"writes": writes[ch][::-1]}
        if ch in seeds:
            history[ch]["seed"] = seeds[ch]
    return history
