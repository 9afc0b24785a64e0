"""The checkpointer `langgraph dev` uses (declared in `langgraph.json`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from src.agent.memory.checkpointer import ConversationCheckpointer
from src.agent.memory.store import PostgresMemoryStore
from src.config.settings import get_settings


@asynccontextmanager
async def checkpointer() -> AsyncIterator[ConversationCheckpointer]:
    """Open the memory store from the settings and yield our checkpointer on it."""
    store = PostgresMemoryStore.from_settings(get_settings())
    await store.initialize()
    try:
        yield ConversationCheckpointer(store)
    finally:
        await store.close()
