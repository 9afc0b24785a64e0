"""The checkpointer `langgraph dev` uses (declared in `langgraph.json`): ours, configured
by the settings, so threads made in Studio land in `conversations` too."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from src.agent.memory import ConversationCheckpointer
from src.config.settings import get_settings
from src.wiring import check_pooler, memory_options


@asynccontextmanager
async def checkpointer() -> AsyncIterator[ConversationCheckpointer]:
    """Open the memory store from the settings and yield our checkpointer on it."""
    settings = get_settings()
    async with ConversationCheckpointer.from_dsn(**memory_options(settings)) as saver:
        check_pooler(settings, saver.store)  # no statement cache behind a pooler
        yield saver
