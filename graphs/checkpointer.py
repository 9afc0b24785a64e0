"""The checkpointer `langgraph dev` uses (declared in `langgraph.json`): ours, configured
by the settings, so threads made in Studio land in `conversations` too.

While it is open, the session TTL sweep runs in this process as in every API worker, with
`checkpointer.ttl` of `langgraph.json` (or `LANGGRAPH_THREAD_TTL`) in place of the
`SESSION_TTL_*` settings it names (`src/config/langgraph_ttl.py`), followed by checkpoint
retention with `checkpointer.retention` (in place of `CHECKPOINT_RETENTION_*`)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from src.agent.memory import ConversationCheckpointer
from src.api.checkpoint_retention import CheckpointRetention
from src.api.session_erase import SessionEraser
from src.api.session_ttl import SessionSweeper, TTLPolicy, sweeping
from src.config.langgraph_ttl import retention_settings, ttl_settings
from src.config.settings import get_settings, load_settings
from src.wiring import check_pooler, memory_options


def thread_ttl() -> Mapping[str, Any] | None:
    """The thread TTL LangGraph's server was given, as it parsed it (None: none, or not
    running under `langgraph dev`)."""
    try:
        from langgraph_api import config
    except ImportError:
        return None
    return config.THREAD_TTL


def retention() -> Mapping[str, Any] | None:
    """langgraph.json's `checkpointer.retention`, Vera's own key: LangGraph's server drops
    keys it does not know from what it parses, so it is read from the `checkpointer`
    object its CLI hands the server (`LANGGRAPH_CHECKPOINTER`, JSON)."""
    raw = os.environ.get("LANGGRAPH_CHECKPOINTER")
    config = json.loads(raw) if raw else None
    return config.get("retention") if isinstance(config, dict) else None


@asynccontextmanager
async def checkpointer() -> AsyncIterator[ConversationCheckpointer]:
    """Open the memory store from the settings and yield our checkpointer on it."""
    overrides = ttl_settings(thread_ttl()) | retention_settings(retention())
    settings = load_settings(**overrides) if overrides else get_settings()
    async with ConversationCheckpointer.from_dsn(**memory_options(settings)) as saver:
        check_pooler(settings, saver.store)  # no statement cache behind a pooler
        lease = settings.session_lease_seconds
        eraser = SessionEraser(saver.store, saver, lease)
        pruning = CheckpointRetention.from_settings(saver, settings)
        policy = TTLPolicy.from_settings(settings)
        sweeper = SessionSweeper(saver.store, eraser, policy, lease, retention=pruning)
        async with sweeping(sweeper):
            yield saver
