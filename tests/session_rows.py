"""A session's rows in the checkpointer's tables, for the tests that check they go with
its `conversations` row (`tests/memory/test_session_rows*.py`,
`test_session_deletes_isolation.py`): the catalogue queries, one row per table, counts of
a session's rows and of orphans, and every path that deletes a session."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from src.agent.memory import ConversationCheckpointer
from src.agent.memory import sql as memory_sql

# Tables holding a `session_id` column, and the triggers on `conversations` with the
# source of their functions (user triggers only: a foreign key's are internal).
SESSION_TABLES = """
SELECT c.relname AS name FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE a.attname = 'session_id' AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
    AND c.relnamespace = current_schema()::regnamespace"""
CASCADING_KEYS = """
SELECT conrelid::regclass::text AS name FROM pg_constraint
WHERE contype = 'f' AND confrelid = 'conversations'::regclass AND confdeltype = 'c'"""
TRIGGERS = """
SELECT (t.tgtype & 8) <> 0 AS on_delete, (t.tgtype & 32) <> 0 AS on_truncate, p.prosrc
FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
WHERE t.tgrelid = 'conversations'::regclass AND NOT t.tgisinternal"""
# `conversations` itself, and the leases: a first turn takes one before its row exists.
NOT_CHILDREN = {"conversations", "turn_leases"}

# One row of the session `$1` in every table of the checkpointer.
POPULATE = {
    "conversations": "INSERT INTO conversations (session_id) VALUES ($1)",
    "checkpoints": """INSERT INTO checkpoints (session_id, checkpoint_id, thread_id, checkpoint,
        metadata) VALUES ($1::uuid, 'c1', $1::uuid::text, '{"channel_versions": {}}',
        '{"run_id": "r1"}')""",
    "checkpoint_blobs": """INSERT INTO checkpoint_blobs (session_id, channel, version, type)
        VALUES ($1, 'x', '1', 'empty')""",
    "checkpoint_writes": """INSERT INTO checkpoint_writes (session_id, checkpoint_id, task_id,
        idx, channel, blob) VALUES ($1, 'c1', 't', 0, 'x', '\\x00')""",
    "conversation_messages": """INSERT INTO conversation_messages (session_id, seq, element)
        VALUES ($1, 0, '{}')""",
    "transcript_heads": "INSERT INTO transcript_heads (session_id, next_seq) VALUES ($1, 1)",
    "checkpoint_retention": """INSERT INTO checkpoint_retention (session_id, head, policy)
        VALUES ($1, 'c1', 'p')""",
}


# The checkpointer's child tables (the first test holds them to its schema's catalogue).
CHILDREN = sorted(set(memory_sql.SESSION_TABLES) - {"conversations"})


async def child_tables(conn: asyncpg.Connection) -> set[str]:
    """The tables with a `session_id` but the conversations and leases (on a database of
    the checkpointer alone: the application's tables have their own deletes)."""
    return {r["name"] for r in await conn.fetch(SESSION_TABLES)} - NOT_CHILDREN


async def populate(conn: asyncpg.Connection, sid: uuid.UUID) -> None:
    for statement in POPULATE.values():
        await conn.execute(statement, sid)


async def rows_of(conn: asyncpg.Connection, sids: list[uuid.UUID]) -> dict[str, int]:
    """Rows of these sessions in every child table."""
    counts = {}
    for table in CHILDREN:
        query = f"SELECT count(*) FROM {table} WHERE session_id = ANY($1::uuid[])"
        counts[table] = await conn.fetchval(query, sids)
    return counts


async def orphans(conn: asyncpg.Connection, sids: list[uuid.UUID]) -> dict[str, int]:
    """Rows of these sessions in child tables whose conversation row is gone."""
    counts = {}
    for table in CHILDREN:
        query = f"""SELECT count(*) FROM {table} t WHERE t.session_id = ANY($1::uuid[])
            AND NOT EXISTS (SELECT FROM conversations c WHERE c.session_id = t.session_id)"""
        counts[table] = await conn.fetchval(query, sids)
    return {t: n for t, n in counts.items() if n}


DeletePath = Callable[[ConversationCheckpointer, uuid.UUID, str], Awaitable[object]]


async def _raw_delete(saver: ConversationCheckpointer, sid: uuid.UUID, _: str) -> None:
    conn = await saver.store.connect()
    try:
        await conn.execute("DELETE FROM conversations WHERE session_id = ANY($1::uuid[])", [sid])
    finally:
        await conn.close()


DELETE_PATHS: dict[str, DeletePath] = {
    "adelete_thread": lambda saver, _, thread: saver.adelete_thread(thread),
    "delete_session": lambda saver, _, thread: saver.delete_session(thread),
    "delete_sessions": lambda saver, _, thread: saver.delete_sessions([thread]),
    "aprune_delete": lambda saver, _, thread: saver.aprune([thread], strategy="delete"),
    "statement": _raw_delete,
}
