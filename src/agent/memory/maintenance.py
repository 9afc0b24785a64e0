"""Whole-thread operations of the checkpointer: delete, delete by run, copy and prune."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg

from src.agent.memory import sql
from src.agent.memory.message_log import TranscriptCache
from src.agent.memory.threads import session_id_for


class ThreadMaintenance:
    """Mixin of `ConversationCheckpointer`; rows go with their conversation (cascades)."""

    transcripts: TranscriptCache
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
                    await conn.execute(
                        sql.DELETE_UNREFERENCED_BLOBS, [r["session_id"] for r in rows]
                    )

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
                await conn.execute(sql.COPY_CHECKPOINTS, source, target, str(target_thread_id))
                await conn.execute(sql.COPY_BLOBS, source, target)
                await conn.execute(sql.COPY_WRITES, source, target)

        await self._run(copy)
        self.transcripts.invalidate(target)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """`keep_latest`: keep each namespace's newest checkpoint; `delete`: drop threads."""
        sids = [session_id_for(t) for t in thread_ids]
        if not sids:
            return
        if strategy == "delete":
            await self._run(lambda conn: conn.execute(sql.DELETE_SESSIONS, sids))
            for sid in sids:
                self.transcripts.invalidate(sid)
            return
        if strategy != "keep_latest":
            raise ValueError(f"unknown prune strategy {strategy!r}: use keep_latest or delete")

        async def prune(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                await conn.execute(sql.PRUNE_KEEP_LATEST, sids)
                await conn.execute(sql.DELETE_UNREFERENCED_BLOBS, sids)

        await self._run(prune)
