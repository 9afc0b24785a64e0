"""What the data-life tests share (issue 27): sessions made idle, a fork, and every table of
the schema with the rows a set of sessions has in each."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from langchain_core.messages import HumanMessage

# Tables that hold nothing of any session: the schema's own bookkeeping.
NO_SESSION_DATA = frozenset({"vera_memory_migrations", "vera_app_migrations"})


async def make_idle(db: asyncpg.Connection, session_ids: list[str], minutes: float) -> None:
    """Make the sessions look idle for `minutes`: their last turn ended then, and their
    transcript last changed then."""
    sids = [uuid.UUID(s) for s in session_ids]
    await db.execute(
        "UPDATE session_owners SET updated_at = NOW() - make_interval(secs => $2 * 60) "
        "WHERE session_id = ANY($1::uuid[])",
        sids,
        minutes,
    )
    await db.execute(
        "UPDATE conversations SET updated_at = LOCALTIMESTAMP - make_interval(secs => $2 * 60) "
        "WHERE session_id = ANY($1::uuid[])",
        sids,
        minutes,
    )


async def fork_after_first_turn(graph: Any, session_id: str, text: str) -> None:
    """Edit history as Studio does: a new user message written on the checkpoint that ended
    the first turn, so the later turns' messages leave the transcript for another branch."""
    config = {"configurable": {"thread_id": session_id}}
    ends = [s async for s in graph.aget_state_history(config) if not s.next]  # newest first
    await graph.aupdate_state(ends[-1].config, {"messages": [HumanMessage(text)]})


async def tables(db: asyncpg.Connection) -> dict[str, set[str]]:
    """Every table of the schema, with its columns."""
    rows = await db.fetch(
        "SELECT t.table_name, array_agg(c.column_name::text) AS columns "
        "FROM information_schema.tables t JOIN information_schema.columns c "
        "ON c.table_schema = t.table_schema AND c.table_name = t.table_name "
        "WHERE t.table_schema = current_schema() AND t.table_type = 'BASE TABLE' "
        "GROUP BY t.table_name"
    )
    return {r["table_name"]: set(r["columns"]) for r in rows}


async def rows_of(db: asyncpg.Connection, session_ids: list[str]) -> dict[str, int]:
    """The rows these sessions have in each table that has a `session_id` column."""
    sids = [uuid.UUID(s) for s in session_ids]
    counts = {}
    for table, columns in sorted((await tables(db)).items()):
        if "session_id" in columns:
            counts[table] = await db.fetchval(
                f"SELECT count(*) FROM {table} WHERE session_id = ANY($1::uuid[])",
                sids,
            )
    return counts
