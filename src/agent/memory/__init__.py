"""Vera's memory: the PostgreSQL store (pool, schema), the LangGraph checkpointer, and the
session leases that fence its writes."""

from src.agent.memory.checkpointer import ConversationCheckpointer, session_id_for
from src.agent.memory.leases import SessionLeases
from src.agent.memory.migrations import MigrationSet
from src.agent.memory.store import PostgresMemoryStore

__all__ = [
    "ConversationCheckpointer",
    "MigrationSet",
    "PostgresMemoryStore",
    "SessionLeases",
    "session_id_for",
]
