"""Whole-thread operations of the checkpointer: delete, delete by run, copy and prune."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from src.agent.memory import prune_sql, sql
from src.agent.memory.message_log import TranscriptCache
from src.agent.memory.threads import session_id_for


class ThreadMaintenance:
    """Mixin of `ConversationCheckpointer`; rows go with their conversation (cascades)."""

    transcripts: TranscriptCache
    transcript_channel: str
    _run: Callable[[Callable[[asyncpg.Connection], Awaitable[Any]]], Awaitable[Any]]

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete the thread's conversation row, checkpoints and writes."""
        sid = session_id_for(thread_id)
        await self._run(lambda conn: conn.execute(sql.DELETE_SESSIONS, [sid]))
        self.transcripts.invalidate(sid)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) that these runs created."""
        if not run_ids:
            return

        async def delete(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                rows = await conn.fetch(sql.DELETE_RUNS, [str(r) for r in run_ids])
                if rows:
                    sids = [r["session_id"] for r in rows]
                    await conn.execute(sql.DELETE_UNREFERENCED_BLOBS, sids)
                    await conn.execute(sql.REFRESH_TRANSCRIPTS, sids, self.transcript_channel)

        await self._run(delete)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and the transcript of a thread to a new thread."""
        source, target = session_id_for(source_thread_id), session_id_for(target_thread_id)

        async def copy(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                if await conn.fetchval(sql.TARGET_HAS_CHECKPOINTS, target):
                    raise ValueError(f"target thread {target_thread_id!r} already has checkpoints")
                if await conn.fetchval(sql.COPY_CONVERSATION, source, target) is None:
                    return
                await conn.execute(sql.COPY_MESSAGES, source, target)
                await conn.execute(sql.COPY_HEAD, source, target)
                await conn.execute(sql.COPY_CHECKPOINTS, source, target, str(target_thread_id))
                await conn.execute(sql.COPY_BLOBS, source, target)
                await conn.execute(sql.COPY_WRITES, source, target)

        await self._run(copy)
        self.transcripts.invalidate(target)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads as the official Postgres saver does.

        `delete` drops the threads whole. `keep_latest` keeps each namespace's latest
        checkpoint (with its writes and blobs) and deletes finished subgraph calls'
        namespaces whole; it refuses, pruning nothing, when a thread uses a `DeltaChannel`.
        Each thread is pruned in a transaction of its own, on one snapshot of it.
        """
        if isinstance(thread_ids, str):
            raise TypeError("thread_ids must be a sequence of thread IDs, not a str")
        if strategy not in ("keep_latest", "delete"):
            raise ValueError(f"unknown prune strategy {strategy!r}: use keep_latest or delete")
        threads = {session_id_for(t): str(t) for t in thread_ids}
        if not threads:
            return
        sids = list(threads)
        if strategy == "delete":
            await self._run(lambda conn: conn.execute(sql.DELETE_SESSIONS, sids))
            for sid in sids:
                self.transcripts.invalidate(sid)
            return
        await self._run(lambda conn: _refuse_delta_threads(conn, threads))
        for sid in sids:
            await self._run(lambda conn, sid=sid: _keep_latest(conn, sid, threads))


async def _refuse_delta_threads(conn: asyncpg.Connection, threads: dict[uuid.UUID, str]) -> None:
    """`NotImplementedError` if one of `threads` uses a `DeltaChannel`: `keep_latest` would
    delete the older checkpoints its value is rebuilt from."""
    rows = await conn.fetch(prune_sql.DELTA_SESSIONS, list(threads))
    if rows:
        names = ", ".join(sorted(threads[r["session_id"]] for r in rows))
        raise NotImplementedError(
            f"keep_latest can't prune threads that use a DeltaChannel: {names}"
        )


async def _keep_latest(
    conn: asyncpg.Connection, sid: uuid.UUID, threads: dict[uuid.UUID, str]
) -> None:
    """One session's `keep_latest`, in one REPEATABLE READ transaction."""
    async with conn.transaction(isolation="repeatable_read"):
        heads = await conn.fetch(prune_sql.HEADS, sid)
        await _refuse_delta_threads(conn, {sid: threads[sid]})  # began using one since
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
