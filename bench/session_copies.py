"""Sessions copied whole inside a saver's database, for the resident-memory benchmark
(`bench.session_memory`): ours through its own `acopy_thread`, the official saver's rows by
the statements below (it has no `copy_thread`). A copy is what the source's graph turns
stored, under another thread id: the same rows a graph writes, read back as separately."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

# The official `AsyncPostgresSaver`'s tables (langgraph-checkpoint-postgres 3.x): every
# row of each source thread again under its target thread ($1 sources, $2 targets).
_PAIRS = "JOIN unnest($1::text[], $2::text[]) AS m(source, target) ON t.thread_id = m.source"
OFFICIAL_COPIES = [
    f"""INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id,
        parent_checkpoint_id, type, checkpoint, metadata)
    SELECT m.target, t.checkpoint_ns, t.checkpoint_id, t.parent_checkpoint_id, t.type,
        t.checkpoint, t.metadata
    FROM checkpoints t {_PAIRS}""",
    f"""INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
    SELECT m.target, t.checkpoint_ns, t.channel, t.version, t.type, t.blob
    FROM checkpoint_blobs t {_PAIRS}""",
    f"""INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx,
        channel, type, blob, task_path)
    SELECT m.target, t.checkpoint_ns, t.checkpoint_id, t.task_id, t.idx, t.channel, t.type,
        t.blob, t.task_path
    FROM checkpoint_writes t {_PAIRS}""",
]
THREADS = "SELECT count(DISTINCT thread_id) FROM checkpoints"


async def copy_sessions(kind: str, saver: Any, dsn: str, pairs: list[tuple[str, str]]) -> int:
    """Copy each (source, target) thread; returns the threads the database then holds."""
    if kind == "ours":
        limit = asyncio.Semaphore(10)

        async def one(source: str, target: str) -> None:
            async with limit:
                await saver.acopy_thread(source, target)

        await asyncio.gather(*(one(s, t) for s, t in pairs))
    conn = await asyncpg.connect(dsn)
    try:
        if kind != "ours":
            sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
            async with conn.transaction():
                for statement in OFFICIAL_COPIES:
                    await conn.execute(statement, sources, targets)
        await conn.execute("VACUUM ANALYZE")
        return int(await conn.fetchval(THREADS))
    finally:
        await conn.close()
