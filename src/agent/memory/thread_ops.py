"""Whole-thread operations of the checkpointer: delete by run, copy, prune. Each takes a
connection and runs in its own transaction; `ConversationCheckpointer`'s methods call them
and keep their in-process cache in step. Rows go with their conversation (foreign keys
cascade)."""

from __future__ import annotations

import uuid

import asyncpg

from src.agent.memory import prune_sql, sql


async def delete_runs(conn: asyncpg.Connection, run_ids: list[str], channel: str) -> None:
    """Delete the checkpoints (and their writes) these runs created; each session touched
    then shows its latest remaining checkpoint (`channel`: the transcript channel)."""
    async with conn.transaction():
        rows = await conn.fetch(sql.DELETE_RUNS, run_ids)
        if rows:
            sids = [r["session_id"] for r in rows]
            await conn.execute(sql.DELETE_UNREFERENCED_BLOBS, sids)
            await conn.execute(sql.REFRESH_TRANSCRIPTS, sids, channel)


async def copy_thread(
    conn: asyncpg.Connection, source: uuid.UUID, target: uuid.UUID, target_thread_id: str
) -> None:
    """Copy every checkpoint, write and the transcript of session `source` to `target`
    (`ValueError` if the target has checkpoints; nothing happens if the source is unknown)."""
    async with conn.transaction():
        if await conn.fetchval(sql.TARGET_HAS_CHECKPOINTS, target):
            raise ValueError(f"target thread {target_thread_id!r} already has checkpoints")
        if await conn.fetchval(sql.COPY_CONVERSATION, source, target) is None:
            return
        await conn.execute(sql.COPY_MESSAGES, source, target)
        await conn.execute(sql.COPY_HEAD, source, target)
        await conn.execute(sql.COPY_CHECKPOINTS, source, target, target_thread_id)
        await conn.execute(sql.COPY_BLOBS, source, target)
        await conn.execute(sql.COPY_WRITES, source, target)


async def refuse_delta_threads(conn: asyncpg.Connection, threads: dict[uuid.UUID, str]) -> None:
    """`NotImplementedError` if one of `threads` uses a `DeltaChannel`: `keep_latest` would
    delete the older checkpoints its value is rebuilt from."""
    rows = await conn.fetch(prune_sql.DELTA_SESSIONS, list(threads))
    if rows:
        names = ", ".join(sorted(threads[r["session_id"]] for r in rows))
        raise NotImplementedError(
            f"keep_latest can't prune threads that use a DeltaChannel: {names}"
        )


async def keep_latest(
    conn: asyncpg.Connection, sid: uuid.UUID, threads: dict[uuid.UUID, str]
) -> None:
    """One session's `keep_latest`, in one REPEATABLE READ transaction."""
    async with conn.transaction(isolation="repeatable_read"):
        heads = await conn.fetch(prune_sql.HEADS, sid)
        await refuse_delta_threads(conn, {sid: threads[sid]})  # began using one since
        kept = {h["checkpoint_ns"]: [i for i in (h["head"], h["sends_parent"]) if i] for h in heads}
        # A subgraph call's namespace has its task id after a ":" (a `checkpointer=True`
        # subgraph's has none: its state outlives each call). A call goes with the root
        # checkpoint it started from, once that one is saved (a call can commit first).
        calls = [
            h["checkpoint_ns"]
            for h in heads
            if ":" in h["checkpoint_ns"] and h["root_saved"] and h["root"] not in kept.get("", ())
        ]
        if calls:
            for statement in prune_sql.DELETE_NAMESPACES:
                await conn.execute(statement, sid, calls)
        pairs = [(ns, i) for ns, ids in kept.items() if ns not in calls for i in ids]
        if pairs:
            namespaces, ids = map(list, zip(*pairs, strict=True))
            await conn.execute(prune_sql.DELETE_UNKEPT, sid, namespaces, ids)
            await conn.execute(prune_sql.DELETE_UNREFERENCED_BLOBS, sid, namespaces)
