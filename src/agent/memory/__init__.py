"""Vera's memory: the PostgreSQL store (pool, schema) and the LangGraph checkpointer."""

from src.agent.memory.checkpointer import ConversationCheckpointer, session_id_for
from src.agent.memory.store import PostgresMemoryStore

__all__ = ["ConversationCheckpointer", "PostgresMemoryStore", "session_id_for"]
