"""Whole-thread operations of the checkpointer: delete (by session or by run), copy, prune,
and the read of every branch. Each takes a connection and runs in its own transaction;
`ConversationCheckpointer`'s methods call them and keep their in-process cache in step.
Rows go with their conversation (the delete trigger of migration 10), which deletes in READ
COMMITTED only: the deletes here say so, whatever the database's default isolation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from src.agent.memory import prune_sql, sql
from src.agent.memory.jsonb import loads_jsonb


@dataclass(frozen=True)
class SessionsDeleted:
    """What `delete_sessions` removed: the sessions that existed, and the bytes their rows
    took as stored (reusable by PostgreSQL once vacuumed)."""

    session_ids: list[uuid.UUID]
    bytes: int


@dataclass(frozen=True)
class Branch:
    """The tip of one branch of a thread: its checkpoint, when it was written, and its
    transcript (elements as in `conversations.messages`); `shown`: the one the transcript
    shows (the thread's latest)."""

    checkpoint_id: str
    created_at: datetime
    shown: bool
    messages: list[dict[str, Any]]


async def delete_rows(conn: asyncpg.Connection, sids: list[uuid.UUID]) -> str:
    """Delete these sessions whole; the statement's status (`DELETE n`)."""
    async with conn.transaction(isolation="read_committed"):
        status: str = await conn.execute(sql.DELETE_SESSIONS, sids)
    return status


async def delete_sessions(conn: asyncpg.Connection, sids: list[uuid.UUID]) -> SessionsDeleted:
    """Delete these sessions whole, measuring their rows first (one transaction)."""
    async with conn.transaction(isolation="read_committed"):
        size = await conn.fetchval(sql.SESSIONS_BYTES, sids)
        rows = await conn.fetch(sql.DELETE_SESSIONS_RETURNING, sids)
    return SessionsDeleted([r["session_id"] for r in rows], int(size or 0))


async def branches(conn: asyncpg.Connection, sid: uuid.UUID, channel: str) -> list[Branch]:
    """The tips of the session's branches, newest first, on one snapshot (tips whose
    transcript channel holds no message list are left out)."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        tips = await conn.fetch(sql.BRANCH_TIPS, sid, channel)
        stored = await conn.fetchrow(sql.MESSAGES_ALL, sid)
    if stored is None:
        return []
    by_seq: dict[int, dict[str, Any]] = dict(
        zip(stored["other_seqs"] or [], loads_jsonb(stored["others"] or "[]"), strict=True)
    )
    shown = loads_jsonb(stored["shown"]) if stored["shown"] else []
    for seq, element in zip(stored["seqs"] or [], shown, strict=False):  # by position
        by_seq.setdefault(seq, element)
    return [
        Branch(t["checkpoint_id"], t["created_at"], t["shown"], [by_seq[s] for s in t["seqs"]])
        for t in tips
        if t["seqs"] is not None and all(s in by_seq for s in t["seqs"])
    ]


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
