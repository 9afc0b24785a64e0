"""The checkpointer `langgraph dev` uses (declared in `langgraph.json`): ours, configured
by the settings, so threads made in Studio land in `conversations` too.

While it is open, the session TTL sweep runs in this process as in every API worker, with
`checkpointer.ttl` of `langgraph.json` (or `LANGGRAPH_THREAD_TTL`) in place of the
`SESSION_TTL_*` settings it names (`src/config/langgraph_ttl.py`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from src.agent.memory import ConversationCheckpointer
from src.api.session_erase import SessionEraser
from src.api.session_ttl import SessionSweeper, TTLPolicy, sweeping
from src.config.langgraph_ttl import ttl_settings
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


@asynccontextmanager
async def checkpointer() -> AsyncIterator[ConversationCheckpointer]:
    """Open the memory store from the settings and yield our checkpointer on it."""
    overrides = ttl_settings(thread_ttl())
    settings = load_settings(**overrides) if overrides else get_settings()
    async with ConversationCheckpointer.from_dsn(**memory_options(settings)) as saver:
        check_pooler(settings, saver.store)  # no statement cache behind a pooler
        lease = settings.session_lease_seconds
        eraser = SessionEraser(saver.store, saver, lease)
        sweeper = SessionSweeper(saver.store, eraser, TTLPolicy.from_settings(settings), lease)
        async with sweeping(sweeper):
            yield saver
